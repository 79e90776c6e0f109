"""The measured scenarios. Each returns plain numbers (and the raw wire counts behind them).

One `Bench` owns a name prefix, C credentials (alternating Vault KV v2 and AWS Secrets Manager)
and one mapping that merges all of them into `regcred` in every `<prefix>-*` namespace.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness

SECRET_NAME = "regcred"


@dataclass(slots=True)
class Bench:
    stack: harness.Stack
    credentials: int = 2
    prefix: str = field(default_factory=lambda: "b" + uuid.uuid4().hex[:5])
    rotation: int = 0
    admin: harness.Admin = field(init=False)
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.admin = harness.Admin(self.stack.kube)
        self.config = self.stack.workdir / f"{self.prefix}.yaml"

    # ---- credentials in the backends ------------------------------------------------------
    def cred_name(self, i: int) -> str:
        return f"c{i}"

    def backend_of(self, i: int) -> str:
        return "vault" if i % 2 == 0 else "aws"

    def password(self, i: int) -> str:
        return f"pw-SENTINEL-{self.prefix}-{i}-{self.rotation}"

    def write_credential(self, i: int) -> None:
        payload = {"username": f"user{i}", "password": self.password(i)}
        path = f"bench/{self.prefix}/{self.cred_name(i)}"
        if self.backend_of(i) == "vault":
            self.stack.vault.client().secrets.kv.v2.create_or_update_secret(
                path=path, secret=payload, mount_point=self.stack.vault.kv2_mount)
        else:
            sm = self.stack.aws.client("secretsmanager")
            try:
                sm.put_secret_value(SecretId=path, SecretString=json.dumps(payload))
            except sm.exceptions.ResourceNotFoundException:
                sm.create_secret(Name=path, SecretString=json.dumps(payload))

    def seed(self) -> None:
        for i in range(self.credentials):
            self.write_credential(i)

    def write_config(self, *, refresh: str, recycle_pods: bool = False) -> None:
        creds = "\n".join(
            f"  {self.cred_name(i)}: {{backend: {self.backend_of(i)}, "
            + (f"path: bench/{self.prefix}/{self.cred_name(i)}" if self.backend_of(i) == "vault"
               else f"secretId: bench/{self.prefix}/{self.cred_name(i)}")
            + f", registry: r{i}.{self.prefix}.example}}"
            for i in range(self.credentials))
        names = ", ".join(self.cred_name(i) for i in range(self.credentials))
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(f"""version: 1
defaults:
  refreshInterval: {refresh}
backends:
  vault: {{type: vault, address: {self.stack.vault_proxy.url}, auth: {{method: token}}}}
  aws: {{type: aws-secrets-manager, region: {self.stack.aws.region},
        endpointUrl: {self.stack.aws_proxy.url}}}
credentials:
{creds}
mappings:
  - name: bench
    namespaces: {{patterns: ["{self.prefix}-*"]}}
    secretName: {SECRET_NAME}
    credentials: [{names}]
    serviceAccounts: [default]
    recyclePods: {str(recycle_pods).lower()}
""")
        tmp.replace(self.config)  # atomic, like a ConfigMap swap

    # ---- namespaces -------------------------------------------------------------------------
    def ns(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    def create_namespaces(self, start: int, count: int, *, threads: int = 8) -> dict[str, float]:
        names = [self.ns(i) for i in range(start, start + count)]
        created = self.admin.parallel(self.admin.create_namespace, names, threads=threads)
        accounts = self.admin.wait_accounts(self.prefix, start + count,
                                            timeout=120 + count * 0.5)
        return {"create_seconds": created, "sa_controller_seconds": accounts,
                "namespaces_per_second": count / created}

    def start_daemon(self, name: str, *, qps: float, burst: int,
                     resync: str = "10m") -> harness.Daemon:
        return harness.Daemon(self.stack, self.config, name=name, args=(
            "--kube-qps", str(qps), "--kube-burst", str(burst), "--resync-interval", resync))


def _ok(records: list[Any], method: str, resource: str) -> int:
    return len(harness.successful(records, method, resource))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


# --------------------------------------------------------------------------- scenarios


def cold_start(bench: Bench, n: int, *, qps: float, burst: int,
               timeout: float) -> tuple[harness.Daemon, dict[str, Any]]:
    """N namespaces exist with their `default` ServiceAccounts; start the daemon; time and count
    until every Secret is created and every `default` ServiceAccount patched."""
    stack = bench.stack
    stack.reset_counts()
    daemon = bench.start_daemon("daemon-main", qps=qps, burst=burst)
    began = daemon.started

    def converged() -> bool:
        if not daemon.alive():
            raise AssertionError(daemon.proc.output()[-3000:])
        recs = stack.audit.records()
        return (_ok(recs, "create", "secrets") >= n
                and _ok(recs, "patch", "serviceaccounts") >= n)

    harness.wait_until(converged, timeout=timeout, interval=0.2, what=f"{n} namespaces synced")
    seconds = time.monotonic() - began
    harness.wait_until(daemon.proc.ready, timeout=60, what="/readyz")
    ready = time.monotonic() - began
    time.sleep(2.0)  # anything still in flight lands in the window
    traffic = harness.kube_traffic(stack.audit.records())
    secrets = bench.admin.managed_secrets(bench.prefix)
    patched = bench.admin.patched_accounts(bench.prefix, SECRET_NAME)
    return daemon, {
        "n": n, "qps": qps, "burst": burst, "seconds_to_converged": seconds,
        "seconds_to_ready": ready,
        "protocol_min_seconds": max(0.0, (2 * n - burst) / qps),
        "secrets_in_cluster": len(secrets), "accounts_patched_in_cluster": patched,
        "traffic": traffic.as_json(), "peak_rss_mib": daemon.peak_rss_mib(),
        "cpu_seconds": daemon.cpu_seconds(),
    }


def idle(bench: Bench, daemon: harness.Daemon, *, refresh: float,
         intervals: int) -> dict[str, Any]:
    """`intervals` refresh intervals of an idle, converged daemon: backend reads per interval,
    apiserver writes and non-watch reads, CPU seconds. The window starts half an interval after
    a read so every credential's reads fall inside it exactly `intervals` times."""
    stack = bench.stack
    stack.vault_proxy.reset_counts()
    harness.wait_until(lambda: stack.vault_proxy.count(method="GET", path="/v1/.*/data/"),
                       timeout=refresh * 3, interval=0.05, what="a credential read")
    time.sleep(refresh / 2)
    stack.reset_counts()
    cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
    time.sleep(refresh * intervals)
    cpu1, t1 = daemon.cpu_seconds(), time.monotonic()
    vault = harness.vault_reads(stack.vault_proxy.requests, stack.vault.kv2_mount)
    aws = stack.aws_proxy.requests
    traffic = harness.kube_traffic(stack.audit.records())
    reads = len(vault) + len(aws)
    return {
        "refresh_seconds": refresh, "intervals": intervals, "window_seconds": t1 - t0,
        "credentials": bench.credentials, "backend_reads": reads,
        "backend_reads_per_interval": reads / intervals,
        "vault_requests": len(stack.vault_proxy.requests), "vault_reads": len(vault),
        "aws_requests": len(aws), "kube": traffic.as_json(),
        "cpu_seconds": cpu1 - cpu0, "cpu_seconds_per_hour": (cpu1 - cpu0) / (t1 - t0) * 3600,
    }


def rotation(bench: Bench, daemon: harness.Daemon, n: int, *, refresh: float, qps: float,
             burst: int, timeout: float) -> dict[str, Any]:
    """Rotate credential 0 (used by all N namespaces); time until N Secrets are rewritten."""
    stack = bench.stack
    time.sleep(1.0)
    stack.reset_counts()
    bench.rotation += 1
    began, wall = time.monotonic(), time.time()
    bench.write_credential(0)
    harness.wait_until(lambda: _ok(stack.audit.records(), "patch", "secrets") >= n,
                       timeout=timeout, interval=0.1, what=f"{n} secrets rewritten")
    seconds = time.monotonic() - began
    time.sleep(2.0)
    records = stack.audit.records()
    traffic = harness.kube_traffic(records)
    reads = [r.started for r in harness.vault_reads(stack.vault_proxy.requests,
                                                     stack.vault.kv2_mount) if r.started > wall]
    patches = sorted(r.finished for r in harness.successful(records, "patch", "secrets"))
    phases = {"backend_read_after": reads[0] - wall if reads else None,
              "first_write_after": patches[0] - wall if patches else None,
              "last_write_after": patches[-1] - wall if patches else None}
    fresh = sum(1 for s in bench.admin.managed_secrets(bench.prefix).values()
                if bench.password(0).encode() in _decoded(s))
    return {"n": n, "seconds": seconds, "target_seconds": refresh + n / qps,
            "protocol_min_seconds": max(0.0, (n - burst) / qps),
            "secrets_with_new_value": fresh, "phases": phases, "traffic": traffic.as_json()}


def _decoded(secret: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode((secret.get("data") or {}).get(".dockerconfigjson", ""))


def new_namespaces(bench: Bench, start: int, count: int, *, gap: float) -> dict[str, Any]:
    """Create `count` namespaces one by one, `gap` seconds apart, while the daemon runs:
    latency from the create call to `default` listing the Secret, and the writes it took."""
    stack = bench.stack
    stack.reset_counts()
    watch = harness.AccountWatch(bench.admin, prefix=bench.prefix, secret_name=SECRET_NAME)
    created: dict[str, float] = {}
    try:
        for i in range(start, start + count):
            name = bench.ns(i)
            created[name] = time.monotonic()
            bench.admin.create_namespace(name)
            time.sleep(gap)
        harness.wait_until(lambda: len(watch.patched) >= count, timeout=60 + count,
                           interval=0.2, what=f"{count} new namespaces patched")
        time.sleep(2.0)
    finally:
        watch.stop()
    latency = [watch.patched[ns] - t for ns, t in created.items()]
    sa_delay = [watch.added[ns] - t for ns, t in created.items() if ns in watch.added]
    own = [watch.patched[ns] - watch.added[ns] for ns in created if ns in watch.added]
    traffic = harness.kube_traffic(stack.audit.records())
    return {
        "count": count, "gap_seconds": gap,
        "latency_p50": statistics.median(latency), "latency_p99": _pct(latency, 0.99),
        "latency_max": max(latency),
        "sa_appears_p50": statistics.median(sa_delay), "sa_appears_p99": _pct(sa_delay, 0.99),
        "daemon_share_p50": statistics.median(own), "daemon_share_p99": _pct(own, 0.99),
        "traffic": traffic.as_json(),
    }


def base_cpu(bench: Bench, daemon: harness.Daemon, *, window: float) -> dict[str, Any]:
    """Reload the config with a 1h refresh, then CPU over `window` with no backend reads."""
    stack = bench.stack
    bench.write_config(refresh="1h")
    time.sleep(6.0)  # config poll (1 s), one read per credential, one no-op full pass
    stack.reset_counts()
    cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
    time.sleep(window)
    cpu1, t1 = daemon.cpu_seconds(), time.monotonic()
    traffic = harness.kube_traffic(stack.audit.records())
    return {"window_seconds": t1 - t0, "cpu_seconds": cpu1 - cpu0,
            "backend_requests": len(stack.vault_proxy.requests) + len(stack.aws_proxy.requests),
            "kube": traffic.as_json()}


def restart_and_resync(bench: Bench, *, qps: float, burst: int, resync: float,
                       window: float) -> tuple[harness.Daemon, dict[str, Any]]:
    """A second daemon over the converged cluster: writes on start (should be 0), time to
    ready, and CPU over a window with frequent resyncs (each re-lists everything)."""
    stack = bench.stack
    stack.reset_counts()
    daemon = bench.start_daemon("daemon-restart", qps=qps, burst=burst, resync=f"{resync}s")
    daemon.proc.wait_ready(timeout=120)
    ready = time.monotonic() - daemon.started
    time.sleep(3.0)
    start_traffic = harness.kube_traffic(stack.audit.records())
    stack.reset_counts()
    cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
    time.sleep(window)
    cpu1, t1 = daemon.cpu_seconds(), time.monotonic()
    traffic = harness.kube_traffic(stack.audit.records())
    return daemon, {
        "seconds_to_ready": ready, "start_traffic": start_traffic.as_json(),
        "resync_seconds": resync, "window_seconds": t1 - t0, "cpu_seconds": cpu1 - cpu0,
        "resyncs": traffic.lists.get("namespaces", 0), "kube": traffic.as_json(),
        "peak_rss_mib": daemon.peak_rss_mib(),
    }


def big_cluster(bench: Bench, *, namespaces: int, accounts: int, managed: int,
                qps: float, burst: int, settle: float) -> dict[str, Any]:
    """Grow the cluster to `namespaces` namespaces and about `accounts` ServiceAccounts (we
    create `default` ourselves, and `builder` beside it, so the controller-manager's 20 qps is
    not the bottleneck), then start a daemon and read its peak RSS once it is ready. Only the
    `managed` namespaces of the earlier scenarios match the mapping: the rest is watched only."""
    stack = bench.stack
    admin = bench.admin
    existing = {ns["metadata"]["name"] for ns in admin.list_all("/api/v1/namespaces")}
    extra = [f"{bench.prefix}x-{i}" for i in range(max(0, namespaces - len(existing)))]
    began = time.monotonic()
    admin.parallel(admin.create_namespace, extra, threads=16)
    ns_seconds = time.monotonic() - began
    ours = sorted(n for n in existing if n.startswith(bench.prefix + "-")) + extra
    per_ns = max(1, round(accounts / max(1, len(ours))))
    names = ["default", "builder", "deployer", "ci"][:per_ns]

    def make_accounts(ns: str) -> None:
        for sa in names:
            admin.create_service_account(ns, sa)  # 409 (already there) is fine

    t = time.monotonic()
    admin.parallel(make_accounts, ours, threads=16)
    sa_seconds = time.monotonic() - t
    total_ns = len(admin.list_all("/api/v1/namespaces"))
    total_sa = len(admin.list_all("/api/v1/serviceaccounts"))
    stack.reset_counts()
    daemon = bench.start_daemon("daemon-big", qps=qps, burst=burst)
    try:
        daemon.proc.wait_ready(timeout=600)
        ready = time.monotonic() - daemon.started
        rss_ready = daemon.peak_rss_mib()
        time.sleep(settle)
        traffic = harness.kube_traffic(stack.audit.records())
        return {
            "namespaces": total_ns, "service_accounts": total_sa, "managed_namespaces": managed,
            "create_namespaces_seconds": ns_seconds, "created_namespaces": len(extra),
            "create_accounts_seconds": sa_seconds, "accounts_per_namespace": len(names),
            "seconds_to_ready": ready, "peak_rss_mib_at_ready": rss_ready,
            "peak_rss_mib": daemon.peak_rss_mib(), "rss_mib": daemon.rss_mib(),
            "cpu_seconds": daemon.cpu_seconds(), "traffic": traffic.as_json(),
        }
    finally:
        daemon.stop()
        daemon.close()
