#!/usr/bin/env bash
# Load time of real BuildStream projects: `cas show` (release build) on each
# PROJECT_DIR:TARGET[:BST_DIR] given, median of 5 runs, peak RSS; and `bst
# show` (median of 3, after one run that fetches its plugin junctions) in the
# same run when a BuildStream is at $CAS_BENCH_BST (or `bst` on PATH) and can
# load the project in BST_DIR (default PROJECT_DIR: a copy whose aliases
# reach the plugin junctions offline, when the network does not). Writes
# bench/BST-PROJECTS.md, which cas-bench appends to BENCHMARKS.md.
#
#   bash bench/bst-projects.sh ~/src/freedesktop-sdk:components.bst
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p cas --manifest-path "$here/Cargo.toml"
cas="$here/target/release/cas"
bst="${CAS_BENCH_BST:-$(command -v bst || true)}"
out="$here/bench/BST-PROJECTS.md"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
{
  echo "## bst-projects: loading real BuildStream projects (\`cas show\`)"
  echo
  echo "Reproduce: \`bash bench/bst-projects.sh DIR:TARGET...\` ($(date -u +%F), $(nproc) cores)."
  echo
  echo "| project | commit | elements loaded | errors | cas show (median of 5) | peak RSS | bst show |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | --- |"
} > "$out"
for spec in "$@"; do
  dir=${spec%%:*}; rest=${spec#*:}; target=${rest%%:*}
  bst_dir=$dir; [ "$rest" != "$target" ] && bst_dir=${rest#*:}
  name=$(basename "$dir")
  commit=$(git -C "$dir" rev-parse --short HEAD 2>/dev/null || echo "-")
  times=(); rss=0
  for _ in 1 2 3 4 5; do
    (cd "$dir" && /usr/bin/time -f "%e %M" -o /tmp/bst-projects.time "$cas" show "elements/$target" >/dev/null 2>/tmp/bst-projects.err) || true
    read -r t m < <(tail -1 /tmp/bst-projects.time)
    times+=("$t"); rss=$m
  done
  med=$(printf '%s\n' "${times[@]}" | median)
  (cd "$dir" && CAS_FORMAT_TIMING=1 "$cas" show "elements/$target" 2>&1 >/dev/null) > /tmp/bst-projects.timing || true
  loaded=$(grep -o 'read+parse [0-9]* files' /tmp/bst-projects.timing | grep -o '[0-9]*' || echo "?")
  errors=$(grep -c '×' /tmp/bst-projects.err || true)
  bst_col="not measured: no BuildStream here"
  if [ -n "$bst" ]; then
    (cd "$bst_dir" && timeout 600 "$bst" show "$target" >/dev/null 2>&1) || true
    if (cd "$bst_dir" && timeout 600 /usr/bin/time -f "%e" -o /tmp/bst-projects.bst "$bst" show "$target" >/dev/null 2>/tmp/bst-projects.bsterr); then
      bt=()
      for _ in 1 2 3; do
        (cd "$bst_dir" && /usr/bin/time -f "%e %M" -o /tmp/bst-projects.bst "$bst" show "$target" >/dev/null 2>&1) || true
        bt+=("$(tail -1 /tmp/bst-projects.bst | cut -d' ' -f1)")
        brss=$(tail -1 /tmp/bst-projects.bst | cut -d' ' -f2)
      done
      bmed=$(printf '%s\n' "${bt[@]}" | median)
      bst_col="${bmed} s, $((brss / 1024)) MB ($(awk -v b="$bmed" -v c="$med" 'BEGIN {printf "%.0f", b / c}')× cas)"
    else
      bst_col="BuildStream 2.8.1 cannot load it here ($(tail -1 /tmp/bst-projects.bst) s to fail): its plugin junctions must be fetched from the network"
    fi
  fi
  echo "| $name | $commit | $loaded | $errors | ${med} s | $((rss / 1024)) MB | $bst_col |" >> "$out"
done
echo >> "$out"
echo "wrote $out"
