#!/usr/bin/env bash
# Where a cold cas step's time goes (#33, deliverable 2). On the trivial
# project of `cold`/`bst`/`peers` (cas-gen, N elements, two commands each),
# measures per step, in the same run, interleaved:
#   - `cas -j 1 build all.yaml` into an empty store (wall time / N);
#   - the same commands in one `sh -e -c` per step (no sandbox);
#   - the same commands in one bwrap per step (the shape of cas's sandbox);
#   - `unshare -Urm true` (a user + mount namespace: what cas adds before bwrap
#     with CAS_SANDBOX=bwrap, and the floor of any sandbox here);
# then one cold build under `strace -f -ttt -T`, split by step-profile.py:
# each step's process chain (cas's helper, bwrap's setup, the commands) and
# what cas's threads do between chains (views, build directories, SQLite,
# fsync, other file calls, user space). Prints Markdown. (`cas build
# --timings` prints phases at 0.1 s resolution: too coarse for these steps.)
# Usage: bash bench/step-profile.sh [CAS]   (N=30 RUNS=3 by default; nice it on a shared machine)
set -euo pipefail
cas=$(realpath "${1:-target/release/cas}")
gen=$(dirname "$cas")/cas-gen
N=${N:-30} RUNS=${RUNS:-3}
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
p=$work/p
"$gen" "$p" --elements "$N" >/dev/null
export HOME=$work/home NO_COLOR=1
mkdir -p "$HOME"
now() { date +%s.%N; }
ms_per_step() { printf "%.1f" "$(echo "($2 - $1) * 1000 / $N" | bc -l)"; }
median() { sort -g | awk '{a[NR]=$1} END {printf "%.1f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# The commands of element i, as cas-gen writes them (install root $1).
cmds() { # i dest
  printf 'mkdir -p %s/bench/e%05d\nprintf '"'"'e%05d%%058d'"'"' 0 > %s/bench/e%05d/f0\n' "$2" "$1" "$1" "$2" "$1"
  [ "$1" != 0 ] || printf 'true # rev 0\n'
}
base=$p/files/base
bw() { # build install script
  bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --hostname cas --uid 0 --gid 0 \
    --clearenv --setenv PATH /usr/bin:/bin --setenv HOME /tmp --setenv LC_ALL C \
    --ro-bind "$base/bin" /bin --ro-bind "$base/usr" /usr --ro-bind "$base/etc" /etc \
    --proc /proc --dev /dev --perms 1777 --tmpfs /tmp --bind "$1" /build --bind "$2" /install \
    --remount-ro / --chdir /build -- /bin/sh -e -c "$3"
}
declare -A t=([cas]="" [sh]="" [bwrap]="" [unshare]="")
for r in $(seq 1 "$RUNS"); do
  store=$work/store-$r
  sync
  a=$(now); (cd "$p" && "$cas" --store "$store" -j 1 build all.yaml >/dev/null 2>&1); b=$(now)
  t[cas]+="$(ms_per_step "$a" "$b") "
  rm -rf "$store"
  s=$work/scratch; rm -rf "$s"; sync
  a=$(now)
  for i in $(seq 0 $((N - 1))); do
    mkdir -p "$s/$i/build" "$s/$i/install"
    (cd "$s/$i/build" && sh -e -c "$(cmds "$i" "$s/$i/install/usr/share")")
  done
  b=$(now); t[sh]+="$(ms_per_step "$a" "$b") "
  rm -rf "$s"; sync
  a=$(now)
  for i in $(seq 0 $((N - 1))); do
    mkdir -p "$s/$i/build" "$s/$i/install"
    bw "$s/$i/build" "$s/$i/install" "$(cmds "$i" /install/usr/share)"
  done
  b=$(now); t[bwrap]+="$(ms_per_step "$a" "$b") "
  rm -rf "$s"
  a=$(now)
  for _ in $(seq 1 "$N"); do unshare -Urm true; done
  b=$(now); t[unshare]+="$(ms_per_step "$a" "$b") "
done
m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
echo "### Where a cold step's time goes ($N trivial elements, \`-j 1\`, median of $RUNS)"
echo
echo "Taken $(date -u '+%Y-%m-%d %H:%M UTC') with \`bash bench/step-profile.sh\` (N=$N RUNS=$RUNS), load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| per step | ms | |"
echo "| --- | ---: | --- |"
echo "| \`cas -j 1 build\`, empty store (wall / N) | $(m cas) | all rounds: ${t[cas]}|"
echo "| the same commands, one \`sh -e -c\` per step | $(m sh) | ${t[sh]}|"
echo "| the same commands, one bwrap per step (cas's sandbox shape) | $(m bwrap) | ${t[bwrap]}|"
echo "| \`unshare -Urm true\` (user + mount namespace alone) | $(m unshare) | ${t[unshare]}|"
# the same cold build under strace: each step's wall time split along its
# process chain, and cas's own system calls between the chains
store=$work/store-strace
(cd "$p" && strace -f -ttt -T -o "$work/strace" "$cas" --store "$store" -j 1 build all.yaml >/dev/null 2>&1)
rm -rf "$store"
echo
echo "The same cold build under \`strace -f -ttt -T\` (ptrace makes system calls slower, so every figure is larger than above; read the shares), split by \`bench/step-profile.py\`:"
echo
python3 "$(dirname "$0")/step-profile.py" "$work/strace"
