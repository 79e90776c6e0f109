"""The kubelet's keyring rules (Kubernetes 1.37 pkg/credentialprovider/keyring.go): which of our
registry keys give credentials for an image — Docker Hub spellings, wildcards, ports, paths."""

from __future__ import annotations

import pytest

from syncer.core import dockerconfig, keyring

HUB = dockerconfig.DOCKER_HUB  # what every Docker Hub spelling normalizes to


@pytest.mark.parametrize(("image", "repo"), [
    ("nginx", "docker.io/library/nginx"),
    ("nginx:1.27", "docker.io/library/nginx"),
    ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx"),
    ("org/app:2", "docker.io/org/app"),
    ("docker.io/org/app", "docker.io/org/app"),
    ("index.docker.io/nginx", "docker.io/library/nginx"),
    ("ghcr.io/org/app:1", "ghcr.io/org/app"),
    ("localhost/app", "localhost/app"),
    ("localhost:5000/app:dev", "localhost:5000/app"),
    ("127.0.0.1:5000/team/app@sha256:" + "b" * 64, "127.0.0.1:5000/team/app"),
    ("Registry/app", "Registry/app"),  # an upper-case first part is a host to docker
])
def test_images_are_named_as_the_kubelet_looks_them_up(image: str, repo: str) -> None:
    assert keyring.repository(image) == repo


@pytest.mark.parametrize(("key", "indexed"), [
    (HUB, "index.docker.io"),
    ("ghcr.io", "ghcr.io"),
    ("https://harbor.example.com/v2/team", "harbor.example.com/team"),
    ("harbor.example.com/team", "harbor.example.com/team"),
    ("http://localhost:5000/", "localhost:5000"),
])
def test_keys_are_indexed_as_the_kubelet_indexes_them(key: str, indexed: str) -> None:
    assert keyring.index_key(key) == indexed


@pytest.mark.parametrize(("keys", "image", "covered"), [
    # Docker Hub: images without a registry, and every spelling of the host
    ((HUB,), "nginx", True),
    ((HUB,), "org/app:1", True),
    ((HUB,), "docker.io/org/app", True),
    ((HUB,), "index.docker.io/org/app", True),
    ((HUB,), "ghcr.io/org/app", False),
    ((HUB,), "localhost/app", True),  # the kubelet's isDefaultRegistryMatch: no '.' or ':'
    (("ghcr.io",), "nginx", False),
    # exact hosts
    (("ghcr.io",), "ghcr.io/org/app:1", True),
    (("ghcr.io",), "ghcr.io.evil.example/org/app", False),
    (("ghcr.io",), "sub.ghcr.io/org/app", False),
    # wildcards: one glob per dot-separated part, same number of parts
    (("*.example.com",), "a.example.com/app", True),
    (("*.example.com",), "a.b.example.com/app", False),
    (("*.example.com",), "example.com/app", False),
    (("*.*.example.com",), "a.b.example.com/app", True),
    (("registry.*",), "registry.io/app", True),
    # ports must be equal (no port is not any port)
    (("localhost:5000",), "localhost:5000/app", True),
    (("localhost:5000",), "localhost:5001/app", False),
    (("localhost:5000",), "localhost/app", False),
    (("harbor.example.com",), "harbor.example.com:443/app", False),
    # paths: the key's path is a string prefix of the image's
    (("harbor.example.com/team",), "harbor.example.com/team/app", True),
    (("harbor.example.com/team",), "harbor.example.com/other/app", False),
    (("harbor.example.com/team",), "harbor.example.com/teams/app", True),  # as the kubelet does
    (("harbor.example.com/team/app",), "harbor.example.com/team", False),
    # several keys: any
    (("ghcr.io", "quay.io"), "quay.io/org/app", True),
    ((), "ghcr.io/org/app", False),
    ((HUB,), "", False),
])
def test_a_secret_covers_an_image_by_the_kubelets_rules(keys: tuple[str, ...], image: str,
                                                         covered: bool) -> None:
    assert keyring.covers(keys, image) is covered
