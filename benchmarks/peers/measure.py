"""The scenarios of the peer benchmark, the same for every tool. Each returns plain numbers and
the raw counts behind them.

Convergence is judged from the cluster (every `regcred` holds both credentials at their current
value; where the tool patches ServiceAccounts, every `default` lists it), requests from the
apiserver's audit log (the tool's own user) and the counting proxy in front of OpenBao.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import requests

from benchmarks import harness
from benchmarks.peers import world as world_mod

CLK_TCK = harness.CLK_TCK


class Running(Protocol):
    """What a started tool offers: its pid (for /proc) and whether it still runs."""

    @property
    def pid(self) -> int: ...

    def alive(self) -> bool: ...


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def peak_rss_mib(pid: int) -> float:
    return proc_status(pid, "VmHWM") / 1024


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def traffic(audit: harness.KubeAudit) -> dict[str, Any]:
    """The tool's apiserver requests since `audit.mark()`, writes split by resource."""
    records = audit.records()
    t = harness.kube_traffic(records).as_json()
    by_resource: Counter[str] = Counter()
    for r in records:
        if r.verb in ("create", "update", "patch", "delete"):
            sub = "/status" if r.path.endswith("/status") else ""
            by_resource[f"{r.verb} {r.resource}{sub}"] += 1
    t["writes_by_verb"] = dict(by_resource)
    t["reads"] = sum(t["lists"].values()) + sum(t["gets"].values())
    return t


def backend(stack: harness.Stack) -> dict[str, int]:
    reqs = stack.vault_proxy.requests
    return {"reads": len(harness.vault_reads(reqs, stack.vault.kv2_mount)),
            "requests": len(reqs)}


def _check_alive(proc: Running, tail: Callable[[], str]) -> None:
    if not proc.alive():
        raise AssertionError(f"the tool exited:\n{tail()}")


def converged(w: world_mod.World, n: int, *, accounts: bool) -> bool:
    if w.current_count() < n:
        return False
    return not accounts or w.patched_accounts() >= n


def cold_start(w: world_mod.World, tool: Any, audit: harness.KubeAudit, n: int, *,
               timeout: float) -> tuple[Running, dict[str, Any]]:
    """N namespaces (and the tool's own objects) exist; start the tool; seconds and requests
    until every Secret is current (and every `default` patched, if the tool does that)."""
    w.stack.reset_counts()
    audit.mark()
    began = time.monotonic()
    proc = tool.start()
    tail = getattr(proc, "tail", lambda: "")

    def done() -> bool:
        _check_alive(proc, tail)
        return converged(w, n, accounts=tool.patches_service_accounts)

    harness.wait_until(done, timeout=timeout, interval=0.5, what=f"{n} namespaces synced")
    seconds = time.monotonic() - began
    time.sleep(2.0)  # what is still in flight lands in the window
    return proc, {"n": n, "seconds": seconds, "traffic": traffic(audit),
                  "backend": backend(w.stack), "secrets_current": w.current_count(),
                  "accounts_patched": w.patched_accounts()}


def idle(w: world_mod.World, proc: Running, audit: harness.KubeAudit, *, refresh: float,
         intervals: int) -> dict[str, Any]:
    """`intervals` refresh intervals with nothing changing: backend reads, apiserver writes
    and reads, CPU seconds (scaled to an hour, at the benchmark's refresh interval)."""
    time.sleep(refresh)  # settle: the tail of convergence is not idle
    w.stack.reset_counts()
    audit.mark()
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(refresh * intervals)
    cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
    b, t = backend(w.stack), traffic(audit)
    window = t1 - t0
    return {"intervals": intervals, "refresh_seconds": refresh, "window_seconds": window,
            "backend": b, "backend_reads_per_interval": b["reads"] / intervals,
            "backend_requests_per_interval": b["requests"] / intervals,
            "traffic": t, "writes_per_interval": t["total_writes"] / intervals,
            "kube_reads_per_interval": t["reads"] / intervals,
            "cpu_seconds": cpu1 - cpu0, "cpu_seconds_per_hour": (cpu1 - cpu0) / window * 3600}


def rotation(w: world_mod.World, proc: Running, audit: harness.KubeAudit, n: int, *,
             timeout: float) -> dict[str, Any]:
    """Rotate credential 0 (in every Secret): seconds until all N are current, the writes it
    took, and how many Secrets were replaced rather than updated (their UID changed)."""
    before = {ns: s["metadata"]["uid"] for ns, s in w.secrets().items()}
    w.stack.reset_counts()
    audit.mark()
    began = time.monotonic()
    w.rotate()
    harness.wait_until(lambda: w.current_count() >= n, timeout=timeout, interval=0.5,
                       what=f"{n} secrets with the rotated value")
    seconds = time.monotonic() - began
    time.sleep(2.0)
    t = traffic(audit)
    after = {ns: s["metadata"]["uid"] for ns, s in w.secrets().items()}
    secret_writes = sum(v for k, v in t["writes_by_verb"].items()
                        if k.split()[1] == "secrets")
    return {"n": n, "seconds": seconds, "traffic": t, "secret_writes": secret_writes,
            "uid_changed": sum(1 for ns, uid in before.items() if after.get(ns) != uid),
            "backend": backend(w.stack)}


class SecretWatch:
    """Watches `regcred` Secrets from the admin side; when each namespace's first appeared."""

    def __init__(self, admin: harness.Admin, *, prefix: str) -> None:
        self._admin = admin
        self._prefix = prefix + "-"
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._rv = admin.resource_version("/api/v1/secrets")
        threading.Thread(target=self._run, name="secret-watch", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self._admin.call("GET", "/api/v1/secrets", stream=True, params={
                    "watch": "1", "resourceVersion": self._rv, "timeoutSeconds": 60,
                    "fieldSelector": f"metadata.name={world_mod.SECRET_NAME}"}, timeout=90)
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        continue
                    now = time.monotonic()
                    event = json.loads(line)
                    meta = (event.get("object") or {}).get("metadata") or {}
                    self._rv = str(meta.get("resourceVersion", self._rv))
                    ns = str(meta.get("namespace", ""))
                    if event.get("type") in ("ADDED", "MODIFIED") and ns.startswith(
                            self._prefix):
                        self.seen.setdefault(ns, now)
            except (requests.RequestException, ValueError, RuntimeError):
                if self._stop.wait(0.5):
                    return

    def stop(self) -> None:
        self._stop.set()


def new_namespaces(w: world_mod.World, tool: Any, audit: harness.KubeAudit, start: int,
                   count: int, *, gap: float, timeout: float) -> dict[str, Any]:
    """Create `count` namespaces `gap` s apart while the tool runs: latency from the create
    call to the Secret (and to `default` listing it, where the tool patches)."""
    w.stack.reset_counts()
    audit.mark()
    secrets = SecretWatch(w.admin, prefix=w.prefix)
    accounts = harness.AccountWatch(w.admin, prefix=w.prefix, secret_name=world_mod.SECRET_NAME)
    created: dict[str, float] = {}
    try:
        for i in range(start, start + count):
            name = w.ns(i)
            created[name] = time.monotonic()
            w.admin.create_namespace(name, {world_mod.LABEL: w.prefix})
            time.sleep(gap)
        harness.wait_until(lambda: len(secrets.seen) >= count and (
            not tool.patches_service_accounts or len(accounts.patched) >= count),
            timeout=timeout, interval=0.2, what=f"{count} new namespaces served")
        time.sleep(2.0)
    finally:
        secrets.stop()
        accounts.stop()
    secret_lat = [secrets.seen[ns] - t for ns, t in created.items()]
    out: dict[str, Any] = {
        "count": count, "gap_seconds": gap, "secret_p50": statistics.median(secret_lat),
        "secret_p99": pct(secret_lat, 0.99), "secret_max": max(secret_lat),
        "traffic": traffic(audit)}
    if tool.patches_service_accounts:
        sa_lat = [accounts.patched[ns] - t for ns, t in created.items()]
        out.update(sa_p50=statistics.median(sa_lat), sa_p99=pct(sa_lat, 0.99),
                   sa_max=max(sa_lat))
    return out


def foreign_writer(w: world_mod.World, tool: Any, namespace: str, *, appends: int = 50,
                   timeout: float = 120) -> dict[str, Any]:
    """The correctness probe of tests/integration/test_reliability_kube.py: a foreign writer
    appends `appends` entries to `default`'s imagePullSecrets (read-modify-write with
    resourceVersion, retried on 409) while a remover keeps deleting the tool's entry, so the
    tool keeps writing the same list. Afterwards: foreign entries lost, tool's entry back."""
    if not tool.patches_service_accounts:
        return {"applicable": False, "why": f"{tool.name} does not patch ServiceAccounts"}
    admin, secret = w.admin, world_mod.SECRET_NAME
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    done = threading.Event()
    errors: list[BaseException] = []
    removals = [0]

    def rmw(change: Callable[[list[str]], list[str] | None]) -> bool:
        while True:
            sa = admin.get(path)
            names = [r.get("name") for r in sa.get("imagePullSecrets") or []]
            new = change(names)
            if new is None:
                return False
            sa["imagePullSecrets"] = [{"name": x} for x in new]
            if admin.call("PUT", path, body=sa, ok=(200, 409)).status_code == 200:
                return True

    def other() -> None:
        try:
            for i in range(appends):
                rmw(lambda names, i=i: [*names, f"other-{i}"])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def remover() -> None:
        try:
            while not done.is_set():
                if rmw(lambda names: [x for x in names if x != secret]
                       if secret in names else None):
                    removals[0] += 1
                time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    began = time.monotonic()
    threads = [threading.Thread(target=other), threading.Thread(target=remover)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    storm = time.monotonic() - began
    back = True
    try:
        harness.wait_until(lambda: secret in [r.get("name") for r in admin.get(path).get(
            "imagePullSecrets") or []], timeout=timeout, interval=0.2, what="entry back")
    except AssertionError:
        back = False
    names = [r.get("name") for r in admin.get(path).get("imagePullSecrets") or []]
    kept = [x for x in names if x.startswith("other-")]
    return {"applicable": True, "appends": appends, "removals": removals[0],
            "storm_seconds": storm, "errors": [repr(e) for e in errors],
            "foreign_kept": len(kept), "foreign_lost": appends - len(set(kept)),
            "in_order": kept == [f"other-{i}" for i in range(appends)],
            "tool_entry_back": back, "tool_entries": names.count(secret)}
