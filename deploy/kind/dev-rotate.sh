#!/usr/bin/env bash
# `make dev-rotate`: a new password for the private registry of `make dev`, in the registry's
# htpasswd and in the dev Vault; then the proof that a new Pod pulls with it: every demo Secret
# follows (same Secret, same UID, new content) and a Pod with imagePullPolicy: Always runs.
# Values are never printed: Secrets are compared by the sha256 prefix of their .dockerconfigjson.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
export PSS_T0=$SECONDS
tools
need_cluster

# before[i] / uid[i] belong to DEMO_NAMESPACES[i] (indexed arrays: macOS still ships bash 3.2)
before=() uid=()
say "before"
for ns in "${DEMO_NAMESPACES[@]}"; do
    before+=("$(secret_digest "$ns")")
    uid+=("$(kc -n "$ns" get secret "$SECRET_NAME" -o jsonpath='{.metadata.uid}')")
    printf '%-10s %s sha256:%s uid %s\n' "$ns" "$SECRET_NAME" "${before[${#before[@]} - 1]}" "${uid[${#uid[@]} - 1]}"
done

say "new password: registry htpasswd (the registry restarts to read it) and Vault $CREDENTIAL_PATH"
new_password >/dev/null
write_htpasswd
docker restart "$REGISTRY_CONTAINER" >/dev/null
vault_cli kv patch "$CREDENTIAL_PATH" password=- <"$STATE/password" >/dev/null
echo "credential version now $(vault_cli kv metadata get -format=json "$CREDENTIAL_PATH" | sed -n 's/^ *"current_version": \([0-9]*\).*/\1/p')"

say "waiting for the syncer (refreshInterval 10s in deploy/kind/values-dev.yaml)"
deadline=$((SECONDS + 120))
for i in "${!DEMO_NAMESPACES[@]}"; do
    ns=${DEMO_NAMESPACES[$i]}
    until [[ $(secret_digest "$ns") != "${before[$i]}" ]]; do
        ((SECONDS < deadline)) || die "Secret $ns/$SECRET_NAME did not change within 120 s; see: kubectl --context $CONTEXT -n $SYNCER_NS logs deploy/pullsecret-syncer"
        sleep 2
    done
done

say "after"
for i in "${!DEMO_NAMESPACES[@]}"; do
    ns=${DEMO_NAMESPACES[$i]}
    now=$(kc -n "$ns" get secret "$SECRET_NAME" -o jsonpath='{.metadata.uid}')
    [[ $now == "${uid[$i]}" ]] || die "Secret $ns/$SECRET_NAME was replaced (uid ${uid[$i]} -> $now), not updated"
    printf '%-10s %s sha256:%s -> sha256:%s, uid unchanged\n' "$ns" "$SECRET_NAME" "${before[$i]}" "$(secret_digest "$ns")"
done

say "proof: a new Pod (imagePullPolicy: Always) pulls with the new password"
hello_pod demo-a hello-rotated
wait_pod demo-a hello-rotated 180 Running || { pull_events demo-a hello-rotated >&2; die "the Pod did not pull with the new password"; }
echo "pod demo-a/hello-rotated: Running"
pull_events demo-a hello-rotated | grep -m1 '^Pulled:' || true
