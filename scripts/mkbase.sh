#!/usr/bin/env bash
# mkbase.sh DEST [--toolchain]
#
# Assembles a minimal sysroot from this machine's own Debian packages, for
# example projects: a static busybox with its applet links, and with
# --toolchain a C toolchain (gcc, binutils, libc headers, make) taken from the
# installed packages and their dependency closure. DEST is written atomically
# (built beside it, then renamed) and left alone if it already exists.
set -euo pipefail

dest=${1:?usage: mkbase.sh DEST [--toolchain]}
toolchain=${2:-}
[ -e "$dest" ] && { echo "mkbase: $dest exists, keeping it"; exit 0; }
command -v busybox >/dev/null || { echo "mkbase: /bin/busybox missing: apt-get install busybox-static" >&2; exit 1; }

tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/usr/lib" "$tmp/usr/lib64" "$tmp/etc" "$tmp/tmp"
# Debian 12 is merged-/usr: /bin, /sbin, /lib, /lib64 are links into /usr.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$tmp/$d"; done

if [ "$toolchain" = "--toolchain" ]; then
  # Seed packages and what they depend on, among the installed packages.
  seed=(gcc-12 gcc cpp-12 cpp binutils libc6-dev make sed grep)
  skip=" perl-base perl debconf dpkg install-info init-system-helpers procps tzdata sensible-utils adduser libasan8 libtsan2 liblsan0 libubsan1 libhwasan0 "
  declare -A installed=() deps=() seen=()
  while IFS=$'\t' read -r name status depends; do
    [[ $status == ii* ]] || continue
    installed[$name]=1
    deps[$name]=$depends
  done < <(dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\t${Depends}, ${Pre-Depends}\n')
  todo=("${seed[@]}")
  while ((${#todo[@]})); do
    p=${todo[-1]}; unset 'todo[-1]'
    [ -n "${seen[$p]:-}" ] && continue
    [ -n "${installed[$p]:-}" ] || { echo "mkbase: package $p is not installed (run scripts/install-deps.sh)" >&2; exit 1; }
    seen[$p]=1
    IFS=',' read -ra clauses <<< "${deps[$p]}"
    for clause in "${clauses[@]}"; do
      IFS='|' read -ra alts <<< "$clause"
      for alt in "${alts[@]}"; do
        n=$(echo "$alt" | sed -E 's/^ *//; s/[ (].*//; s/:.*//')
        [ -z "$n" ] && continue
        [[ $skip == *" $n "* ]] && break
        if [ -n "${installed[$n]:-}" ]; then todo+=("$n"); break; fi
      done
    done
  done
  # Copy every file of those packages (no docs), keeping symlinks.
  for p in "${!seen[@]}"; do dpkg -L "$p"; done | sort -u | while read -r f; do
    case "$f" in /usr/share/doc*|/usr/share/man*|/usr/share/info*|/usr/share/locale*|/usr/share/lintian*|/usr/share/bug*) continue;; esac
    if [ -L "$f" ] || [ -f "$f" ]; then
      mkdir -p "$tmp$(dirname "$f")"
      cp -a --no-preserve=ownership "$f" "$tmp$f" 2>/dev/null || true
    fi
  done
  ln -sf gcc "$tmp/usr/bin/cc"
fi

cp /bin/busybox "$tmp/usr/bin/busybox"
for a in $(busybox --list); do
  [ "$a" = busybox ] && continue
  [ -e "$tmp/usr/bin/$a" ] || [ -L "$tmp/usr/bin/$a" ] || ln -s busybox "$tmp/usr/bin/$a"
done
mv "$tmp" "$dest"
echo "mkbase: wrote $dest ($(find "$dest" | wc -l) entries, $(du -sh "$dest" | cut -f1))"
