#!/usr/bin/env bash
# Build the image's base images from Debian 12's own packages, for machines that cannot pull the
# public ones (python:3.11-slim-bookworm, debian:12-slim, gcr.io/distroless/python3-debian12).
#
#   bases.sh TAG_PREFIX     builds, unless present: TAG_PREFIX/build:<key>  and  TAG_PREFIX/runtime:<key>
#                           and prints the two references as BUILD=… and RUNTIME=… lines
#
# build   — Debian 12 minbase with python3, python3-venv, python3-pip and `python` (the wheel and
#           venv stages of deploy/Dockerfile; it keeps apt and a shell: build stages need them).
# runtime — what distroless python3-debian12:nonroot promises, made the way distroless makes it (the
#           packages' files extracted, no maintainer scripts run): Debian 12's python3.11 at
#           /usr/bin/python3, its shared libraries, CA certificates (the bundle is built from the
#           ca-certificates package's own certificates, never from this host's store), tzdata,
#           users root/nonroot(65532)/nobody, /tmp; then every executable but python3 is removed —
#           no shell, no package manager, no coreutils.
# <key> is a hash of this script, so a change to it builds new bases; unchanged, they are reused
# from the Docker data root (a warm cache). Needs root (mmdebstrap) and Debian's mirror.
set -euo pipefail

prefix=${1:?usage: bases.sh TAG_PREFIX}
key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
build_ref=$prefix/build:bookworm-$key
runtime_ref=$prefix/runtime:bookworm-$key
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}

have() { docker image inspect "$1" >/dev/null 2>&1; }

need_tools() {
    command -v mmdebstrap >/dev/null && return
    echo "bases: apt-get install mmdebstrap" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        mmdebstrap >/dev/null
}

work=$(mktemp -d "${TMPDIR:-/tmp}/pss-bases.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! have "$build_ref"; then
    need_tools
    began=$SECONDS
    # shellcheck disable=SC2016  # "$1" in the hook is the rootfs, expanded by mmdebstrap's shell
    mmdebstrap --quiet --variant=minbase --mode=root \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        --aptopt='Acquire::Retries "3"' \
        --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
        bookworm "$work/build.tar" "$mirror" >&2
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' "$work/build.tar" "$build_ref" >/dev/null
    rm -f "$work/build.tar"
    echo "bases: built $build_ref in $((SECONDS - began)) s" >&2
fi

if ! have "$runtime_ref"; then
    need_tools
    began=$SECONDS
    root=${work:?}/runtime
    # python3.11 and exactly the libraries its standard library links against (see
    # `apt-cache depends libpython3.11-stdlib`), plus what distroless adds: tzdata, netbase,
    # media-types, CA certificates, base-files (os-release). `extract`: unpack, run nothing.
    mmdebstrap --quiet --variant=extract --mode=root --format=directory \
        --include=python3.11-minimal,libpython3.11-minimal,libpython3.11-stdlib,python3-minimal,libc6,libssl3,zlib1g,libffi8,libexpat1,libbz2-1.0,liblzma5,libuuid1,libsqlite3-0,libncursesw6,libtinfo6,libreadline8,libcrypt1,libnsl2,libtirpc3,libtirpc-common,libdb5.3,libgcc-s1,libgssapi-krb5-2,libkrb5-3,libk5crypto3,libcom-err2,libkrb5support0,libkeyutils1,tzdata,ca-certificates,netbase,base-files,media-types \
        bookworm "$root" "$mirror" >&2
    # The CA bundle from the package's Mozilla certificates (update-ca-certificates did not run).
    mkdir -p "$root/etc/ssl/certs"
    cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
    # Dependencies of the packages above brought tools along (dpkg, debconf, perl-base, tar, mawk,
    # openssl): keep the interpreter, drop every other executable and the package database.
    find "$root/usr/bin" -mindepth 1 ! -name python3 ! -name python3.11 -exec rm -rf {} +
    rm -rf "${root:?}"/bin "$root"/sbin "$root"/usr/sbin "$root"/usr/local/bin "$root"/usr/local/sbin \
        "$root"/usr/libexec "$root"/usr/lib/dpkg "$root"/var/lib/dpkg "$root"/var/lib/apt \
        "$root"/var/cache/* "$root"/var/log/* "$root"/etc/apt "$root"/etc/dpkg \
        "$root"/usr/share/perl* "$root"/usr/lib/x86_64-linux-gnu/perl* "$root"/usr/share/debconf \
        "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/lintian \
        "$root"/usr/share/locale "$root"/usr/lib/python3/dist-packages/debconf.py \
        "$root"/usr/share/dpkg "$root"/usr/share/bug "$root"/etc/logrotate.d "$root"/etc/alternatives \
        "$root"/etc/init.d "$root"/etc/cron.daily "$root"/etc/profile.d "$root"/etc/skel
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
    mkdir -p "$root/home/nonroot" "$root/tmp" "$root/root"
    chown 65532:65532 "$root/home/nonroot"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    tar -C "$root" -c --numeric-owner . | docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8' \
        --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
        --change 'ENTRYPOINT ["/usr/bin/python3.11"]' - "$runtime_ref" >/dev/null
    echo "bases: built $runtime_ref in $((SECONDS - began)) s" >&2
fi

echo "BUILD=$build_ref"
echo "RUNTIME=$runtime_ref"
