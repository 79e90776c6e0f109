"""The shipped RBAC (deploy/kubernetes/base) on the real apiserver, for real: the syncer's own
ServiceAccount, bound exactly as shipped, runs a full `sync` and a leader-elected `run` without a
single refusal, and is refused (403) everything docs/install.md does not grant.

The RBAC objects are taken from `kubectl kustomize deploy/kubernetes/base` unchanged but for two
things: cluster-scoped names get a suffix and the namespace `pullsecret-syncer` becomes a fresh
one (so nothing collides with other tests); the subject stays the shipped ServiceAccount
`pullsecret-syncer` of that namespace, authenticated with a TokenRequest token.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import (
    Result,
    dockerconfig_of,
    pull_secret_names,
    read_secret,
    wait_for_sa,
)
from tests.integration.daemonproc import DaemonProcess, wait_until

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes" / "base"
SHIPPED_NAMESPACE = "pullsecret-syncer"
SHIPPED_SA = "pullsecret-syncer"
LEASE = "pullsecret-syncer"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
HUB_PW = "hub-pw-SENTINEL-rb1"
HUB_PW_ROTATED = "hub-pw-SENTINEL-rb2"
DOCKERHUB = "https://index.docker.io/v1/"
CONVERGE = 20.0  # generous on a loaded 2-core machine
REFUSAL_SIGNS = ("Forbidden", "forbidden", " 403", "event not recorded", "lease update failed",
                 "could not release the lease")


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    assert path, "kubectl not found (Debian: apt-get install kubernetes-client)"
    proc = subprocess.run([path, "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stderr}"
    return proc.stdout


def shipped_rbac(kubeconfig: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(kubectl(kubeconfig, "kustomize", str(BASE))) if d]
    return [d for d in docs if d["kind"] in RBAC_KINDS]


def rebind(docs: list[dict[str, Any]], *, namespace: str, suffix: str) -> list[dict[str, Any]]:
    """The shipped RBAC moved to `namespace`, cluster-scoped names suffixed; rules untouched."""
    out = []
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        meta = doc["metadata"]
        if doc["kind"].startswith("Cluster"):
            meta["name"] = f"{meta['name']}-{suffix}"
        else:
            assert meta["namespace"] == SHIPPED_NAMESPACE, meta
            meta["namespace"] = namespace
        if doc["kind"].endswith("Binding"):
            if doc["roleRef"]["kind"] == "ClusterRole":
                doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{suffix}"
            assert doc["subjects"] == [{"kind": "ServiceAccount", "name": SHIPPED_SA,
                                        "namespace": SHIPPED_NAMESPACE}], doc["subjects"]
            doc["subjects"][0]["namespace"] = namespace
        out.append(doc)
    return out


@dataclass(frozen=True)
class Identity:
    """The syncer's ServiceAccount with the shipped RBAC, and how to act as it."""

    namespace: str  # of the ServiceAccount, the Role and the RoleBinding: the Lease lives here
    kubeconfig: Path
    token: str
    server: str
    ca_file: Path | None

    def http(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.server + path, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {self.token}"},
                                verify=str(self.ca_file) if self.ca_file else False)


@pytest.fixture(scope="module")
def syncer_sa(kube: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    suffix = secrets.token_hex(3)
    namespace = f"pss-rbac-{suffix}"
    admin = Path(kube.kubeconfig)
    docs = shipped_rbac(admin)
    kinds = sorted(d["kind"] for d in docs)
    assert {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} <= set(kinds), kinds
    objects = rebind(docs, namespace=namespace, suffix=suffix)
    core = kube.core()
    try:
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        core.create_namespaced_service_account(
            namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=SHIPPED_SA)))
        kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
        token = core.create_namespaced_service_account_token(
            SHIPPED_SA, namespace, k8s.AuthenticationV1TokenRequest(
                spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
        cluster: dict[str, Any] = {"server": kube.server}
        if kube.ca_file is not None:
            cluster["certificate-authority"] = str(kube.ca_file)
        else:
            cluster["insecure-skip-tls-verify"] = True
        path = tmp_path_factory.mktemp("rbac") / "syncer-sa.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}))
        path.chmod(0o600)
        identity = Identity(namespace, path, token, kube.server, kube.ca_file)
        # The authorizer learns new bindings from its informers: wait until they are in force.
        wait_until(lambda: identity.http("GET", "/api/v1/namespaces?limit=1").status_code == 200,
                   timeout=CONVERGE, what="the ClusterRoleBinding in force")
        wait_until(lambda: identity.http(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
        ).status_code == 404, timeout=CONVERGE, what="the RoleBinding in force")
        yield identity
    finally:
        try:
            kubectl(admin, "delete", "--ignore-not-found", "-f", "-",
                    stdin=yaml.safe_dump_all(objects))
        finally:
            try:
                core.delete_namespace(namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            core.api_client.close()


@pytest.fixture
def hub(vault: Any, unique: str) -> str:
    """A KV v2 path holding a registry credential; returns the path."""
    path = f"pss/{unique}/rbac-hub"
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "rbacuser", "password": HUB_PW},
        mount_point=vault.kv2_mount)
    return path


@pytest.fixture
def env_as(syncer_sa: Identity,
           stack_env_for: Callable[..., dict[str, str]]) -> dict[str, str]:
    env = stack_env_for(kube=True, vault=True)
    env["KUBECONFIG"] = str(syncer_sa.kubeconfig)
    return env


@pytest.fixture
def leak_values() -> list[str]:
    return [HUB_PW, HUB_PW_ROTATED, base64.b64encode(f"rbacuser:{HUB_PW}".encode()).decode(),
            base64.b64encode(f"rbacuser:{HUB_PW_ROTATED}".encode()).decode()]


def config_text(vault: Any, hub: str, unique: str, *, also: str | None = None) -> str:
    shadow = f"""
  - name: shadow            # selects {also} with the same secretName: a mapping conflict
    namespaces: {{names: [{also}]}}
    credentials: [hub]
""" if also else ""
    return f"""
version: 1
defaults: {{refreshInterval: 2s}}
backends:
  vault: {{type: vault, address: {vault.addr}, auth: {{method: token}}}}
credentials:
  hub: {{backend: vault, path: {hub}, registry: docker.io}}
mappings:
  - name: rbac
    namespaces:
      selector: {{matchLabels: {{pss-rbac: "{unique}"}}}}
    credentials: [hub]
    serviceAccounts: ["*"]
{shadow}"""


def settled_namespace(make: Callable[..., str], core: Any, *, labels: dict[str, str]) -> str:
    """A namespace whose `default` ServiceAccount exists (since 1.24 nothing else writes to it
    afterwards: no token controller adds `secrets:`)."""
    ns = make(labels=labels, prefix="rbac")
    wait_for_sa(core, ns)
    return ns


def warning_events(core: Any, reason: str, *, name: str,
                   namespace: str | None = None) -> list[Any]:
    """Warning Events from pullsecret-syncer about object `name`, wherever they were posted."""
    selector = f"involvedObject.name={name},reason={reason},type=Warning"
    return [e for e in core.list_event_for_all_namespaces(field_selector=selector).items
            if e.source and e.source.component == "pullsecret-syncer"
            and (namespace is None or e.involved_object.namespace == namespace)]


def assert_never_refused(result: Result) -> None:
    for sign in REFUSAL_SIGNS:
        assert sign not in result.output, result.output


def test_sync_as_the_shipped_serviceaccount_creates_updates_and_prunes(
    cli: Callable[..., Result], env_as: dict[str, str], vault: Any, hub: str, unique: str,
    write_config: Callable[[str], Path], core: Any, namespace_factory: Callable[..., str],
) -> None:
    labels = {"pss-rbac": unique}
    ns_a = settled_namespace(namespace_factory, core, labels=labels)
    ns_b = settled_namespace(namespace_factory, core, labels=labels)
    cfg = write_config(config_text(vault, hub, unique))

    first = cli("sync", "--config", str(cfg), env=env_as)
    assert first.code == 0, first.output
    assert_never_refused(first)
    for ns in (ns_a, ns_b):
        assert set(dockerconfig_of(read_secret(core, ns, "regcred"))["auths"]) == {DOCKERHUB}
        assert pull_secret_names(core, ns) == ["regcred"]

    vault.client().secrets.kv.v2.create_or_update_secret(
        path=hub, secret={"username": "rbacuser", "password": HUB_PW_ROTATED},
        mount_point=vault.kv2_mount)
    rotated = cli("sync", "--config", str(cfg), env=env_as)
    assert rotated.code == 0, rotated.output
    assert_never_refused(rotated)
    auth = dockerconfig_of(read_secret(core, ns_a, "regcred"))["auths"][DOCKERHUB]["auth"]
    assert base64.b64decode(auth).decode() == f"rbacuser:{HUB_PW_ROTATED}"

    core.patch_namespace(ns_a, {"metadata": {"labels": {"pss-rbac": "off"}}})
    pruned = cli("sync", "--config", str(cfg), env=env_as)
    assert pruned.code == 0, pruned.output
    assert_never_refused(pruned)
    assert not core.list_namespaced_secret(ns_a, field_selector="metadata.name=regcred").items
    assert pull_secret_names(core, ns_a) == []
    assert pull_secret_names(core, ns_b) == ["regcred"]


def test_sync_as_the_shipped_serviceaccount_reports_a_foreign_secret_with_a_warning_event(
    cli: Callable[..., Result], env_as: dict[str, str], vault: Any, hub: str, unique: str,
    write_config: Callable[[str], Path], core: Any, namespace_factory: Callable[..., str],
) -> None:
    ns = settled_namespace(namespace_factory, core, labels={"pss-rbac": unique})
    core.create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="regcred"), string_data={"note": "not ours"}))
    result = cli("sync", "--config", str(write_config(config_text(vault, hub, unique))),
                 env=env_as)
    assert result.code == 1, result.output  # a conflict counts as a failure
    assert f"conflict: secret {ns}/regcred" in result.output
    assert_never_refused(result)
    assert warning_events(core, "SecretConflict", name="regcred", namespace=ns), (
        "no Warning Event was recorded")
    assert read_secret(core, ns, "regcred").data == {
        "note": base64.b64encode(b"not ours").decode()}


def test_sync_as_the_shipped_serviceaccount_records_a_mapping_conflict_event(
    cli: Callable[..., Result], env_as: dict[str, str], vault: Any, hub: str, unique: str,
    write_config: Callable[[str], Path], core: Any, namespace_factory: Callable[..., str],
) -> None:
    ns = settled_namespace(namespace_factory, core, labels={"pss-rbac": unique})
    cfg = write_config(config_text(vault, hub, unique, also=ns))
    result = cli("sync", "--config", str(cfg), env=env_as)
    assert result.code == 0, result.output  # the first mapping wins, reported
    assert pull_secret_names(core, ns) == ["regcred"]
    assert warning_events(core, "MappingConflict", name=ns), "no Warning Event was recorded"
    assert_never_refused(result)


def lease_holder(kube: Any, namespace: str) -> str | None:
    api = kube.api_client()
    try:
        lease = k8s.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)
        return str(lease.spec.holder_identity or "")
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    finally:
        api.close()


def test_run_with_leader_election_as_the_shipped_serviceaccount_leads_syncs_and_releases(
    syncer_sa: Identity, env_as: dict[str, str], vault: Any, hub: str, unique: str, kube: Any,
    write_config: Callable[[str], Path], core: Any, namespace_factory: Callable[..., str],
    tmp_path: Path, leak_values: list[str],
) -> None:
    assert lease_holder(kube, syncer_sa.namespace) is None
    cfg = write_config(config_text(vault, hub, unique))
    daemon = DaemonProcess(cfg, env_as, tmp_path / "daemon.log", extra_args=(
        "--leader-elect", "--leader-election-namespace", syncer_sa.namespace))
    try:
        wait_until(lambda: lease_holder(kube, syncer_sa.namespace), timeout=CONVERGE,
                   what="the Lease taken")
        daemon.wait_ready(timeout=CONVERGE)
        ns = namespace_factory(labels={"pss-rbac": unique}, prefix="rbac")
        wait_until(lambda: pull_secret_names(core, ns) == ["regcred"]
                   and read_secret(core, ns, "regcred"), timeout=CONVERGE,
                   what="the new namespace synced")
        assert daemon.metrics()["pullsecret_syncer_is_leader"] == 1.0
        assert daemon.terminate() == 128 + signal.SIGTERM
    finally:
        daemon.close()
    assert lease_holder(kube, syncer_sa.namespace) == "", "the Lease was not released"
    output = daemon.log_path.read_text(errors="replace")
    assert "released leadership" in output
    for sign in (*REFUSAL_SIGNS, "Traceback", *leak_values):
        assert sign not in output, output[-3000:]


@pytest.fixture
def foreign_lease(kube: Any, namespace_factory: Callable[..., str]) -> str:
    """A namespace other than the syncer's holding a Lease named like the syncer's."""
    ns = namespace_factory(prefix="rbac-other")
    api = kube.api_client()
    try:
        k8s.CoordinationV1Api(api).create_namespaced_lease(ns, k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=LEASE), spec=k8s.V1LeaseSpec(holder_identity="x")))
    finally:
        api.close()
    return ns


REFUSED = {
    "delete a namespace": ("DELETE", "/api/v1/namespaces/{ns}", None),
    "create a namespace": ("POST", "/api/v1/namespaces",
                           {"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "pss-rbac-never"}}),
    "label a namespace": ("PATCH", "/api/v1/namespaces/{ns}", None),
    "create a ConfigMap": ("POST", "/api/v1/namespaces/{ns}/configmaps",
                           {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "pss-rbac-never"}, "data": {"a": "b"}}),
    "read a Lease in another namespace": (
        "GET", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/" + LEASE, None),
    "update a Lease in another namespace": (
        "PUT", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/" + LEASE,
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": LEASE, "namespace": "{ns}"}, "spec": {"holderIdentity": "me"}}),
    "create a Lease in another namespace": (
        "POST", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "pss-rbac-never"}}),
    "list pods": ("GET", "/api/v1/pods", None),
    "read pods of a namespace": ("GET", "/api/v1/namespaces/{ns}/pods", None),
    "create a ServiceAccount": ("POST", "/api/v1/namespaces/{ns}/serviceaccounts",
                                {"apiVersion": "v1", "kind": "ServiceAccount",
                                 "metadata": {"name": "pss-rbac-never"}}),
    "delete a ServiceAccount": ("DELETE", "/api/v1/namespaces/{ns}/serviceaccounts/default",
                                None),
    # granted once, never called (tests/deploy/rbac_calls.py): taken away
    "read a namespace": ("GET", "/api/v1/namespaces/{ns}", None),
    "replace a Secret (update)": ("PUT", "/api/v1/namespaces/{ns}/secrets/pss-rbac-never",
                                  {"apiVersion": "v1", "kind": "Secret",
                                   "metadata": {"name": "pss-rbac-never"}}),
    "patch an Event": ("PATCH", "/api/v1/namespaces/{ns}/events/pss-rbac-never", {}),
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_the_shipped_serviceaccount_is_refused_what_spec_grants_nothing(
    what: str, syncer_sa: Identity, foreign_lease: str, core: Any,
) -> None:
    method, path, body = REFUSED[what]
    ns = foreign_lease
    if body is not None:
        body = json.loads(json.dumps(body).replace("{ns}", ns))
    resp = syncer_sa.http(method, path.format(ns=ns), body)
    assert resp.status_code == 403, f"{what}: {resp.status_code} {resp.text[:300]}"
    assert core.read_namespace(ns).status.phase == "Active"
