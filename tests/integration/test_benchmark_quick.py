"""The benchmark at CI size (N = 50): the real daemon on the real stack, exact request counts only.

Counts come from the apiserver's audit log (the daemon runs as its own ServiceAccount) and from
counting proxies in front of OpenBao and moto. No timing is asserted: figures live in
benchmarks/ (`make bench`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import harness, scenarios

N = 50
NEW = 10
REFRESH = 2.0
QPS, BURST = 50.0, 40


@pytest.fixture
def bench(kube: Any, vault: Any, aws: Any, fault_proxy: Callable[..., Any],
          tmp_path: Path) -> Iterator[scenarios.Bench]:
    if kube.audit_log is None:
        pytest.skip("needs the stack's own apiserver (audit log), not PSS_KUBECONFIG")
    stack = harness.Stack(kube, vault, aws, fault_proxy(vault.addr), fault_proxy(aws.endpoint),
                          tmp_path)
    b = scenarios.Bench(stack, credentials=2)
    b.seed()
    b.write_config(refresh=f"{REFRESH:g}s")
    yield b
    for i in range(N + NEW):
        b.admin.delete_namespace(b.ns(i))


def test_benchmark_request_counts_are_the_protocol_minimum(bench: scenarios.Bench) -> None:
    bench.create_namespaces(0, N)
    daemon, cold = scenarios.cold_start(bench, N, qps=QPS, burst=BURST, timeout=300)
    try:
        t = cold["traffic"]
        assert t["writes"] == {"POST secrets": N, "PATCH serviceaccounts": N}, t
        assert t["retries"] == 0, t
        assert t["namespaced_gets"] == 0, t
        assert t["lists"] == {"namespaces": 1, "serviceaccounts": 1, "secrets": 2}, t
        assert (cold["secrets_in_cluster"], cold["accounts_patched_in_cluster"]) == (N, N)

        idle = scenarios.idle(bench, daemon, refresh=REFRESH, intervals=3)
        assert idle["backend_reads"] == 2 * 3, idle  # C reads per interval, whatever N is
        assert idle["kube"]["total_writes"] == 0, idle
        assert sum(idle["kube"]["lists"].values()) + idle["kube"]["namespaced_gets"] == 0, idle

        rot = scenarios.rotation(bench, daemon, N, refresh=REFRESH, qps=QPS, burst=BURST,
                                 timeout=120)
        assert rot["traffic"]["writes"] == {"PATCH secrets": N}, rot
        assert rot["secrets_with_new_value"] == N

        new = scenarios.new_namespaces(bench, N, NEW, gap=0.25)
        nt = new["traffic"]
        # since 1.24 no token controller writes to a fresh ServiceAccount: no race, no retry
        assert nt["writes"] == {"POST secrets": NEW, "PATCH serviceaccounts": NEW}, nt
        assert (nt["retries"], nt["namespaced_gets"]) == (0, 0), nt
    finally:
        daemon.stop()
        daemon.close()

    restarted, again = scenarios.restart_and_resync(bench, qps=QPS, burst=BURST, resync=600,
                                                    window=1.0)
    try:
        assert again["start_traffic"]["total_writes"] == 0, again
        assert again["start_traffic"]["namespaced_gets"] == 0, again
    finally:
        restarted.stop()
        restarted.close()
