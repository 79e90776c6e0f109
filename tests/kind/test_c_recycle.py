"""recyclePods: a Deployment whose Pod was created before its ServiceAccount had the Secret.

The namespace starts unselected (its Pod fails to pull: 401), then gets the label of a mapping.
With `recyclePods: true` (mapping `demo`, label pull-secrets=enabled) the syncer evicts the stuck
Pod once and its ReplicaSet makes a new one, with the Secret, which runs. With it off (mapping
`no-recycle`, label pull-secrets=no-recycle) the ServiceAccount gets the Secret too, but the old
Pod stays in ImagePullBackOff: a Pod's imagePullSecrets are fixed when it is created.
"""

from __future__ import annotations

import time
from typing import Any

from tests.kind import cluster
from tests.kind.conftest import KindEnv


def stuck_deployment(ns: str) -> dict[str, Any]:
    cluster.namespace(ns)
    cluster.hello_deployment(ns, "hello")

    def stuck() -> dict[str, Any] | None:
        pods = cluster.get("-n", ns, "pods", "-l", "app=hello")["items"]
        bad = [p for p in pods if cluster.pod_state(p) in ("ErrImagePull", "ImagePullBackOff")]
        return bad[0] if len(pods) == 1 and bad else None

    return cluster.eventually(stuck, timeout=180, what=f"the Pod of {ns}/hello failing to pull")


def test_with_recycle_pods_the_stuck_pod_is_evicted_once_and_replaced(kind_env: KindEnv) -> None:
    ns = "lab-recycle-on"
    first = stuck_deployment(ns)
    assert not first["spec"].get("imagePullSecrets")
    cluster.kubectl("label", "namespace", ns, "pull-secrets=enabled")
    cluster.wait_secret_and_sa(ns)

    def replaced_and_running() -> dict[str, Any] | None:
        pods = cluster.get("-n", ns, "pods", "-l", "app=hello")["items"]
        uids = {p["metadata"]["uid"] for p in pods}
        running = [p for p in pods if cluster.pod_state(p) == "Running"]
        return running[0] if first["metadata"]["uid"] not in uids and running else None

    pod = cluster.eventually(replaced_and_running, timeout=180, what=f"a new running Pod in {ns}")
    assert [r["name"] for r in pod["spec"]["imagePullSecrets"]] == [cluster.SECRET]
    # evicted once: the ReplicaSet made exactly one Pod after the first
    rs = cluster.get("-n", ns, "replicasets", "-l", "app=hello")["items"]
    assert len(rs) == 1
    created = [
        e for e in cluster.get("-n", ns, "events")["items"]
        if e.get("reason") == "SuccessfulCreate" and e["involvedObject"]["kind"] == "ReplicaSet"
    ]
    assert sum(int(e.get("count") or 1) for e in created) == 2, created


def test_without_recycle_pods_the_stuck_pod_stays_stuck(kind_env: KindEnv) -> None:
    ns = "lab-recycle-off"
    first = stuck_deployment(ns)
    cluster.kubectl("label", "namespace", ns, "pull-secrets=no-recycle")
    cluster.wait_secret_and_sa(ns)
    time.sleep(30)  # three refresh intervals of the syncer
    pods = cluster.get("-n", ns, "pods", "-l", "app=hello")["items"]
    assert [p["metadata"]["uid"] for p in pods] == [first["metadata"]["uid"]]
    assert cluster.pod_state(pods[0]) in ("ErrImagePull", "ImagePullBackOff")
