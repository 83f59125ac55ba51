#!/usr/bin/env bash
# gnome-build-meta: `cas show` against BuildStream's `bst show`, offline.
#
#   bash bench/gnome-build-meta.sh GBM_DIR FDSDK_GIT BSP_GIT [TARGET]
#
# GBM_DIR    a gnome-build-meta checkout (not modified)
# FDSDK_GIT  a git repository (bare, or a checkout's .git) holding the commit that
#            GBM_DIR/elements/freedesktop-sdk.bst's git_repo source names
# BSP_GIT    a git repository of apache/buildstream-plugins holding the commit that
#            freedesktop-sdk's elements/plugins/buildstream-plugins.bst names (2.5.0)
# TARGET     default core.bst
#
# Environment:
#   BST        BuildStream 2 `bst` (default: bst on PATH, else /work/bst-venv/bin/bst)
#   CAS        cas binary (default: target/debug/cas of this repository)
#   SDIST_DIR  directory holding the two plugin sdists that gnome-build-meta's
#              elements/plugins/*.bst tar sources name (buildstream_plugins-2.7.0.tar.gz,
#              buildstream_plugins_community-2.3.1.tar.gz); when a file is missing it
#              is downloaded with `pip download` (pip's configured index), and its
#              sha256 is checked against the element's ref either way
#   WORK       working directory (default: a new temp dir); bst's cache and cas's
#              store stay there, so a second run with the same WORK starts warm
#   RUNS       timed runs per tool after the warm-up (default 2)
#
# Both tools see the same sources through mirrors in their user configurations:
# the project aliases `gitlab` (freedesktop-sdk junction), `github` (freedesktop-sdk's
# buildstream-plugins junction) and `pypi` (gnome-build-meta's and freedesktop-sdk's
# plugin junctions) are mirrored to file:// trees under $WORK/mirror made of symlinks
# to the arguments; cas reads them as file:// URLs, bst's git_repo source (dulwich)
# cannot fetch from a file:// URL (its local client wants determine_wants to return
# a list, the plugin returns a set), so for bst a `git daemon` on 127.0.0.1 serves the
# git trees for the run. BuildStream's tar source wants `lzip` on PATH even to show:
# a failing stub stands in when the host has none.
# The warm-up run fetches the junctions (bst: into its source cache; cas: into its
# store), the timed runs load from the caches.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 3 ] || { sed -n 2,30p "$0"; exit 2; }
gbm=$(cd "$1" && pwd)
fdsdk_git=$(cd "$2" && pwd)
bsp_git=$(cd "$3" && pwd)
target=${4:-core.bst}
bst=${BST:-$(command -v bst || echo /work/bst-venv/bin/bst)}
cas=${CAS:-$here/target/debug/cas}
runs=${RUNS:-2}
work=${WORK:-$(mktemp -d /tmp/gbm-bench.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
bst_python=$(head -1 "$bst" | sed -n 's/^#!//p')
[ -x "${bst_python:-}" ] || bst_python=python3
echo "work dir: $work" >&2
# freedesktop-sdk's junction is a git_repo source (buildstream-plugins-community): it
# needs dulwich (this was run with 0.24.10) and, to load, packaging/requests/tomlkit/arpy
"$bst_python" -c 'import dulwich, packaging, requests, tomlkit, arpy' 2>/dev/null || {
  echo "the Python of $bst lacks the git_repo plugin's modules:" \
       "$bst_python -m pip install 'dulwich>=0.24,<0.25' packaging requests tomlkit arpy" >&2; exit 1; }

# --- mirror tree -----------------------------------------------------------
mirror=$work/mirror
mkdir -p "$mirror/gitlab/freedesktop-sdk" "$mirror/github/apache" "$mirror/pypi"
ln -sfn "$fdsdk_git" "$mirror/gitlab/freedesktop-sdk/freedesktop-sdk.git"
ln -sfn "$bsp_git" "$mirror/github/apache/buildstream-plugins.git"
fdsdk_ref=$(sed -n 's/^ *ref: .*-g\([0-9a-f]\{40\}\)$/\1/p' "$gbm/elements/freedesktop-sdk.bst" | head -1)
git -C "$fdsdk_git" cat-file -e "$fdsdk_ref^{commit}" \
  || { echo "FDSDK_GIT lacks commit $fdsdk_ref" >&2; exit 1; }
sdist_dir=${SDIST_DIR:-$work/sdists}
mkdir -p "$sdist_dir"
for el in "$gbm"/elements/plugins/*.bst; do
  url=$(sed -n 's/^ *url: pypi:\(.*\)$/\1/p' "$el" | head -1)
  ref=$(sed -n 's/^ *ref: \([0-9a-f]\{64\}\)$/\1/p' "$el" | head -1)
  [ -n "$url" ] || continue
  file=$(basename "$url")
  if [ ! -f "$sdist_dir/$file" ]; then
    # buildstream_plugins_community-2.3.1.tar.gz -> buildstream-plugins-community==2.3.1
    spec=$(echo "${file%.tar.gz}" | sed 's/-\([^-]*\)$/==\1/; s/_/-/g')
    "$bst_python" -m pip download -q --no-deps --no-binary :all: "$spec" -d "$sdist_dir" >&2
  fi
  echo "$ref  $sdist_dir/$file" | sha256sum -c --quiet - >&2
  mkdir -p "$mirror/pypi/$(dirname "$url")"
  ln -sfn "$sdist_dir/$file" "$mirror/pypi/$url"
done

# --- git daemon for bst, host tool stubs -------------------------------------
port=$("$bst_python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
git daemon --base-path="$mirror" --export-all --reuseaddr --listen=127.0.0.1 --port="$port" "$mirror" \
  > "$work/git-daemon.log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
for _ in $(seq 50); do git ls-remote "git://127.0.0.1:$port/github/apache/buildstream-plugins.git" HEAD >/dev/null 2>&1 && break; sleep 0.1; done
mkdir -p "$work/hostbin"
for t in lzip; do
  command -v "$t" >/dev/null || printf '#!/bin/sh\necho "%s: stub, not installed" >&2\nexit 1\n' "$t" > "$work/hostbin/$t"
  chmod +x "$work/hostbin/$t" 2>/dev/null || true
done
export PATH="$work/hostbin:$PATH"

# --- user configurations ---------------------------------------------------
mkdir -p "$work/bst"
aliases="        gitlab: [\"git://127.0.0.1:$port/gitlab/\"]
        github: [\"git://127.0.0.1:$port/github/\"]
        pypi: [\"file://$mirror/pypi/\"]"
cat > "$work/bst/user.conf" <<EOF
cachedir: $work/bst/cache
logdir: $work/bst/logs
sourcedir: $work/bst/sources
projects:
EOF
for p in gnome freedesktop-sdk; do
  cat >> "$work/bst/user.conf" <<EOF
  $p:
    default-mirror: local
    mirrors:
    - name: local
      aliases:
$aliases
EOF
done
cat > "$work/cas.yaml" <<EOF
mirrors:
  gitlab:
    - file://$mirror/gitlab/
  github:
    - file://$mirror/github/
  pypi:
    - file://$mirror/pypi/
EOF

# --- the format: one delimiter line per element and per field ----------------
fields="name deps build-deps runtime-deps vars env public config"
fmt="=====CMP-ELEMENT====="$'\n''%{name}'
for f in $fields; do fmt+=$'\n'"=====CMP-FIELD $f====="$'\n'"%{$f}"; done

run_bst() { (cd "$gbm" && nice "$bst" --no-colors -c "$work/bst/user.conf" --on-error terminate \
  show --deps all --format "$fmt" "$target") > "$work/bst.out" 2> "$work/bst.err"; }
run_cas() { (cd "$gbm" && nice "$cas" --config "$work/cas.yaml" show --color never --store "$work/cas-store" \
  --deps all --format "$fmt" "$target") > "$work/cas.out" 2> "$work/cas.err"; }
now() { date +%s%N; }
timed() { local t0 rc=0; t0=$(now); "$@" || rc=$?; echo "$(( ($(now) - t0) / 1000000 )) $rc"; }

echo "warm-up (fetches the junctions)..." >&2
read -r bst_w bst_rc < <(timed run_bst)
[ "$bst_rc" = 0 ] || { echo "bst show failed ($bst_rc), see $work/bst.err:" >&2; tail -20 "$work/bst.err" >&2; }
# `cas show` does not fetch; `cas fetch` fetches every source of its targets' closure
# (the whole of core.bst from the network), and refuses a junction as a target, but
# it loads the project first, and so fetches and stages the junction, before it
# fails on a target that does not exist: that is the warm-up's fetch for cas.
fetch_cas() { (cd "$gbm" && nice "$cas" --config "$work/cas.yaml" fetch --color never --store "$work/cas-store" \
  freedesktop-sdk.bst:no-such-element.bst) > "$work/cas-fetch.out" 2>&1 || true; run_cas; }
read -r cas_w cas_rc < <(timed fetch_cas)
[ "$cas_rc" = 0 ] || { echo "cas show failed ($cas_rc), see $work/cas.err:" >&2; tail -20 "$work/cas.err" >&2; }
bst_t=(); cas_t=()
for i in $(seq "$runs"); do
  read -r t rc < <(timed run_bst); bst_t+=("$t"); [ "$rc" = 0 ] || bst_rc=$rc
  read -r t rc < <(timed run_cas); cas_t+=("$t"); [ "$rc" = 0 ] || cas_rc=$rc
done

min() { printf '%s\n' "$@" | sort -n | head -1; }
echo
echo "## gnome-build-meta $target: \`show --deps all --format F\`"
echo
echo "gnome-build-meta $(git -C "$gbm" rev-parse --short HEAD 2>/dev/null || echo '(no git)'), freedesktop-sdk ${fdsdk_ref:0:12}, $(nproc) cores, $("$bst" --version 2>/dev/null | tail -1 | sed 's/^/bst /'), cas $(git -C "$here" rev-parse --short HEAD 2>/dev/null) ($(basename "$(dirname "$cas")") build)"
echo
echo "| tool | warm-up (fetches junctions) | timed runs | best | exit |"
echo "| --- | ---: | --- | ---: | ---: |"
echo "| bst show | ${bst_w} ms | ${bst_t[*]} ms | $(min "${bst_t[@]}") ms | $bst_rc |"
echo "| cas show | ${cas_w} ms | ${cas_t[*]} ms | $(min "${cas_t[@]}") ms | $cas_rc |"
b=$(min "${bst_t[@]}"); c=$(min "${cas_t[@]}")
[ "$c" -gt 0 ] && echo && echo "bst/cas (best of each): $(awk -v b="$b" -v c="$c" 'BEGIN{printf "%.1f", b/c}')×"
echo
"$bst_python" "$here/bench/bst-compare-show.py" "$work/bst.out" "$work/cas.out" --json "$work/compare.json"
echo
echo "outputs: $work/bst.out $work/cas.out (stderr: $work/bst.err $work/cas.err)"
