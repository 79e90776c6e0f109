"""Which registry keys the kubelet would use for an image: its keyring's matching rules. Pure.

Ported in behaviour (not copied) from Kubernetes 1.37 `pkg/credentialprovider/keyring.go`
(`BasicDockerKeyring.Add`, `URLsMatch`, `isDefaultRegistryMatch`) and the image name the kubelet
looks up (`pkg/util/parsers.ParseImageName`: docker's normalized name without tag or digest):

- an image without a registry is Docker Hub's: `nginx` → `docker.io/library/nginx`,
  `org/app` → `docker.io/org/app`; `index.docker.io/…` is `docker.io/…`;
- a key is reduced to host[:port][/path] (scheme dropped; a leading `/v1/` or `/v2/` dropped);
- a key matches when the host has as many dot-separated parts and each part matches as a glob
  (`*.example.com` matches `a.example.com`, not `a.b.example.com` and not `example.com`), the port
  is the same (none = none), and the key's path is a prefix of the image's path — a plain string
  prefix, as the kubelet checks it (`harbor.example.com/team` also covers `…/teams/app`);
- when no key matches, Docker Hub's key (`index.docker.io`) covers every Docker Hub image.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

DOCKER_HUB_HOST = "index.docker.io"


def repository(image: str) -> str:
    """The name the kubelet looks credentials up for: `ghcr.io/org/app:1` → `ghcr.io/org/app`,
    `nginx@sha256:…` → `docker.io/library/nginx`."""
    name = image.strip().split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name = name[:colon]  # the tag
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        first, rest = "docker.io", name
    if first == "index.docker.io":
        first = "docker.io"
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    return f"{first}/{rest}"


def index_key(registry: str) -> str:
    """A `.dockerconfigjson` key as the kubelet's keyring indexes it:
    `https://index.docker.io/v1/` → `index.docker.io`, `harbor.example.com/v2/team` →
    `harbor.example.com/team`."""
    text = registry.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https"):
        rest = text
    host, slash, path = rest.partition("/")
    path = f"/{path}" if slash else ""
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    return host + path if path and path != "/" else host


def _host_and_path(schemeless: str) -> tuple[list[str], str, str]:
    """(host parts, port, path) of `host[:port][/path]`, split as Go's net.SplitHostPort."""
    hostport, slash, path = schemeless.partition("/")
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end != -1 and hostport[end + 1:end + 2] == ":":
            host, port = hostport[1:end], hostport[end + 2:]
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    return host.split("."), port, f"/{path}" if slash else ""


def matches(key: str, repo: str) -> bool:
    """Whether keyring key `key` (see `index_key`) matches image name `repo` (see
    `repository`), by `URLsMatch`."""
    key_parts, key_port, key_path = _host_and_path(key)
    parts, port, path = _host_and_path(repo)
    if key_port != port or len(key_parts) != len(parts) or not path.startswith(key_path):
        return False
    return all(fnmatch.fnmatchcase(part, glob) for glob, part in zip(key_parts, parts,
                                                                     strict=True))


def _default_registry(repo: str) -> bool:
    first, sep, _ = repo.partition("/")
    if not first:
        return False
    return (not sep or first in ("docker.io", DOCKER_HUB_HOST)
            or not any(c in first for c in ".:"))


def covers(registries: Iterable[str], image: str) -> bool:
    """Whether a Secret whose `auths` has these keys gives the kubelet credentials for
    `image` (keys as in a `.dockerconfigjson`, e.g. our normalized registry keys)."""
    if not image.strip():
        return False
    repo = repository(image)
    keys = {index_key(r) for r in registries}
    if any(matches(k, repo) for k in keys):
        return True
    return DOCKER_HUB_HOST in keys and _default_registry(repo)
