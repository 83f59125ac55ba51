#!/usr/bin/env bash
# Runs the whole test suite: installs the Debian packages the tests need,
# then every test of the workspace (unit, library and the black-box `it`
# suite), and ends with one line totalling them.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
# One build per run: incremental artefacts would only take disk (GBs).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# The suite builds real Debian toolchains into stores under the target
# directory and /tmp; say how much room there is, so that a run that fails
# with ENOSPC says why at its top.
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
avail_kb=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
echo "disk: $((avail_kb / 1024)) MiB free under $target_dir (the suite needs about 8 GiB)"
if [ "${avail_kb:-0}" -lt $((8 * 1024 * 1024)) ]; then
  echo "warning: less than 8 GiB free; tests that build Debian systems may fail with 'No space left on device'" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The workspace's lint policy (Cargo.toml [workspace.lints]) holds: no warning.
lint=0
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings || lint=1
else
  echo "clippy is not installed (rustup component add clippy): lints not checked"
fi
# --no-fail-fast: every test binary runs even after one fails, so the total
# below counts every test (without it cargo stops at the first failing binary
# and the total hides the tests that never ran).
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$lint" != 0 ]; then
  echo "lints: clippy found warnings (see above)"
  [ "$status" = 0 ] && status=1
fi
df -Pk "$target_dir" | awk 'NR == 2 { printf "disk: %d MiB free at the end\n", $4 / 1024 }'
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
     END { printf "tests: %d passed, %d failed, %d ignored\n", p, f, g }' "$log"
# the ignored tests by name, and every failure by name
grep -E '^test .* \.\.\. ignored' "$log" | sed 's/^/ignored: /' || true
grep -E '^test .* \.\.\. FAILED' "$log" | sed 's/^/failed: /' || true
exit "$status"
