"""Fixtures for the real-server test stack (see tests/stack/ and docs/development.md).

Servers are session-scoped and start lazily on first use: `kube` (etcd + kube-apiserver +
kube-controller-manager, v1.37 unless PSS_KUBE_VERSION says otherwise), `vault` (OpenBao dev
server), `aws` (moto server). Per-test
helpers: `unique`, `namespace_factory`, `fault_proxy`, `stack_env` / `stack_env_for`.
A server that cannot start skips the test with the reason, or — with PSS_REQUIRE_STACK=1, as in
CI — errors it with the server's log. Failing tests get the tail of the logs of the servers they
used appended to their report.
"""

from __future__ import annotations

import os
import secrets
import string
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # `stack` is importable whatever pytest's import mode
    sys.path.insert(0, _TESTS_DIR)

from stack import aws as aws_stack  # noqa: E402
from stack import faultproxy, procs, runtime  # noqa: E402
from stack import kube as kube_stack  # noqa: E402
from stack import vault as vault_stack  # noqa: E402

# Fixtures that imply the stack; tests using any of them get the `integration` marker.
STACK_FIXTURES = frozenset({
    "kube", "vault", "aws", "vault_kubernetes_auth", "namespace_factory", "fault_proxy",
    "stack_env", "stack_env_for", "stack_runtime",
})
# Server fixture -> (process name, log path) pairs, filled in as servers start.
_SERVER_LOGS: dict[str, list[tuple[str, Path]]] = {}
_LOGS_OF = {"kube": ("kube",), "namespace_factory": ("kube",), "vault": ("vault",),
            "vault_kubernetes_auth": ("vault", "kube"), "aws": ("aws",)}


def _require_stack() -> bool:
    return os.environ.get("PSS_REQUIRE_STACK") == "1"


def _unavailable(exc: procs.StackUnavailableError) -> NoReturn:
    if _require_stack():
        pytest.fail(f"test stack required (PSS_REQUIRE_STACK=1) but {exc.report()}",
                    pytrace=False)
    pytest.skip(f"test stack unavailable: {exc} (set PSS_REQUIRE_STACK=1 to fail instead)")


# --------------------------------------------------------------------------- hooks


def _exit_on_signal(signum: int) -> None:
    pytest.exit(f"interrupted by signal {signum}; test stack stopped", returncode=128 + signum)


def pytest_configure(config: pytest.Config) -> None:
    procs.install_sigterm_handler(then=_exit_on_signal)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which Kubernetes this run is on (CI prints it for each leg)."""
    if os.environ.get("PSS_KUBECONFIG"):
        return [f"kubernetes: the cluster of PSS_KUBECONFIG={os.environ['PSS_KUBECONFIG']}"]
    try:
        bins = kube_stack.find_binaries()
    except procs.StackUnavailableError as exc:
        return [f"kubernetes: not available ({exc})"]
    return [f"kubernetes: kube-apiserver {kube_stack.binary_version(bins.apiserver)} "
            f"from {bins.source} ({bins.apiserver.parent})"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        used = set(getattr(item, "fixturenames", ()))
        servers = {s for name in used for s in _LOGS_OF.get(name, ())}
        if "stack_env" in used or "stack_env_for" in used:
            servers.update(_SERVER_LOGS)
        for server in sorted(servers):
            for name, path in _SERVER_LOGS.get(server, []):
                report.sections.append(
                    (f"{name} log (tail of {path})", procs.tail(path, lines=40)))
    return report


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def stack_runtime(request: pytest.FixtureRequest) -> Iterator[runtime.Runtime]:
    """The session's runtime dir (/tmp/pss-stack-*): logs, PKI, data. Kept if a test failed."""
    rt = runtime.Runtime()
    yield rt
    procs.stop_all()
    rt.cleanup(keep=request.session.testsfailed > 0)


@pytest.fixture(scope="session")
def kube(stack_runtime: runtime.Runtime) -> Iterator[kube_stack.KubeCluster]:
    """etcd + kube-apiserver + kube-controller-manager (tests/stack/kube-versions), or the
    PSS_KUBECONFIG cluster."""
    try:
        cluster = kube_stack.from_env(stack_runtime) or kube_stack.start(stack_runtime)
    except procs.StackUnavailableError as exc:
        _unavailable(exc)
    _SERVER_LOGS["kube"] = cluster.logs()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def vault(stack_runtime: runtime.Runtime) -> Iterator[vault_stack.VaultServer]:
    """OpenBao dev server (secret/ KV v2, kv1/ KV v1, approle, kubernetes), or PSS_VAULT_ADDR."""
    try:
        server = vault_stack.from_env() or vault_stack.start(stack_runtime.subdir("vault"))
    except procs.StackUnavailableError as exc:
        _unavailable(exc)
    if server.proc is not None:
        _SERVER_LOGS["vault"] = [(server.proc.name, server.proc.log_path)]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vault_kubernetes_auth(vault: vault_stack.VaultServer, kube: kube_stack.KubeCluster) -> str:
    """The `kubernetes` auth mount of `vault`, configured against `kube`; returns its name."""
    try:
        return vault_stack.configure_kubernetes_auth(vault, kube)
    except Exception as exc:
        _unavailable(procs.StackUnavailableError(
            f"configuring Vault Kubernetes auth failed: {exc!r}",
            logs={name: procs.tail(path) for s in ("vault", "kube")
                  for name, path in _SERVER_LOGS.get(s, [])},
        ))


@pytest.fixture(scope="session")
def aws(stack_runtime: runtime.Runtime) -> Iterator[aws_stack.AwsServer]:
    """moto server (Secrets Manager, STS) on a free port, or PSS_AWS_ENDPOINT."""
    try:
        server = aws_stack.from_env() or aws_stack.start(stack_runtime.subdir("aws"))
    except procs.StackUnavailableError as exc:
        _unavailable(exc)
    if server.proc is not None:
        _SERVER_LOGS["aws"] = [(server.proc.name, server.proc.log_path)]
    yield server
    server.stop()


# --------------------------------------------------------------------------- per test


@pytest.fixture
def unique() -> str:
    """A short random lowercase suffix (starts with a letter) for names of this test."""
    alphabet = string.ascii_lowercase + string.digits
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(alphabet) for _ in range(5))


@pytest.fixture
def namespace_factory(kube: kube_stack.KubeCluster, unique: str) -> Iterator[Callable[..., str]]:
    """`make(*, labels=None, prefix="t") -> name`: a fresh namespace, deleted after the test."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = kube.core()
    made: list[str] = []

    def make(*, labels: dict[str, str] | None = None, prefix: str = "t") -> str:
        name = f"{prefix}-{unique}" + (f"-{len(made) + 1}" if made else "")
        core.create_namespace(k8s.V1Namespace(
            metadata=k8s.V1ObjectMeta(name=name, labels=dict(labels or {}))))
        made.append(name)
        return name

    yield make
    for name in made:
        if kube.processes and not all(p.alive() for p in kube.processes):
            break  # the stack was stopped (SIGTERM): nothing left to clean
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
    core.api_client.close()


@pytest.fixture
def fault_proxy(stack_runtime: runtime.Runtime) -> Iterator[Callable[..., faultproxy.FaultProxy]]:
    """`fault_proxy(upstream_url, *, tls=False, upstream_ca=None) -> FaultProxy`, stopped after."""
    started: list[faultproxy.FaultProxy] = []

    def make(upstream_url: str, *, tls: bool = False,
             upstream_ca: str | Path | None = None) -> faultproxy.FaultProxy:
        cert = stack_runtime.authority.issue(f"fault-proxy-{len(started)}") if tls else None
        proxy = faultproxy.FaultProxy(
            upstream_url, serving_cert=cert, upstream_ca=upstream_ca,
            serving_ca_file=stack_runtime.authority.ca_file if tls else None)
        proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def stack_env_for(request: pytest.FixtureRequest) -> Callable[..., dict[str, str]]:
    """`stack_env_for(*, kube=True, vault=False, aws=False) -> env` for the CLI as a subprocess.

    Only the servers asked for are started. KUBECONFIG is the admin kubeconfig; VAULT_ADDR and
    VAULT_TOKEN are the root token; AWS_* are dummy credentials, the region, and
    AWS_ENDPOINT_URL_STS. The Secrets Manager endpoint is deliberately NOT in the environment:
    configs must name it (`endpointUrl`), so a test notices when it is ignored.
    """

    def compose(*, kube: bool = True, vault: bool = False, aws: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KUBERNETES_SERVICE_", "VAULT_", "AWS_", "PSS_"))}
        if kube:
            cluster: kube_stack.KubeCluster = request.getfixturevalue("kube")
            env["KUBECONFIG"] = str(cluster.kubeconfig)
        if vault:
            server: vault_stack.VaultServer = request.getfixturevalue("vault")
            env["VAULT_ADDR"] = server.addr
            env["VAULT_TOKEN"] = server.token
        if aws:
            endpoint: aws_stack.AwsServer = request.getfixturevalue("aws")
            env.update(endpoint.env)
            env["AWS_ENDPOINT_URL_STS"] = endpoint.endpoint
            env["AWS_CONFIG_FILE"] = os.devnull
            env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        return env

    return compose


@pytest.fixture
def stack_env(request: pytest.FixtureRequest,
              stack_env_for: Callable[..., dict[str, str]]) -> dict[str, str]:
    """`stack_env_for(kube=True, ...)` with vault/aws included iff the test uses those fixtures."""
    used = set(request.fixturenames)
    return stack_env_for(kube=True, vault=bool({"vault", "vault_kubernetes_auth"} & used),
                         aws="aws" in used)


# =========================================================================== registry (issue 14)
# A real registry (CNCF distribution, Debian's `docker-registry`) and its token server; see
# tests/stack/registry.py, tokenserver.py and skopeo.py. Kept in one block so merges stay easy.

import itertools  # noqa: E402

from stack import registry as registry_stack  # noqa: E402
from stack import tokenserver  # noqa: E402

_REGISTRY_SEQ = itertools.count()  # names of the session's registry and token-server dirs/certs

STACK_FIXTURES = STACK_FIXTURES | {"registry_factory", "token_server_factory"}
_LOGS_OF.update({"registry_factory": ("registry",)})


@pytest.fixture
def token_server_factory(
    stack_runtime: runtime.Runtime,
) -> Iterator[Callable[..., tokenserver.TokenServer]]:
    """`make(*, users=None, host="127.0.0.1", tls=False) -> TokenServer` (in-process, stopped
    after the test). Tokens are signed by a key whose cert the session CA issued."""
    started: list[tokenserver.TokenServer] = []

    def make(*, users: dict[str, str] | None = None, host: str = "127.0.0.1",
             tls: bool = False) -> tokenserver.TokenServer:
        authority = stack_runtime.authority
        n = next(_REGISTRY_SEQ)
        serving = authority.issue(f"token-server-{n}", ips=(host,)) if tls else None
        server = tokenserver.TokenServer(
            signer=authority.issue(f"token-signer-{n}"), issuer=registry_stack.DEFAULT_ISSUER,
            service=registry_stack.DEFAULT_SERVICE, users=users, host=host,
            serving_cert=serving)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def registry_factory(
    stack_runtime: runtime.Runtime,
    token_server_factory: Callable[..., tokenserver.TokenServer],
) -> Iterator[Callable[..., registry_stack.RegistryServer]]:
    """`make(*, auth="htpasswd"|"token"|"none", users=None, tls=False, token_server=None,
    realm=None) -> RegistryServer`, stopped after the test.

    `token` mode starts a token server with the same `users` and TLS setting unless one is
    given; `realm` overrides the realm the registry names (e.g. a fault proxy in front of it).
    """
    started: list[registry_stack.RegistryServer] = []
    _SERVER_LOGS["registry"] = []

    def make(*, auth: registry_stack.Auth = "htpasswd", users: dict[str, str] | None = None,
             tls: bool = False, token_server: tokenserver.TokenServer | None = None,
             realm: str | None = None) -> registry_stack.RegistryServer:
        authority = stack_runtime.authority
        n = next(_REGISTRY_SEQ)
        token = None
        if auth == "token":
            if token_server is None:
                token_server = token_server_factory(users=users, tls=tls)
            token = registry_stack.TokenAuth(realm=realm or token_server.realm,
                                             rootcertbundle=authority.ca_file)
        directory = stack_runtime.subdir(f"registry-{n}")
        try:
            server = registry_stack.start(
                directory, auth=auth, users=users if auth == "htpasswd" else None,
                tls=authority.issue(f"registry-{n}") if tls else None,
                ca_file=authority.ca_file if tls else None, token=token)
        except procs.StackUnavailableError as exc:
            _unavailable(exc)
        started.append(server)
        _SERVER_LOGS["registry"].extend(server.logs())
        return server

    yield make
    for server in started:
        server.stop()
