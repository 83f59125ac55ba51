#!/usr/bin/env bash
# The second example, end to end on a fresh Debian machine: build a bootable
# Linux system from pinned Debian packages and upstream release tarballs
# (projects/debian-system), check that the root filesystem image and the
# initramfs are reproducible, and boot it in qemu: /init runs GNU hello,
# built from source, and powers off.
#
# The project's `debian` alias has no URL of its own: the archive is this
# machine's APT mirror, written into a user configuration here (never into
# the repository). Set CAS_STORE to choose the store (default: ~/.cache/cas).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p cas
CAS="${CARGO_TARGET_DIR:-$PWD/target}/release/cas"
work="${CAS_EXAMPLE_WORK:-$PWD/target/debian-system}"
mkdir -p "$work"
if ! mirror=$(bash scripts/apt-mirror.sh); then
  echo "write $work/config.yaml by hand (mirrors: {debian: [URL]})" >&2
  exit 2
fi
printf 'mirrors:\n  debian:\n  - %s/\n' "$mirror" > "$work/config.yaml"
export CAS_CONFIG="$work/config.yaml"
cd projects/debian-system
start=$(date +%s.%N)
"$CAS" build system.yaml
cold=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
"$CAS" build system.yaml > /dev/null 2>&1
warm=$(echo "$(date +%s.%N) - $start" | bc)
"$CAS" check rootfs-image.yaml
"$CAS" check initramfs.yaml
rm -rf "$work/kernel" "$work/initramfs"
"$CAS" checkout kernel.yaml "$work/kernel"
"$CAS" checkout initramfs.yaml "$work/initramfs"
cd ../..
out=$(bash scripts/boot.sh "$work/kernel/boot/vmlinuz" "$work/initramfs/initramfs.cpio.gz")
echo "$out" | grep -a "cas-boot:"
printf 'build: %.1f s (this run; cached steps are not rebuilt), no-op: %.2f s\n' "$cold" "$warm"
