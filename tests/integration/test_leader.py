"""Two replicas with --leader-elect on the real apiserver: one writes, the other stands by."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration import test_daemon
from tests.integration.conftest import pull_secret_names, read_secret
from tests.integration.daemonproc import DaemonProcess, wait_until
from tests.integration.test_daemon import CONVERGE, daemon_config, has_secret_and_ref

# the daemon tests' fixtures, shared
creds = test_daemon.creds
start_daemon = test_daemon.start_daemon

HANDOVER = 20.0  # lease 15 s + retry 2 s + slack


def lease_holder(core: Any, kube: Any, namespace: str) -> str | None:
    from kubernetes import client as k8s

    api = k8s.CoordinationV1Api(kube.api_client())
    lease = api.read_namespaced_lease("pullsecret-syncer", namespace)
    return lease.spec.holder_identity or None


def is_leader(daemon: DaemonProcess) -> bool:
    return daemon.metrics().get("pullsecret_syncer_is_leader") == 1.0


def non_lease_writes(proxy: Any) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in proxy.requests
            if r.method in ("POST", "PUT", "PATCH", "DELETE") and "/leases" not in r.path]


def start_pair(start_daemon: Callable[..., DaemonProcess], cfg: Path, kube: Any,
               stack_env: dict[str, str], fault_proxy: Callable[..., Any], lease_ns: str,
               extra: tuple[str, ...] = ()) -> list[tuple[DaemonProcess, Any]]:
    pair = []
    for _ in range(2):
        proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
        env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
        daemon = start_daemon(cfg, env=env, args=(
            "--leader-elect", "--leader-election-namespace", lease_ns, *extra))
        pair.append((daemon, proxy))
    return pair


def test_only_the_leader_writes_and_a_killed_leader_is_replaced_within_20s(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, stack_env: dict[str, str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    lease_ns = namespace_factory(prefix="lease")
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique))
    pair = start_pair(start_daemon, cfg, kube, stack_env, fault_proxy, lease_ns)
    for daemon, _ in pair:
        daemon.wait_ready()  # a standby is ready too
    leader, standby = wait_until(
        lambda: next(((a, b) for a, b in (pair, pair[::-1]) if is_leader(a[0])), None),
        timeout=CONVERGE, what="a leader")
    assert not is_leader(standby[0])
    ns = namespace_factory(prefix="live")
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="leader syncs")
    time.sleep(1)
    assert non_lease_writes(standby[1]) == []
    assert non_lease_writes(leader[1])
    holder = lease_holder(core, kube, lease_ns)
    assert holder is not None

    leader[0].kill()
    killed_at = time.monotonic()
    wait_until(lambda: is_leader(standby[0]), timeout=HANDOVER, what="handover")
    assert time.monotonic() - killed_at < HANDOVER
    assert lease_holder(core, kube, lease_ns) not in (None, holder)
    ns2 = namespace_factory(prefix="live")
    wait_until(lambda: has_secret_and_ref(core, ns2), timeout=CONVERGE, what="new leader syncs")


def test_sigterm_exits_within_10s_and_releases_the_lease_for_a_fast_handover(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, stack_env: dict[str, str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    lease_ns = namespace_factory(prefix="lease")
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique))
    first = start_daemon(cfg, args=("--leader-elect", "--leader-election-namespace", lease_ns))
    wait_until(lambda: is_leader(first), timeout=CONVERGE, what="first leads")
    second = start_daemon(cfg, args=("--leader-elect", "--leader-election-namespace", lease_ns))
    second.wait_ready()
    assert not is_leader(second)

    started = time.monotonic()
    assert first.terminate(timeout=15) == 143
    assert time.monotonic() - started < 10
    # released: the standby does not wait for the 15 s lease to run out
    wait_until(lambda: is_leader(second), timeout=6, what="takeover after release")


def test_leader_killed_mid_pass_standby_converges_and_no_sa_points_at_a_missing_secret(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, stack_env: dict[str, str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    lease_ns = namespace_factory(prefix="lease")
    namespaces = [namespace_factory(prefix="live") for _ in range(120)]
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique))
    first = start_daemon(cfg, args=("--leader-elect", "--leader-election-namespace", lease_ns,
                                    "--kube-qps", "20", "--kube-burst", "5"))
    second = start_daemon(cfg, args=("--leader-elect", "--leader-election-namespace", lease_ns,
                                     "--kube-qps", "20", "--kube-burst", "5"))
    leader, standby = wait_until(
        lambda: (first, second) if is_leader(first) else (second, first) if is_leader(second)
        else None, timeout=CONVERGE, what="a leader")
    # kill it once it has written some but not all
    wait_until(lambda: leader.metrics().get(
        'pullsecret_syncer_kube_writes_total{action="create",kind="secret"}', 0) >= 10,
        timeout=30, what="leader mid-pass")
    leader.signal(signal.SIGKILL)
    dangling_seen: list[str] = []

    def converged() -> bool:
        done = 0
        for ns in namespaces:
            refs = pull_secret_names(core, ns)
            if "regcred" in refs:
                try:
                    read_secret(core, ns, "regcred")
                except Exception:  # a reference to a missing Secret
                    dangling_seen.append(ns)
                    continue
                done += 1
        return done == len(namespaces)

    wait_until(converged, timeout=HANDOVER + 60, interval=1.0, what="all namespaces converge")
    assert dangling_seen == []
    assert is_leader(standby)
