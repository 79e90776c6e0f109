"""The Helm chart (deploy/helm/pullsecret-syncer) as the real `helm` renders it — no cluster here.

`helm lint`, `helm template` with the default values and with every documented option, the values
schema (bad values refused with a message naming the key), and the comparison docs/install.md
promises:
the chart's RBAC rules and pod security equal those of the kustomize base as `kubectl kustomize`
renders it (plus components/recycle-pods with recyclePods.rbac=true).
tests/integration/test_helm.py sends the same renders to a real apiserver and installs the chart.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from stack import helm as helm_stack
from stack import kube as kube_stack
from stack import procs

REPO = Path(__file__).resolve().parents[2]
CHART = helm_stack.CHART
KUSTOMIZE = REPO / "deploy" / "kubernetes"
DOCS = REPO / "docs" / "install-helm.md"
NAME = "pullsecret-syncer"  # release name and namespace: the kustomize base's object names
DIGEST = "sha256:" + "ab" * 32

# Every value of values.yaml set to something other than its default.
ALL_OPTIONS: dict[str, Any] = {
    "nameOverride": "pss",
    "fullnameOverride": "platform-pss",
    "image": {"repository": "registry.example.com/platform/pullsecret-syncer", "tag": "0.1.0",
              "digest": DIGEST, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "platform-registry"}],
    "replicas": 3,
    "leaderElection": {"enabled": True},
    "logFormat": "text",
    "logLevel": "debug",
    "kubeQps": 7.5,
    "kubeBurst": 15,
    "config": {
        "version": 1,
        "defaults": {"refreshInterval": "30s", "secretName": "regcred",
                     "serviceAccounts": ["default"], "prune": False},
        "backends": {
            "vault": {"type": "vault", "address": "https://vault.example.internal:8200",
                      "tls": {"caCert": "/etc/pullsecret-syncer-tls/ca.crt"},
                      "auth": {"method": "token", "tokenFile": "/var/run/vault/token"}},
            "aws": {"type": "aws-secrets-manager", "region": "eu-west-1"},
        },
        "credentials": {
            "dockerhub": {"backend": "vault", "path": "registries/dockerhub",
                          "registry": "https://index.docker.io/v1/"},
            "ghcr": {"backend": "aws", "secretId": "prod/registry/ghcr"},
        },
        "mappings": [{"name": "workloads",
                      "namespaces": {"patterns": ["team-*"], "exclude": ["team-sandbox"]},
                      "credentials": ["dockerhub", "ghcr"], "serviceAccounts": ["*"],
                      "recyclePods": True}],
    },
    "serviceAccount": {"annotations": {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/pullsecret-syncer"}},
    "extraEnv": [{"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}],
    "extraVolumes": [{"name": "vault-token", "secret": {"secretName": "vault-token"}},
                     {"name": "vault-ca", "configMap": {"name": "vault-ca"}}],
    "extraVolumeMounts": [
        {"name": "vault-token", "mountPath": "/var/run/vault", "readOnly": True},
        {"name": "vault-ca", "mountPath": "/etc/pullsecret-syncer-tls", "readOnly": True}],
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                  "limits": {"cpu": "1", "memory": "512Mi"}},
    "podAnnotations": {"example.com/team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform",
                     "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role.example.com/platform", "operator": "Exists"}]}]}}},
    "service": {"port": 9090, "annotations": {"example.com/scrape": "yes"}},
    "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                       "labels": {"release": "prometheus"}},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
    "recyclePods": {"rbac": True},
    "cleanupOnUninstall": True,
}


# ---------------------------------------------------------------------------------------------
# rendering


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> helm_stack.Helm:
    try:
        binary = helm_stack.find_binary()
    except procs.StackUnavailableError as exc:
        if os.environ.get("PSS_REQUIRE_STACK") == "1":
            pytest.fail(f"helm required (PSS_REQUIRE_STACK=1) but {exc}", pytrace=False)
        pytest.skip(f"helm unavailable: {exc} (set PSS_REQUIRE_STACK=1 to fail instead)")
    return helm_stack.Helm(binary=binary, home=tmp_path_factory.mktemp("helm-home"))


_RENDERS: dict[str, list[dict[str, Any]]] = {}


def template(helm: helm_stack.Helm, values: dict[str, Any] | None = None, *args: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    return helm.run("template", NAME, str(CHART), "--namespace", NAME,
                    *helm_stack.values_args(values, helm.home), *args, check=check)


def render(helm: helm_stack.Helm, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    key = json.dumps(values, sort_keys=True)
    if key not in _RENDERS:
        _RENDERS[key] = helm_stack.documents(template(helm, values).stdout)
    return copy.deepcopy(_RENDERS[key])


def kustomize(*, recycle_pods: bool = False, tmp: Path) -> list[dict[str, Any]]:
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    assert kubectl, "kubectl not found: the comparison renders the base with `kubectl kustomize`"
    target = KUSTOMIZE / "base"
    if recycle_pods:  # an overlay of base + component; kustomize wants relative paths
        target = tmp / "base-plus-recycle-pods"
        target.mkdir()
        rel = os.path.relpath(KUSTOMIZE, target)
        (target / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [f"{rel}/base"], "components": [f"{rel}/components/recycle-pods"]}))
    proc = subprocess.run([kubectl, "kustomize", str(target)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return helm_stack.documents(proc.stdout)


def pick(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in pick(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def hooks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]


def pod_of(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def daemon_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = pod_of(one(docs, "Deployment"))["containers"]
    return container


def leaf_paths(value: Any, prefix: str = "") -> set[str]:
    """`image.tag`, `replicas`, … — a list or a non-empty map under `config`, `resources`, … is
    one value (its items are Kubernetes objects, documented there)."""
    if isinstance(value, dict) and value and prefix not in OPAQUE:
        return {p for k, v in value.items() for p in leaf_paths(v, f"{prefix}.{k}" if prefix
                                                                   else k)}
    return {prefix}


OPAQUE = {"config", "resources", "affinity", "podAnnotations", "nodeSelector",
          "serviceAccount.annotations", "service.annotations", "serviceMonitor.labels"}


def default_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def coalesce(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Values as Helm merges them: maps key by key, `null` deletes, anything else replaces."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = value
    return merged


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def cli_args(argv: list[str]) -> Any:
    from syncer import cli

    return cli.parser().parse_args(argv)


def entrypoint() -> list[str]:
    lines = (REPO / "deploy" / "Dockerfile").read_text().splitlines()
    last = [line for line in lines if line.startswith("ENTRYPOINT ")][-1]
    parsed: list[str] = json.loads(last.removeprefix("ENTRYPOINT "))
    return parsed


# ---------------------------------------------------------------------------------------------
# lint, render, schema


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_chart_passes_helm_lint_strict(
    helm: helm_stack.Helm, values: dict[str, Any] | None,
) -> None:
    proc = helm.run("lint", "--strict", str(CHART), *helm_stack.values_args(values, helm.home))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_all_options_sets_every_documented_value() -> None:
    assert leaf_paths(default_values()) <= leaf_paths(ALL_OPTIONS)
    for path in leaf_paths(default_values()):
        default, chosen = default_values(), ALL_OPTIONS
        for part in path.split("."):
            default, chosen = default[part], chosen[part]
        # every option on: a switch that is on by default stays on
        assert chosen != default or chosen is True, f"ALL_OPTIONS leaves {path} at its default"


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_render_is_a_list_of_objects_in_the_release_namespace_with_valid_values(
    helm: helm_stack.Helm, values: dict[str, Any] | None,
) -> None:
    merged = coalesce(default_values(), values or {})
    jsonschema.Draft202012Validator(schema()).validate(merged)
    docs = render(helm, values)
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        meta = doc["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]), meta
        assert meta["labels"]["app.kubernetes.io/instance"] == NAME
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if doc["kind"] not in cluster_scoped:
            assert meta["namespace"] == NAME, meta
    kinds = sorted(d["kind"] for d in docs)
    if values is None:
        assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                "RoleBinding", "ConfigMap", "Deployment", "Service",
                                "PodDisruptionBudget"])
    else:
        assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                "RoleBinding", "ConfigMap", "Deployment", "Service",
                                "PodDisruptionBudget", "ServiceMonitor",
                                "ClusterRole", "ClusterRoleBinding",  # recyclePods.rbac
                                "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"])


def test_default_render_names_objects_like_the_kustomize_base(
    helm: helm_stack.Helm, tmp_path: Path,
) -> None:
    ours = {(d["kind"], d["metadata"]["name"]) for d in render(helm)}
    theirs = {(d["kind"], d["metadata"]["name"]) for d in kustomize(tmp=tmp_path)}
    # the release namespace is Helm's (`--namespace … --create-namespace`), not the chart's
    assert ours == theirs - {("Namespace", NAME)}


@pytest.mark.parametrize(("values", "message"), [
    ({"replicas": -1}, "at '/replicas': minimum: got -1, want 1"),
    ({"replicas": 0}, "at '/replicas': minimum: got 0, want 1"),
    ({"replicas": "two"}, "at '/replicas': got string, want integer"),
    ({"replica": 2}, "at '': additional properties 'replica' not allowed"),
    ({"image": {"repository": "x", "tagg": "1"}},
     "at '/image': additional properties 'tagg' not allowed"),
    ({"cleanupOnUninstall": "yes"}, "at '/cleanupOnUninstall': got string, want boolean"),
    ({"logLevel": "verbose"}, "at '/logLevel': value must be one of"),
    ({"kubeQps": 0}, "at '/kubeQps': exclusiveMinimum: got 0, want 0"),
    ({"image": {"repository": "x", "digest": "latest"}}, "at '/image/digest': '"),
    ({"config": {"version": 1, "backends": {}, "credentials": {}, "mappings": [],
                 "refreshInterval": "1m"}},
     "at '/config': additional properties 'refreshInterval' not allowed"),
    ({"config": {"mappings": [{"name": "team-a", "credentials": ["registry"]}]}},
     "at '/config/mappings/0': missing property 'namespaces'"),
    ({"config": {"version": 2}}, "at '/config/version': value must be 1"),
    ({"config": {"mappings": [{"name": "team a", "namespaces": {"names": ["a"]},
                               "credentials": ["x"]}]}}, "at '/config/mappings/0/name': '"),
], ids=["negative-replicas", "zero-replicas", "replicas-string", "unknown-key",
        "unknown-nested-key", "boolean-as-string", "bad-enum", "zero-qps", "bad-digest",
        "config-unknown-key", "config-missing-key", "config-version", "config-bad-name"])
def test_bad_values_are_refused_by_the_schema_naming_the_key(
    helm: helm_stack.Helm, values: dict[str, Any], message: str,
) -> None:
    proc = template(helm, values, check=False)
    assert proc.returncode == 1
    assert "values don't meet the specifications of the schema(s)" in proc.stderr
    assert message in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_bad_value_given_with_set_is_refused_too(helm: helm_stack.Helm) -> None:
    proc = template(helm, None, "--set", "replicas=-1", "--set", "podDisruptionBudgett=1",
                    check=False)
    assert proc.returncode == 1
    assert "at '/replicas': minimum: got -1, want 1" in proc.stderr
    assert "additional properties 'podDisruptionBudgett' not allowed" in proc.stderr


def test_values_schema_embeds_the_current_config_schema() -> None:
    assert (CHART / "values.schema.json").read_text() == (
        helm_stack.values_schema_with_current_config()), (
        "values.schema.json is stale: run `make schema`")


def patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items()
                for p in ([v] if k == "pattern" and isinstance(v, str) else patterns(v))]
    if isinstance(node, list):
        return [p for v in node for p in patterns(v)]
    return []


PATTERN_SAMPLES = [
    "https://index.docker.io/v1/", "docker.io", "harbor.example.com:8443/v2/", "*.example.com",
    "ghcr.io", "127.0.0.1:5000", "[::1]:5000", "https://", "*.", "a b",
    "pull-secrets", "example.com/team", "x" * 63, "x" * 64, "-bad", "a/b/c", "/x",
    "regcred", "team-a", "1m", "30s", "1h30m", "0s", "0", "123456789012",
]


def test_embedded_config_schema_patterns_are_portable_and_never_stricter() -> None:
    original = patterns(json.loads((REPO / "config" / "schema.json").read_text()))
    embedded = patterns(schema()["properties"]["config"])
    assert len(original) == len(embedded)
    for before, after in zip(original, embedded, strict=True):
        for construct in ("(?=", "(?!", "(?<=", "(?<!", "(?P<"):
            assert construct not in after, after
        for sample in PATTERN_SAMPLES:  # dropping assertions only widens what matches
            if re.search(before, sample):
                assert re.search(after, sample), (before, after, sample)
    assert helm_stack.portable_pattern(r"^(?=[^/]{1,3}/)a(?P<h>b)[(?=]\(?!x)(?!y)$") == (
        r"^a(?:b)[(?=]\(?!x)$")  # a class and an escaped paren are not assertions


def test_every_value_has_a_schema_entry_with_a_description() -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        assert node.get("description"), f"{path or '(root)'} has no description"
        if node.get("additionalProperties") is False and path != "config":
            for key, sub in node["properties"].items():
                walk(sub, f"{path}.{key}" if path else key)
    walk(schema(), "")
    assert schema()["additionalProperties"] is False
    assert set(schema()["properties"]) == set(default_values()) | {"global"}


# ---------------------------------------------------------------------------------------------
# the same RBAC and pod security as the kustomize base (docs/install.md)


def rbac(docs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Rules of every (Cluster)Role and roleRef + subjects of every binding, by kind and name."""
    out: dict[tuple[str, str], Any] = {}
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        if doc["kind"] in ("ClusterRole", "Role"):
            out[key] = doc["rules"]
        elif doc["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            out[key] = {"roleRef": doc["roleRef"], "subjects": doc["subjects"]}
    return out


@pytest.mark.parametrize("recycle_pods", [False, True], ids=["base", "base+recycle-pods"])
def test_rbac_equals_the_kustomize_base(
    helm: helm_stack.Helm, tmp_path: Path, recycle_pods: bool,
) -> None:
    values = {"recyclePods": {"rbac": True}} if recycle_pods else None
    ours = rbac([d for d in render(helm, values) if d not in hooks(render(helm, values))])
    theirs = rbac(kustomize(recycle_pods=recycle_pods, tmp=tmp_path))
    assert ours == theirs
    assert (("ClusterRole", f"{NAME}-recycle-pods") in ours) is recycle_pods


@pytest.mark.parametrize("recycle_pods", [False, True], ids=["base", "base+recycle-pods"])
def test_rbac_grants_exactly_the_verbs_the_code_calls(
    helm: helm_stack.Helm, recycle_pods: bool,
) -> None:
    from tests.deploy import rbac_calls

    values = {"recyclePods": {"rbac": True}} if recycle_pods else None
    docs = [d for d in render(helm, values) if d not in hooks(render(helm, values))]
    rules = [rule for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"]]
    wanted = rbac_calls.base_calls() | (rbac_calls.recycle_calls() if recycle_pods else set())
    assert rbac_calls.granted(rules) == wanted


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_pods_are_hardened_exactly_like_the_kustomize_base(
    helm: helm_stack.Helm, tmp_path: Path, values: dict[str, Any] | None,
) -> None:
    base = kustomize(tmp=tmp_path)
    base_pod = pod_of(one(base, "Deployment"))
    (base_container,) = base_pod["containers"]
    docs = render(helm, values)
    pods = [pod_of(one(docs, "Deployment")), *(pod_of(j) for j in pick(docs, "Job"))]
    assert len(pods) == (2 if values else 1)
    for pod in pods:
        assert pod["securityContext"] == base_pod["securityContext"]
        assert pod["automountServiceAccountToken"] == base_pod["automountServiceAccountToken"]
        for key in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
            assert key not in pod and key not in base_pod
        (container,) = pod["containers"]
        assert container["securityContext"] == base_container["securityContext"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        # the read-only root filesystem's one writable place, as in the base
        assert mounts["tmp"]["mountPath"] == "/tmp"
        tmp_volume = next(v for v in pod["volumes"] if v["name"] == "tmp")
        assert tmp_volume == next(v for v in base_pod["volumes"] if v["name"] == "tmp")
    for sa in pick(docs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] == one(base, "ServiceAccount")[
            "automountServiceAccountToken"]


def test_default_deployment_matches_the_base_apart_from_helm_labels(
    helm: helm_stack.Helm, tmp_path: Path,
) -> None:
    ours, theirs = one(render(helm), "Deployment"), one(kustomize(tmp=tmp_path), "Deployment")
    for key in ("replicas", "revisionHistoryLimit", "strategy"):
        assert ours["spec"][key] == theirs["spec"][key], key
    pod, base_pod = pod_of(ours), pod_of(theirs)
    for key in ("terminationGracePeriodSeconds", "serviceAccountName"):
        assert pod[key] == base_pod[key], key
    (c,), (b,) = pod["containers"], base_pod["containers"]
    for key in ("name", "image", "imagePullPolicy", "ports", "livenessProbe", "readinessProbe",
                "resources", "env", "volumeMounts"):
        assert c[key] == b[key], key
    assert [v["name"] for v in pod["volumes"]] == [v["name"] for v in base_pod["volumes"]]
    # the base's flags, plus the chart's explicit log level and API limits (the daemon defaults)
    assert c["args"] == [*b["args"], "--log-level", "info", "--kube-qps", "20",
                         "--kube-burst", "40"]
    parsed = cli_args([*entrypoint()[1:], *c["args"]])
    from syncer.core import settings

    assert (parsed.kube_qps, parsed.kube_burst) == (settings.DEFAULT_QPS, settings.DEFAULT_BURST)
    assert parsed.log_level == "info"


# ---------------------------------------------------------------------------------------------
# what each value does


@pytest.mark.parametrize("values", [
    {"replicas": 1}, {"replicas": 2}, {"replicas": 1, "leaderElection": {"enabled": True}},
], ids=["one-replica", "two-replicas", "set-on"])
def test_leader_election_is_always_on_so_a_rollout_never_runs_two_writers(
    helm: helm_stack.Helm, values: dict[str, Any],
) -> None:
    """A rolling update starts the new pod before the old one stops (maxSurge 1): with one
    replica as with more, only the Lease keeps the two from writing side by side."""
    docs = render(helm, values)
    args = cli_args([*entrypoint()[1:], *daemon_container(docs)["args"]])
    deployment = one(docs, "Deployment")
    assert args.leader_elect is True
    assert deployment["spec"]["replicas"] == values["replicas"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert pick(docs, "Role") and pick(docs, "RoleBinding")  # the Lease grant


def test_switching_leader_election_off_is_refused_naming_the_reason(
        helm: helm_stack.Helm) -> None:
    proc = template(helm, {"replicas": 1, "leaderElection": {"enabled": False}}, check=False)

    assert proc.returncode != 0
    assert "leaderElection.enabled=false is not supported" in proc.stderr
    assert "two writers" in proc.stderr


@pytest.mark.parametrize(("values", "rendered"), [
    ({"replicas": 1}, False),
    ({"replicas": 2}, True),
    ({"replicas": 2, "podDisruptionBudget": {"enabled": False}}, False),
], ids=["one-replica", "two-replicas", "disabled"])
def test_disruption_budget_only_for_more_than_one_replica(
    helm: helm_stack.Helm, values: dict[str, Any], rendered: bool,
) -> None:
    assert bool(pick(render(helm, values), "PodDisruptionBudget")) is rendered


def test_all_options_reach_the_deployment(helm: helm_stack.Helm) -> None:
    docs = render(helm, ALL_OPTIONS)
    deployment = one(docs, "Deployment", "platform-pss")
    pod, c = pod_of(deployment), daemon_container(docs)
    assert c["image"] == f"registry.example.com/platform/pullsecret-syncer@{DIGEST}"
    assert c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "platform-registry"}]
    assert deployment["spec"]["replicas"] == 3
    args = cli_args([*entrypoint()[1:], *c["args"]])
    assert (args.log_format, args.log_level, args.kube_qps, args.kube_burst) == (
        "text", "debug", 7.5, 15)
    assert args.leader_elect is True
    assert [e["name"] for e in c["env"]] == ["POD_NAMESPACE", "POD_NAME",
                                             "AWS_STS_REGIONAL_ENDPOINTS"]
    assert c["volumeMounts"][2:] == ALL_OPTIONS["extraVolumeMounts"]
    assert pod["volumes"][2:] == ALL_OPTIONS["extraVolumes"]
    assert c["resources"] == ALL_OPTIONS["resources"]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "example.com/team": "platform"}
    # not on the cleanup Job's pod: an injected sidecar would keep the Job from completing
    assert "annotations" not in one(docs, "Job")["spec"]["template"]["metadata"]
    assert pod["nodeSelector"] == ALL_OPTIONS["nodeSelector"]
    assert pod["tolerations"] == ALL_OPTIONS["tolerations"]
    assert pod["affinity"] == ALL_OPTIONS["affinity"]
    sa = one(docs, "ServiceAccount", "platform-pss")
    assert sa["metadata"]["annotations"] == ALL_OPTIONS["serviceAccount"]["annotations"]
    assert pod["serviceAccountName"] == "platform-pss"
    svc = one(docs, "Service", "platform-pss-metrics")
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9090, "targetPort": "http",
                                     "protocol": "TCP"}]
    # Helm merges maps: the default prometheus.io annotations stay unless set to null
    assert svc["metadata"]["annotations"]["example.com/scrape"] == "yes"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "pss"


def test_image_tag_defaults_to_the_app_version_which_is_the_package_version(
    helm: helm_stack.Helm,
) -> None:
    import tomllib

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    with (REPO / "pyproject.toml").open("rb") as fh:
        assert chart["appVersion"] == tomllib.load(fh)["project"]["version"]
    assert daemon_container(render(helm))["image"] == f"pullsecret-syncer:{chart['appVersion']}"
    tagged = render(helm, {"image": {"repository": "r.example.com/pss", "tag": "9.9.9"}})
    assert daemon_container(tagged)["image"] == "r.example.com/pss:9.9.9"


def test_default_affinity_spreads_the_daemon_pods_over_nodes(helm: helm_stack.Helm) -> None:
    docs = render(helm)
    deployment = one(docs, "Deployment")
    (term,) = pod_of(deployment)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == deployment["spec"][
        "selector"]["matchLabels"]


def test_service_monitor_scrapes_the_metrics_service_and_is_off_by_default(
    helm: helm_stack.Helm,
) -> None:
    assert not pick(render(helm), "ServiceMonitor")
    docs = render(helm, ALL_OPTIONS)
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAME]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s",
                        "scrapeTimeout": "5s"}
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_service_and_budget_select_the_daemon_pods_and_not_the_cleanup_job(
    helm: helm_stack.Helm, values: dict[str, Any] | None,
) -> None:
    docs = render(helm, values)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    selectors = [one(docs, "Service")["spec"]["selector"],
                 one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        for job in pick(docs, "Job"):
            assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "all-options"])
def test_config_value_is_the_mounted_file_and_the_daemon_accepts_it(
    helm: helm_stack.Helm, tmp_path: Path, values: dict[str, Any] | None,
) -> None:
    from syncer import config

    docs = render(helm, values)
    pod, c = pod_of(one(docs, "Deployment")), daemon_container(docs)
    args = cli_args([*entrypoint()[1:], *c["args"]])
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert Path(args.config).parent == Path(mount["mountPath"])
    assert "subPath" not in mount and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    cm = one(docs, "ConfigMap", volume["configMap"]["name"])
    shipped = yaml.safe_load(cm["data"][Path(args.config).name])
    # the installation's name is the release's, unless the config names one
    given = coalesce(default_values(), values or {})["config"]
    assert shipped == {"instance": f"{NAME}.{NAME}", **given}
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"], encoding="utf-8")
    config.load(path)
    # no checksum of the config on the pods: a config change must not restart them
    # (docs/operations.md)
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    assert not [k for k in annotations if "checksum" in k or "config" in k]


CONFIG_TEXT = """\
# the team's config file, comments and all
version: 1
backends:
  vault: {type: vault, address: https://vault.example.internal:8200,
          auth: {method: kubernetes, role: pullsecret-syncer}}   # Kubernetes auth
credentials:
  hub: {backend: vault, path: registries/hub, registry: docker.io}
mappings:
  - name: all-teams
    namespaces: {patterns: ["team-*"]}
    credentials: [hub]
"""


def test_config_file_given_with_set_file_is_mounted_verbatim(
    helm: helm_stack.Helm, tmp_path: Path,
) -> None:
    from syncer import config

    source = tmp_path / "team-config.yaml"
    source.write_text(CONFIG_TEXT, encoding="utf-8")
    docs = helm_stack.documents(template(helm, None, "--set-file", f"config={source}").stdout)
    text = one(docs, "ConfigMap")["data"]["config.yaml"]
    assert text == CONFIG_TEXT + f"instance: {NAME}.{NAME}\n"  # the release's installation name
    mounted = tmp_path / "config.yaml"
    mounted.write_text(text, encoding="utf-8")
    loaded = config.load(mounted)
    assert [m.name for m in loaded.mappings] == ["all-teams"]
    assert loaded.instance == f"{NAME}.{NAME}"


def test_config_that_names_its_instance_keeps_it_and_the_cleanup_hook_uninstalls_that(
    helm: helm_stack.Helm, tmp_path: Path,
) -> None:
    source = tmp_path / "team-config.yaml"
    source.write_text(CONFIG_TEXT + "instance: default\n", encoding="utf-8")
    docs = helm_stack.documents(template(helm, {"cleanupOnUninstall": True},
                                         "--set-file", f"config={source}").stdout)
    assert one(docs, "ConfigMap")["data"]["config.yaml"] == CONFIG_TEXT + "instance: default\n"
    (c,) = pod_of(one(hooks(docs), "Job"))["containers"]
    args = cli_args([*c["command"][1:], *c["args"]])
    assert (args.instance, args.all_instances) == ("default", False)


@pytest.mark.parametrize("text", ["- a list\n- not a mapping\n", "key: [unclosed\n"],
                         ids=["a-list", "bad-yaml"])
def test_config_text_that_is_not_a_yaml_mapping_is_refused(
    helm: helm_stack.Helm, tmp_path: Path, text: str,
) -> None:
    source = tmp_path / "config.yaml"
    source.write_text(text, encoding="utf-8")
    proc = template(helm, None, "--set-file", f"config={source}", check=False)
    assert proc.returncode == 1
    assert ("config: the text given (--set-file config=FILE) is not a YAML mapping; "
            "check it with `pullsecret-syncer check --config FILE`") in proc.stderr, proc.stderr


def test_default_config_runs_and_writes_nothing_until_given_mappings(
    helm: helm_stack.Helm,
) -> None:
    cm = one(render(helm), "ConfigMap")
    shipped = yaml.safe_load(cm["data"]["config.yaml"])
    assert shipped["mappings"] == [] and shipped["backends"] == {} == shipped["credentials"]


# ---------------------------------------------------------------------------------------------
# cleanupOnUninstall


def test_cleanup_hook_is_off_by_default(helm: helm_stack.Helm) -> None:
    assert hooks(render(helm)) == []
    assert not pick(render(helm), "Job")


def test_cleanup_job_runs_uninstall_after_the_chart_is_gone_with_grants_of_its_own(
    helm: helm_stack.Helm,
) -> None:
    docs = render(helm, {"cleanupOnUninstall": True})
    hooked = hooks(docs)
    assert [d["kind"] for d in sorted(
        hooked, key=lambda d: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]))] == [
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"]
    for doc in hooked:
        annotations = doc["metadata"]["annotations"]
        # after Helm deleted the chart's objects (the daemon can no longer undo the cleanup)
        assert annotations["helm.sh/hook"] == "post-delete"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        assert doc["metadata"]["name"] == f"{NAME}-cleanup"
    # the release's own objects are unchanged by the option
    assert [d for d in docs if d not in hooked] == render(helm)
    job = one(hooked, "Job")
    pod = pod_of(job)
    assert pod["serviceAccountName"] == one(hooked, "ServiceAccount")["metadata"]["name"]
    assert pod["restartPolicy"] == "Never"
    crb = one(hooked, "ClusterRoleBinding")
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": f"{NAME}-cleanup",
                                "namespace": NAME}]
    assert crb["roleRef"]["name"] == one(hooked, "ClusterRole")["metadata"]["name"]
    # never more than the daemon itself may do
    daemon_rules = one([d for d in docs if d not in hooked], "ClusterRole")["rules"]
    granted = {(r, v) for rule in daemon_rules for r in rule["resources"] for v in rule["verbs"]}
    for rule in one(hooked, "ClusterRole")["rules"]:
        assert rule["apiGroups"] == [""] and "resourceNames" not in rule
        assert {(r, v) for r in rule["resources"] for v in rule["verbs"]} <= granted
    (c,) = pod["containers"]
    assert c["image"] == daemon_container(docs)["image"]
    assert c["command"][0] == entrypoint()[0], "the image's own binary, its ENTRYPOINT replaced"
    args = cli_args([*c["command"][1:], *c["args"]])
    assert args.command == "uninstall" and args.dry_run is False
    # this release's installation only: another release in the cluster keeps its objects
    assert (args.instance, args.all_instances) == (f"{NAME}.{NAME}", False)
    assert args.kubeconfig is None  # in-cluster config, the Job's own ServiceAccount token
    assert job["spec"]["backoffLimit"] >= 1


# ---------------------------------------------------------------------------------------------
# docs/install-helm.md


def docs_table() -> dict[str, str]:
    """`key` -> the default cell of the values table."""
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \| .+ \|$", DOCS.read_text(), flags=re.MULTILINE)
    return dict(rows)


def docs_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOCS.read_text(), flags=re.DOTALL | re.M)


def test_every_value_is_in_the_docs_table_with_its_default() -> None:
    table = docs_table()
    assert set(table) == leaf_paths(default_values())
    for path, cell in table.items():
        if path == "config":
            continue  # described in words
        default: Any = default_values()
        for part in path.split("."):
            default = default[part]
        assert cell.startswith("`") and cell.endswith("`"), (path, cell)
        assert yaml.safe_load(cell.strip("`")) == default, (path, cell)


def helm_commands() -> list[list[str]]:
    """Every `helm install|upgrade` command line of the docs' bash blocks, as argv."""
    import shlex

    commands = []
    for block in docs_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:2] in (["helm", "install"], ["helm", "upgrade"]):
                commands.append(argv)
    return commands


def test_every_helm_command_of_the_docs_renders_a_config_the_daemon_accepts(
    helm: helm_stack.Helm, tmp_path: Path,
) -> None:
    from syncer import config

    (values_vault,) = [b for b in docs_blocks("yaml") if b.startswith("# values-vault.yaml")]
    files = {"values-vault.yaml": values_vault, "./config.yaml": CONFIG_TEXT}
    commands = helm_commands()
    assert len(commands) == 6  # three installs, three upgrades
    for i, argv in enumerate(commands):
        assert argv[2:4] == [NAME, "deploy/helm/pullsecret-syncer"], argv
        assert argv[argv.index("--namespace") + 1] == NAME
        flags: list[str] = []
        for at, arg in enumerate(argv):
            if arg in ("--set", "--set-file", "-f"):
                value = argv[at + 1]
                for name, text in files.items():
                    if value.endswith(name):
                        path = tmp_path / f"{i}-{Path(name).name}"
                        path.write_text(text, encoding="utf-8")
                        value = value.removesuffix(name) + str(path)
                flags += [arg, value]
        docs = helm_stack.documents(template(helm, None, *flags).stdout)
        path = tmp_path / f"config-{i}.yaml"
        path.write_text(one(docs, "ConfigMap")["data"]["config.yaml"], encoding="utf-8")
        config.load(path)
        if "image.repository=registry.example.com/platform/pullsecret-syncer" in flags:
            assert daemon_container(docs)["image"].startswith(
                "registry.example.com/platform/pullsecret-syncer:")


def test_docs_values_files_render_configs_the_daemon_accepts(
    helm: helm_stack.Helm, tmp_path: Path,
) -> None:
    from syncer import config

    blocks = docs_blocks("yaml")
    assert len(blocks) == 3  # values-vault.yaml, the token variant, IRSA
    for i, block in enumerate(blocks):
        values = yaml.safe_load(block)
        jsonschema.Draft202012Validator(schema()).validate(coalesce(default_values(), values))
        docs = render(helm, values)
        path = tmp_path / f"config-{i}.yaml"
        path.write_text(one(docs, "ConfigMap")["data"]["config.yaml"], encoding="utf-8")
        config.load(path)
        mounts = {m["mountPath"] for m in daemon_container(docs)["volumeMounts"]}
        for backend in values["config"]["backends"].values():
            for file_key in ("caCert", "tokenFile"):
                where = {**backend.get("tls", {}), **backend.get("auth", {})}.get(file_key)
                if where:  # every file the config names is on a mounted volume
                    assert str(Path(where).parent) in mounts, (file_key, where)


def test_build_script_and_the_tests_pin_the_same_helm() -> None:
    script = (REPO / "tests" / "stack" / "build-helm.sh").read_text()
    pins = re.findall(r"^pinned=(\S+)", script, flags=re.MULTILINE)
    assert pins == [helm_stack.DEFAULT_VERSION]
    assert "bash tests/stack/build-helm.sh" in (REPO / ".ci" / "setup").read_text()


def test_helm_in_use_reports_the_pinned_version_and_kubernetes_it_assumes(
    helm: helm_stack.Helm,
) -> None:
    assert helm.run("version", "--template", "{{.Version}}").stdout == (
        f"v{helm_stack.version()}")
    if os.environ.get("PSS_HELM"):
        return  # someone else's build: its Kubernetes default is theirs
    probe = helm.home / "probe"
    (probe / "templates").mkdir(parents=True)
    (probe / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.0.0\n")
    (probe / "templates" / "v.yaml").write_text("v: {{ .Capabilities.KubeVersion.Version }}\n")
    assumed = yaml.safe_load(helm.run("template", str(probe)).stdout.split("---", 1)[1])["v"]
    # unstamped, helm would assume v1.20.0 — below every version the suite supports
    oldest_minor = min(int(v.split(".")[1]) for v in kube_stack.supported_versions())
    match = re.fullmatch(r"v1\.(\d+)\.0", assumed)
    assert match and int(match[1]) >= oldest_minor, assumed
