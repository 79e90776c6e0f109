#!/usr/bin/env bash
# A Docker engine for the image and kind tests.
#
#   docker.sh up      use the engine that answers; else install Debian's docker.io when dockerd is
#                     missing and start dockerd with its own data root under the cache
#   docker.sh down    stop the dockerd that `up` started (an engine found running is left alone)
#   docker.sh status  exit 0 when an engine answers, else print why not and exit 1
#
# The data root lives under ${XDG_CACHE_HOME:-~/.cache}/pullsecret-syncer/docker, so images built
# once (the offline base images, the kind node image) survive between runs: that is the warm cache.
# Where Docker cannot run (no root to install or start it), `up` says why and exits 0 so the rest of
# the suite still runs; the image and kind tests then skip with that reason — or, with
# PSS_REQUIRE_STACK=1 (CI), `up` exits 1.
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-syncer
root=$cache/docker
state=$cache/dockerd-started   # holds the pid of a dockerd this script started
log=$cache/dockerd.log
sock=/var/run/docker.sock

answers() { timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

unavailable() {
    echo "docker: unavailable: $*" >&2
    if [[ ${PSS_REQUIRE_STACK:-} == 1 ]]; then exit 1; fi
    exit 0
}

up() {
    if answers; then
        echo "docker: engine $(docker version --format '{{.Server.Version}}') answers (used as is)"
        return
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
            unavailable "no engine answers and starting one needs root"
        fi
        sudo=(sudo -n)
    fi
    if ! command -v dockerd >/dev/null; then
        echo "docker: apt-get install docker.io"
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            docker.io >/dev/null || unavailable "apt-get install docker.io failed"
    fi
    mkdir -p "$root"
    echo "docker: starting dockerd (data root $root, log $log)"
    # setsid: the engine outlives the make/pytest process that started it; `down` stops it.
    "${sudo[@]}" setsid dockerd --data-root "$root" --pidfile "$cache/dockerd.pid" \
        -H "unix://$sock" >"$log" 2>&1 </dev/null &
    echo $! >"$state"
    for _ in $(seq 1 60); do
        answers && { echo "docker: engine $(docker version --format '{{.Server.Version}}') started"; return; }
        sleep 0.5
    done
    tail -n 20 "$log" >&2 || true
    unavailable "dockerd did not answer within 30 s (log: $log)"
}

down() {
    [[ -f $state ]] || { echo "docker: no engine of ours to stop"; return; }
    local pid
    pid=$(cat "$cache/dockerd.pid" 2>/dev/null || cat "$state")
    rm -f "$state"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        echo "docker: stopped dockerd $pid"
    fi
}

status() {
    if answers; then echo "docker: engine $(docker version --format '{{.Server.Version}}')"; return 0; fi
    if ! command -v docker >/dev/null; then echo "docker: no docker client installed"; return 1; fi
    echo "docker: no engine answers (run tests/stack/docker.sh up, or make setup)"
    return 1
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
