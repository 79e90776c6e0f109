"""Helpers for end-to-end tests: run the real CLI or daemon as a subprocess, seed backends, read
results.

Leak check, at two levels. Every CLI run and every daemon log is checked at once: no sentinel
value used by the test may appear in anything the process printed. And the whole session
feeds one registry (`leak_registry`): every CLI output, daemon log, /metrics text and Event message
of every test, plus every secret any test registered (sentinel passwords, Vault tokens, AppRole
secret IDs, `auth` strings); at the end of the session each text is checked against every secret,
also inside base64 (an `auth` string or a Secret's data would hide a sentinel from a plain grep).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemonproc import DaemonProcess
from tests.stack import product

SENTINEL = "SENTINEL"
REPO = Path(__file__).resolve().parents[2]
CONVERGE = 10.0  # generous on a loaded 2-core CI machine; latency figures live in benchmarks/
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")


def _decoded_runs(text: str, depth: int = 2) -> Iterator[str]:
    """Text hidden in base64 runs of `text` (and in base64 inside that), for the leak check."""
    if depth == 0:
        return
    for run in _BASE64_RUN.findall(text):
        for start in range(4):  # a run may begin mid-word: try every alignment
            chunk = run[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                decoded = base64.b64decode(chunk, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue
            yield decoded
            yield from _decoded_runs(decoded, depth - 1)


def find_leaks(text: str, secrets: Iterator[str] | list[str] | set[str]) -> list[str]:
    """The secrets (and SENTINEL) that occur in `text`, plainly or inside base64."""
    wanted = {SENTINEL, *secrets}
    hits = {s for s in wanted if s in text}
    if SENTINEL not in hits:
        for decoded in _decoded_runs(text):
            hits.update(s for s in wanted if s in decoded)
    return sorted(hits)


@dataclass
class LeakRegistry:
    """Session-wide: secrets registered by any test and every text our processes produced."""

    secrets: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def secret(self, *values: str) -> None:
        with self.lock:
            self.secrets.update(v for v in values if v)

    def text(self, where: str, text: str) -> None:
        with self.lock:
            self.texts.append((where, text))

    def leaks(self) -> list[str]:
        with self.lock:
            secrets, texts = set(self.secrets), list(self.texts)
        return [f"{where}: {', '.join(hits)}" for where, text in texts
                if (hits := find_leaks(text, secrets))]


_REGISTRY = LeakRegistry()


@pytest.fixture(scope="session")
def leak_registry() -> Iterator[LeakRegistry]:
    """The session's registry; at the end every recorded text is checked against every secret."""
    yield _REGISTRY
    leaks = _REGISTRY.leaks()
    assert not leaks, "credential values leaked (session-wide check):\n" + "\n".join(leaks)


@pytest.fixture(autouse=True)
def _feed_leak_registry(request: pytest.FixtureRequest,
                        leak_registry: LeakRegistry) -> Iterator[None]:
    """Registers the stack's tokens, and after each test that made namespaces, every Event
    message in the cluster (before the namespaces are deleted)."""
    used = set(request.fixturenames)
    if {"vault", "vault_kubernetes_auth"} & used:
        leak_registry.secret(request.getfixturevalue("vault").token)
    api = None
    if "namespace_factory" in used:
        request.getfixturevalue("namespace_factory")  # torn down after us: Events still there
        api = request.getfixturevalue("kube").core()
        token = request.getfixturevalue("kube").admin_token
        if token:
            leak_registry.secret(token)
    yield
    if api is None:
        return
    try:
        for event in api.list_event_for_all_namespaces().items:
            src = event.source.component if event.source else ""
            if src == "pullsecret-syncer" or event.reporting_component == "pullsecret-syncer":
                leak_registry.text(
                    f"{request.node.nodeid}: Event {event.metadata.namespace}/"
                    f"{event.reason}", f"{event.message} {event.involved_object.name}")
    finally:
        api.api_client.close()


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


class _LeakValues(list[str]):
    """A test's extra secrets; each is also registered for the session-wide check."""

    def __init__(self, registry: LeakRegistry) -> None:
        super().__init__()
        self._registry = registry

    def append(self, value: str) -> None:
        super().append(value)
        self._registry.secret(value)

    def extend(self, values: Any) -> None:
        for value in values:
            self.append(value)


@pytest.fixture
def leak_values(leak_registry: LeakRegistry) -> list[str]:
    """Extra secret strings (tokens, auth strings) a test registers for the leak check."""
    return _LeakValues(leak_registry)


@pytest.fixture
def cli(request: pytest.FixtureRequest, leak_values: list[str],
        leak_registry: LeakRegistry) -> Callable[..., Result]:
    """`cli(*args, env=None, timeout=120) -> Result` runs `python -m syncer` like a user would
    (env defaults to `stack_env`: the servers this test uses)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        if env is None:
            env = request.getfixturevalue("stack_env")
        proc = subprocess.run(
            product.installed().argv(*args), env=env, cwd=REPO,
            capture_output=True, text=True, timeout=timeout, check=False)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        leak_registry.text(f"{request.node.nodeid}: cli {' '.join(args[:1])}", result.output)
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


FOREIGN_ENTRIES = ["theirs-a", "theirs-b"]  # imagePullSecrets another writer put there


def add_foreign_entries(core: Any, ns: str, sa: str = "default") -> None:
    wait_for_sa(core, ns, sa)
    core.patch_namespaced_service_account(sa, ns, {"imagePullSecrets": [
        {"name": n} for n in FOREIGN_ENTRIES]})


def snapshot(core: Any, namespaces: list[str], *, secret: str = "regcred") -> dict[str, Any]:
    """What must not change: each Secret's data, resourceVersion, type, labels and annotations,
    and every ServiceAccount's imagePullSecrets, byte for byte."""
    out: dict[str, Any] = {}
    for ns in namespaces:
        s = read_secret(core, ns, secret)
        out[f"{ns}/secret"] = (s.data, s.metadata.resource_version, s.metadata.labels,
                               s.metadata.annotations, s.type)
        for sa in core.list_namespaced_service_account(ns).items:
            out[f"{ns}/sa/{sa.metadata.name}"] = [r.name for r in sa.image_pull_secrets or []]
    return out


def has_secret_and_ref(core: Any, ns: str, secret: str = "regcred", sa: str = "default") -> bool:
    read_secret(core, ns, secret)
    return secret in pull_secret_names(core, ns, sa)


def backends_yaml(vault: Any, aws: Any, *, vault_addr: str | None = None,
                  aws_endpoint: str | None = None) -> str:
    """The `backends:` block of a test config: Vault with token auth, AWS via endpointUrl."""
    return f"""backends:
  vault:
    type: vault
    address: {vault_addr or vault.addr}
    auth: {{method: token}}
  aws:
    type: aws-secrets-manager
    region: {aws.region}
    endpointUrl: {aws_endpoint or aws.endpoint}"""


def seed_credentials(vault: Any, aws: Any, unique: str, *, hub_password: str,
                     ghcr_password: str) -> None:
    """The two credentials `daemon_config` names: `hub` in Vault's KV v2 (user `hubuser`) and
    `ghcr` in Secrets Manager (user `ghcruser`, registry ghcr.io)."""
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": hub_password},
        mount_point=vault.kv2_mount)
    aws.client("secretsmanager").create_secret(Name=f"pss/{unique}/ghcr", SecretString=json.dumps(
        {"username": "ghcruser", "password": ghcr_password, "registry": "ghcr.io"}))


def daemon_config(vault: Any, aws: Any, unique: str, *, refresh: str = "2s",
                  vault_addr: str | None = None, aws_endpoint: str | None = None,
                  mappings: str | None = None) -> str:
    """Backends `vault` (token auth) and `aws`; credentials `hub` (Vault KV v2
    pss/<unique>/hub) and `ghcr` (AWS pss/<unique>/ghcr); `mappings` replaces the default one."""
    return f"""
version: 1
defaults:
  refreshInterval: {refresh}
{backends_yaml(vault, aws, vault_addr=vault_addr, aws_endpoint=aws_endpoint)}
credentials:
  hub: {{backend: vault, path: pss/{unique}/hub, registry: docker.io}}
  ghcr: {{backend: aws, secretId: pss/{unique}/ghcr}}
mappings:
{mappings or f'''
  - name: live
    namespaces:
      patterns: ["live-{unique}*"]
      selector: {{matchLabels: {{pss-live: "{unique}"}}}}
    credentials: [hub, ghcr]
    serviceAccounts: ["*"]
'''}
"""


@pytest.fixture
def start_daemon(request: pytest.FixtureRequest, tmp_path: Path, leak_values: list[str],
                 leak_registry: LeakRegistry) -> Iterator[Callable[..., DaemonProcess]]:
    """`start_daemon(config, *, env=None, args=()) -> DaemonProcess` (env defaults to
    `stack_env`); stopped after the test, its log checked for tracebacks and leaks."""
    started: list[DaemonProcess] = []

    def start(config: Path, *, env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> DaemonProcess:
        proc = DaemonProcess(config, env or request.getfixturevalue("stack_env"),
                             tmp_path / f"daemon-{len(started)}.log", extra_args=args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            try:
                leak_registry.text(f"{request.node.nodeid}: /metrics", proc.get("/metrics")[1])
            except OSError:
                pass
            proc.terminate()
        output = proc.output()
        proc.close()
        leak_registry.text(f"{request.node.nodeid}: daemon log {proc.log_path.name}", output)
        assert "Traceback" not in output, output[-3000:]
        assert_no_leak(output, leak_values)
