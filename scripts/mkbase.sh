#!/usr/bin/env bash
# mkbase.sh DEST [--toolchain | --cmake]
#
# Assembles a minimal sysroot from this machine's own Debian packages, for
# example projects: a static busybox with its applet links, and with
# --toolchain a C toolchain (gcc, binutils, libc headers, make, ...) taken from
# the installed packages and their dependency closure. The work is done by
# cas-mkbase (bench/src/bin/cas-mkbase.rs), which shares its code with the
# black-box tests' toolchain (tests/it/toolchain.rs). DEST is written
# atomically and left alone if it already exists.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec cargo run --quiet --release --locked --manifest-path "$root/Cargo.toml" \
  -p cas-bench --bin cas-mkbase -- "$@"
