#!/bin/sh
# Build a stand-in for the Dockerfile's base image on a machine that cannot reach an image
# registry: Debian bookworm (whose Python is 3.11) from the Debian mirror, imported and tagged
# as the Dockerfile's FROM. Where `docker pull python:3.11-slim` works, this is not needed.
# Usage: docker/base-image.sh [TAG]   (needs root, debootstrap and a running Docker engine)
set -eu
TAG="${1:-python:3.11-slim}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG is present"
    exit 0
fi
if docker pull "$TAG" >/dev/null 2>&1; then
    echo "pulled $TAG"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
ROOT="$(mktemp -d /tmp/learnchain-rootfs.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap bookworm into $ROOT (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOT" "$MIRROR" >/dev/null
# What python:3.11-slim offers: `python` and `python3` on PATH, pip, C.UTF-8.
ln -sf /usr/bin/python3 "$ROOT/usr/local/bin/python"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/archives/*.deb
tar -C "$ROOT" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
echo "imported a Debian bookworm stand-in as $TAG"
