#!/usr/bin/env bash
# The kind toolchain of `make dev` and `make test-kind` (deploy/kind/), built once and cached.
#
#   build-kind.sh kind                  print the path of kind (v0.33.0, built through the Go module
#                                       proxy into the cache on first use)
#   build-kind.sh node-image [VERSION]  print the name of a kind node image for Kubernetes VERSION
#                                       (default: the first line of kube-versions), building it when
#                                       the Docker engine does not hold it yet
#
# Where kind's published node image (kindest/node) cannot be pulled, as on the project's own
# machines, the node image is built here from the Go module proxy and Debian's packages only:
#   - a Debian bookworm rootfs (debootstrap; bookworm's systemd 252 still runs on cgroup v1, which
#     this project's CI machines have), with kind v0.33.0's images/base files and steps applied;
#   - containerd, runc and the CNI plugins at the versions kind v0.33.0 pins; kubelet, kubeadm,
#     kubectl, kube-scheduler and kube-proxy from k8s.io/kubernetes in a throwaway module (the
#     recipe of build-kubernetes.sh, whose cached kube-apiserver, kube-controller-manager and etcd
#     are reused as they are); coredns at the tag kubeadm names; pause compiled from its C source;
#   - the control-plane images kubeadm expects (registry.k8s.io/... tags) preloaded into the node's
#     containerd, which is what `kind build node-image` does but could not do offline (it fetches
#     etcd, coredns and pause from registry.k8s.io);
#   - the patches of tests/stack/kind-node/ (read them: they keep /proc/sys read-only and say why).
# The image is tagged pullsecret-syncer/kind-node:v<VERSION>-<key>, the key being a digest of this
# script, tests/stack/kind-node/ and the pinned versions: a changed recipe builds a new image, an
# unchanged one is reused from the Docker engine's data root (under the cache, see docker.sh).
# Cold on 2 cores: ≈ 15 min when build-kubernetes.sh's binaries are cached; warm: nothing to do.
#
# Go builds run under `nice -n 19` with GOFLAGS=-p=1 (PSS_GO_P overrides): they share the machine.
# Needs root (debootstrap, chroot) and Go (≥ 1.26), gcc, a Docker engine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KIND_VERSION=v0.33.0        # the newest kind the Go module proxy serves
CONTAINERD_VERSION=v2.3.4   # containerd, runc and the CNI plugins: what kind v0.33.0's base image pins
RUNC_VERSION=v1.4.3
CNI_VERSION=v1.9.1
DEBIAN_SUITE=bookworm
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer
kind_bin=$cache_root/kind-$KIND_VERSION/kind
cache=$cache_root/kind-node

export PATH=$PATH:/usr/local/go/bin GOWORK=off GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false -p=${PSS_GO_P:-1}"
nice=(nice -n 19)
began=$SECONDS
step() { echo "build-kind: [$((SECONDS - began)) s] $*" >&2; }
die() { echo "build-kind.sh: $*" >&2; exit 1; }

# go_install DIR PKG@VERSION... : `go install` into DIR unless every binary is already there.
go_install() {
    local dir=$1 cgo=$2 tags=$3; shift 3
    local pkg missing=0
    for pkg in "$@"; do
        pkg=${pkg%@*}
        [[ -x $dir/${pkg##*/} ]] || missing=1
    done
    ((missing)) || return 0
    step "go install $* (into $dir)"
    mkdir -p "$dir"
    GOBIN=$dir CGO_ENABLED=$cgo "${nice[@]}" go install -trimpath -ldflags "-s -w" -tags "$tags" "$@"
}

build_kind() {
    [[ -x $kind_bin ]] && return 0
    command -v go >/dev/null || die "Go is needed to build kind $KIND_VERSION (go.dev/dl)"
    go_install "$(dirname "$kind_bin")" 0 "" "sigs.k8s.io/kind@$KIND_VERSION"
}

# kube_components VERSION : kubelet kubeadm kubectl kube-scheduler kube-proxy into $cache/kubernetes-VERSION
kube_components() {
    local version=$1 minor out=$cache/kubernetes-$1 cmd missing=()
    minor=$(cut -d. -f2 <<<"$version")
    for cmd in kubelet kubeadm kubectl kube-scheduler kube-proxy; do
        [[ -x $out/$cmd ]] || missing+=("$cmd")
    done
    ((${#missing[@]})) || return 0
    # the throwaway module of build-kubernetes.sh: k8s.io/kubernetes with every staging module
    # its go.mod pins at v0.0.0 replaced by the published v0.<minor>.<patch>
    local mod=$cache/kube-module-$version
    if [[ ! -f $mod/tools.go ]]; then
        step "throwaway module for k8s.io/kubernetes v$version"
        rm -rf "$mod" && mkdir -p "$mod"
        local gomod
        (cd "$mod" && go mod init pss-kind-kube-build >/dev/null 2>&1)
        gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
        [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@v$version"
        {
            echo "require k8s.io/kubernetes v$version"
            awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u |
                while read -r m; do echo "replace $m => $m v0.$minor.${version##*.}"; done
        } >>"$mod/go.mod"
        {
            printf '//go:build tools\n\npackage tools\n\nimport (\n'
            for cmd in kubelet kubeadm kubectl kube-scheduler kube-proxy; do
                printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"
            done
            echo ')'
        } >"$mod/tools.go.tmp"
        mv "$mod/tools.go.tmp" "$mod/tools.go"
        (cd "$mod" && "${nice[@]}" go mod tidy -e >/dev/null 2>"$mod/tidy.log") || { cat "$mod/tidy.log" >&2; die "go mod tidy failed"; }
    fi
    local ld="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$out"
    for cmd in "${missing[@]}"; do
        step "go build $cmd v$version"
        (cd "$mod" && CGO_ENABLED=0 "${nice[@]}" go build -trimpath -tags=selinux,notest,grpcnotrace \
            -ldflags "$ld" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
        mv "$out/$cmd.tmp" "$out/$cmd"
    done
}

# debootstrap_rootfs : a pristine bookworm rootfs with what kind's base image installs, once
debootstrap_rootfs() {
    local dir=$cache/rootfs-$DEBIAN_SUITE
    [[ -f $dir.ok ]] && return 0
    command -v debootstrap >/dev/null || {
        step "apt-get install debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    }
    local mirror=${PSS_DEBIAN_MIRROR:-}
    if [[ -z $mirror ]]; then
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        mirror=${mirror:-http://deb.debian.org/debian}
    fi
    step "debootstrap $DEBIAN_SUITE from $mirror"
    rm -rf "$dir"
    "${nice[@]}" debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,libc-bin \
        "$DEBIAN_SUITE" "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    touch "$dir.ok"
}

node_key() {  # digest of everything the image is made from
    {
        cat "$0" "$here"/kind-node/*
        echo "$1 $KIND_VERSION $CONTAINERD_VERSION $RUNC_VERSION $CNI_VERSION $DEBIAN_SUITE"
    } | sha256sum | cut -c1-12
}

build_node_image() {
    local version=${1#v} image
    image=pullsecret-syncer/kind-node:v$version-$(node_key "$version")
    if docker image inspect "$image" >/dev/null 2>&1; then
        echo "$image"
        return 0
    fi
    command -v go >/dev/null || die "Go is needed to build the kind node image (go.dev/dl)"
    [[ $(id -u) -eq 0 ]] || die "building the kind node image needs root (debootstrap, chroot)"
    build_kind
    local kind_src
    kind_src=$(cd "$cache_root" && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    [[ -d $kind_src/images/base/files ]] || die "no images/base/files in sigs.k8s.io/kind@$KIND_VERSION"

    # --- binaries
    dpkg -s libseccomp-dev >/dev/null 2>&1 || {
        step "apt-get install libseccomp-dev (runc's seccomp support)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev >/dev/null
    }
    go_install "$cache/runc-$RUNC_VERSION" 1 seccomp "github.com/opencontainers/runc@$RUNC_VERSION"
    go_install "$cache/cni-$CNI_VERSION" 0 "" \
        "github.com/containernetworking/plugins/plugins/"{main/ptp,main/loopback,ipam/host-local,meta/portmap}"@$CNI_VERSION"
    go_install "$cache/containerd-$CONTAINERD_VERSION" 0 "no_aufs no_zfs no_btrfs no_devmapper" \
        "github.com/containerd/containerd/v2/cmd/"{containerd,ctr,containerd-shim-runc-v2}"@$CONTAINERD_VERSION"
    kube_components "$version"
    local kbin=$cache/kubernetes-$version
    bash "$here/build-kubernetes.sh" "$version" >&2   # kube-apiserver, kube-controller-manager, etcd (cached)
    local cbin=$cache_root/kubernetes-$version
    local images
    images=$("$kbin/kubeadm" config images list --kubernetes-version "v$version")
    tag_of() { grep "/$1:" <<<"$images" | head -1; }
    local coredns_v pause_tag ksrc
    coredns_v=$(tag_of coredns | cut -d: -f2)
    pause_tag=$(tag_of pause | cut -d: -f2)
    go_install "$cache/coredns-$coredns_v" 0 "" "github.com/coredns/coredns@$coredns_v"
    ksrc=$(cd "$cache/kube-module-$version" && go list -m -json k8s.io/kubernetes | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    if [[ ! -x $cache/pause-$pause_tag/pause ]]; then
        step "pause $pause_tag (static C from the kubernetes module)"
        mkdir -p "$cache/pause-$pause_tag"
        gcc -Os -static -DVERSION="$pause_tag" -o "$cache/pause-$pause_tag/pause" "$ksrc/build/pause/linux/pause.c"
        strip "$cache/pause-$pause_tag/pause"
    fi
    local etcd_have etcd_want
    etcd_want=$(tag_of etcd | cut -d: -f2)
    etcd_have=$("$cbin/etcd" --version | awk '/etcd Version/ {print $3}')
    [[ ${etcd_want%-*} == "$etcd_have" ]] || die "kubeadm v$version expects etcd $etcd_want, the cache has etcd $etcd_have"
    debootstrap_rootfs

    # --- the node rootfs: kind's images/base steps, then ours
    local work
    work=$(mktemp -d "$cache/work.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '$work'; docker rm -f pss-kind-node-build >/dev/null 2>&1 || true" EXIT
    local r=$work/rootfs f=$kind_src/images/base/files
    step "node rootfs (kind $KIND_VERSION images/base + tests/stack/kind-node)"
    cp -a "$cache/rootfs-$DEBIAN_SUITE" "$r"
    mkdir -p "$r"/kind/bin "$r"/LICENSES "$r"/etc/{containerd,default,sysctl.d,kubernetes/manifests,cni/net.d} \
        "$r"/etc/systemd/system/kubelet.service.d "$r"/opt/cni/bin
    install -m0755 "$f"/usr/local/bin/* "$r/usr/local/bin/"
    install -m0644 "$f/kind/README.txt" "$r/kind/"
    install -m0755 "$f"/kind/bin/* "$r/kind/bin/"
    install -m0644 "$f"/LICENSES/* "$r/LICENSES/"
    install -m0644 "$f/etc/crictl.yaml" "$r/etc/"
    install -m0644 "$f"/etc/containerd/* "$r/etc/containerd/"
    install -m0644 "$f"/etc/default/* "$r/etc/default/"
    install -m0644 "$f"/etc/sysctl.d/* "$r/etc/sysctl.d/"
    install -m0644 "$f"/etc/systemd/system/*.service "$f"/etc/systemd/system/*.slice "$r/etc/systemd/system/"
    install -m0644 "$f"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
    # the RUN steps of kind's images/base/Dockerfile
    find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
        "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
        "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
    chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
    install -m0755 "$cache/containerd-$CONTAINERD_VERSION"/{containerd,ctr,containerd-shim-runc-v2} "$r/usr/local/bin/"
    install -m0755 "$cache/runc-$RUNC_VERSION/runc" "$r/usr/local/sbin/runc"
    install -m0755 "$cache/cni-$CNI_VERSION"/* "$r/opt/cni/bin/"
    install -m0755 "$kbin"/{kubeadm,kubelet,kubectl} "$r/usr/bin/"
    echo -n "v$version" >"$r/kind/version"
    chroot "$r" /bin/bash -c 'ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" | jq "del(.process.rlimits)" >/etc/containerd/cri-base.json'
    bash "$here/kind-node/patch-rootfs.sh" "$r"

    # --- component images, under the names kubeadm expects (Docker-side only while building)
    step "control-plane images"
    local img=$work/img
    mkimg() {  # NAME BINARY PATH-IN-IMAGE [ENTRYPOINT-JSON]
        local d=$img/$1
        mkdir -p "$d/etc" "$d/tmp" "$d$(dirname "$3")"
        chmod 1777 "$d/tmp"
        echo 'root:x:0:0:root:/root:/sbin/nologin' >"$d/etc/passwd"
        echo 'root:x:0:' >"$d/etc/group"
        install -m0755 "$2" "$d$3"
        local change=(--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin')
        [[ -n ${4:-} ]] && change+=(--change "ENTRYPOINT $4")
        tar -C "$d" -c --owner=0 --group=0 . | docker import "${change[@]}" - "$(tag_of "$1")" >/dev/null
    }
    mkimg kube-apiserver "$cbin/kube-apiserver" /usr/local/bin/kube-apiserver
    mkimg kube-controller-manager "$cbin/kube-controller-manager" /usr/local/bin/kube-controller-manager
    mkimg kube-scheduler "$kbin/kube-scheduler" /usr/local/bin/kube-scheduler
    mkimg etcd "$cbin/etcd" /usr/local/bin/etcd
    mkimg coredns "$cache/coredns-$coredns_v/coredns" /coredns '["/coredns"]'
    mkimg pause "$cache/pause-$pause_tag/pause" /pause '["/pause"]'
    # kube-proxy runs iptables/nft: the plain bookworm rootfs plus kube-proxy
    mkdir -p "$img/kube-proxy/usr/local/bin"
    install -m0755 "$kbin/kube-proxy" "$img/kube-proxy/usr/local/bin/"
    tar -C "$cache/rootfs-$DEBIAN_SUITE" -c --numeric-owner . |
        tar -C "$img/kube-proxy" -x --numeric-owner --skip-old-files
    tar -C "$img/kube-proxy" -c --numeric-owner . |
        docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$(tag_of kube-proxy)" >/dev/null
    local all=()
    mapfile -t all <<<"$images"
    docker save "${all[@]}" -o "$work/images.tar"
    docker rmi "${all[@]}" >/dev/null

    # --- base image, then the node image: what `kind build node-image` does, minus registry pulls
    step "node image $image"
    tar -C "$r" -c --numeric-owner --xattrs . |
        docker import --change 'ENV container=docker' \
            --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - pss-kind-base:build >/dev/null
    mkdir -p "$work/ctx"
    # docker 20.10's `import --change` refuses STOPSIGNAL; systemd stops on SIGRTMIN+3
    printf 'FROM pss-kind-base:build\nSTOPSIGNAL SIGRTMIN+3\n' >"$work/ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t pss-kind-base:stop "$work/ctx" >/dev/null
    # the same capability quirk as deploy/kind/docker-shim: no --privileged, all caps but SYS_RESOURCE
    docker run -d --name pss-kind-node-build --entrypoint=sleep --cap-add=ALL --cap-drop=SYS_RESOURCE \
        --security-opt seccomp=unconfined pss-kind-base:stop infinity >/dev/null
    docker exec pss-kind-node-build bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
    local _
    for _ in $(seq 1 30); do docker exec pss-kind-node-build test -S /run/containerd/containerd.sock && break; sleep 1; done
    docker exec -i pss-kind-node-build ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
        --all-platforms --no-unpack --digests - <"$work/images.tar" >/dev/null
    local sandbox
    sandbox=$(sed -n 's/^\s*sandbox_image = "\(.*\)"/\1/p' "$r/etc/containerd/config.toml")
    if [[ $sandbox != "$(tag_of pause)" ]]; then  # kind's containerd config names its own pause tag
        docker exec pss-kind-node-build ctr -n k8s.io images tag --force "$(tag_of pause)" "$sandbox" >/dev/null
    fi
    # `ctr import` of a multi-image archive also names the archive's index (import-<date>@sha256:…)
    local name
    for name in $(docker exec pss-kind-node-build ctr -n k8s.io images ls -q | grep '^import-'); do
        docker exec pss-kind-node-build ctr -n k8s.io images rm "$name" >/dev/null
    done
    docker exec pss-kind-node-build ctr -n k8s.io images ls -q | grep -v '^sha256:' >&2
    docker exec pss-kind-node-build pkill containerd || true
    sleep 2
    docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' pss-kind-node-build "$image" >/dev/null
    docker rm -f pss-kind-node-build >/dev/null
    docker rmi pss-kind-base:stop pss-kind-base:build >/dev/null
    step "built $image"
    # images of an older recipe for this version are dead weight (≈ 1 GB each): drop them
    local old
    for old in $(docker images --format '{{.Repository}}:{{.Tag}}' pullsecret-syncer/kind-node | grep ":v$version-"); do
        [[ $old == "$image" ]] || docker rmi "$old" >/dev/null 2>&1 || true
    done
    echo "$image"
}

case ${1:-} in
    kind) build_kind; echo "$kind_bin" ;;
    kube-components) kube_components "${2#v}" ;;  # only kubelet, kubeadm, kubectl, kube-scheduler, kube-proxy
    node-image) build_node_image "${2:-${PSS_KUBE_VERSION:-$(awk '!/^#/ && NF {print $1; exit}' "$here/kube-versions")}}" ;;
    *) echo "usage: $0 kind | node-image [KUBE_VERSION]" >&2; exit 2 ;;
esac
