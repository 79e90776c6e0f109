"""Kubernetes for the tests: etcd + kube-apiserver + kube-controller-manager we start (v1.37 by
default, `PSS_KUBE_VERSION` picks another), or the cluster of the kubeconfig in PSS_KUBECONFIG.

Binaries, first found wins: `KUBEBUILDER_ASSETS` (envtest: kube-apiserver + etcd, optionally
kube-controller-manager), `PSS_KUBE_BIN_DIR`, the cache that `build-kubernetes.sh` fills
(`~/.cache/pullsecret-syncer/kubernetes-<version>/`). `PSS_ETCD` overrides etcd alone.

Our apiserver: TLS from the session CA, static tokens (`admin` in `system:masters`; `pss-tester`
in `pss-testers` with no grants), Node+RBAC authorization, anonymous off, ServiceAccount token
issuer/keys (TokenRequest, TokenReview), the default admission plugins (PodSecurity among them) plus
NamespaceLifecycle+ServiceAccount, and a JSON-lines audit log at Metadata level. (A 30 s etcd
compaction interval is set, but on 1.37 a watch from an old version is still served — even after
a physical etcd compaction — so tests that need `410 Gone` inject it with the fault proxy.)
The controller-manager runs the controllers a cluster
needs for our tests: ServiceAccounts and their tokens, namespace deletion, garbage collection,
Deployments/ReplicaSets (Pods recreated after an eviction) and PodDisruptionBudgets.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from stack import procs, runtime

VERSIONS_FILE = Path(__file__).with_name("kube-versions")


def supported_versions() -> list[str]:
    """The versions of tests/stack/kube-versions: the current release first, then the older
    ones CI also runs the integration tests on."""
    lines = VERSIONS_FILE.read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]


DEFAULT_KUBE_VERSION = supported_versions()[0]
ADMIN_USER = "admin"
TESTER_USER = "pss-tester"
TESTER_GROUP = "pss-testers"
_SA_ISSUER = "https://kubernetes.default.svc"
CONTROLLERS = (
    "serviceaccount-controller", "serviceaccount-token-controller", "namespace-controller",
    "garbage-collector-controller", "deployment-controller", "replicaset-controller",
    "disruption-controller",
)
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
"""


def kube_version() -> str:
    """The Kubernetes version the stack builds and caches (`PSS_KUBE_VERSION`, default 1.37)."""
    return os.environ.get("PSS_KUBE_VERSION", DEFAULT_KUBE_VERSION).removeprefix("v")


def cache_dir(version: str | None = None) -> Path:
    """Where build-kubernetes.sh caches the binaries of `version`."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pullsecret-syncer" / f"kubernetes-{version or kube_version()}"


@dataclass(frozen=True, slots=True)
class Binaries:
    apiserver: Path
    controller_manager: Path
    etcd: Path
    source: str  # which of the sources they came from, for the setup log and reports


def _executable(path: Path) -> bool:
    return os.access(path, os.X_OK)


def find_binaries() -> Binaries:
    """The three binaries, from the first source that has them (see the module docstring)."""
    hint = ("run `bash tests/stack/build-kubernetes.sh` (or `make setup`) once: it builds "
            f"Kubernetes {kube_version()} through the Go module proxy (≈ 20 min cold)")
    candidates: list[tuple[str, Path]] = []
    if os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.append(("KUBEBUILDER_ASSETS", Path(os.environ["KUBEBUILDER_ASSETS"])))
    elif os.environ.get("PSS_KUBE_BIN_DIR"):
        candidates.append(("PSS_KUBE_BIN_DIR", Path(os.environ["PSS_KUBE_BIN_DIR"])))
    candidates.append(("cache", cache_dir()))
    source, first = candidates[0]
    apiserver, etcd = first / "kube-apiserver", first / "etcd"
    if not (_executable(apiserver) and _executable(etcd)):
        raise procs.StackUnavailableError(
            f"kube-apiserver/etcd missing in {first} ({source}): {hint}")
    cm = first / "kube-controller-manager"
    if not _executable(cm):  # envtest ships no controller-manager: take ours
        fallback = [d / "kube-controller-manager" for _, d in candidates[1:]]
        cm = next((p for p in fallback if _executable(p)), cm)
        if not _executable(cm):
            raise procs.StackUnavailableError(f"kube-controller-manager missing: {hint}")
    if os.environ.get("PSS_ETCD"):
        etcd = Path(os.environ["PSS_ETCD"])
    return Binaries(apiserver=apiserver, controller_manager=cm, etcd=etcd, source=source)


def binary_version(binary: Path) -> str:
    """`kube-apiserver --version` -> `v1.37.2`."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                         timeout=30, check=False).stdout.strip()
    return out.rpartition(" ")[2]


@dataclass(slots=True)
class KubeCluster:
    """A reachable cluster: URLs, kubeconfigs and clients for the admin and the tester."""

    server: str
    kubeconfig: Path
    user_kubeconfig: Path
    ca_file: Path | None
    directory: Path
    admin_token: str | None = field(default=None, repr=False)
    audit_log: Path | None = None
    tester_user: str = TESTER_USER
    tester_group: str = TESTER_GROUP
    extra_ca_file: Path | None = None
    startup_seconds: float | None = None
    version: str = ""  # what /version reports, e.g. v1.37.2
    processes: list[procs.Proc] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def overridden(self) -> bool:
        return not self.processes

    def api_client(self) -> Any:
        """A new admin `kubernetes.client.ApiClient` with its own Configuration."""
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def core(self) -> Any:
        """A new admin `kubernetes.client.CoreV1Api` (its own ApiClient)."""
        from kubernetes import client as k8s

        return k8s.CoreV1Api(self.api_client())

    def ca_pem(self) -> str:
        return self.ca_file.read_text() if self.ca_file else ""

    def logs(self) -> list[tuple[str, Path]]:
        """(name, path) of every server log of this cluster."""
        return [(p.name, p.log_path) for p in self.processes]

    def kubeconfig_via(self, url: str, *, user: str = ADMIN_USER) -> Path:
        """A kubeconfig whose server is `url` (e.g. a fault proxy) for `admin` or `pss-tester`.

        For https URLs it trusts the session CA (fault proxies) and the cluster's CA.
        """
        if user not in (ADMIN_USER, TESTER_USER):
            raise ValueError(f"user must be {ADMIN_USER!r} or {TESTER_USER!r}, not {user!r}")
        source_path = self.kubeconfig if user == ADMIN_USER else self.user_kubeconfig
        user_entry = _current(_load(source_path), "user")
        for key in ("client-certificate", "client-key", "tokenFile"):
            if key in user_entry:  # relative to the kubeconfig they came from
                user_entry[key] = str((source_path.parent / user_entry[key]).resolve())
        cluster: dict[str, Any] = {"server": url}
        if url.startswith("https://"):
            bundle = self.directory / "via-ca-bundle.crt"
            pems = [p.read_text() for p in (self.extra_ca_file, self.ca_file) if p is not None]
            bundle.write_text("".join(pems))
            cluster["certificate-authority"] = str(bundle)
        with self._lock:
            n = next(self._counter)
        path = self.directory / f"kubeconfig-via-{n}-{user}.yaml"
        _write_kubeconfig(path, cluster=cluster, user=user_entry, name=f"via-{n}")
        return path

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


# --------------------------------------------------------------------------- kubeconfig files


def _write_kubeconfig(path: Path, *, cluster: dict[str, Any], user: dict[str, Any],
                      name: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise procs.StackUnavailableError(f"{path}: not a kubeconfig")
    return doc


def _current(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """The `cluster` or `user` entry of the current context."""
    ctx_name = doc.get("current-context")
    contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
    if ctx_name not in contexts:
        raise procs.StackUnavailableError(f"kubeconfig has no current context {ctx_name!r}")
    wanted = contexts[ctx_name][kind]
    for entry in doc.get(f"{kind}s") or []:
        if entry["name"] == wanted:
            return dict(entry[kind])
    raise procs.StackUnavailableError(f"kubeconfig has no {kind} {wanted!r}")


# --------------------------------------------------------------------------- our own cluster


def start(rt: runtime.Runtime) -> KubeCluster:
    """Start etcd, kube-apiserver and kube-controller-manager; wait until usable."""
    bins = find_binaries()
    etcd_bin, apiserver_bin, cm_bin = bins.etcd, bins.apiserver, bins.controller_manager
    began = time.monotonic()
    d = rt.subdir("kube")
    ca = rt.authority
    serving = ca.issue("kube-apiserver", dns=("localhost", "kubernetes", "kubernetes.default",
                                              "kubernetes.default.svc"))
    sa_keys = ca.signing_key_pair("service-account")
    admin_token = secrets.token_hex(16)
    tester_token = secrets.token_hex(16)
    tokens = d / "tokens.csv"
    tokens.write_text(
        f'{admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
        f'{tester_token},{TESTER_USER},uid-pss-tester,"{TESTER_GROUP}"\n'
    )
    tokens.chmod(0o600)
    policy = d / "audit-policy.yaml"
    policy.write_text(_AUDIT_POLICY)
    audit_log = d / "audit.log"

    started: list[procs.Proc] = []
    try:
        etcd_port, peer_port = procs.free_port(), procs.free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = procs.start(
            "etcd",
            [str(etcd_bin), "--name=pss", f"--data-dir={d / 'etcd-data'}",
             f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
             f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
             f"--initial-cluster=pss={peer_url}", "--initial-cluster-state=new",
             "--quota-backend-bytes=2147483648", "--snapshot-count=100000"],
            log_path=d / "etcd.log",
        )
        started.append(etcd)
        procs.wait_until(
            "etcd /health",
            lambda: requests.get(f"{etcd_url}/health", timeout=2).json().get("health") == "true",
            timeout=30, procs=started,
        )

        port = procs.free_port()
        server = f"https://127.0.0.1:{port}"
        apiserver = procs.start(
            "kube-apiserver",
            [str(apiserver_bin),
             "--bind-address=127.0.0.1", f"--secure-port={port}",
             f"--etcd-servers={etcd_url}", "--etcd-compaction-interval=30s",
             f"--cert-dir={d / 'apiserver-certs'}",
             f"--tls-cert-file={serving.cert_file}", f"--tls-private-key-file={serving.key_file}",
             f"--client-ca-file={ca.ca_file}", f"--token-auth-file={tokens}",
             "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
             f"--service-account-key-file={sa_keys.cert_file}",
             f"--service-account-signing-key-file={sa_keys.key_file}",
             f"--service-account-issuer={_SA_ISSUER}", f"--api-audiences={_SA_ISSUER}",
             "--service-cluster-ip-range=10.0.0.0/24",
             "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount",
             f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}",
             "--audit-log-format=json", "--audit-log-mode=blocking",
             "--profiling=false", "--v=1"],
            log_path=d / "kube-apiserver.log",
        )
        started.append(apiserver)
        auth = {"Authorization": f"Bearer {admin_token}"}

        def ready() -> bool:
            resp = requests.get(f"{server}/readyz", headers=auth, verify=str(ca.ca_file),
                                timeout=3)
            return resp.status_code == 200

        procs.wait_until("kube-apiserver /readyz", ready, timeout=90, procs=started)

        kubeconfig = d / "admin.kubeconfig"
        cluster = {"server": server, "certificate-authority": str(ca.ca_file)}
        _write_kubeconfig(kubeconfig, cluster=cluster, user={"token": admin_token}, name="pss")
        user_kubeconfig = d / "pss-tester.kubeconfig"
        _write_kubeconfig(user_kubeconfig, cluster=cluster, user={"token": tester_token},
                          name="pss")

        cm = procs.start(
            "kube-controller-manager",
            [str(cm_bin), f"--kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
             f"--secure-port={procs.free_port()}", f"--cert-dir={d / 'kcm-certs'}",
             "--leader-elect=false", f"--controllers={','.join(CONTROLLERS)}",
             f"--service-account-private-key-file={sa_keys.key_file}",
             f"--root-ca-file={ca.ca_file}", "--use-service-account-credentials=false",
             "--authentication-skip-lookup=true", "--v=1"],
            log_path=d / "kube-controller-manager.log",
        )
        started.append(cm)
        sa_url = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
        procs.wait_until(
            "ServiceAccount default/default (kube-controller-manager)",
            lambda: requests.get(sa_url, headers=auth, verify=str(ca.ca_file),
                                 timeout=3).status_code == 200,
            timeout=60, procs=started,
        )
    except BaseException:
        for proc in reversed(started):
            proc.stop()
        raise
    return KubeCluster(
        server=server, kubeconfig=kubeconfig, user_kubeconfig=user_kubeconfig,
        ca_file=ca.ca_file, directory=d, admin_token=admin_token, audit_log=audit_log,
        startup_seconds=time.monotonic() - began, processes=started,
        version=binary_version(apiserver_bin),
    )


# --------------------------------------------------------------------------- override mode


def from_env(rt: runtime.Runtime) -> KubeCluster | None:
    """Wrap the cluster of PSS_KUBECONFIG (current context); None if unset.

    Its admin identity is that kubeconfig's user. The non-admin identity is ServiceAccount
    `pss-testers/pss-tester` (a TokenRequest token): `tester_user`/`tester_group` name it for
    RBAC bindings, since user `pss-tester` cannot be minted on a foreign cluster.
    """
    path_env = os.environ.get("PSS_KUBECONFIG")
    if not path_env:
        return None
    path = Path(path_env).expanduser().resolve()
    if not path.is_file():
        raise procs.StackUnavailableError(f"PSS_KUBECONFIG={path_env}: no such file")
    d = rt.subdir("kube")
    doc = _load(path)
    cluster = _current(doc, "cluster")
    user = _current(doc, "user")
    ca_file: Path | None = None
    if "certificate-authority-data" in cluster:
        ca_file = d / "cluster-ca.crt"
        ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    elif "certificate-authority" in cluster:
        ca_file = (path.parent / cluster["certificate-authority"]).resolve()
    kube = KubeCluster(
        server=str(cluster["server"]).rstrip("/"), kubeconfig=path,
        user_kubeconfig=d / "pss-tester.kubeconfig", ca_file=ca_file, directory=d,
        admin_token=user.get("token"),
        tester_user=f"system:serviceaccount:{TESTER_GROUP}:{TESTER_USER}",
        tester_group=f"system:serviceaccounts:{TESTER_GROUP}",
        extra_ca_file=rt.authority.ca_file,
    )
    try:
        token = _tester_service_account_token(kube)
    except Exception as exc:
        raise procs.StackUnavailableError(
            f"cluster of PSS_KUBECONFIG={path} not usable: {exc}"
        ) from exc
    tester_cluster = {"server": kube.server}
    if ca_file is not None:
        tester_cluster["certificate-authority"] = str(ca_file)
    elif cluster.get("insecure-skip-tls-verify"):
        tester_cluster["insecure-skip-tls-verify"] = True
    _write_kubeconfig(kube.user_kubeconfig, cluster=tester_cluster, user={"token": token},
                      name="pss-tester")
    return kube


def _tester_service_account_token(kube: KubeCluster) -> str:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    api = kube.api_client()
    try:
        core = k8s.CoreV1Api(api)
        for create in (
            lambda: core.create_namespace(
                k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=TESTER_GROUP))),
            lambda: core.create_namespaced_service_account(
                TESTER_GROUP, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=TESTER_USER))),
        ):
            try:
                create()
            except ApiException as exc:
                if exc.status != 409:
                    raise
        resp = core.create_namespaced_service_account_token(
            TESTER_USER, TESTER_GROUP,
            k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(
                audiences=[], expiration_seconds=24 * 3600)),
        )
        return str(resp.status.token)
    finally:
        api.close()
