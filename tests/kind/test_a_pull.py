"""`make dev` on a real kind cluster: a kubelet pulls a private image with the Secret we wrote."""

from __future__ import annotations

import base64
import re

from tests.kind import cluster
from tests.kind.conftest import KindEnv


def test_make_dev_ends_with_the_private_image_and_prints_no_password(kind_env: KindEnv) -> None:
    lines = kind_env.up.output.rstrip().splitlines()
    assert lines[-1] == f"private image: {cluster.private_image()}"
    assert "proof: a Pod without imagePullSecrets pulls" in kind_env.up.output
    password = (cluster.STATE / "password").read_text()
    auth = base64.b64encode(f"demo:{password}".encode()).decode()
    assert password not in kind_env.up.output and auth not in kind_env.up.output
    assert cluster.CONTEXT in cluster.kubectl("config", "get-contexts", "-o", "name").split()
    nodes = cluster.get("nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [f"{cluster.CLUSTER}-control-plane"]
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_a_pod_in_a_new_selected_namespace_pulls_the_private_image(kind_env: KindEnv) -> None:
    ns = cluster.namespace("demo-kind-pull")
    secret = cluster.wait_secret_and_sa(ns)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    cluster.hello_pod(ns, "hello")
    pod = cluster.wait_pod(ns, "hello", {"Running"})
    # the manifest named none; admission copied the ServiceAccount's list into the Pod
    assert [r["name"] for r in pod["spec"]["imagePullSecrets"]] == [cluster.SECRET]
    assert "Pulled" in cluster.events(ns, "hello") or "Pulling" in cluster.events(ns, "hello")


def test_the_same_pod_in_an_unselected_namespace_is_refused(kind_env: KindEnv) -> None:
    ns = cluster.namespace("other-kind-pull")
    cluster.hello_pod(ns, "hello")
    pod = cluster.wait_pod(ns, "hello", {"ErrImagePull", "ImagePullBackOff"})
    assert not pod["spec"].get("imagePullSecrets")
    assert cluster.SECRET not in cluster.kubectl("-n", ns, "get", "secrets", "-o", "name")
    # containerd's words for the registry's 401 Basic challenge it had no credentials for
    def denied() -> str | None:
        text = cluster.events(ns, "hello")
        return text if "authorization failed: no basic auth credentials" in text else None

    cluster.eventually(denied, timeout=60, what=f"an authorization failure in {ns}/hello's Events")
    # and the registry's own answer, in its access log
    ref = cluster.private_image().split("/", 1)[1]
    repo, tag = ref.rsplit(":", 1)
    log = cluster.registry_log()
    assert re.search(rf'"HEAD /v2/{repo}/manifests/{tag} HTTP/1.1" 401 .*containerd', log)
