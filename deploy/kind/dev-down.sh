#!/usr/bin/env bash
# `make dev-down`: delete what `make dev` made: the kind cluster (Vault, the syncer and the demo
# namespaces go with it), the private registry with its volume, the cluster's Docker network and
# the files under the state directory. Images stay in the Docker engine (a warm cache for the next
# `make dev`). Safe to run when nothing is there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
export PSS_T0=$SECONDS
need docker
tools

if cluster_exists; then
    kind_ delete cluster --name "$CLUSTER"
else
    echo "no kind cluster '$CLUSTER'"
fi
if docker container inspect "$REGISTRY_CONTAINER" >/dev/null 2>&1; then
    docker rm -f "$REGISTRY_CONTAINER" >/dev/null
    echo "removed registry $REGISTRY_CONTAINER"
fi
if docker volume inspect "$REGISTRY_CONTAINER-data" >/dev/null 2>&1; then
    docker volume rm "$REGISTRY_CONTAINER-data" >/dev/null
    echo "removed volume $REGISTRY_CONTAINER-data"
fi
if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    docker network rm "$NETWORK" >/dev/null
    echo "removed network $NETWORK"
fi
rm -rf "$STATE"
echo "done ($((SECONDS - PSS_T0)) s)"
