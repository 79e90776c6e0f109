"""Helpers for end-to-end tests: run the real CLI as a subprocess, seed backends, read results.

Every CLI run is checked for leaks: no sentinel value used by a test may appear in anything the
process printed (stdout or stderr, logs included).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SENTINEL = "SENTINEL"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def assert_no_leak(text: str, secrets: list[str]) -> None:
    for value in [SENTINEL, *secrets]:
        assert value not in text, f"a credential value leaked into output: {text[:2000]}"


@pytest.fixture
def leak_values() -> list[str]:
    """Extra secret strings (tokens, auth strings) a test registers for the leak check."""
    return []


@pytest.fixture
def cli(request: pytest.FixtureRequest, leak_values: list[str]) -> Callable[..., Result]:
    """`cli(*args, env=None, timeout=120) -> Result` runs `python -m syncer` like a user would
    (env defaults to `stack_env`: the servers this test uses)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        if env is None:
            env = request.getfixturevalue("stack_env")
        proc = subprocess.run(
            [sys.executable, "-m", "syncer", *args], env=env, cwd=REPO,
            capture_output=True, text=True, timeout=timeout, check=False)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in result.output, result.output
        assert_no_leak(result.output, leak_values)
        return result

    return run


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    counter = iter(range(1000))

    def write(text: str) -> Path:
        path = tmp_path / f"config-{next(counter)}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


def auth_of(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def read_secret(core: Any, namespace: str, name: str) -> Any:
    return core.read_namespaced_secret(name, namespace)


def dockerconfig_of(secret: Any) -> dict[str, Any]:
    raw = base64.b64decode(secret.data[".dockerconfigjson"])
    doc: dict[str, Any] = json.loads(raw)
    return doc


def pull_secret_names(core: Any, namespace: str, sa: str = "default") -> list[str]:
    obj = core.read_namespaced_service_account(sa, namespace)
    return [ref.name for ref in (obj.image_pull_secrets or [])]


def wait_for_sa(core: Any, namespace: str, name: str = "default", timeout: float = 20) -> None:
    """The controller-manager creates `default` shortly after the namespace appears."""
    import time

    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account(name, namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@pytest.fixture
def core(kube: Any) -> Iterator[Any]:
    api = kube.core()
    yield api
    api.api_client.close()


def env_without(env: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in keys}


def python_env() -> dict[str, str]:
    return dict(os.environ)
