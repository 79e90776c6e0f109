#!/usr/bin/env bash
# Obtain kube-apiserver and kube-controller-manager v1.20.2 for the test stack.
# Built from Debian bookworm's `kubernetes` source package (the last one that keeps vendor/),
# cached under ${PSS_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer/kubernetes-1.20.2}
# and reused when both binaries are present. Needs root (apt-get) on a fresh machine.
set -euo pipefail

version=1.20.2
cache=${PSS_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer/kubernetes-$version}
if [[ -x $cache/kube-apiserver && -x $cache/kube-controller-manager ]]; then
    echo "kubernetes $version binaries cached in $cache"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pss-kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# deb-src entries derived from the machine's own sources, in a private apt configuration,
# so that /etc is left alone.
aptdir=$work/apt
mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial"
sed 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
    >"$aptdir/sources.list.d/debian.sources"
apt_opts=(-o "Dir::Etc::SourceParts=$aptdir/sources.list.d" -o "Dir::Etc::SourceList=/dev/null"
          -o "Dir::State::Lists=$aptdir/lists")

if [[ ! -x /usr/lib/go-1.19/bin/go ]] || ! command -v make >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-1.19-go make rsync >/dev/null
fi
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only -qq kubernetes)
tar -C "$work" -xzf "$work"/kubernetes_*.orig.tar.gz
tree=$work/kubernetes-$version
[[ -d $tree ]] || { echo "unexpected source layout in $work" >&2; ls "$work" >&2; exit 1; }

mkdir -p "$tree/.go/src/k8s.io"
ln -s "$tree" "$tree/.go/src/k8s.io/kubernetes"
export PATH=/usr/lib/go-1.19/bin:$PATH GOPATH=$tree/.go GOFLAGS=-mod=vendor GOPROXY=off \
       CGO_ENABLED=0 GOCACHE=$work/gocache
cd "$tree/.go/src/k8s.io/kubernetes"
make WHAT=cmd/kube-apiserver
make WHAT=cmd/kube-controller-manager

mkdir -p "$cache"
for b in kube-apiserver kube-controller-manager; do
    install -m 0755 "_output/bin/$b" "$cache/$b.tmp"
    mv "$cache/$b.tmp" "$cache/$b"
done
"$cache/kube-apiserver" --version
echo "kubernetes $version binaries built into $cache"
