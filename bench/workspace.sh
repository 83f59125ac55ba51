#!/usr/bin/env bash
# The workspace loop (README, "Workspaces"; spec/cli.md): a C package of
# 300 files built with make, composed into a root filesystem. With a
# workspace open, one file is edited (its function returns another value, so
# the program and the rootfs change), then `cas build rootfs.yaml`: the
# time from the edit to the finished build of the rootfs. Baseline, in the
# same run: the same edits in a plain copy of the tree, `make -jN` there,
# `make install` into a fresh directory and `cp -al` of it (make plus the
# compose). Interleaved, median of 7. Written to bench/WORKSPACE.md.
#
# Run: bash bench/workspace.sh   (needs projects/hello/sysroot: scripts/mkbase.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d projects/hello/sysroot/toolchain ] || bash scripts/mkbase.sh >/dev/null
cargo build --release -q -p cas
CAS="${CARGO_TARGET_DIR:-$PWD/target}/release/cas"
work="$PWD/target/bench-workspace"
rm -rf "$work"
mkdir -p "$work/p/elements" "$work/p/files"
export CAS_STORE="$work/store"
N=300
jobs=$(nproc)
now() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cp -al projects/hello/sysroot/toolchain "$work/p/files/toolchain"
src="$work/p/files/pkg"
mkdir -p "$src"
{
  printf 'OBJS ='; for i in $(seq $N); do printf ' f%d.o' "$i"; done; printf ' main.o\n'
  printf 'prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%%.o: %%.c\n\t$(CC) -O2 -c $< -o $@\n'
  printf 'install: prog\n\tmkdir -p $(DESTDIR)/usr/bin && cp prog $(DESTDIR)/usr/bin/prog\n'
} > "$src/Makefile"
for i in $(seq $N); do printf 'int f%d(void) { return %d; }\n' "$i" "$i" > "$src/f$i.c"; done
{
  for i in $(seq $N); do printf 'int f%d(void);\n' "$i"; done
  printf 'int main(void) { long s = 0;\n'
  for i in $(seq $N); do printf '  s += f%d();\n' "$i"; done
  printf '  return s == 0; }\n'
} > "$src/main.c"
cat > "$work/p/project.yaml" <<'Y'
name: wsbench
element-path: elements
Y
printf 'kind: import\nsources:\n  - kind: local\n    path: files/toolchain\n' > "$work/p/elements/toolchain.yaml"
printf 'kind: make\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/pkg\nvariables:\n  make-args: CC=cc\n' > "$work/p/elements/pkg.yaml"
printf 'kind: compose\nbuild-depends: [pkg.yaml]\n' > "$work/p/elements/rootfs.yaml"
cd "$work/p"
"$CAS" build rootfs.yaml >/dev/null 2>&1
"$CAS" workspace open pkg.yaml "$work/ws" >/dev/null 2>&1
# The workspace holds what the sources hold: its first build is a cache hit,
# which leaves the kept build directory empty. The first edit then builds
# everything once (untimed warm-up); the loop below is the steady state.
printf 'int f1(void) { return 1000000; }\n' > "$work/ws/f1.c"
"$CAS" build rootfs.yaml >/dev/null 2>&1
cp -a "$src" "$work/plain"
printf 'int f1(void) { return 1000000; }\n' > "$work/plain/f1.c"
(cd "$work/plain" && make -s -j"$jobs" CC=cc >/dev/null)
round=0
cas_times=(); make_times=()
for r in 1 2 3 4 5 6 7; do
  round=$((round + 1))
  f=$(( (r * 37) % N + 1 ))
  # cas: edit in the workspace, build the rootfs
  printf 'int f%d(void) { return %d; }\n' "$f" "$((f + 1000 * round))" > "$work/ws/f$f.c"
  t0=$(now); "$CAS" build rootfs.yaml >/dev/null 2>&1; cas_times+=($(( ($(now) - t0) / 1000000 )))
  # make: the same edit, make, install, compose by hardlinks
  printf 'int f%d(void) { return %d; }\n' "$f" "$((f + 1000 * round))" > "$work/plain/f$f.c"
  t0=$(now)
  (cd "$work/plain" && make -s -j"$jobs" CC=cc >/dev/null && rm -rf "$work/inst" "$work/root" && make -s DESTDIR="$work/inst" install >/dev/null && cp -al "$work/inst" "$work/root")
  make_times+=($(( ($(now) - t0) / 1000000 )))
done
built=$("$CAS" --json build rootfs.yaml 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["built"])')
c=$(printf '%s\n' "${cas_times[@]}" | median)
m=$(printf '%s\n' "${make_times[@]}" | median)
ratio=$(echo "scale=2; $c / $m" | bc)
rev=$(git -C "$OLDPWD" rev-parse --short HEAD 2>/dev/null || echo unknown)
cd "$OLDPWD"
cat > bench/WORKSPACE.md <<MD
## workspace: one edit in a workspace, to a built rootfs

Taken $(date -u '+%Y-%m-%d %H:%M') UTC at revision \`$rev\` with \`bash bench/workspace.sh\` ($jobs cores).
A make package of $N C files and a compose above it; the package's workspace is open and was built once
(the first edit after \`open\` builds everything: the unchanged workspace was a cache hit, so its kept
build directory was still empty; that warm-up is not timed).
Each round edits one file (its function returns another value: the program and the rootfs change).
cas: \`cas build rootfs.yaml\` (the changed files copied into the kept build directory, make
recompiling one file and relinking, install, ingest, the compose). Baseline: the same edit in a plain
copy of the tree, \`make -j$jobs\`, \`make install DESTDIR=…\` into a fresh directory and \`cp -al\` of it.
Median of 7 interleaved rounds.

| # | measurement | median | runs | vs baseline |
| ---: | --- | ---: | ---: | --- |
| 1 | make + install + cp -al (baseline) | $m ms | 7 | |
| 2 | cas build of the rootfs after the edit | $c ms | 7 | ${ratio}× #1 |

| goal | measured | |
| --- | --- | --- |
| within 1.5× of make plus the compose | ${ratio}× | $(if [ "$(echo "$ratio <= 1.5" | bc)" = 1 ]; then echo met; else echo '**missed**'; fi) |

All rounds: cas ${cas_times[*]} ms; baseline ${make_times[*]} ms. A build after the last round builds $built step(s).
MD
cat bench/WORKSPACE.md
