"""Where the stack's Kubernetes binaries come from (first found wins): KUBEBUILDER_ASSETS (the
envtest convention), PSS_KUBE_BIN_DIR, the cache, the Go build — and that a directory given by
the user is used as it is, with nothing built (the script runs here without Go on PATH)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stack import kube as kube_stack
from stack import procs

SCRIPT = Path(__file__).with_name("build-kubernetes.sh")


@pytest.fixture
def cached() -> Path:
    """The cached binaries of the default version (what `make setup` built)."""
    directory = kube_stack.cache_dir()
    if not all(os.access(directory / b, os.X_OK)
               for b in ("kube-apiserver", "kube-controller-manager", "etcd")):
        message = f"no cached Kubernetes binaries in {directory}: run `make setup`"
        if os.environ.get("PSS_REQUIRE_STACK") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return directory


def assets(tmp_path: Path, cached: Path, *names: str) -> Path:
    directory = tmp_path / "assets"
    directory.mkdir()
    for name in names:
        (directory / name).symlink_to(cached / name)
    return directory


def script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    without_go = {k: v for k, v in os.environ.items()
                  if k not in ("KUBEBUILDER_ASSETS", "PSS_KUBE_BIN_DIR")}
    without_go["PATH"] = "/usr/bin:/bin"  # no Go here: a build would fail loudly
    return subprocess.run(["bash", str(SCRIPT)], env={**without_go, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_envtest_assets_are_used_as_they_are_and_nothing_is_built(
        tmp_path: Path, cached: Path) -> None:
    directory = assets(tmp_path, cached, "kube-apiserver", "etcd", "kube-controller-manager")
    empty_cache = tmp_path / "cache"
    done = script({"KUBEBUILDER_ASSETS": str(directory), "XDG_CACHE_HOME": str(empty_cache)})
    assert done.returncode == 0, done.stderr
    assert f"KUBEBUILDER_ASSETS={directory} (nothing built)" in done.stdout
    assert not empty_cache.exists()  # not even a cache directory was made


def test_envtest_assets_without_a_controller_manager_take_ours_from_the_cache(
        tmp_path: Path, cached: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = assets(tmp_path, cached, "kube-apiserver", "etcd")
    done = script({"KUBEBUILDER_ASSETS": str(directory)})
    assert done.returncode == 0, done.stderr
    assert "kube-controller-manager from cache" in done.stdout and "(nothing built)" in done.stdout
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(directory))
    monkeypatch.delenv("PSS_KUBE_BIN_DIR", raising=False)
    found = kube_stack.find_binaries()
    assert found.source == "KUBEBUILDER_ASSETS"
    assert (found.apiserver, found.etcd) == (directory / "kube-apiserver", directory / "etcd")
    assert found.controller_manager == cached / "kube-controller-manager"


def test_a_kube_bin_dir_is_used_and_a_broken_one_is_an_error(
        tmp_path: Path, cached: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = assets(tmp_path, cached, "kube-apiserver", "etcd", "kube-controller-manager")
    done = script({"PSS_KUBE_BIN_DIR": str(directory)})
    assert done.returncode == 0 and f"PSS_KUBE_BIN_DIR={directory} (nothing built)" in done.stdout
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("PSS_KUBE_BIN_DIR", str(directory))
    assert kube_stack.find_binaries().source == "PSS_KUBE_BIN_DIR"
    broken = tmp_path / "broken"
    broken.mkdir()
    assert script({"PSS_KUBE_BIN_DIR": str(broken)}).returncode == 1
    monkeypatch.setenv("PSS_KUBE_BIN_DIR", str(broken))
    with pytest.raises(procs.StackUnavailableError, match="missing"):
        kube_stack.find_binaries()


def test_the_cache_is_used_when_nothing_else_is_given(cached: Path) -> None:
    done = script({})
    assert done.returncode == 0 and f"cache {cached}" in done.stdout, done.stderr
    assert f"v{kube_stack.kube_version()}" in done.stdout  # the binary's own --version
