#!/usr/bin/env bash
# Figures of the debian-system example (README, "A bootable Linux system"),
# written to bench/SYSTEM.md, which cas-bench appends to BENCHMARKS.md:
#
# - cold: `cas build system.yaml` in an empty store (downloads included:
#   about 165 MB of packages and tarballs from this machine's APT mirror);
# - no-op: the same build again (median of 5);
# - overhead: one real step, GNU hello's autotools build, rebuilt by cas
#   (`cas check hello.yaml`: stage the sysroot and sources, run the step in
#   its sandbox, ingest, compare) against the same commands run by hand in
#   one bwrap sandbox over the same root (a hardlinked checkout of the
#   base), with the same environment and -j; interleaved, median of 3.
#
# Run: bash bench/debian-system.sh   (as root or with sudo for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
cargo build --release -q -p cas
CAS="${CARGO_TARGET_DIR:-$PWD/target}/release/cas"
work="$PWD/target/bench-system"
rm -rf "$work"
mkdir -p "$work"
mirror=$(bash scripts/apt-mirror.sh)
printf 'mirrors:\n  debian:\n  - %s/\n' "$mirror" > "$work/config.yaml"
export CAS_CONFIG="$work/config.yaml" CAS_STORE="$work/store"
P=projects/debian-system
now() { date +%s.%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
t0=$(now); (cd $P && "$CAS" build system.yaml >/dev/null 2>&1); cold=$(echo "$(now) - $t0" | bc)
noop=$(for i in 1 2 3 4 5; do t0=$(now); (cd $P && "$CAS" build system.yaml >/dev/null 2>&1); echo "$(now) - $t0" | bc; done | median)
# By hand: the same root, sources and commands, one bwrap sandbox.
"$CAS" checkout --hardlinks $P/elements/base/debian.yaml "$work/root" >/dev/null
mkdir -p "$work/root/build" "$work/root/install"   # mount points (cas needs none)
steps=$(cd $P && "$CAS" show --json system.yaml | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["elements"]))')
curl -s -o "$work/hello.tar.gz" "${mirror%/}/pool/main/h/hello/hello_2.10.orig.tar.gz"
jobs=$(nproc)
cmds=$(cd $P && "$CAS" show --json hello.yaml | python3 -c '
import json, sys
e = [x for x in json.load(sys.stdin)["elements"] if x["name"] == "hello.yaml"][0]
print(" && ".join(c for p in e["commands"].values() for c in p))' | sed "s/%{max-jobs}/$jobs/g")
hand_once() {
  rm -rf "$work/build" "$work/install"; mkdir -p "$work/build" "$work/install"
  tar -C "$work/build" --strip-components=1 -xzf "$work/hello.tar.gz"
  t0=$(now)
  bwrap --ro-bind "$work/root" / --bind "$work/build" /build --bind "$work/install" /install \
    --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent --chdir /build --clearenv \
    --setenv PATH /usr/bin:/bin:/usr/sbin:/sbin --setenv HOME /tmp --setenv LC_ALL C --setenv TZ UTC \
    --setenv SHELL /bin/sh --setenv TERM dumb --setenv SOURCE_DATE_EPOCH 315532800 --setenv LDFLAGS -static \
    /bin/sh -e -c "$cmds" > "$work/hand.log" 2>&1 || { cat "$work/hand.log" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}
cas_once() { t0=$(now); (cd $P && "$CAS" -j "$jobs" check hello.yaml >/dev/null 2>&1); echo "$(now) - $t0" | bc; }
hand=(); viacas=()
for i in 1 2 3; do hand+=("$(hand_once)"); viacas+=("$(cas_once)"); done
h=$(printf '%s\n' "${hand[@]}" | median); c=$(printf '%s\n' "${viacas[@]}" | median)
over=$(echo "scale=1; ($c - $h) * 100 / $h" | bc)
rev=$(git rev-parse --short HEAD)
cat > bench/SYSTEM.md <<MD
## system: the debian-system example (projects/debian-system)

Taken $(date -u '+%Y-%m-%d %H:%M') UTC at revision \`$rev\` with \`bash bench/debian-system.sh\`
($(nproc) cores; shared machine, same caveat as above).

| case | time | note |
| --- | ---: | --- |
| cold build of \`system.yaml\` ($steps elements, empty store) | $(printf '%.1f' "$cold") s | includes downloading ~165 MB from the APT mirror; busybox (Kbuild) dominates |
| no-op build | $(printf '%.3f' "$noop") s | median of 5 |
| hello (autotools) by hand, one bwrap sandbox | $(printf '%.2f' "$h") s | median of 3: $(printf '%s ' "${hand[@]}") |
| the same step rebuilt by cas (\`cas check hello.yaml\`) | $(printf '%.2f' "$c") s | median of 3: $(printf '%s ' "${viacas[@]}") |
| **overhead of cas over the commands by hand** | **${over} %** | goal: under 5 % |
MD
cat bench/SYSTEM.md
