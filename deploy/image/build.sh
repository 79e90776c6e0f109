#!/usr/bin/env bash
# `make image`: build the container image from deploy/Dockerfile, on any machine with Docker.
#
#   build.sh [IMAGE]        default IMAGE: $IMAGE, else pullsecret-syncer:dev
#
# 1. The Dockerfile's public bases (python:3.11-slim-bookworm, debian:12-slim,
#    gcr.io/distroless/python3-debian12:nonroot) are used when present or pullable — then this is
#    exactly `docker build -f deploy/Dockerfile .`.
# 2. Otherwise (no image registry reachable, as on the development machines) equivalent bases are
#    built from Debian 12's packages (deploy/image/bases.sh, cached in the Docker data root), and
#    the Python packages come from a wheelhouse prepared on the host: `pip download` of the exact
#    pins of deploy/requirements.lock into deploy/wheelhouse/, installed in the build stages with
#    `--no-index`. Why a wheelhouse and not the host's CA bundle in the build: containers there
#    cannot verify PyPI's certificate chain (its root is only in the host's store); the wheelhouse
#    needs no certificate inside any container, never lets a host file near the image, and a warm
#    pip cache makes it a no-op.
# The classic builder is used (DOCKER_BUILDKIT=0): BuildKit would first pull its frontend image.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
image=${1:-${IMAGE:-pullsecret-syncer:dev}}
python=${PYTHON:-python3}
began=$SECONDS

default_arg() {  # the default of an ARG in the Dockerfile
    sed -n "s/^ARG $1=\(.*\)$/\1/p" deploy/Dockerfile | head -n 1
}
pip_version=$(default_arg PIP_VERSION)
bases=("$(default_arg WHEEL_IMAGE)" "$(default_arg VENV_IMAGE)" "$(default_arg RUNTIME_IMAGE)")

public=yes
for ref in "${bases[@]}"; do
    docker image inspect "$ref" >/dev/null 2>&1 && continue
    if ! timeout 120 docker pull -q "$ref" >/dev/null 2>&1; then
        echo "image: cannot pull $ref: building equivalent bases from Debian 12's packages"
        public=no
        break
    fi
done

args=(--build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
if [[ $public == no ]]; then
    while IFS='=' read -r name ref; do
        case $name in
            BUILD) args+=(--build-arg "WHEEL_IMAGE=$ref" --build-arg "VENV_IMAGE=$ref") ;;
            RUNTIME) args+=(--build-arg "RUNTIME_IMAGE=$ref") ;;
        esac
    done < <(bash deploy/image/bases.sh pullsecret-syncer-base)
    echo "image: wheelhouse deploy/wheelhouse/ (pip download on the host)"
    # Only wheels, for the image's interpreter (CPython 3.11 on Linux x86_64/glibc), whatever
    # interpreter runs this script.
    target=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
            --platform manylinux_2_28_x86_64 --platform linux_x86_64)
    # the lock (checked against its hashes), then the build tools of the build stages
    "$python" -m pip download --quiet --disable-pip-version-check --dest deploy/wheelhouse \
        "${target[@]}" --requirement deploy/requirements.lock
    "$python" -m pip download --quiet --disable-pip-version-check --dest deploy/wheelhouse \
        "${target[@]}" "pip==$pip_version" "setuptools>=68" wheel
    args+=(--build-arg "PIP_OPTIONS=--no-index --find-links=/wheelhouse")
fi

echo "image: docker build -f deploy/Dockerfile -t $image"
previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --quiet -f deploy/Dockerfile "${args[@]}" -t "$image" . >/dev/null
# The image this tag named before: its own last layer (the copied venv, ≈ 200 MB) would otherwise
# stay in the data root for every rebuild. The build stages' images stay: they are the cache.
if [[ -n $previous && $previous != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "image: built $image ($((size / 1000000)) MB) in $((SECONDS - began)) s"
