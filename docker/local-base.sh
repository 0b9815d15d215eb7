#!/usr/bin/env bash
# A local base image for machines that reach Debian's archive but no container registry:
# Debian 12 (python3.11, as the wheelhouse) by debootstrap, imported as IMAGE (default
# local/debian-python:bookworm). Then: make image-cpu BASE=local/debian-python:bookworm
# Needs root, debootstrap and a running Docker daemon. The root filesystem is cached as a tarball
# (CACHE, default ~/.cache/paddleocr-vl-serve) so a second run only imports it.
set -euo pipefail
IMAGE=${1:-local/debian-python:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CACHE:-$HOME/.cache/paddleocr-vl-serve}
PACKAGES=python3,python3-venv,ca-certificates
TARBALL="$CACHE/debian-bookworm-minbase-$(echo "$PACKAGES" | sha1sum | cut -c1-8).tar"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE exists"; exit 0; fi
if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { echo "error: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
  mkdir -p "$CACHE"
  ROOTFS=$(mktemp -d)
  trap 'rm -rf "$ROOTFS"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { echo "error: debootstrap failed; see $CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
fi
docker import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >/dev/null
echo "imported $IMAGE from $TARBALL"
