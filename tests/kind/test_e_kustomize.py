"""The kustomize overlay deploy/kubernetes/overlays/kind, applied as users apply it, does the same:
a new demo namespace gets the Secret and its Pod pulls the private image."""

from __future__ import annotations

from tests.kind import cluster
from tests.kind.conftest import KindEnv

OVERLAY = str(cluster.REPO / "deploy" / "kubernetes" / "overlays" / "kind")


def test_kustomize_overlay_syncs_and_a_pod_pulls(kind_env: KindEnv) -> None:
    cluster.kubectl("apply", "-k", OVERLAY)
    try:
        rollout = ("rollout", "status", "deploy/pullsecret-syncer", "--timeout=180s")
        cluster.kubectl("-n", cluster.SYNCER_NS, *rollout)
        ns = cluster.namespace("demo-kind-kustomize")
        cluster.wait_secret_and_sa(ns)
        cluster.hello_pod(ns, "hello")
        cluster.wait_pod(ns, "hello", {"Running"})
    finally:
        cluster.kubectl("delete", "-k", OVERLAY, "--wait=true", check=False)
