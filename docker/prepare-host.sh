#!/bin/sh
# Make this machine able to run `make testnet-e2e` without an image registry: start dockerd if
# none answers (installing Debian's docker.io and docker-compose if needed), build the base image
# stand-in (docker/base-image.sh), and put what pip here uses into docker/local/: the local torch
# CPU wheel and the CA bundle of a TLS-inspecting proxy. Prints the build arguments to export.
# On a machine with a Docker engine and registry access, none of this is needed.
set -eu
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null ||
        ! { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; }; then
        echo "installing docker.io, docker-compose and debootstrap" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >&2
    fi
    echo "starting dockerd" >&2
    nohup dockerd >/tmp/learnchain-dockerd.log 2>&1 &
    tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -gt 60 ] && { echo "error: dockerd did not start (see /tmp/learnchain-dockerd.log)" >&2; exit 1; }
        sleep 1
    done
fi
docker/base-image.sh >&2
torch_index="https://download.pytorch.org/whl/cpu"
for dir in ${PIP_FIND_LINKS:-} $(pip config get global.find-links 2>/dev/null || true); do
    for wheel in "$dir"/torch-2.13.0+cpu-cp311-*.whl; do
        if [ -f "$wheel" ]; then
            cp -u "$wheel" docker/local/
            torch_index=""
        fi
    done
done
cert="${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}"
if [ -n "$cert" ] && [ -f "$cert" ]; then
    cp "$cert" docker/local/ca.crt
fi
echo "TORCH_INDEX_URL=$torch_index"
