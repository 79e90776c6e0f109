"""`make dev-rotate`: a new password in the registry and in Vault; the Secrets follow in place and
a new Pod pulls with the new password."""

from __future__ import annotations

from tests.kind import cluster
from tests.kind.conftest import KindEnv


def test_rotation_reaches_a_new_pod_and_keeps_the_secret(kind_env: KindEnv) -> None:
    ns = "demo-a"  # made by dev-up.sh
    before = cluster.get("-n", ns, "secret", cluster.SECRET)
    old_password = (cluster.STATE / "password").read_text()
    rotate = cluster.script("dev-rotate.sh")
    kind_env.timings.append(("dev-rotate.sh", rotate.seconds))
    print(f"\n--- deploy/kind/dev-rotate.sh ({rotate.seconds:.0f} s) ---\n{rotate.output}")
    assert rotate.returncode == 0, rotate.output[-4000:]
    new_password = (cluster.STATE / "password").read_text()
    assert new_password != old_password
    assert old_password not in rotate.output and new_password not in rotate.output
    after = cluster.get("-n", ns, "secret", cluster.SECRET)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["data"] != before["data"]
    pod = cluster.wait_pod(ns, "hello-rotated", {"Running"}, timeout=30)
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_after_rotation_a_pod_without_the_secret_is_still_refused(kind_env: KindEnv) -> None:
    ns = cluster.namespace("other-kind-rotated")
    cluster.hello_pod(ns, "hello")
    cluster.wait_pod(ns, "hello", {"ErrImagePull", "ImagePullBackOff"})
