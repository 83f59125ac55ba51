#!/usr/bin/env bash
# The main job on the example project, on a fresh Debian machine:
# install what is missing, build cas, assemble the base sysroots from this
# machine's packages, build the hello project (a library, a program, a
# composed root filesystem and a smoke test) and check the result out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p cas
CAS="${CARGO_TARGET_DIR:-$PWD/target}/release/cas"
P=projects/hello
bash scripts/mkbase.sh "$P/sysroot/toolchain" --toolchain
bash scripts/mkbase.sh "$P/sysroot/runtime"
cd "$P"
"$CAS" show check.yaml
"$CAS" build check.yaml
rm -rf out/rootfs
"$CAS" checkout rootfs.yaml out/rootfs
echo
echo "The composed root filesystem is in $P/out/rootfs:"
find out/rootfs -maxdepth 3 -not -path '*/bin/*' -not -path '*/sbin/*' | sort | head -20
echo
echo "What /usr/bin/hello said inside it (cas log check.yaml):"
"$CAS" log check.yaml | grep -v '^#'
echo
echo "Run it again: nothing is rebuilt."
"$CAS" build check.yaml
echo
echo "cas is $CAS. To call it \`cas\` as README.md does:"
echo "  export PATH=\"$(dirname "$CAS"):\$PATH\""
