#!/usr/bin/env bash
# `make dev-down`: delete the kind cluster of `make dev` (Vault, the syncer and the demo namespaces
# go with it) and the locally built image. Safe to run when nothing is there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

need kind
if cluster_exists; then
    kind delete cluster --name "$CLUSTER"
else
    echo "no kind cluster '$CLUSTER'"
fi
if command -v docker >/dev/null 2>&1 && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    docker image rm "$IMAGE" >/dev/null
    echo "removed image $IMAGE"
fi
