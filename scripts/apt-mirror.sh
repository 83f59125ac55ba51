#!/usr/bin/env bash
# Prints this machine's Debian archive URL (the first `URIs:` of APT's
# debian.sources, else the first `deb` line of sources.list), without a
# trailing slash; exits 2 when there is none. The examples read the archive
# from here at run time, so that no host name is written into the repository.
set -uo pipefail
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null)
fi
if [ -z "$mirror" ]; then
  echo "no Debian archive in this machine's APT configuration" >&2
  exit 2
fi
echo "${mirror%/}"
