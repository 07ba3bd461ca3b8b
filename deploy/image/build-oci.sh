#!/usr/bin/env bash
# Build the image with no daemon and no registry, and save it as an OCI archive:
#   1. the base: deploy/image/base.sh (debootstrap minbase bookworm, cached), imported;
#   2. `podman build` of deploy/image/Containerfile on it (COPY steps only, so nothing
#      has to run inside a container);
#   3. `podman save --format oci-archive`.
# podman keeps its storage in a temporary folder, removed at the end: nothing is left in
# the system's image store. Where a registry is reachable, plain
# `docker build -f deploy/image/Containerfile STAGE` / `podman build ...` does the same
# on debian:bookworm-slim.
#
# Usage: deploy/image/build-oci.sh STAGE ARCHIVE [TAG]
#   STAGE    a folder made by deploy/image/stage.sh
#   ARCHIVE  the OCI archive to write (a tar of an OCI image layout)
#   TAG      the image name in the archive (default localhost/gist:latest)
# Prints the image's size. Needs root (debootstrap, podman's storage).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "gist image: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: deploy/image/build-oci.sh STAGE ARCHIVE [TAG]"
stage=$1 archive=$2 tag=${3:-localhost/gist:latest}
[ -x "$stage/bin/gist" ] || die "$stage has no bin/gist: run deploy/image/stage.sh $stage first"
command -v podman >/dev/null || die "podman not found: apt-get install -y podman (scripts/test-tools.sh)"

base=$("$here/base.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/gist-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
# vfs: the one storage driver that works everywhere (no overlay mounts needed).
podman=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file)

"${podman[@]}" import --quiet "$base" localhost/gist-base:bookworm >/dev/null
"${podman[@]}" build --quiet --pull=never --network none \
  --build-arg BASE=localhost/gist-base:bookworm \
  -f "$here/Containerfile" -t "$tag" "$stage" >/dev/null
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
base_size=$("${podman[@]}" image inspect --format '{{.Size}}' localhost/gist-base:bookworm)
rm -f "$archive"
"${podman[@]}" save --quiet --format oci-archive -o "$archive" "$tag"
echo "gist image: $tag saved to $archive; image $((size / 1000000)) MB (base $((base_size / 1000000)) MB, gist $(((size - base_size) / 1000000)) MB)" >&2
