#!/usr/bin/env bash
# Obtain kube-apiserver, kube-controller-manager and etcd for the test stack.
#
#   build-kubernetes.sh [KUBE_VERSION]   default: $PSS_KUBE_VERSION, else the first line of kube-versions
#
# Sources, first found wins (each is named on stdout):
#   1. $KUBEBUILDER_ASSETS  (envtest: kube-apiserver + etcd, optionally kube-controller-manager)
#   2. $PSS_KUBE_BIN_DIR    (a directory holding the three binaries)
#   3. the cache            ${XDG_CACHE_HOME:-~/.cache}/pullsecret-syncer/kubernetes-<version>/
#   4. a Go build through the Go module proxy, into the cache (≈ 15–25 min cold on 2 cores)
#
# The Go build follows the recipe of k8s.io/kubernetes itself: a throwaway module requires
# k8s.io/kubernetes at the release and `replace`s every staging module its go.mod pins at v0.0.0
# with the matching published v0.<minor>.<patch> (the list is derived from the release's go.mod,
# never hard-coded). The binaries are version-stamped so `--version` and `/version` tell the truth.
# etcd is built the same way at the version the release's build/dependencies.yaml names (or
# $PSS_ETCD_VERSION). Nothing here needs root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
current=$(awk '!/^#/ && NF {print $1; exit}' "$here/kube-versions")
version=${1:-${PSS_KUBE_VERSION:-$current}}
version=${version#v}
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer
cache=$cache_root/kubernetes-$version

has_all() {  # dir [need-kcm]
    [[ -x $1/kube-apiserver && -x $1/etcd ]] && { [[ ${2:-} != kcm ]] || [[ -x $1/kube-controller-manager ]]; }
}

if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
    if ! has_all "$KUBEBUILDER_ASSETS"; then
        echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd" >&2
        exit 1
    fi
    "$KUBEBUILDER_ASSETS/kube-apiserver" --version
    if has_all "$KUBEBUILDER_ASSETS" kcm; then
        echo "kubernetes binaries: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS (nothing built)"
        exit 0
    fi
    # envtest ships no controller-manager; the stack needs one (default ServiceAccounts,
    # namespace deletion): take it from the cache, building it there only if it is missing.
    echo "kubernetes binaries: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS, kube-controller-manager from the cache"
    if [[ -x $cache/kube-controller-manager ]]; then
        echo "kubernetes binaries: kube-controller-manager from cache $cache (nothing built)"
        exit 0
    fi
fi
if [[ -n ${PSS_KUBE_BIN_DIR:-} ]]; then
    if has_all "$PSS_KUBE_BIN_DIR" kcm; then
        echo "kubernetes binaries: PSS_KUBE_BIN_DIR=$PSS_KUBE_BIN_DIR (nothing built)"
        "$PSS_KUBE_BIN_DIR/kube-apiserver" --version
        exit 0
    fi
    echo "PSS_KUBE_BIN_DIR=$PSS_KUBE_BIN_DIR lacks kube-apiserver, kube-controller-manager or etcd" >&2
    exit 1
fi
if has_all "$cache" kcm; then
    echo "kubernetes binaries: cache $cache"
    "$cache/kube-apiserver" --version
    exit 0
fi

command -v go >/dev/null || { echo "build-kubernetes.sh: Go is needed to build Kubernetes $version (go.dev/dl)" >&2; exit 1; }
echo "kubernetes binaries: building v$version through the Go module proxy into $cache"
began=$SECONDS
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=$(cut -d. -f2 <<<"$version")
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/build-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- kube-apiserver + kube-controller-manager
mkdir -p "$work/kube"
cd "$work/kube"
go mod init pss-kube-build >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
moddir=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[[ -f $gomod ]] || { echo "could not download k8s.io/kubernetes@v$version" >&2; exit 1; }
staging=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
echo "  $(wc -w <<<"$staging") staging modules pinned at v0.0.0 in k8s.io/kubernetes' go.mod"
{
    echo "require k8s.io/kubernetes v$version"
    for m in $staging; do echo "replace $m => $m v0.${minor}.${version##*.}"; done
} >>go.mod
cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF
go mod tidy -e >/dev/null 2>"$work/tidy.log" || { cat "$work/tidy.log" >&2; exit 1; }
commit=$(go list -m -json k8s.io/kubernetes | sed -n 's/.*"Version": "\(.*\)".*/\1/p')
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$work/bin"
for cmd in kube-apiserver kube-controller-manager; do
    t=$SECONDS
    go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$ld" -o "$work/bin/$cmd" \
        "k8s.io/kubernetes/cmd/$cmd"
    echo "  built $cmd $commit in $((SECONDS - t)) s"
done

# ---- etcd, at the version the release names
etcd_version=${PSS_ETCD_VERSION:-$(awk '/name: "etcd"$/ {getline; print $2; exit}' "$moddir/build/dependencies.yaml")}
etcd_version=${etcd_version#v}
[[ -n $etcd_version ]] || { echo "no etcd version in $moddir/build/dependencies.yaml" >&2; exit 1; }
mkdir -p "$work/etcd"
cd "$work/etcd"
go mod init pss-etcd-build >/dev/null 2>&1
echo "require go.etcd.io/etcd/server/v3 v$etcd_version" >>go.mod
cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
go mod tidy -e >/dev/null 2>"$work/tidy-etcd.log" || { cat "$work/tidy-etcd.log" >&2; exit 1; }
t=$SECONDS
go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3
echo "  built etcd v$etcd_version in $((SECONDS - t)) s"

mkdir -p "$cache"
for b in kube-apiserver kube-controller-manager etcd; do
    install -m 0755 "$work/bin/$b" "$cache/$b.tmp"
    mv "$cache/$b.tmp" "$cache/$b"
done
"$cache/kube-apiserver" --version
"$cache/etcd" --version | head -1
echo "kubernetes v$version + etcd v$etcd_version built into $cache in $((SECONDS - began)) s"
