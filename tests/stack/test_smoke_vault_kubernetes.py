"""Smoke tests: OpenBao's Kubernetes auth trusts ServiceAccount tokens of the test apiserver."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
from kubernetes import client as k8s


def _service_account_token(kube, ns: str, name: str) -> str:
    core = kube.core()
    core.create_namespaced_service_account(
        ns, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name)))
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    return core.create_namespaced_service_account_token(name, ns, request).status.token


def test_token_request_token_logs_in_to_the_role_bound_to_its_service_account(
        vault, kube, vault_kubernetes_auth, namespace_factory, unique):
    ns = namespace_factory()
    role = f"puller-{unique}"
    vault.client().auth.kubernetes.create_role(
        role, bound_service_account_names=["puller"], bound_service_account_namespaces=[ns],
        ttl="10m", mount_point=vault_kubernetes_auth)
    jwt = _service_account_token(kube, ns, "puller")

    login = hvac.Client(url=vault.addr).auth.kubernetes.login(
        role, jwt, mount_point=vault_kubernetes_auth)

    assert login["auth"]["client_token"]
    assert login["auth"]["metadata"]["service_account_namespace"] == ns
    assert login["auth"]["metadata"]["service_account_name"] == "puller"


def test_token_of_another_service_account_is_refused(
        vault, kube, vault_kubernetes_auth, namespace_factory, unique):
    ns = namespace_factory()
    role = f"puller-{unique}"
    vault.client().auth.kubernetes.create_role(
        role, bound_service_account_names=["puller"], bound_service_account_namespaces=[ns],
        mount_point=vault_kubernetes_auth)
    jwt = _service_account_token(kube, ns, "intruder")

    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=vault.addr).auth.kubernetes.login(
            role, jwt, mount_point=vault_kubernetes_auth)
