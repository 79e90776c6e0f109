"""The container image users run, built from deploy/Dockerfile by `make image` and run by a real
Docker engine: its security promises, its command line, and the daemon in it against the local
kube-apiserver and OpenBao.

Where no Docker engine answers, these tests skip with the reason (tests/stack/docker.sh status);
with PSS_REQUIRE_STACK=1, as in CI, they fail instead.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import core  # noqa: F401 - a fixture
from tests.integration.daemonproc import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PSS_TEST_IMAGE", "pullsecret-syncer:test")
SENTINEL_PW = "image-pw-SENTINEL-7f3a"
HARDENED = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", "65532:65532")
# What "no shell, no package manager, no build tools" means, as file names anywhere in the image.
FORBIDDEN = {"sh", "bash", "dash", "ash", "zsh", "busybox", "apt", "apt-get", "dpkg", "rpm",
             "pip", "pip3", "pip3.11", "gcc", "cc", "g++", "c++", "clang", "ld", "make", "curl",
             "wget"}


def docker(*args: str, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} → {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def image() -> str:
    """`make image` of the checkout (cached bases and layers make a rebuild take seconds)."""
    status = subprocess.run(["bash", str(REPO / "tests/stack/docker.sh"), "status"],
                            capture_output=True, text=True, check=False)
    if status.returncode != 0:
        reason = (status.stdout + status.stderr).strip()
        if os.environ.get("PSS_REQUIRE_STACK") == "1":
            pytest.fail(f"Docker required (PSS_REQUIRE_STACK=1): {reason}", pytrace=False)
        pytest.skip(f"no Docker engine: {reason}")
    began = time.monotonic()
    build = subprocess.run(["bash", str(REPO / "deploy/image/build.sh"), IMAGE], cwd=REPO,
                           capture_output=True, text=True, timeout=1800, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    print(f"make image: {time.monotonic() - began:.0f} s; {build.stdout.strip().splitlines()[-1]}")
    return IMAGE


@pytest.fixture(scope="module")
def image_files(image: str) -> dict[str, tarfile.TarInfo]:
    """Every path of the image's filesystem (from `docker export` of a created container)."""
    cid = docker("create", image).stdout.strip()
    try:
        exported = subprocess.run(["docker", "export", cid], capture_output=True, check=True,
                                  timeout=300).stdout
    finally:
        docker("rm", "-f", cid)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        return {m.name.lstrip("./"): m for m in tar.getmembers()}


def test_version_runs_hardened_as_65532(image: str) -> None:
    proc = docker("run", "--rm", *HARDENED, image, "version")
    assert proc.stdout.startswith("pullsecret-syncer "), proc.stdout
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/opt/venv/bin/pullsecret-syncer"]
    assert config["Cmd"][0] == "run"
    # the image's own user, without --user: still 65532 (not only because the flags say so)
    uid = docker("run", "--rm", "--entrypoint", "/usr/bin/python3", image, "-c",
                 "import os; print(os.getuid(), os.getgid())").stdout.split()
    assert uid == ["65532", "65532"]


def test_the_default_command_is_run_with_the_mounted_config(image: str) -> None:
    proc = docker("run", "--rm", *HARDENED, image, check=False)
    assert proc.returncode == 2, proc
    assert "/etc/pullsecret-syncer/config.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_the_image_holds_no_shell_package_manager_or_build_tools(
        image: str, image_files: dict[str, tarfile.TarInfo]) -> None:
    programs = {p for p, m in image_files.items()
                if m.issym() or (m.isfile() and m.mode & 0o111)}
    found = sorted(p for p in programs if Path(p).name in FORBIDDEN)
    assert not found, found
    for program in ("/bin/sh", "sh", "bash", "pip", "apt-get", "gcc"):
        proc = docker("run", "--rm", "--entrypoint", program, image, check=False)
        missing = "not found" in proc.stderr or "no such file" in proc.stderr
        assert proc.returncode != 0 and missing, (program, proc)
    # pip is gone from the venv too, not only its script
    proc = docker("run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c", "import pip",
                  check=False)
    assert proc.returncode != 0 and "No module named 'pip'" in proc.stderr
    assert "usr/bin/python3.11" in image_files
    assert "etc/ssl/certs/ca-certificates.crt" in image_files or any(
        p.startswith("etc/ssl/certs/") for p in image_files)


def test_the_image_holds_no_build_inputs_or_host_files(
        image: str, image_files: dict[str, tarfile.TarInfo]) -> None:
    leftovers = [p for p in image_files if p.startswith(("wheelhouse", "tmp/wheels", "src/"))
                 or p.endswith((".whl", "requirements.lock", "kubeconfig"))
                 or "/.git/" in f"/{p}"]
    assert not leftovers, leftovers
    # the final stage's history: its own instructions only (the build stages are not in it)
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "wheelhouse" not in history and "pip install" not in history, history


# --------------------------------------------------------------------------- the daemon in it


def container_kubeconfig(kube: Any, dest: Path) -> Path:
    """The admin kubeconfig with its CA beside it under /etc/pss, readable by UID 65532.

    The CA is a file, not `certificate-authority-data`: the kubernetes client writes inline data
    to a temporary file, and the hardened container has no writable directory at all."""
    doc = yaml.safe_load(Path(kube.kubeconfig).read_text())
    for entry in doc["clusters"]:
        cluster = entry["cluster"]
        if "certificate-authority" in cluster:
            shutil.copyfile(cluster["certificate-authority"], dest / "ca.crt")
            (dest / "ca.crt").chmod(0o644)
            cluster["certificate-authority"] = "/etc/pss/ca.crt"
    path = dest / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o644)
    return path


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "mounts"
    d.mkdir()
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def container(image: str) -> Iterator[Callable[..., str]]:
    started: list[str] = []

    def start(*args: str) -> str:
        cid = docker("run", "-d", *args).stdout.strip()
        started.append(cid)
        return cid

    yield start
    for cid in started:
        docker("rm", "-f", cid, check=False)


def http_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback test URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_image_runs_the_daemon_against_the_real_stack(
        image: str, kube: Any, vault: Any, unique: str, mounts: Path,
        container: Callable[..., str], namespace_factory: Callable[..., str]) -> None:
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"image/{unique}", secret={"username": "imguser", "password": SENTINEL_PW},
        mount_point=vault.kv2_mount)
    (mounts / "vault-token").write_text(vault.token)
    (mounts / "vault-token").chmod(0o644)
    port = free_port()
    (mounts / "config.yaml").write_text(yaml.safe_dump({
        "version": 1,
        "backends": {"vault": {"type": "vault", "address": vault.addr,
                               "auth": {"method": "token", "tokenFile": "/etc/pss/vault-token"}}},
        "credentials": {"hub": {"backend": "vault", "mount": vault.kv2_mount,
                                "path": f"image/{unique}", "registry": "docker.io"}},
        "mappings": [{"name": "images", "namespaces": {"patterns": [f"img-{unique}*"]},
                      "credentials": ["hub"]}],
    }))
    (mounts / "config.yaml").chmod(0o644)
    container_kubeconfig(kube, mounts)
    cid = container(
        "--network", "host", *HARDENED, "-v", f"{mounts}:/etc/pss:ro",
        "-e", "KUBECONFIG=/etc/pss/kubeconfig", image,
        "run", "--config", "/etc/pss/config.yaml", "--http-addr", f"127.0.0.1:{port}",
        "--log-format", "json")
    try:
        try:
            wait_until(lambda: http_get(f"http://127.0.0.1:{port}/readyz") == 200, timeout=60,
                       what="the container's /readyz")
        except AssertionError as exc:
            logs = docker("logs", cid, check=False)
            raise AssertionError(f"{exc}\ncontainer log:\n{logs.stdout}{logs.stderr}") from None
        ns = namespace_factory(prefix=f"img-{unique}")
        core = kube.core()
        secret = wait_until(lambda: core.read_namespaced_secret("regcred", ns), timeout=30,
                            what="the Secret written by the container")
        auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
        assert set(auths) == {"https://index.docker.io/v1/"}
        began = time.monotonic()
        docker("stop", "--time", "30", cid, timeout=60)
        stopped = time.monotonic() - began
        state = json.loads(docker("inspect", cid).stdout)[0]["State"]
        assert stopped < 10, f"docker stop took {stopped:.1f} s"
        assert state["ExitCode"] in (0, 143), state
    finally:
        logs = docker("logs", cid, check=False)
        output = logs.stdout + logs.stderr
    assert SENTINEL_PW not in output and vault.token not in output
    assert '"msg"' in output  # JSON logs
    # nothing of the run ends up in the image: not in its history, not in any of its files (the
    # container's filesystem, exported after the run, is the image's: the root is read-only)
    history = docker("history", "--no-trunc", image).stdout
    assert SENTINEL_PW not in history and vault.token not in history
    exported = subprocess.run(["docker", "export", cid], capture_output=True, check=True,
                              timeout=300).stdout
    assert SENTINEL_PW.encode() not in exported and vault.token.encode() not in exported
