#!/usr/bin/env bash
# `make dev-rotate`: write a new (fake) password for the demo credential in the dev Vault and show
# every demo Secret following it. Values are never printed: Secrets are compared by the sha256
# prefix of their .dockerconfigjson.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

need kind kubectl
need_cluster

# before[i] is the digest of DEMO_NAMESPACES[i] (indexed arrays: macOS still ships bash 3.2)
before=()
say "before"
for ns in "${DEMO_NAMESPACES[@]}"; do
    before+=("$(secret_digest "$ns")")
    printf '%-10s %s sha256:%s\n' "$ns" "$SECRET_NAME" "${before[${#before[@]} - 1]}"
done

say "Vault: new password at $CREDENTIAL_PATH (fake, not shown)"
vault_cli kv patch "$CREDENTIAL_PATH" password="$(fake_password)" >/dev/null
echo "credential version now $(vault_cli kv metadata get -field=current_version "$CREDENTIAL_PATH")"

say "waiting for the syncer (refreshInterval 10s in the kind overlay)"
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
    printf '%-10s %s sha256:%s -> sha256:%s\n' "$ns" "$SECRET_NAME" "${before[$i]}" "$(secret_digest "$ns")"
done
show_secret demo-a
