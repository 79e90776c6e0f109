#!/usr/bin/env bash
# `make dev`: a local kind cluster with a dev-mode Vault and pullsecret-syncer, then a look at what
# the syncer wrote. Needs docker (with a running daemon), kind and kubectl. Safe to run again:
# every step reuses what already exists; the image is rebuilt and the syncer restarted on it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
cd "$root"

need docker kind kubectl
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (is Docker running?)"

say "kind cluster '$CLUSTER'"
if cluster_exists; then
    echo "exists, reusing it"
else
    kind_args=(create cluster --name "$CLUSTER" --config deploy/kind/kind-config.yaml --wait 180s)
    if [[ -n ${KIND_NODE_IMAGE:-} ]]; then
        kind_args+=(--image "$KIND_NODE_IMAGE")
    fi
    kind "${kind_args[@]}"
fi

say "dev Vault (namespace vault)"
kc apply -f deploy/kind/vault.yaml
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

say "Vault: sample registry credential at $CREDENTIAL_PATH (fake values)"
if vault_cli kv get -field=username "$CREDENTIAL_PATH" >/dev/null 2>&1; then
    echo "exists, keeping it (rotate it with: make dev-rotate)"
else
    vault_cli kv put "$CREDENTIAL_PATH" \
        registry="$DEMO_REGISTRY" username="$DEMO_USERNAME" password="$(fake_password)" >/dev/null
    echo "written: registry=$DEMO_REGISTRY username=$DEMO_USERNAME password=(fake, not shown)"
fi

say "image $IMAGE"
docker build -t "$IMAGE" -f deploy/Dockerfile .
kind load docker-image "$IMAGE" --name "$CLUSTER"

say "pullsecret-syncer (kustomize overlay deploy/kubernetes/overlays/kind)"
existed=false
if kc -n "$SYNCER_NS" get deploy/pullsecret-syncer >/dev/null 2>&1; then
    existed=true
fi
kc apply -k deploy/kubernetes/overlays/kind
if $existed; then
    # Same tag, new image: restart so the pods run the image just loaded.
    kc -n "$SYNCER_NS" rollout restart deploy/pullsecret-syncer
fi
kc -n "$SYNCER_NS" rollout status deploy/pullsecret-syncer --timeout=180s

say "demo namespaces: demo-a, demo-b (pattern demo-*), team-blue (label pull-secrets=enabled)"
for ns in "${DEMO_NAMESPACES[@]}"; do
    kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f -
done
kc label namespace team-blue pull-secrets=enabled --overwrite

for ns in "${DEMO_NAMESPACES[@]}"; do
    wait_for_secret "$ns" 120
done
show_secret demo-a
show_serviceaccount demo-a

say "every demo namespace"
for ns in "${DEMO_NAMESPACES[@]}"; do
    printf '%-10s secret %s sha256:%s  default SA imagePullSecrets: %s\n' "$ns" "$SECRET_NAME" \
        "$(secret_digest "$ns")" \
        "$(kc -n "$ns" get serviceaccount default -o jsonpath='{.imagePullSecrets[*].name}')"
done

cat <<MSG

Ready. Try:
  kubectl --context $CONTEXT -n $SYNCER_NS logs deploy/pullsecret-syncer -f   # JSON logs (debug)
  kubectl --context $CONTEXT create namespace demo-c                          # gets $SECRET_NAME within seconds
  make dev-rotate                                                             # new password in Vault -> Secrets follow
  make dev-down                                                               # delete the cluster
MSG
