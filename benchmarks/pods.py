"""The `--pods P` scenario: the daemon's memory with `recyclePods` on and P Pending Pods watched.

N namespaces are managed (as in the main run) and hold P Pods between them, each Pending with its
container waiting in `ImagePullBackOff` — as the kubelet would report it — for an image that no
credential covers, so the recycler decides about every one of them and evicts none (no writes, no
Events: the figure is the cost of the Pod cache and the decisions). Pods are created the way a
controller does (the ServiceAccount admission plugin adds its projected token volume), so their
JSON is as big as real ones'. The daemon runs as its own ServiceAccount with the shipped RBAC plus
the recycle-pods component's rules.

Three daemons in turn over the same cluster: one converges it (its cold-start writes would
otherwise inflate the first figure), then one with recycling off and one with it on; each is a
fresh process whose peak RSS (VmHWM) is read once it is ready and has settled.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import harness, scenarios

IMAGE = "quay.io/pss-bench/never-covered:1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _grant_recycling(bench: scenarios.Bench) -> None:
    """The recycle-pods component's rules (deploy/kubernetes/components/recycle-pods)."""
    _, _, ns, name = bench.stack.identity.split(":")
    admin = bench.admin
    admin.call("POST", f"{RBAC}/clusterroles", ok=(201, 409), body={
        "metadata": {"name": "pss-bench-recycle-pods"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]})
    admin.call("POST", f"{RBAC}/clusterrolebindings", ok=(201, 409), body={
        "metadata": {"name": f"pss-bench-recycle-{name}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "pss-bench-recycle-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})


def _pending_pod(bench: scenarios.Bench, n: int, i: int) -> None:
    ns, name = bench.ns(i % n), f"pending-{i}"
    created = bench.admin.call("POST", f"/api/v1/namespaces/{ns}/pods", ok=(201,), body={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pending"}},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]}}).json()
    created["status"] = {"phase": "Pending", "containerStatuses": [{
        "name": "app", "image": IMAGE, "imageID": "", "ready": False, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff",
                              "message": f'Back-off pulling image "{IMAGE}"'}}}]}
    bench.admin.call("PUT", f"/api/v1/namespaces/{ns}/pods/{name}/status", body=created)


def _measure(bench: scenarios.Bench, name: str, *, qps: float, burst: int, recycle: bool,
             settle: float) -> dict[str, Any]:
    stack = bench.stack
    bench.write_config(refresh="30s", recycle_pods=recycle)
    stack.reset_counts()
    daemon = bench.start_daemon(name, qps=qps, burst=burst)
    try:
        daemon.proc.wait_ready(timeout=600)
        ready = time.monotonic() - daemon.started
        if recycle:
            harness.wait_until(lambda: harness.successful(stack.audit.records(), "list",
                                                           "pods"),
                               timeout=120, what="the daemon's Pod list")
        time.sleep(settle)
        traffic = harness.kube_traffic(stack.audit.records())
        return {"recycle_pods": recycle, "seconds_to_ready": ready,
                "peak_rss_mib": daemon.peak_rss_mib(), "rss_mib": daemon.rss_mib(),
                "cpu_seconds": daemon.cpu_seconds(), "writes": traffic.total_writes,
                "evictions": len(harness.successful(stack.audit.records(), "create", "pods")),
                "traffic": traffic.as_json()}
    finally:
        daemon.stop()
        daemon.close()


def pending_pods(bench: scenarios.Bench, *, namespaces: int, pods: int, qps: float,
                 burst: int, settle: float = 20.0) -> dict[str, Any]:
    """Peak RSS with recycling off and on over `namespaces` managed namespaces holding `pods`
    Pending Pods."""
    _grant_recycling(bench)
    setup = bench.create_namespaces(0, namespaces)
    began = time.monotonic()
    bench.admin.parallel(lambda i: _pending_pod(bench, namespaces, int(i)),
                         [str(i) for i in range(pods)], threads=16)
    pods_seconds = time.monotonic() - began
    bench.write_config(refresh="30s")
    warm = bench.start_daemon("daemon-converge", qps=qps, burst=burst)
    try:
        warm.proc.wait_ready(timeout=120 + 4 * namespaces / qps)
    finally:
        warm.stop()
        warm.close()
    off = _measure(bench, "daemon-pods-off", qps=qps, burst=burst, recycle=False, settle=settle)
    on = _measure(bench, "daemon-pods-on", qps=qps, burst=burst, recycle=True, settle=settle)
    return {"namespaces": namespaces, "pods": pods, "setup": setup,
            "create_pods_seconds": pods_seconds, "off": off, "on": on,
            "extra_rss_mib": on["peak_rss_mib"] - off["peak_rss_mib"]}
