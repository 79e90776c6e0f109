"""The shipped manifests against a real kube-apiserver (tests/stack: 1.37, and the oldest
supported minor in CI's second leg): every kustomize render and the kind environment's dev Vault
are accepted by `kubectl apply --dry-run=server`, which runs the server's validation and
admission without persisting anything; and the Deployment's Pod is admitted by the PodSecurity
admission plugin under the `restricted` standard."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.layout import DEPLOY, KUSTOMIZATIONS

pytestmark = pytest.mark.integration

# Namespaces the manifests put objects in. A server-side dry run of a namespaced object needs its
# namespace to exist for real (the dry-run Namespace object is not persisted).
NAMESPACES = ("pullsecret-syncer", "vault")


def kubectl_path() -> str:
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    assert path, "kubectl not found (set KUBECTL or put kubectl >= 1.21 on PATH)"
    return path


class Kubectl:
    """kubectl bound to the test cluster's admin kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [kubectl_path(), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stderr}"
        return proc


@pytest.fixture(scope="module")
def kubectl(kube: Any) -> Iterator[Kubectl]:
    k = Kubectl(Path(kube.kubeconfig))
    created = []
    for ns in NAMESPACES:
        phase = k("get", "namespace", ns, "-o", "jsonpath={.status.phase}", check=False)
        if phase.returncode == 0 and phase.stdout == "Terminating":
            k("wait", "--for=delete", f"namespace/{ns}", "--timeout=90s")
        elif phase.returncode == 0:
            continue
        k("create", "namespace", ns)
        created.append(ns)
    yield k
    # Gone before the next test module runs: a later test may need these names for real.
    for ns in created:
        k("delete", "namespace", ns, "--wait=true", "--timeout=90s", check=False)


@pytest.fixture(scope="module")
def served_api_versions(kubectl: Kubectl) -> set[str]:
    return set(kubectl("api-versions").stdout.split())


def render(name: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl_path(), "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def for_server(docs: list[dict[str, Any]], served: set[str]) -> list[dict[str, Any]]:
    """The documents, each of an API version this server serves (every supported one does)."""
    for doc in docs:
        assert doc["apiVersion"] in served, (
            f"{doc['kind']} {doc['metadata']['name']}: {doc['apiVersion']} is not served")
    return docs


def object_ref(doc: dict[str, Any]) -> str:
    """How kubectl names an object in its output: `deployment.apps/pullsecret-syncer`."""
    group = doc["apiVersion"].rpartition("/")[0]
    resource = doc["kind"].lower() + (f".{group}" if group else "")
    return f"{resource}/{doc['metadata']['name']}"


def server_dry_run(kubectl: Kubectl, docs: list[dict[str, Any]]) -> str:
    proc = kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs), check=False
    )
    assert proc.returncode == 0, f"the apiserver refused the manifests:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_overlay_is_accepted_by_the_apiserver(
    name: str, kubectl: Kubectl, served_api_versions: set[str]
) -> None:
    docs = for_server(render(name), served_api_versions)
    out = server_dry_run(kubectl, docs)
    lines = out.splitlines()
    for doc in docs:
        ref = object_ref(doc)
        assert any(
            line.startswith(ref + " ") and line.endswith("(server dry run)") for line in lines
        ), f"{ref} missing from:\n{out}"


def test_dev_vault_manifest_is_accepted_by_the_apiserver(
    kubectl: Kubectl, served_api_versions: set[str]
) -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kind" / "vault.yaml").read_text()) if d]
    out = server_dry_run(kubectl, for_server(docs, served_api_versions))
    for doc in docs:
        assert object_ref(doc) in out


def test_server_dry_run_leaves_the_cluster_unchanged(kubectl: Kubectl) -> None:
    for name in sorted(KUSTOMIZATIONS):
        server_dry_run(
            kubectl, for_server(render(name), set(kubectl("api-versions").stdout.split()))
        )
    for ref in (
        "clusterrole/pullsecret-syncer",
        "clusterrolebinding/pullsecret-syncer",
        "clusterrolebinding/vault-tokenreview",
    ):
        proc = kubectl("get", ref, check=False)
        assert proc.returncode != 0 and "NotFound" in proc.stderr, ref
    for ns in NAMESPACES:
        listed = kubectl(
            "-n", ns, "get", "deployments,configmaps,services,roles,rolebindings", "-o", "name"
        ).stdout.split()
        assert not [ref for ref in listed if "pullsecret-syncer" in ref or "vault" in ref], listed


def pod_of(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The Pod the Deployment's ReplicaSet would create (its template), in `namespace`."""
    template = deployment["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {**template.get("metadata", {}), "name": "pss-admission-probe",
                         "namespace": namespace},
            "spec": template["spec"]}


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_the_deployment_pod_is_admitted_under_the_restricted_pod_security_standard(
    name: str, kubectl: Kubectl, unique: str
) -> None:
    ns = f"pss-restricted-{name}-{unique}"
    kubectl("create", "namespace", ns)
    try:
        kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
                "pod-security.kubernetes.io/enforce-version=latest")
        (deployment,) = [d for d in render(name) if d["kind"] == "Deployment"]
        pod = pod_of(deployment, ns)
        kubectl("-n", ns, "create", "serviceaccount", pod["spec"]["serviceAccountName"])
        admitted = kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod),
                           check=False)
        assert admitted.returncode == 0, admitted.stderr
        assert "PodSecurity" not in admitted.stderr  # no warnings either

        # the control: the same Pod with privileges added is refused, so the check is live
        loose = pod_of(deployment, ns)
        loose["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        refused = kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(loose),
                          check=False)
        assert refused.returncode != 0 and 'violates PodSecurity "restricted' in refused.stderr
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
