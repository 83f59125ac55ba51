#!/usr/bin/env bash
# The same small C package (projects/aarch64: a program and its static
# library, make) built three ways in one run: natively for x86_64 with
# Debian's amd64 gcc, for aarch64 with Debian's cross gcc (runs natively),
# and for aarch64 with arm64 Debian's gcc under qemu-user. Each figure is
# `cas check ELEMENT` (the step rebuilt from scratch in a fresh sandbox:
# staging, make, ingest), median of 5, interleaved. Written to
# bench/CROSS.md, which cas-bench appends to BENCHMARKS.md.
#
# Run: bash bench/cross.sh   (needs qemu-user-static + binfmt-support and this machine's APT mirror)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
cargo build --release -q -p cas
CAS="${CARGO_TARGET_DIR:-$PWD/target}/release/cas"
work="$PWD/target/bench-cross"
rm -rf "$work"
mkdir -p "$work"
cp -a projects/aarch64 "$work/p"
mirror=$(bash scripts/apt-mirror.sh)
printf 'mirrors:\n  debian:\n  - %s/\n' "$mirror" > "$work/config.yaml"
export CAS_CONFIG="$work/config.yaml" CAS_STORE="$work/store"
cd "$work/p"
mkdir -p elements/x86
"$CAS" deb lock elements/x86/toolchain.yaml --alias debian --arch amd64 gcc libc6-dev make busybox-static >/dev/null
cat > elements/x86/hello.yaml <<'Y'
# The same package for this machine (pinned: the project targets aarch64).
kind: make
build-depends: [x86/toolchain.yaml, cross/sh.yaml]
sources:
  - kind: local
    path: files/hello
variables:
  make-args: CC=gcc AR=ar
sandbox:
  build-arch: "%{host-arch}"
Y
"$CAS" build x86/hello.yaml cross/hello.yaml native/hello.yaml >/dev/null 2>&1
now() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
x=(); c=(); q=()
for r in 1 2 3 4 5; do
  for e in x86 cross native; do
    t0=$(now); "$CAS" check $e/hello.yaml >/dev/null 2>&1 || true; ms=$(( ($(now) - t0) / 1000000 ))
    case $e in x86) x+=($ms) ;; cross) c+=($ms) ;; native) q+=($ms) ;; esac
  done
done
mx=$(printf '%s\n' "${x[@]}" | median); mc=$(printf '%s\n' "${c[@]}" | median); mq=$(printf '%s\n' "${q[@]}" | median)
rc=$(echo "scale=2; $mc / $mx" | bc); rq=$(echo "scale=2; $mq / $mx" | bc)
rev=$(git -C "$OLDPWD" rev-parse --short HEAD 2>/dev/null || echo unknown)
cd "$OLDPWD"
cat > bench/CROSS.md <<MD
## cross: one C package built natively, cross and under qemu-user

Taken $(date -u '+%Y-%m-%d %H:%M') UTC at revision \`$rev\` with \`bash bench/cross.sh\` ($(nproc) cores).
projects/aarch64's program and static library (make), each figure \`cas check ELEMENT\` (the step
rebuilt from scratch: sandbox, sources, make, ingest, compare), median of 5 interleaved rounds.

| # | measurement | median | runs | vs baseline |
| ---: | --- | ---: | ---: | --- |
| 1 | x86_64, Debian's gcc (baseline) | $mx ms | 5 | |
| 2 | aarch64, Debian's cross gcc (runs natively) | $mc ms | 5 | ${rc}× #1 |
| 3 | aarch64, arm64 Debian's gcc under qemu-user | $mq ms | 5 | ${rq}× #1 |

| goal | measured | |
| --- | --- | --- |
| the cross build within 1.2× the native one | ${rc}× | $(if [ "$(echo "$rc <= 1.2" | bc)" = 1 ]; then echo met; else echo '**missed**'; fi) |

All rounds: x86_64 ${x[*]} ms; cross ${c[*]} ms; qemu-user ${q[*]} ms.
MD
cat bench/CROSS.md
