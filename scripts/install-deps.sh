#!/usr/bin/env bash
# Installs the Debian packages cas and its tests need (run as root, or with sudo).
set -euo pipefail
PKGS=(bubblewrap busybox-static nginx git xz-utils bzip2 zstd gzip patch xfsprogs b3sum rsync make gcc libc6-dev cmake dpkg-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
