"""Smoke tests proving the Kubernetes of the stack behaves like a real cluster."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from stack import kube as kube_stack
from stack import wait


def test_apiserver_reports_the_version_it_was_built_as(kube):
    if kube.overridden:
        pytest.skip("PSS_KUBECONFIG names another cluster")

    info = k8s.VersionApi(kube.api_client()).get_code()

    assert info.git_version == kube.version  # `kube-apiserver --version` of the binary we ran
    if not os.environ.get("KUBEBUILDER_ASSETS"):
        assert info.git_version == f"v{kube_stack.kube_version()}"
    assert (info.major, info.minor) == ("1", kube.version.split(".")[1])


def test_new_namespace_gets_a_default_service_account(kube, namespace_factory):
    ns = namespace_factory()
    core = kube.core()

    sa = wait.eventually(
        f"ServiceAccount {ns}/default",
        lambda: core.read_namespaced_service_account("default", ns),
    )

    assert sa.metadata.namespace == ns


def test_dockerconfigjson_secret_with_invalid_json_is_rejected_with_422(kube, namespace_factory):
    ns = namespace_factory()
    secret = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="regcred"),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": "not json SENTINEL"},
    )

    with pytest.raises(ApiException) as info:
        kube.core().create_namespaced_secret(ns, secret)

    assert info.value.status == 422


def test_update_with_a_stale_resource_version_is_a_409_conflict(kube, namespace_factory):
    ns = namespace_factory()
    core = kube.core()
    created = core.create_namespaced_config_map(
        ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cm"), data={"v": "1"}))
    stale_version = created.metadata.resource_version
    created.data = {"v": "2"}
    core.replace_namespaced_config_map("cm", ns, created)

    stale = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="cm", resource_version=stale_version), data={"v": "3"})
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("cm", ns, stale)

    assert info.value.status == 409
    assert core.read_namespaced_config_map("cm", ns).data == {"v": "2"}


def test_deleted_namespace_disappears(kube, namespace_factory):
    ns = namespace_factory()
    core = kube.core()
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="x")))

    core.delete_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    assert wait.eventually(f"namespace {ns} deleted", gone)


def test_token_request_token_passes_token_review(kube, namespace_factory):
    ns = namespace_factory()
    core = kube.core()
    core.create_namespaced_service_account(
        ns, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="puller")))
    token = core.create_namespaced_service_account_token(
        "puller", ns, k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=600))).status.token

    review = k8s.AuthenticationV1Api(kube.api_client()).create_token_review(
        k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token)))

    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{ns}:puller"


def test_tester_identity_has_no_grants(kube, namespace_factory):
    ns = namespace_factory()
    tester = k8s.CoreV1Api(k8s_config.new_client_from_config(
        config_file=str(kube.user_kubeconfig)))

    with pytest.raises(ApiException) as info:
        tester.list_namespaced_secret(ns)

    assert info.value.status == 403
    assert kube.tester_user in json.loads(info.value.body)["message"]


def test_audit_log_records_each_request(kube, namespace_factory):
    if kube.audit_log is None:
        pytest.skip("no audit log on the PSS_KUBECONFIG cluster")
    ns = namespace_factory()

    kube.core().read_namespace(ns)

    def events() -> list[dict]:
        lines = kube.audit_log.read_text().splitlines()
        return [e for e in map(json.loads, lines)
                if (e.get("objectRef") or {}).get("name") == ns
                and e["objectRef"].get("resource") == "namespaces"]

    seen = wait.eventually("audit events for the namespace", events)
    assert [(e["verb"], e["stage"], e["responseStatus"]["code"]) for e in seen] == [
        ("create", "ResponseComplete", 201), ("get", "ResponseComplete", 200)]


def test_kubectl_works_with_both_kubeconfigs(kube):
    admin = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube.kubeconfig), "get", "namespace", "default",
         "-o", "name"], capture_output=True, text=True, timeout=60, check=False)
    tester = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube.user_kubeconfig), "get", "namespaces"],
        capture_output=True, text=True, timeout=60, check=False)

    assert (admin.returncode, admin.stdout.strip()) == (0, "namespace/default")
    assert tester.returncode != 0
    assert "forbidden" in tester.stderr.lower()
