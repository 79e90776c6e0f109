#!/usr/bin/env bash
# Build (or reuse) the pinned peers of benchmarks/peers/, through the Go module proxy only.
#
#   build.sh NAME          NAME: eso | patcher | replicator   (versions: benchmarks/peers/pins.json)
#
# Each build lands in ${XDG_CACHE_HOME:-~/.cache}/pullsecret-syncer/peers/<name>-<version>/ with
# the binary, what the runner needs beside it (ESO: its CRD bundle) and build-info.json (module,
# version, go.sum hash, Go version, seconds). A cached build is reused as it is. A peer the module
# proxy refuses to serve ends with exit 3 and one line naming the proxy's answer, so the
# benchmark records "not built" for it instead of failing the whole run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: build.sh eso|patcher|replicator}
pins=$here/pins.json
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$pins" "$name" "$1"; }
module=$(field module)
version=$(field version)
package=$(field package)
tags=$(field tags)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer/peers
out=$cache_root/$name-$version
if [[ -x $out/$name && -f $out/build-info.json ]]; then
    echo "peer $name: cached $out"
    exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build $name" >&2; exit 1; }
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$cache_root"
began=$SECONDS
json=$(go mod download -json "$module@$version" 2>&1 || true)
moddir=$(sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p' <<<"$json")
if [[ -z $moddir || ! -d $moddir ]]; then
    err=$(sed -n 's/^\s*"Error": "\(.*\)"$/\1/p' <<<"$json" | head -1 \
        | sed -E 's#reading https?://[^ ]+: ##; s#\\n\\t# #g')
    echo "peer $name: $module@$version not served by the module proxy: ${err:-no usable answer}" >&2
    exit 3
fi
sum=$(sed -n 's/^\s*"Sum": "\(.*\)",$/\1/p' <<<"$json")
work=$(mktemp -d "$cache_root/build-$name.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# A module from the cache is read-only and `go install mod@v` refuses modules with replace
# directives (ESO has one): build in a writable copy, with the module's own go.mod and go.sum.
cp -r "$moddir/." "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
echo "peer $name: building $module@$version ($package, tags '${tags}') into $out"
go build -trimpath -tags="$tags" -ldflags="-s -w" -o "$work/$name" "$package"
mkdir -p "$out.tmp"
mv "$work/$name" "$out.tmp/$name"
if [[ $name == eso ]]; then
    cp deploy/crds/bundle.yaml "$out.tmp/crds.yaml"
fi
python3 - "$out.tmp/build-info.json" "$module" "$version" "$sum" "$(go env GOVERSION)" \
    "$((SECONDS - began))" "$tags" <<'PY'
import json, sys
path, module, version, sum_, gover, seconds, tags = sys.argv[1:]
json.dump({"module": module, "version": version, "go_sum": sum_, "go": gover,
           "build_seconds": int(seconds), "tags": tags}, open(path, "w"), indent=2)
PY
rm -rf "$out"
mv "$out.tmp" "$out"
echo "peer $name: built in $((SECONDS - began)) s"
