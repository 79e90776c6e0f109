"""Test doubles for the stateful core: a clock that moves only when told, a backend with a
function field (ESO's way: no mock chains), and builders of a config with real values."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends import base
from syncer import config
from syncer.kube import fake

PW = "pw-SENTINEL-core"


class FakeClock:
    """`clock()` returns `now`; `advance(s)` moves it. Also a `wait(s)` that advances instead of
    sleeping (for a TokenBucket or a supervised loop under test)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def wait(self, seconds: float) -> bool:
        self.advance(seconds)
        return False


@dataclass
class FakeBackend:
    """A backend whose answer is `answer(ref)` (raise a BackendError from it to fail)."""

    answer: Callable[[base.CredentialRef], dict[str, Any]]
    reads: list[str] = field(default_factory=list)
    closed: bool = False
    expires: Callable[[], float | None] = lambda: None  # a token's expiry (Unix seconds)

    def fetch(self, ref: base.CredentialRef) -> base.Payload:
        self.reads.append(ref.name)
        return base.Payload(data=self.answer(ref), expires_at=self.expires())

    def check(self) -> None:
        return

    def close(self) -> None:
        self.closed = True


def eventually(what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (for tests of real threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def basic(user: str = "bot", password: str = PW) -> Callable[[base.CredentialRef],
                                                             dict[str, Any]]:
    return lambda ref: {"username": user, "password": password}


CONFIG = """\
version: 1
defaults: {{refreshInterval: 60s}}
backends:
  vault: {{type: vault, address: http://127.0.0.1:8200, auth: {{method: token}}}}
credentials:
  hub: {{backend: vault, path: registries/hub, registry: docker.io}}
  ghcr: {{backend: vault, path: registries/ghcr, registry: ghcr.io}}
mappings:
  - name: teams
    namespaces: {{patterns: ["team-*"]}}
    credentials: [hub, ghcr]
    serviceAccounts: ["*"]
{extra}"""


def write_config(directory: Path, *, extra: str = "", name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(CONFIG.format(extra=extra))
    return path


def load(path: Path, monkeypatch: Any) -> config.Config:
    monkeypatch.setenv("VAULT_TOKEN", "unused-token")
    return config.load(path)


def cluster_with(namespace: str, *, pull_secrets: tuple[str, ...] = ("theirs",),
                 ) -> fake.FakeCluster:
    """A FakeCluster with one namespace whose `default` ServiceAccount lists another writer's
    `pull_secrets` (which must survive every pass)."""
    c = fake.FakeCluster()
    c.add_namespace(namespace)
    c.put_service_account(namespace, "default", image_pull_secrets=pull_secrets)
    return c
