"""The Helm chart against the real apiserver of tests/stack (1.37; 1.33 in the oldest leg), with
the real `helm` given the admin kubeconfig.

What is proven here: the apiserver accepts every render (server-side dry run, PodSecurity
`restricted` admission warning on nothing); `helm install` creates exactly the chart's objects,
`helm upgrade` with another `config:` changes the ConfigMap and nothing else (no object is
recreated, the Deployment's pod template and so its ReplicaSet stay), `helm uninstall` removes
them all; with cleanupOnUninstall the post-delete hook creates its ServiceAccount, ClusterRole,
ClusterRoleBinding and Job only after the chart's objects are gone, and `--no-hooks` creates none;
the Job's command with the Job's own grants removes what the syncer wrote, and nothing else.
What is not: no kubelet runs here, so no Pod ever starts — the daemon's and the Job's pods are
objects (created under PodSecurity `restricted` enforcement), never processes; the stack runs
no Job controller, so the Job makes no pod; the Job's command runs as a subprocess with the hook
ServiceAccount's token instead of in its pod.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack import helm as helm_stack
from stack import procs, wait

from tests.integration.conftest import Result, wait_for_sa

pytestmark = pytest.mark.integration

CHART = str(helm_stack.CHART)
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/warn": "restricted"}
CHART_KINDS = ("deployments.apps,replicasets.apps,configmaps,services,serviceaccounts,"
               "roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,"
               "poddisruptionbudgets.policy,jobs.batch,"
               "clusterroles.rbac.authorization.k8s.io,"
               "clusterrolebindings.rbac.authorization.k8s.io")
CONFIG_A = {"mappings": [{"name": "team-a", "namespaces": {"patterns": ["team-a-*"]},
                          "credentials": ["hub"]}],
            "backends": {"vault": {"type": "vault", "address": "https://vault.example.com",
                                   "auth": {"method": "kubernetes", "role": "pss"}}},
            "credentials": {"hub": {"backend": "vault", "path": "registries/hub",
                                    "registry": "https://index.docker.io/v1/"}}}
CONFIG_B = {**CONFIG_A, "mappings": [{"name": "team-b", "namespaces": {"names": ["team-b"]},
                                      "credentials": ["hub"]}]}


# ---------------------------------------------------------------------------------------------
# helpers


def kubectl_path() -> str:
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    assert path, "kubectl not found (set KUBECTL or put kubectl on PATH)"
    return path


@pytest.fixture
def kubectl(kube: Any) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([kubectl_path(), "--kubeconfig", str(kube.kubeconfig), *args],
                              input=stdin, capture_output=True, text=True, timeout=120,
                              check=False)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stderr}"
        return proc
    return run


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    try:
        return helm_stack.find_binary()
    except procs.StackUnavailableError as exc:
        if os.environ.get("PSS_REQUIRE_STACK") == "1":
            pytest.fail(f"helm required (PSS_REQUIRE_STACK=1) but {exc}", pytrace=False)
        pytest.skip(f"helm unavailable: {exc} (set PSS_REQUIRE_STACK=1 to fail instead)")


@pytest.fixture
def helm(helm_binary: Path, kube: Any, tmp_path: Path) -> helm_stack.Helm:
    """helm with the admin kubeconfig and private Helm homes."""
    return helm_stack.Helm(binary=helm_binary, home=tmp_path / "helm",
                           kubeconfig=Path(kube.kubeconfig))


@pytest.fixture
def release(helm: helm_stack.Helm, unique: str,
            kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> Iterator[str]:
    """This test's release name. Afterwards the release is removed if it is still there
    (`--no-hooks`), and so is every object carrying its instance label, hooks included."""
    name = f"pss-{unique}"
    yield name
    listed = json.loads(helm.run("list", "--all-namespaces", "--all", "-o", "json").stdout)
    for found in listed:
        if found["name"] == name:
            helm.run("uninstall", name, "-n", found["namespace"], "--no-hooks", check=False)
    kubectl("delete", CHART_KINDS, "-A", "-l", f"app.kubernetes.io/instance={name}",
            "--ignore-not-found", "--wait=false", check=False)


def objects(kubectl: Callable[..., subprocess.CompletedProcess[str]],
            release: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every object of the chart's kinds that carries the release's instance label, anywhere:
    (kind, namespace or "", name) -> the object."""
    out = kubectl("get", CHART_KINDS, "-A", "-l", f"app.kubernetes.io/instance={release}",
                  "-o", "json").stdout
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in json.loads(out)["items"]}


def keys_of(docs: list[dict[str, Any]], namespace: str) -> set[tuple[str, str, str]]:
    cluster = {"ClusterRole", "ClusterRoleBinding"}
    return {(d["kind"], "" if d["kind"] in cluster else namespace, d["metadata"]["name"])
            for d in docs}


def values_file(tmp_path: Path, values: dict[str, Any]) -> list[str]:
    return helm_stack.values_args(values, tmp_path)


# ---------------------------------------------------------------------------------------------
# server-side dry run


RENDERS = {
    "defaults": {},
    "one-replica": {"replicas": 1},
    "all-options": None,  # tests/deploy/test_helm_chart.py ALL_OPTIONS
}


def all_options() -> dict[str, Any]:
    from tests.deploy.test_helm_chart import ALL_OPTIONS

    return ALL_OPTIONS


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_rendered_chart_is_accepted_by_a_server_side_dry_run_without_podsecurity_warnings(
    name: str, helm: helm_stack.Helm, kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace_factory: Callable[..., str], release: str, tmp_path: Path,
) -> None:
    ns = namespace_factory(labels=RESTRICTED, prefix="helm")
    values = RENDERS[name] if RENDERS[name] is not None else all_options()
    rendered = helm.run("template", release, CHART, "-n", ns,
                        *values_file(tmp_path, values)).stdout  # hooks included
    docs = helm_stack.documents(rendered)
    # No Prometheus Operator CRDs on this apiserver: the ServiceMonitor's shape is checked by the
    # unit tests; everything else goes to the server.
    sent = [d for d in docs if d["kind"] != "ServiceMonitor"]
    assert len(docs) - len(sent) == (1 if name == "all-options" else 0)
    proc = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
                   stdin=yaml.safe_dump_all(sent), check=False)
    assert proc.returncode == 0, f"the apiserver refused the chart:\n{proc.stderr}"
    assert "PodSecurity" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    for doc in sent:
        group = doc["apiVersion"].rpartition("/")[0]
        ref = f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"
        assert f"{ref} serverside-applied (server dry run)" in lines, (ref, proc.stdout)
    if name == "all-options":
        assert {d["kind"] for d in sent} >= {"Job", "PodDisruptionBudget", "Role"}
    # nothing was persisted
    assert objects(kubectl, release) == {}


def test_podsecurity_check_of_the_dry_run_catches_a_weakened_pod(
    helm: helm_stack.Helm, kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace_factory: Callable[..., str], release: str,
) -> None:
    """The previous test could not pass by accident: the same render with the container's
    capabilities no longer dropped is warned about."""
    ns = namespace_factory(labels=RESTRICTED, prefix="helm")
    docs = helm_stack.documents(helm.run("template", release, CHART, "-n", ns,
                                         "--show-only", "templates/deployment.yaml").stdout)
    (deployment,) = docs
    del deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "capabilities"]
    proc = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
                   stdin=yaml.safe_dump(deployment))
    assert "would violate PodSecurity \"restricted:latest\"" in proc.stderr, proc.stderr
    assert "unrestricted capabilities" in proc.stderr


# ---------------------------------------------------------------------------------------------
# install, upgrade, uninstall


def chart_objects(found: dict[tuple[str, str, str], dict[str, Any]]) -> dict[
        tuple[str, str, str], dict[str, Any]]:
    """Without what controllers made from them (the Deployment's ReplicaSet)."""
    return {k: v for k, v in found.items() if k[0] != "ReplicaSet"}


def test_install_upgrade_uninstall_create_change_and_remove_exactly_the_charts_objects(
    helm: helm_stack.Helm, kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace_factory: Callable[..., str], release: str, tmp_path: Path,
) -> None:
    ns = namespace_factory(labels=RESTRICTED, prefix="helm")
    installed = helm.run("install", release, CHART, "-n", ns,
                         *values_file(tmp_path, {"config": CONFIG_A}))
    # NOTES.txt: how to check that it works
    notes = installed.stdout
    for hint in (f"kubectl -n {ns} logs deployment/{release}-pullsecret-syncer",
                 "curl -s localhost:8080/readyz", "/metrics",
                 f"kubectl -n {ns} exec deployment/{release}-pullsecret-syncer -- "
                 "pullsecret-syncer plan --config /etc/pullsecret-syncer/config.yaml",
                 "get lease pullsecret-syncer"):
        assert hint in notes, notes

    manifest = helm_stack.documents(helm.run("get", "manifest", release, "-n", ns).stdout)
    expected = keys_of(manifest, ns)
    assert {k[0] for k in expected} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    before = objects(kubectl, release)
    assert set(chart_objects(before)) == expected
    config_key = ("ConfigMap", ns, f"{release}-pullsecret-syncer-config")
    assert yaml.safe_load(before[config_key]["data"]["config.yaml"])["mappings"] == (
        CONFIG_A["mappings"])

    # The Deployment controller made a ReplicaSet, and the ReplicaSet made Pods that PodSecurity
    # `restricted` (enforced in this namespace) admitted. No kubelet: they never run.
    def replica_sets() -> list[str]:
        return [k[2] for k in objects(kubectl, release) if k[0] == "ReplicaSet"]
    (replica_set,) = wait.eventually("the Deployment's ReplicaSet", replica_sets)
    pods = wait.eventually("the ReplicaSet's pods", lambda: json.loads(kubectl(
        "-n", ns, "get", "pods", "-l", f"app.kubernetes.io/instance={release}",
        "-o", "json").stdout)["items"] or None)
    assert {p["metadata"]["ownerReferences"][0]["name"] for p in pods} == {replica_set}
    assert all(p["status"]["phase"] == "Pending" for p in pods)
    before = objects(kubectl, release)  # now with the ReplicaSet

    upgraded = helm.run("upgrade", release, CHART, "-n", ns,
                        *values_file(tmp_path, {"config": CONFIG_B}))
    assert "has been upgraded" in upgraded.stdout
    after = objects(kubectl, release)
    assert set(after) == set(before), "an upgrade of the config adds or removes nothing"
    for key, obj in after.items():
        old = before[key]
        assert obj["metadata"]["uid"] == old["metadata"]["uid"], f"{key} was recreated"
        if key == config_key:
            continue
        if "generation" in old["metadata"]:  # Deployment, ReplicaSet, PDB: status may change
            assert obj["metadata"]["generation"] == old["metadata"]["generation"], key
            assert obj["spec"] == old["spec"], key
        else:
            assert obj["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"], key
    assert yaml.safe_load(after[config_key]["data"]["config.yaml"])["mappings"] == (
        CONFIG_B["mappings"])
    assert after[config_key]["metadata"]["resourceVersion"] != (
        before[config_key]["metadata"]["resourceVersion"])
    assert replica_sets() == [replica_set], "the pods were not rolled"
    assert {p["metadata"]["uid"] for p in json.loads(kubectl(
        "-n", ns, "get", "pods", "-l", f"app.kubernetes.io/instance={release}",
        "-o", "json").stdout)["items"]} == {p["metadata"]["uid"] for p in pods}
    history = json.loads(helm.run("history", release, "-n", ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]

    removed = helm.run("uninstall", release, "-n", ns)
    assert f'release "{release}" uninstalled' in removed.stdout
    assert chart_objects(objects(kubectl, release)) == {}
    # the garbage collector takes the ReplicaSet and its Pods with the Deployment
    wait.eventually("the ReplicaSet collected", lambda: not replica_sets())
    assert json.loads(helm.run("list", "-n", ns, "--all", "-o", "json").stdout) == []
    leftover = kubectl("-n", ns, "get", "secrets", "-l", f"owner=helm,name={release}",
                       "-o", "name").stdout
    assert leftover == "", "helm's release records are gone too"


# ---------------------------------------------------------------------------------------------
# cleanupOnUninstall


def hook_objects(kubectl: Callable[..., subprocess.CompletedProcess[str]],
                 release: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {k: v for k, v in objects(kubectl, release).items()
            if v["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "cleanup"}


def test_no_hooks_uninstall_creates_no_cleanup_job(
    helm: helm_stack.Helm, kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace_factory: Callable[..., str], release: str,
) -> None:
    ns = namespace_factory(labels=RESTRICTED, prefix="helm")
    helm.run("install", release, CHART, "-n", ns, "--set", "cleanupOnUninstall=true")
    assert hook_objects(kubectl, release) == {}, "hooks run at uninstall, not at install"
    assert set(chart_objects(objects(kubectl, release))) == keys_of(helm_stack.documents(
        helm.run("get", "manifest", release, "-n", ns).stdout), ns)
    helm.run("uninstall", release, "-n", ns, "--no-hooks")
    assert chart_objects(objects(kubectl, release)) == {}
    assert hook_objects(kubectl, release) == {}


def test_uninstall_runs_the_cleanup_job_after_the_charts_objects_are_gone(
    helm: helm_stack.Helm, kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace_factory: Callable[..., str], release: str,
) -> None:
    """The hook Job is created, after the chart's objects were deleted, with its own
    ServiceAccount, ClusterRole and binding created before it. Its pod cannot run here (no
    kubelet), so helm times out waiting for the Job and says so; the release is removed anyway,
    helm deletes the hook's ServiceAccount and grants, and the failed Job stays for its logs."""
    ns = namespace_factory(labels=RESTRICTED, prefix="helm")
    helm.run("install", release, CHART, "-n", ns, "--set", "cleanupOnUninstall=true")
    installed = set(chart_objects(objects(kubectl, release)))
    name = f"{release}-pullsecret-syncer-cleanup"

    result: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: result.append(helm.run(
        "uninstall", release, "-n", ns, "--timeout", "10s", check=False, timeout=120)))
    runner.start()
    try:
        seen = wait.eventually("the cleanup Job", lambda: (
            lambda found: found if ("Job", ns, name) in found else None)(objects(kubectl, release)),
            timeout=60)
    finally:
        runner.join(timeout=120)
    # when the Job exists, its grants exist and the chart's own objects are already deleted
    assert {k for k in seen if k[0] != "ReplicaSet"} == {
        ("ServiceAccount", ns, name), ("ClusterRole", "", name),
        ("ClusterRoleBinding", "", name), ("Job", ns, name)}
    assert not installed & set(seen)
    job = seen[("Job", ns, name)]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    (container,) = pod["containers"]
    assert container["command"] == ["/opt/venv/bin/pullsecret-syncer", "uninstall"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-delete"
    # The stack's controller-manager runs no Job controller, so no pod is ever made for it (its
    # template passed PodSecurity `restricted` in the dry-run test above).

    (proc,) = result
    assert proc.returncode == 1
    assert "uninstallation completed with 1 error(s)" in proc.stderr, proc.stderr
    assert "timed out waiting for the condition" in proc.stderr, proc.stderr
    assert json.loads(helm.run("list", "-n", ns, "--all", "-o", "json").stdout) == []
    # a failed Job stays (for its logs); helm deleted its ServiceAccount and grants
    assert set(hook_objects(kubectl, release)) == {("Job", ns, name)}
    kubectl("-n", ns, "delete", "job", name, "--cascade=background")


def test_cleanup_jobs_command_with_the_jobs_own_grants_removes_what_the_syncer_wrote(
    helm: helm_stack.Helm, kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace_factory: Callable[..., str], release: str, kube: Any, core: Any,
    cli: Callable[..., Result], leak_values: list[str], stack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """What the hook Job's pod would do, run here as a subprocess: the Job's command line with a
    token of the Job's ServiceAccount, bound to the Job's ClusterRole as the chart renders them."""
    from kubernetes import client as k8s

    ns = namespace_factory(prefix="helm")
    hooked = helm_stack.documents(helm.run(
        "template", release, CHART, "-n", ns, "--set", "cleanupOnUninstall=true",
        "--show-only", "templates/cleanup-job.yaml").stdout)
    (job,) = [d for d in hooked if d["kind"] == "Job"]
    kubectl("create", "-f", "-", stdin=yaml.safe_dump_all([d for d in hooked if d is not job]))
    account = job["spec"]["template"]["spec"]["serviceAccountName"]
    (container,) = job["spec"]["template"]["spec"]["containers"]

    # what a sync of this release leaves: our Secret and our entry between another writer's,
    # in two namespaces; and another installation's Secret and entry beside them, which stay
    instance = f"{ns}.{release}"
    apps = [namespace_factory(prefix="app") for _ in range(2)]
    for app in apps:
        wait_for_sa(core, app)
        for name, owner in (("regcred", instance), ("other-release", "default")):
            core.create_namespaced_secret(app, k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name=name, labels={
                    "app.kubernetes.io/managed-by": "pullsecret-syncer"}, annotations={
                    "pullsecret-syncer.io/mapping": "m", "pullsecret-syncer.io/credentials": "c",
                    "pullsecret-syncer.io/instance": owner,
                    "pullsecret-syncer.io/written-as": f"{app}/{name}"}),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": '{"auths": {}}'}))
        core.create_namespaced_secret(app, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="theirs-a"), string_data={"k": "not ours"}))
        # a Secret this release adopted (adoptExisting): handed back, not deleted
        core.create_namespaced_secret(app, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="adopted", labels={
                "app.kubernetes.io/managed-by": "pullsecret-syncer", "team": "a"}, annotations={
                "pullsecret-syncer.io/mapping": "m", "pullsecret-syncer.io/credentials": "c",
                "pullsecret-syncer.io/instance": instance, "pullsecret-syncer.io/adopted": "true",
                "pullsecret-syncer.io/written-as": f"{app}/adopted"}),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": '{"auths": {}}'}))
        core.patch_namespaced_service_account("default", app, {
            "metadata": {"annotations": {
                "pullsecret-syncer.io/image-pull-secrets": f"{instance}:regcred,other-release"}},
            "imagePullSecrets": [{"name": "theirs-a"}, {"name": "regcred"},
                                 {"name": "theirs-b"}, {"name": "other-release"}]})
    theirs = {app: core.read_namespaced_secret("theirs-a", app).metadata.resource_version
              for app in apps}

    token = kubectl("-n", ns, "create", "token", account, "--duration=10m").stdout.strip()
    leak_values.append(token)
    kubeconfig = tmp_path / "job-kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "job",
        "clusters": [{"name": "job", "cluster": {"server": kube.server,
                                                 "certificate-authority": str(kube.ca_file)}}],
        "users": [{"name": "job", "user": {"token": token}}],
        "contexts": [{"name": "job", "context": {"cluster": "job", "user": "job"}}]}))
    kubeconfig.chmod(0o600)
    assert container["command"][1] == "uninstall"
    argv = [*container["command"][1:], *container["args"], "--kubeconfig", str(kubeconfig)]

    dry = cli(*argv, "--dry-run", env=stack_env)
    assert dry.code == 0, dry.output
    for app in apps:
        assert f"unpatch serviceaccount {app}/default -regcred" in dry.stdout.splitlines()
        assert core.read_namespaced_secret("regcred", app)

    done = cli(*argv, env=stack_env)
    assert done.code == 0, done.output
    for app in apps:
        assert f"deleted secret {app}/regcred (c)" in done.stdout.splitlines(), done.stdout
        sa = core.read_namespaced_service_account("default", app)
        assert [r.name for r in sa.image_pull_secrets] == [
            "theirs-a", "theirs-b", "other-release"]
        assert sa.metadata.annotations["pullsecret-syncer.io/image-pull-secrets"] == (
            "other-release")
        names = [s.metadata.name for s in core.list_namespaced_secret(app).items]
        assert "regcred" not in names and "other-release" in names
        assert core.read_namespaced_secret("theirs-a", app).metadata.resource_version == (
            theirs[app])
        handed_back = core.read_namespaced_secret("adopted", app).metadata
        assert handed_back.labels == {"team": "a"}, handed_back.labels
        assert not [k for k in handed_back.annotations or {} if "pullsecret-syncer" in k]
    again = cli(*argv, env=stack_env)
    assert again.code == 0 and again.stdout == "", again.output

    # and the Job may do no more than that
    who = f"--as=system:serviceaccount:{ns}:{account}"
    for verb, resource, allowed in [
        ("delete", "secrets", "yes"), ("patch", "serviceaccounts", "yes"),
        ("patch", "secrets", "yes"),
        ("create", "secrets", "no"), ("update", "secrets", "no"), ("get", "namespaces", "no"),
        ("watch", "secrets", "no"), ("create", "pods/eviction", "no"),
    ]:
        answer = kubectl("auth", "can-i", verb, resource, "-A", who, check=False).stdout.strip()
        assert answer == allowed, (verb, resource, answer)
