#!/usr/bin/env bash
# Runs the whole test suite: installs the Debian packages the tests need,
# then every test of the workspace (unit, library and the black-box `it`
# suite), and ends with one line totalling them.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The workspace's lint policy (Cargo.toml [workspace.lints]) holds: no warning.
lint=0
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings || lint=1
else
  echo "clippy is not installed (rustup component add clippy): lints not checked"
fi
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$lint" != 0 ]; then
  echo "lints: clippy found warnings (see above)"
  [ "$status" = 0 ] && status=1
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
