"""The benchmark's plumbing: the real stack behind counting proxies, a raw admin client for
creating thousands of objects, the daemon as a subprocess with /proc readings, and wire counters.

Request figures come from what really reached the servers, never from the daemon's metrics:
kube-apiserver's audit log (the daemon runs as its own ServiceAccount, so its requests are told
apart), and counting proxies in front of OpenBao and moto. The apiserver is NOT behind the fault
proxy: that proxy opens a fresh upstream TLS connection per request and adds ≈ 50 ms to each,
which would make the proxy, not the daemon, the bottleneck of every latency figure.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from stack import aws as aws_stack  # noqa: E402
from stack import faultproxy, procs, runtime  # noqa: E402
from stack import kube as kube_stack  # noqa: E402
from stack import vault as vault_stack  # noqa: E402

from tests.integration.daemonproc import DaemonProcess, wait_until  # noqa: E402

__all__ = ["DaemonProcess", "procs", "runtime", "wait_until"]

WATCH_QUERY = re.compile(r"(^|&)watch=(1|true)(&|$)", re.IGNORECASE)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the stack


@dataclass(slots=True)
class Stack:
    """The three servers; counting proxies in front of the backends; the daemon's identity."""

    kube: kube_stack.KubeCluster
    vault: vault_stack.VaultServer
    aws: aws_stack.AwsServer
    vault_proxy: faultproxy.FaultProxy
    aws_proxy: faultproxy.FaultProxy
    workdir: Path
    identity: str = ""  # the daemon's username in the audit log
    daemon_kubeconfig: Path = field(init=False)
    audit: KubeAudit = field(init=False)

    def __post_init__(self) -> None:
        if self.kube.audit_log is None:
            raise RuntimeError("the benchmark needs the stack's own apiserver (audit log)")
        self.identity, self.daemon_kubeconfig = daemon_identity(self.kube, self.workdir)
        self.audit = KubeAudit(self.kube.audit_log, user=self.identity)

    def daemon_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KUBERNETES_SERVICE_", "VAULT_", "AWS_", "PSS_"))}
        env["KUBECONFIG"] = str(self.daemon_kubeconfig)
        env["VAULT_TOKEN"] = self.vault.token
        env.update(self.aws.env)
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        return env

    def reset_counts(self) -> None:
        self.audit.mark()
        for proxy in (self.vault_proxy, self.aws_proxy):
            proxy.reset_counts()


def start_stack(rt: runtime.Runtime) -> tuple[Stack, dict[str, float]]:
    """Start etcd+apiserver+controller-manager, OpenBao, moto and two proxies; timings."""
    timings: dict[str, float] = {}
    began = time.monotonic()
    cluster = kube_stack.start(rt)
    timings["kube"] = time.monotonic() - began
    t = time.monotonic()
    bao = vault_stack.start(rt.subdir("vault"))
    timings["openbao"] = time.monotonic() - t
    t = time.monotonic()
    moto = aws_stack.start(rt.subdir("aws"))
    timings["moto"] = time.monotonic() - t
    vault_proxy = faultproxy.FaultProxy(bao.addr).start()
    aws_proxy = faultproxy.FaultProxy(moto.endpoint).start()
    return Stack(cluster, bao, moto, vault_proxy, aws_proxy, rt.subdir("bench")), timings


def stop_stack(stack: Stack) -> None:
    for proxy in (stack.vault_proxy, stack.aws_proxy):
        proxy.stop()
    stack.aws.stop()
    stack.vault.stop()
    stack.kube.stop()


_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def bench_identity(cluster: kube_stack.KubeCluster, workdir: Path, *, name: str,
                   rules: list[dict[str, Any]] | None) -> tuple[str, Path]:
    """A ServiceAccount `pss-bench/<name>-<pid>-<time>` bound to `rules` (None: cluster-admin)
    and a kubeconfig with its token (also written beside it as `<sa>.token`): the requests of
    whoever uses it are the audit-log events of this user, whoever else uses the cluster."""
    admin = Admin(cluster)
    ns, sa = "pss-bench", f"{name}-{os.getpid()}-{int(time.time())}"
    admin.call("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}}, ok=(201, 409))
    admin.create_service_account(ns, sa)
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = "cluster-admin"
    if rules is not None:
        role = f"pss-bench-{name}"
        admin.call("POST", f"{rbac}/clusterroles", body={
            "metadata": {"name": role}, "rules": rules}, ok=(201, 409))
    admin.call("POST", f"{rbac}/clusterrolebindings", body={
        "metadata": {"name": f"pss-bench-{sa}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}, ok=(201, 409))
    token = admin.call("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", body={
        "spec": {"audiences": [], "expirationSeconds": 86400}}).json()["status"]["token"]
    path = workdir / f"{sa}.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {
            "server": cluster.server, "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "bench", "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}]}))
    path.chmod(0o600)
    (workdir / f"{sa}.token").write_text(token)
    return f"system:serviceaccount:{ns}:{sa}", path


def daemon_identity(cluster: kube_stack.KubeCluster, workdir: Path) -> tuple[str, Path]:
    """The daemon's identity: the shipped RBAC (docs/install.md)."""
    return bench_identity(cluster, workdir, name="syncer", rules=_RULES)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One finished request of the daemon, from the apiserver's audit log."""

    verb: str  # get list watch create update patch delete
    path: str  # requestURI without the query
    query: str
    resource: str
    namespace: str
    name: str
    status: int
    finished: float  # wall-clock seconds


class KubeAudit:
    """Reads the audit log incrementally; keeps the events of one user since `mark()`."""

    def __init__(self, path: Path, *, user: str) -> None:
        self._path = path
        self._user = user
        self._offset = 0
        self._records: list[AuditRecord] = []
        self._lock = threading.Lock()
        self.mark()

    def mark(self) -> None:
        with self._lock:
            self._offset = self._path.stat().st_size
            self._records = []

    def records(self) -> list[AuditRecord]:
        with self._lock:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a half-written last line waits for the next call
            self._offset += end
            for line in data[:end].splitlines():
                if self._user.encode() not in line:
                    continue
                event = json.loads(line)
                if (event.get("user") or {}).get("username") != self._user:
                    continue
                uri = str(event.get("requestURI", ""))
                path, _, query = uri.partition("?")
                ref = event.get("objectRef") or {}
                stamp = str(event.get("stageTimestamp", ""))
                self._records.append(AuditRecord(
                    verb=str(event.get("verb", "")), path=path, query=query,
                    resource=str(ref.get("resource", "")), namespace=str(ref.get("namespace", "")),
                    name=str(ref.get("name", "")),
                    status=int((event.get("responseStatus") or {}).get("code", 0)),
                    finished=_parse_time(stamp)))
            return list(self._records)


def _parse_time(stamp: str) -> float:
    if not stamp:
        return 0.0
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- admin client


class Admin:
    """Raw-JSON admin access to the apiserver (direct, not through the counting proxy)."""

    def __init__(self, cluster: kube_stack.KubeCluster) -> None:
        if not cluster.admin_token:
            raise RuntimeError("the benchmark needs the stack's own apiserver (admin token)")
        self.server = cluster.server
        self._token = cluster.admin_token
        self._verify = str(cluster.ca_file) if cluster.ca_file else True
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self._token}"
            self._local.session = session
        return session

    def call(self, method: str, path: str, *, body: Any = None, params: Any = None,
             ok: Iterable[int] = (200, 201), stream: bool = False,
             timeout: float = 60) -> requests.Response:
        for attempt in range(6):
            resp = self._session().request(method, self.server + path, json=body, params=params,
                                           stream=stream, timeout=timeout,
                                           verify=self._verify)  # beats REQUESTS_CA_BUNDLE
            if resp.status_code in (429, 500, 503, 504) and attempt < 5:
                time.sleep(0.5 * 2 ** attempt)
                continue
            if resp.status_code not in ok:
                raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
            return resp
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        doc: dict[str, Any] = self.call("GET", path, params=params or None).json()
        return doc

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cont = None
        while True:
            doc = self.get(path, limit=500, **params, **({"continue": cont} if cont else {}))
            items.extend(doc.get("items") or [])
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                return items

    def resource_version(self, path: str) -> str:
        return str(self.get(path, limit=1)["metadata"]["resourceVersion"])

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.call("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}}}, ok=(201, 409))

    def create_service_account(self, namespace: str, name: str) -> None:
        self.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body={
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace}}, ok=(201, 409))

    def delete_namespace(self, name: str) -> None:
        self.call("DELETE", f"/api/v1/namespaces/{name}",
                  body={"propagationPolicy": "Background"}, ok=(200, 202, 404))

    def parallel(self, fn: Callable[[str], None], names: list[str], *,
                 threads: int = 8) -> float:
        """Run `fn(name)` for every name on a thread pool; seconds taken."""
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(fn, names):
                pass
        return time.monotonic() - began

    def accounts_ready(self, prefix: str, *, sa_name: str = "default") -> int:
        """How many `prefix-*` namespaces the ServiceAccount controller has given `sa_name`.
        (Since Kubernetes 1.24 no token controller writes `secrets:` into them afterwards, so
        there is no concurrent writer left to wait out.)"""
        done = 0
        for sa in self.list_all("/api/v1/serviceaccounts",
                                fieldSelector=f"metadata.name={sa_name}"):
            meta = sa.get("metadata") or {}
            if str(meta.get("namespace", "")).startswith(prefix + "-"):
                done += 1
        return done

    def wait_accounts(self, prefix: str, expected: int, *, timeout: float) -> float:
        began = time.monotonic()
        wait_until(lambda: self.accounts_ready(prefix) >= expected, timeout=timeout,
                   interval=1.0, what=f"`default` ServiceAccounts of {expected} {prefix}-* "
                   "namespaces")
        return time.monotonic() - began

    def managed_secrets(self, prefix: str) -> dict[str, dict[str, Any]]:
        out = {}
        for s in self.list_all("/api/v1/secrets",
                               labelSelector="app.kubernetes.io/managed-by=pullsecret-syncer"):
            ns = str(s["metadata"]["namespace"])
            if ns.startswith(prefix + "-"):
                out[ns] = s
        return out

    def patched_accounts(self, prefix: str, secret_name: str) -> int:
        n = 0
        for sa in self.list_all("/api/v1/serviceaccounts"):
            ns = str(sa["metadata"]["namespace"])
            refs = [r.get("name") for r in sa.get("imagePullSecrets") or []]
            if ns.startswith(prefix + "-") and secret_name in refs:
                n += 1
        return n


class AccountWatch:
    """Watches every ServiceAccount from the benchmark side and timestamps, per namespace, when
    `default` appeared and when it first listed `secret_name` (i.e. the daemon patched it)."""

    def __init__(self, admin: Admin, *, prefix: str, secret_name: str) -> None:
        self._admin = admin
        self._prefix = prefix + "-"
        self._secret = secret_name
        self.added: dict[str, float] = {}
        self.patched: dict[str, float] = {}
        self._stop = threading.Event()
        self._rv = admin.resource_version("/api/v1/serviceaccounts")
        self._thread = threading.Thread(target=self._run, name="sa-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self._admin.call("GET", "/api/v1/serviceaccounts", stream=True, params={
                    "watch": "1", "resourceVersion": self._rv, "timeoutSeconds": 60},
                    timeout=90)
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        continue
                    now = time.monotonic()
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    self._rv = str(meta.get("resourceVersion", self._rv))
                    ns = str(meta.get("namespace", ""))
                    if event.get("type") not in ("ADDED", "MODIFIED") or meta.get(
                            "name") != "default" or not ns.startswith(self._prefix):
                        continue
                    self.added.setdefault(ns, now)
                    if self._secret in [r.get("name") for r in obj.get("imagePullSecrets") or []]:
                        self.patched.setdefault(ns, now)
            except (requests.RequestException, ValueError, RuntimeError):
                if self._stop.wait(0.5):
                    return

    def stop(self) -> None:
        """Stop recording. The stream is left to end by its own timeout: closing a TLS response
        while the reader thread blocks in it can hang."""
        self._stop.set()


# --------------------------------------------------------------------------- the daemon


class Daemon:
    """`pullsecret-syncer run` as a subprocess, with /proc readings of its memory and CPU."""

    def __init__(self, stack: Stack, config: Path, *, name: str, args: tuple[str, ...]) -> None:
        self.started = time.monotonic()
        self.proc = DaemonProcess(config, stack.daemon_env(), stack.workdir / f"{name}.log",
                                  extra_args=args)
        self.pid = self.proc.proc.pid

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
        raise KeyError(key)

    def peak_rss_mib(self) -> float:
        return self._status("VmHWM") / 1024

    def rss_mib(self) -> float:
        return self._status("VmRSS") / 1024

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def alive(self) -> bool:
        return self.proc.proc.poll() is None

    def stop(self) -> float:
        """SIGTERM; seconds until it exited."""
        began = time.monotonic()
        self.proc.terminate()
        return time.monotonic() - began

    def close(self) -> None:
        self.proc.close()


# --------------------------------------------------------------------------- wire counters


@dataclass(slots=True)
class KubeTraffic:
    """What the daemon sent to the apiserver in one window."""

    writes: Counter[str] = field(default_factory=Counter)  # "PATCH serviceaccounts" -> n
    write_failures: Counter[str] = field(default_factory=Counter)  # "PATCH serviceaccounts 422"
    first_attempt_writes: int = 0  # distinct (method, path)
    retries: int = 0  # further attempts at the same (method, path)
    lists: Counter[str] = field(default_factory=Counter)  # resource -> list requests (pages)
    gets: Counter[str] = field(default_factory=Counter)  # resource -> GETs of one object
    namespaced_gets: int = 0
    watches: int = 0
    other: int = 0

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())

    def as_json(self) -> dict[str, Any]:
        return {"writes": dict(self.writes), "write_failures": dict(self.write_failures),
                "total_writes": self.total_writes,
                "first_attempt_writes": self.first_attempt_writes, "retries": self.retries,
                "lists": dict(self.lists), "gets": dict(self.gets),
                "namespaced_gets": self.namespaced_gets, "watches": self.watches,
                "other": self.other}


_WRITE_VERBS = {"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}


def kube_traffic(records: Iterable[AuditRecord]) -> KubeTraffic:
    out = KubeTraffic()
    seen: set[tuple[str, str]] = set()
    for r in records:
        if r.verb in _WRITE_VERBS:
            key = f"{_WRITE_VERBS[r.verb]} {r.resource}"
            out.writes[key] += 1
            if not 200 <= r.status < 300:
                out.write_failures[f"{key} {r.status}"] += 1
            if (r.verb, r.path) in seen:
                out.retries += 1
            else:
                seen.add((r.verb, r.path))
                out.first_attempt_writes += 1
        elif r.verb == "watch" or WATCH_QUERY.search(r.query):
            out.watches += 1
        elif r.verb == "list":
            out.lists[r.resource] += 1
        elif r.verb == "get":
            out.gets[r.resource] += 1
            if r.namespace:
                out.namespaced_gets += 1
        else:
            out.other += 1
    return out


def successful(records: Iterable[AuditRecord], verb: str, resource: str) -> list[AuditRecord]:
    return [r for r in records if r.verb == verb and 200 <= r.status < 300
            and r.resource == resource]


def vault_reads(records: Iterable[faultproxy.RequestRecord], mount: str) -> list[
        faultproxy.RequestRecord]:
    """KV v2 reads of credential paths (not token lookups)."""
    return [r for r in records if r.method == "GET" and r.path.startswith(f"/v1/{mount}/data/")]
