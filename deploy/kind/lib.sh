#!/usr/bin/env bash
# Shared settings and helpers of the kind scripts (dev-up.sh, dev-rotate.sh, dev-down.sh).
# Sourced, not run. Never prints a credential value: Secrets are shown with password/auth masked
# and compared by a sha256 prefix.

# shellcheck disable=SC2034  # the settings are used by the scripts that source this file
CLUSTER=${PSS_KIND_CLUSTER:-pullsecret-syncer}
CONTEXT=kind-$CLUSTER
IMAGE=pullsecret-syncer:dev
SYNCER_NS=pullsecret-syncer
SECRET_NAME=regcred
CREDENTIAL_PATH=secret/registries/demo
DEMO_REGISTRY=registry.example.com
DEMO_USERNAME=demo-user
# demo-a and demo-b match the kind overlay's pattern "demo-*"; team-blue matches its label selector.
DEMO_NAMESPACES=(demo-a demo-b team-blue)

say() { printf '\n==> %s\n' "$*"; }

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# need TOOL... : fail with one clear message naming every missing tool.
need() {
    local missing=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "missing on PATH: ${missing[*]} (the kind environment needs docker, kind and kubectl:
  docker  https://docs.docker.com/engine/install/
  kind    https://kind.sigs.k8s.io/docs/user/quick-start/#installation
  kubectl https://kubernetes.io/docs/tasks/tools/)"
    fi
}

# cluster_exists : is the kind cluster there? (output captured first: no SIGPIPE under pipefail)
cluster_exists() {
    local clusters
    clusters=$(kind get clusters 2>/dev/null) || return 1
    grep -qx "$CLUSTER" <<<"$clusters"
}

need_cluster() {
    cluster_exists || die "no kind cluster '$CLUSTER': run 'make dev' first"
}

kc() { kubectl --context "$CONTEXT" "$@"; }

# vault_cli ARGS... : the vault CLI inside the dev Vault pod (VAULT_ADDR/VAULT_TOKEN set there).
vault_cli() { kc -n vault exec -i deploy/vault -- vault "$@"; }

# A random-looking, obviously fake password, never printed.
fake_password() { printf 'fake-password-%s-%s' "$(date +%s)" "$RANDOM"; }

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum | cut -c1-12
    else
        shasum -a 256 | cut -c1-12
    fi
}

# secret_digest NS : sha256 prefix of the Secret's decoded .dockerconfigjson ("absent" if none).
secret_digest() {
    local json
    if ! json=$(kc -n "$1" get secret "$SECRET_NAME" \
        -o go-template='{{index .data ".dockerconfigjson" | base64decode}}' 2>/dev/null); then
        echo absent
        return
    fi
    printf '%s' "$json" | sha256
}

# show_secret NS : type, managed-by label, annotations and .dockerconfigjson with password/auth masked.
show_secret() {
    local ns=$1
    say "Secret $ns/$SECRET_NAME"
    # shellcheck disable=SC2016  # a go-template, not shell expansions
    kc -n "$ns" get secret "$SECRET_NAME" -o go-template='type: {{.type}}
labels: {{range $k, $v := .metadata.labels}}{{$k}}={{$v}} {{end}}
annotations: {{range $k, $v := .metadata.annotations}}{{$k}}={{$v}} {{end}}
'
    printf '.dockerconfigjson (password and auth masked): '
    kc -n "$ns" get secret "$SECRET_NAME" \
        -o go-template='{{index .data ".dockerconfigjson" | base64decode}}' \
        | sed -E 's/"(password|auth|identitytoken|registrytoken)"[[:space:]]*:[[:space:]]*"[^"]*"/"\1":"***"/g'
    printf '\n'
}

# show_serviceaccount NS : the default ServiceAccount's imagePullSecrets and our annotation.
show_serviceaccount() {
    local ns=$1
    say "ServiceAccount $ns/default"
    kc -n "$ns" get serviceaccount default -o go-template='imagePullSecrets: {{range .imagePullSecrets}}{{.name}} {{end}}
annotation pullsecret-syncer.io/image-pull-secrets: {{index .metadata.annotations "pullsecret-syncer.io/image-pull-secrets"}}
'
}

# wait_for_secret NS TIMEOUT_SECONDS
wait_for_secret() {
    local ns=$1 deadline=$((SECONDS + $2))
    until kc -n "$ns" get secret "$SECRET_NAME" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "no Secret $ns/$SECRET_NAME after $2 s; see: kubectl --context $CONTEXT -n $SYNCER_NS logs deploy/pullsecret-syncer"
        sleep 2
    done
}
