#!/usr/bin/env bash
# A Debian bookworm base for the image, made locally, for machines that reach Debian's
# package mirror but no container registry (the tests and CI here): debootstrap's minbase
# variant, trimmed of what a container never uses (apt lists and caches, docs, man pages,
# locales), as a root filesystem tarball to `podman import`.
#
# Usage: deploy/image/base.sh      prints the tarball's path; builds it once (about 3 min)
# The tarball is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/gist/image/ and reused while
# this script is unchanged. MIRROR overrides the Debian mirror (default: the first URIs
# of /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian). Root only
# (debootstrap creates device nodes and sets owners).
set -euo pipefail

die() { echo "gist base: $*" >&2; exit 1; }

cache="${XDG_CACHE_HOME:-$HOME/.cache}/gist/image"
stamp=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
tarball="$cache/debian-bookworm-minbase-$stamp.tar"
if [ -f "$tarball" ]; then
  echo "$tarball"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
debootstrap=$(command -v debootstrap || echo /usr/sbin/debootstrap)
[ -x "$debootstrap" ] || die "debootstrap not found: apt-get install -y debootstrap (scripts/test-tools.sh)"
if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "gist base: debootstrap --variant=minbase bookworm from $MIRROR (once; about 3 minutes)" >&2
"$debootstrap" --variant=minbase bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

rootfs="$work/rootfs"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/*
# An empty /tmp, world-writable as in any image; /etc/hosts and resolv.conf come from the
# container runtime.
chmod 1777 "$rootfs/tmp"
tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
# Older bases of earlier versions of this script are no use any more.
find "$cache" -maxdepth 1 -name 'debian-bookworm-minbase-*.tar' ! -name "$(basename "$tarball")" -delete
echo "gist base: $tarball ($(du -h "$tarball" | cut -f1))" >&2
echo "$tarball"
