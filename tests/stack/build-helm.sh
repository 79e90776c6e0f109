#!/usr/bin/env bash
# Obtain the `helm` binary (v3) that the chart tests run (tests/deploy/test_helm_chart.py,
# tests/integration/test_helm.py).
#
#   build-helm.sh [HELM_VERSION]   default: $PSS_HELM_VERSION, else the pin below
#
# Sources, first found wins (each is named on stdout):
#   1. $PSS_HELM     an existing helm binary (v3); nothing is built
#   2. the cache     ${XDG_CACHE_HOME:-~/.cache}/pullsecret-syncer/helm-<version>/helm
#   3. a Go build of helm.sh/helm/v3/cmd/helm@<version> through the Go module proxy, into the
#      cache (≈ 2 min cold on 2 cores, most of it downloading modules). helm's go.mod has no
#      replace directives, so a plain `go install` works. Stamped with -ldflags as helm's own
#      Makefile does: the version (else `helm version` reports only the minor, "v3.22") and the
#      Kubernetes version that `helm template` and `helm lint` assume without a cluster (else
#      v1.20), derived from the k8s.io/client-go that helm's go.mod requires (v0.37.x -> 1.37).
# Nothing here needs root.
set -euo pipefail

pinned=3.22.0  # tests/stack/helm.py names the same version
version=${1:-${PSS_HELM_VERSION:-$pinned}}
version=${version#v}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer/helm-$version

if [[ -n ${PSS_HELM:-} ]]; then
    if [[ -x $PSS_HELM ]]; then
        echo "helm: PSS_HELM=$PSS_HELM (nothing built)"
        "$PSS_HELM" version --short
        exit 0
    fi
    echo "PSS_HELM=$PSS_HELM is not an executable file" >&2
    exit 1
fi
if [[ -x $cache/helm ]]; then
    echo "helm: cache $cache"
    "$cache/helm" version --short
    exit 0
fi

command -v go >/dev/null || { echo "build-helm.sh: Go is needed to build helm v$version (go.dev/dl)" >&2; exit 1; }
echo "helm: building v$version through the Go module proxy into $cache"
began=$SECONDS
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/build-helm-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

gomod=$(go mod download -json "helm.sh/helm/v3@v$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
[[ -f $gomod ]] || { echo "could not download helm.sh/helm/v3@v$version" >&2; exit 1; }
client_go=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
[[ $client_go =~ ^v0\.([0-9]+)\. ]] || { echo "no k8s.io/client-go v0.x in $gomod" >&2; exit 1; }
kube_minor=${BASH_REMATCH[1]}
ld="-s -w -X helm.sh/helm/v3/internal/version.version=v$version"
ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
GOBIN=$work/bin go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@v$version"

stamped=$("$work/bin/helm" version --template '{{.Version}}')
[[ $stamped == "v$version" ]] || { echo "build-helm.sh: built helm reports $stamped, not v$version" >&2; exit 1; }
# the Kubernetes version `helm template` assumes without a cluster, through a one-file chart
mkdir -p "$work/probe/templates"
printf 'apiVersion: v2\nname: probe\nversion: 0.0.0\n' >"$work/probe/Chart.yaml"
printf 'v: {{ .Capabilities.KubeVersion.Version }}\n' >"$work/probe/templates/v.yaml"
assumed=$("$work/bin/helm" template "$work/probe" | sed -n 's/^v: //p')
[[ $assumed == "v1.$kube_minor.0" ]] || { echo "build-helm.sh: helm assumes Kubernetes $assumed, not v1.$kube_minor.0" >&2; exit 1; }
mkdir -p "$cache"
install -m 0755 "$work/bin/helm" "$cache/helm.tmp"
mv "$cache/helm.tmp" "$cache/helm"
"$cache/helm" version --short
echo "helm v$version built into $cache in $((SECONDS - began)) s"
