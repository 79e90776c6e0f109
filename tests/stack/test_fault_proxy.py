"""The fault proxy: injected faults reach real clients, and its counters count real traffic."""

from __future__ import annotations

import json
import subprocess

import hvac
import hvac.exceptions
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException


def test_forwards_to_the_upstream_and_counts_requests_and_writes(vault, fault_proxy, unique):
    proxy = fault_proxy(vault.addr)
    client = hvac.Client(url=proxy.url, token=vault.token)
    path = f"proxy/{unique}"

    client.secrets.kv.v2.create_or_update_secret(path, secret={"k": "v"},
                                                 mount_point=vault.kv2_mount)
    read = client.secrets.kv.v2.read_secret_version(path, mount_point=vault.kv2_mount,
                                                    raise_on_deleted_version=True)
    client.secrets.kv.v2.read_secret_version(path, mount_point=vault.kv2_mount,
                                             raise_on_deleted_version=True)

    assert read["data"]["data"] == {"k": "v"}
    assert proxy.count(method="GET", path=rf"/v1/secret/data/proxy/{unique}$") == 2
    assert proxy.writes() == 1
    assert [r.status for r in proxy.requests] == [200, 200, 200]
    proxy.reset_counts()
    assert proxy.requests == []


def test_fail_rule_answers_its_status_then_stops_after_times(vault, fault_proxy):
    proxy = fault_proxy(vault.addr)
    proxy.fail(503, path=r"^/v1/auth/token/lookup-self", times=1)
    client = hvac.Client(url=proxy.url, token=vault.token)

    with pytest.raises(hvac.exceptions.VaultDown):
        client.auth.token.lookup_self()
    looked_up = client.auth.token.lookup_self()

    assert looked_up["data"]["id"] == vault.token
    assert [(r.status, r.injected) for r in proxy.requests] == [(503, "fail"), (200, None)]


def test_fail_rule_body_is_an_aws_error_for_aws_clients(aws, fault_proxy):
    proxy = fault_proxy(aws.endpoint)
    proxy.fail(429, method="POST")
    sm = aws.client("secretsmanager", endpoint_url=proxy.url,
                    config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    with pytest.raises(ClientError) as info:
        sm.list_secrets()

    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"


def test_reset_rule_closes_the_connection_without_an_answer(vault, fault_proxy):
    proxy = fault_proxy(vault.addr)
    proxy.reset(path=r"^/v1/sys/health")

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/v1/sys/health", timeout=10)

    assert [(r.status, r.injected) for r in proxy.requests] == [(None, "reset")]


def test_delay_rule_holds_the_request_past_a_short_client_timeout(vault, fault_proxy):
    proxy = fault_proxy(vault.addr)
    proxy.delay(30, path=r"^/v1/sys/health", times=1)

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{proxy.url}/v1/sys/health", timeout=1)
    assert requests.get(f"{proxy.url}/v1/sys/health", timeout=10).status_code == 200


def test_clear_removes_every_rule(vault, fault_proxy):
    proxy = fault_proxy(vault.addr)
    proxy.fail(500)
    proxy.clear()

    assert requests.get(f"{proxy.url}/v1/sys/health", timeout=10).status_code == 200


def test_tls_mode_is_verified_with_the_stack_ca(vault, fault_proxy):
    proxy = fault_proxy(vault.addr, tls=True)

    assert proxy.url.startswith("https://127.0.0.1:")
    assert requests.get(f"{proxy.url}/v1/sys/health", verify=str(proxy.ca_file),
                        timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{proxy.url}/v1/sys/health", timeout=10)  # system CAs do not know it


# ------------------------------------------------------------------ in front of the apiserver


def _core_via(kube, url, *, user="admin"):
    return k8s.CoreV1Api(k8s_config.new_client_from_config(
        config_file=str(kube.kubeconfig_via(url, user=user))))


def test_fail_rule_reaches_the_kubernetes_client_as_a_status(kube, fault_proxy):
    proxy = fault_proxy(kube.server)
    proxy.fail(500, method="GET", path=r"^/api/v1/namespaces/default$", times=1)
    core = _core_via(kube, proxy.url)

    with pytest.raises(ApiException) as info:
        core.read_namespace("default")

    assert info.value.status == 500
    assert json.loads(info.value.body)["reason"] == "InternalError"
    assert core.read_namespace("default").metadata.name == "default"
    assert proxy.count(method="GET", path="/namespaces/default") == 2
    assert proxy.writes() == 0


def test_429_carries_retry_after_which_the_kubernetes_client_honours(kube, fault_proxy):
    # urllib3 (under the kubernetes client) retries 429/503 answers that carry Retry-After.
    proxy = fault_proxy(kube.server)
    proxy.fail(429, path=r"^/api/v1/namespaces/default$", times=1)
    raw = requests.get(f"{proxy.url}/api/v1/namespaces/default", timeout=10)
    proxy.fail(429, path=r"^/api/v1/namespaces/default$", times=1)

    namespace = _core_via(kube, proxy.url).read_namespace("default")

    assert raw.status_code == 429
    assert raw.headers["Retry-After"] == "1"
    assert raw.json()["reason"] == "TooManyRequests"
    assert namespace.metadata.name == "default"
    assert [r.status for r in proxy.requests] == [429, 429, 200]


def test_watch_events_are_relayed_while_the_stream_is_open(kube, fault_proxy, unique):
    proxy = fault_proxy(kube.server)
    core = _core_via(kube, proxy.url)
    listed = core.list_namespace()
    name = f"relay-{unique}"
    stream = core.list_namespace(
        watch=True, resource_version=listed.metadata.resource_version, timeout_seconds=120,
        _preload_content=False, _request_timeout=60)
    try:
        kube.core().create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        for line in stream:
            event = json.loads(line)
            if event["object"]["metadata"]["name"] == name:
                break
    finally:
        stream.close()
        kube.core().delete_namespace(name)

    assert event["type"] == "ADDED"


def test_cut_watch_ends_the_stream_early(kube, fault_proxy):
    proxy = fault_proxy(kube.server)
    proxy.cut_watch(after_seconds=1)
    core = _core_via(kube, proxy.url)

    stream = core.list_namespace(watch=True, timeout_seconds=120, _preload_content=False,
                                 _request_timeout=60)
    events = [json.loads(line) for line in stream]  # read timeout (60 s) if never cut

    added = {e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"}
    assert "default" in added  # the initial state was relayed before the cut
    assert [(r.status, r.injected) for r in proxy.requests] == [(200, "cut")]


def test_tls_proxy_in_front_of_the_apiserver_verifies_with_the_cluster_ca(kube, fault_proxy):
    proxy = fault_proxy(kube.server, tls=True)

    namespace = _core_via(kube, proxy.url).read_namespace("default")
    kubectl = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube.kubeconfig_via(proxy.url)), "get", "namespace",
         "default", "-o", "name"], capture_output=True, text=True, timeout=60, check=False)

    assert namespace.metadata.name == "default"
    assert (kubectl.returncode, kubectl.stdout.strip()) == (0, "namespace/default")
    # kube.ca_file is the stack CA that signed the proxy, unless PSS_KUBECONFIG overrides.
    ca = proxy.ca_file if kube.overridden else kube.ca_file
    version = requests.get(f"{proxy.url}/version", verify=str(ca), timeout=10,
                           headers={"Authorization": f"Bearer {kube.admin_token}"})
    if kube.admin_token is not None:
        assert version.json()["gitVersion"].startswith("v1.")
