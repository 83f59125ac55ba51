#!/usr/bin/env bash
# Critical path first against index (name) order, same DAG, same run (#29).
# A generated project over a busybox base: a chain of CHAIN steps named z-*
# (last in name order) and LEAVES independent steps named a-*, each step
# sleeping STEP seconds, all under one stack; built cold with -j2 in a fresh
# store per run, three runs each, alternating. Prints a Markdown table.
# Usage: bash bench/critical-path.sh [CAS] (default: target/release/cas)
set -euo pipefail
cas=$(realpath "${1:-target/release/cas}")
CHAIN=${CHAIN:-8} LEAVES=${LEAVES:-16} STEP=${STEP:-0.5} RUNS=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
p=$work/project
mkdir -p "$p/elements" "$p/files/base/bin"
cp /bin/busybox "$p/files/base/bin/"
for a in sh sleep mkdir echo; do ln -s busybox "$p/files/base/bin/$a"; done
printf 'name: cp\nelement-path: elements\n' > "$p/project.yaml"
printf 'kind: import\nsources:\n- kind: local\n  path: files/base\n' > "$p/elements/base.yaml"
step() { # name, deps...
  local n=$1; shift
  { printf 'kind: manual\nbuild-depends: [base.yaml'; for d in "$@"; do printf ', %s' "$d"; done
    printf ']\nvariables:\n  run: "%s"\nconfig:\n  install-commands:\n  - sleep %s\n  - mkdir -p %%{install-root}/%s\n' "$RANDOM$RANDOM" "$STEP" "$n"; } > "$p/elements/$n.yaml"
}
all=()
for i in $(seq 1 "$LEAVES"); do step "a-$i"; all+=("a-$i.yaml"); done
prev=()
for i in $(seq 1 "$CHAIN"); do step "z-$i" "${prev[@]}"; prev=("z-$i.yaml"); done
all+=("z-$CHAIN.yaml")
{ printf 'kind: stack\ndepends:\n'; for d in "${all[@]}"; do printf -- '- %s\n' "$d"; done; } > "$p/elements/all.yaml"
time_build() { # order
  local store=$work/store-$RANDOM$RANDOM
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$p" && CAS_SCHEDULE=$1 "$cas" --store "$store" -j2 build all.yaml >/dev/null 2>&1)
  t1=$(date +%s.%N)
  rm -rf "$store"
  echo "$t1 - $t0" | bc -l
}
idx=() cp=()
for _ in $(seq 1 "$RUNS"); do
  idx+=("$(time_build index)")
  cp+=("$(time_build critical)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mi=$(median "${idx[@]}") mc=$(median "${cp[@]}")
ideal=$(echo "($CHAIN + $LEAVES) * $STEP / 2" | bc -l)
echo "| DAG | index (name) order | critical path first | ratio | lower bound |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '| chain of %d + %d leaves, %s s steps, -j2 | %.2f s | %.2f s | %.2f× | %.2f s |\n' \
  "$CHAIN" "$LEAVES" "$STEP" "$mi" "$mc" "$(echo "$mi / $mc" | bc -l)" "$ideal"
