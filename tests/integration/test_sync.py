"""`sync`, `plan` and `check` end to end: real CLI, real kube-apiserver, OpenBao and moto."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.conftest import (
    Result,
    assert_no_leak,
    auth_of,
    backends_yaml,
    dockerconfig_of,
    pull_secret_names,
    read_secret,
    wait_for_sa,
)
from tests.integration.daemonproc import wait_until
from tests.stack import product

HUB_PW = "hub-pw-SENTINEL-1a"
LEGACY_PW = "legacy-pw-SENTINEL-2b"
GHCR_PW = "ghcr-pw-SENTINEL-3c"


@pytest.fixture
def seeded(vault: Any, aws: Any, unique: str) -> dict[str, str]:
    """Three credentials: Vault KV v2, Vault KV v1, AWS Secrets Manager."""
    client = vault.client()
    base = f"pss/{unique}"
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{base}/hub", secret={"username": "hubuser", "password": HUB_PW},
        mount_point=vault.kv2_mount)
    client.secrets.kv.v1.create_or_update_secret(
        path=f"{base}/legacy",
        secret={"user": "legacyuser", "pass": LEGACY_PW, "server": "registry.example.com:5000"},
        mount_point=vault.kv1_mount)
    sm = aws.client("secretsmanager")
    sm.create_secret(Name=f"{base}/ghcr", SecretString=json.dumps(
        {"username": "ghcruser", "password": GHCR_PW, "registry": "https://ghcr.io/"}))
    return {"base": base}


def config_text(vault: Any, aws: Any, unique: str, mappings: str, *,
                vault_addr: str | None = None, aws_endpoint: str | None = None) -> str:
    return f"""
version: 1
defaults:
  refreshInterval: 30s
{backends_yaml(vault, aws, vault_addr=vault_addr, aws_endpoint=aws_endpoint)}
credentials:
  hub:
    backend: vault
    path: pss/{unique}/hub
    registry: docker.io
  legacy:
    backend: vault
    mount: {vault.kv1_mount}
    kvVersion: 1
    path: pss/{unique}/legacy
    fields: {{username: user, password: pass}}
  ghcr:
    backend: aws
    secretId: pss/{unique}/ghcr
mappings:
{mappings}
"""


def two_mappings(unique: str, ns_a: str) -> str:
    return f"""
  - name: team-a
    namespaces:
      names: [{ns_a}]
      patterns: ["pat-{unique}*"]
      exclude: ["pat-{unique}-3"]
    credentials: [hub, ghcr]
  - name: labelled
    namespaces:
      selector:
        matchExpressions:
          - {{key: pss-test, operator: In, values: ["{unique}"]}}
    secretName: legacy-cred
    credentials: [legacy]
    serviceAccounts: ["*"]
"""


def test_sync_writes_merged_secrets_from_vault_kv2_kv1_and_aws_and_patches_service_accounts(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
) -> None:
    ns_a = namespace_factory(prefix="named")
    ns_p1 = namespace_factory(prefix="pat")           # pat-<unique>-2
    ns_p2 = namespace_factory(prefix="pat")           # pat-<unique>-3, excluded below
    ns_l = namespace_factory(prefix="lab", labels={"pss-test": unique})
    ns_none = namespace_factory(prefix="other")
    for ns in (ns_a, ns_p1, ns_p2, ns_l, ns_none):
        wait_for_sa(core, ns)
    core.create_namespaced_service_account(ns_l, k8s.V1ServiceAccount(
        metadata=k8s.V1ObjectMeta(name="builder")))
    cfg = write_config(config_text(vault, aws, unique, two_mappings(unique, ns_a)))

    result = cli("sync", "--config", str(cfg))
    assert result.code == 0, result.output

    for ns in (ns_a, ns_p1):
        secret = read_secret(core, ns, "regcred")
        assert secret.type == "kubernetes.io/dockerconfigjson"
        assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "pullsecret-syncer"
        assert secret.metadata.annotations["pullsecret-syncer.io/mapping"] == "team-a"
        assert secret.metadata.annotations["pullsecret-syncer.io/credentials"] == "hub,ghcr"
        auths = dockerconfig_of(secret)["auths"]
        assert set(auths) == {"https://index.docker.io/v1/", "ghcr.io"}
        assert auths["https://index.docker.io/v1/"]["auth"] == auth_of("hubuser", HUB_PW)
        assert auths["ghcr.io"]["password"] == GHCR_PW
        assert pull_secret_names(core, ns) == ["regcred"]
    with pytest.raises(k8s.exceptions.ApiException) as excluded:
        read_secret(core, ns_p2, "regcred")
    assert excluded.value.status == 404
    assert pull_secret_names(core, ns_p2) == []
    legacy = dockerconfig_of(read_secret(core, ns_l, "legacy-cred"))["auths"]
    assert legacy["registry.example.com:5000"]["auth"] == auth_of("legacyuser", LEGACY_PW)
    assert pull_secret_names(core, ns_l, "default") == ["legacy-cred"]
    assert pull_secret_names(core, ns_l, "builder") == ["legacy-cred"]
    assert core.list_namespaced_secret(
        ns_none, label_selector="app.kubernetes.io/managed-by=pullsecret-syncer").items == []


def test_identical_input_gives_byte_identical_secret_and_second_sync_writes_nothing(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, kube: Any,
    vault: Any, aws: Any, unique: str, seeded: dict[str, str],
    namespace_factory: Callable[..., str], fault_proxy: Callable[..., Any],
    stack_env: dict[str, str],
) -> None:
    namespaces = [namespace_factory(prefix="idle") for _ in range(3)]
    for ns in namespaces:
        wait_for_sa(core, ns)
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: idle
    namespaces: {{patterns: ["idle-{unique}*"]}}
    credentials: [hub, ghcr]
"""))
    first = cli("sync", "--config", str(cfg), env=env)
    assert first.code == 0, first.output
    assert proxy.writes() == 2 * len(namespaces)  # one Secret create + one SA patch each
    before = {ns: read_secret(core, ns, "regcred") for ns in namespaces}
    proxy.reset_counts()

    second = cli("sync", "--config", str(cfg), env=env)
    assert second.code == 0, second.output
    assert proxy.writes() == 0, [r for r in proxy.requests if r.method != "GET"]
    for ns in namespaces:
        after = read_secret(core, ns, "regcred")
        assert after.metadata.resource_version == before[ns].metadata.resource_version
        assert after.data == before[ns].data
    # reads are a constant number of lists, never a per-namespace GET
    assert proxy.count(method="GET", path=r"/api/v1/namespaces/[^/]+/") == 0


def test_each_credential_is_read_once_per_pass_whatever_the_namespace_count(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
    fault_proxy: Callable[..., Any],
) -> None:
    for _ in range(6):
        namespace_factory(prefix="many")
    vault_proxy = fault_proxy(vault.addr)
    aws_proxy = fault_proxy(aws.endpoint)
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: many
    namespaces: {{patterns: ["many-{unique}*"]}}
    credentials: [hub, ghcr]
  - name: many-legacy
    namespaces: {{patterns: ["many-{unique}*"]}}
    secretName: legacy
    credentials: [legacy, hub]
""", vault_addr=vault_proxy.url, aws_endpoint=aws_proxy.url))
    result = cli("sync", "--config", str(cfg))
    assert result.code == 0, result.output
    assert vault_proxy.count(method="GET", path=rf"/v1/secret/data/pss/{unique}/hub") == 1
    assert vault_proxy.count(method="GET", path=rf"/v1/kv1/pss/{unique}/legacy") == 1
    assert aws_proxy.count(method="POST") == 1  # one GetSecretValue


def test_foreign_image_pull_secrets_entries_are_kept_in_order(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="foreign")
    wait_for_sa(core, ns)
    core.patch_namespaced_service_account("default", ns, {"imagePullSecrets": [
        {"name": "zeta"}, {"name": "alpha"}]})
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: f
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
"""))
    assert cli("sync", "--config", str(cfg)).code == 0
    assert pull_secret_names(core, ns) == ["zeta", "alpha", "regcred"]
    sa = core.read_namespaced_service_account("default", ns)
    assert sa.metadata.annotations["pullsecret-syncer.io/image-pull-secrets"] == "regcred"


def test_rotation_rewrites_only_secrets_using_the_credential_and_touches_no_service_account(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, kube: Any,
    vault: Any, aws: Any, unique: str, seeded: dict[str, str],
    namespace_factory: Callable[..., str], fault_proxy: Callable[..., Any],
    stack_env: dict[str, str],
) -> None:
    ns_hub = namespace_factory(prefix="rot")
    ns_ghcr = namespace_factory(prefix="rot")
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: hub
    namespaces: {{names: [{ns_hub}]}}
    credentials: [hub]
  - name: ghcr
    namespaces: {{names: [{ns_ghcr}]}}
    credentials: [ghcr]
"""))
    for ns in (ns_hub, ns_ghcr):
        wait_for_sa(core, ns)
    assert cli("sync", "--config", str(cfg)).code == 0
    untouched = read_secret(core, ns_ghcr, "regcred")
    new_pw = "hub-rotated-SENTINEL-9z"
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": new_pw},
        mount_point=vault.kv2_mount)
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    result = cli("sync", "--config", str(cfg), env=env)
    assert result.code == 0, result.output
    writes = [r for r in proxy.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert [(r.method, r.path) for r in writes] == [
        ("PATCH", f"/api/v1/namespaces/{ns_hub}/secrets/regcred")]
    auths = dockerconfig_of(read_secret(core, ns_hub, "regcred"))["auths"]
    assert auths["https://index.docker.io/v1/"]["password"] == new_pw
    assert read_secret(core, ns_ghcr, "regcred").metadata.resource_version == \
        untouched.metadata.resource_version


def test_unmanaged_same_named_secret_is_left_byte_identical_and_sync_exits_1(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="unmanaged")
    wait_for_sa(core, ns)
    theirs = core.create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="regcred"), type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": '{"auths":{"theirs.example":{"auth":"eDp5"}}}'}))
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: u
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
"""))
    result = cli("sync", "--config", str(cfg))
    assert result.code == 1
    assert f"{ns}/regcred" in result.stderr and "not managed" in result.stderr
    after = read_secret(core, ns, "regcred")
    assert after.metadata.resource_version == theirs.metadata.resource_version
    assert after.data == theirs.data
    assert pull_secret_names(core, ns) == []  # its ServiceAccounts are left alone
    events = core.list_namespaced_event(ns).items
    assert any(e.reason == "SecretConflict" and e.type == "Warning" for e in events)
    # attached to their Secret (by uid too), so `kubectl events --for secret/regcred` shows it
    described = core.list_namespaced_event(
        ns, field_selector=f"involvedObject.uid={theirs.metadata.uid}").items
    assert [e.reason for e in described] == ["SecretConflict"]
    # We record core/v1 Events; current kubectl reads events.k8s.io/v1 (`kubectl events`), which
    # serves the same objects with `regarding` for `involvedObject`. Read as raw JSON: the
    # Python client's EventsV1Event model refuses the null `eventTime` of every core/v1 Event.
    raw = k8s.EventsV1Api(core.api_client).list_namespaced_event(
        ns, field_selector=f"regarding.uid={theirs.metadata.uid}", _preload_content=False)
    regarding = json.loads(raw.data)["items"]
    assert [(e["reason"], e["type"], e["regarding"]["name"]) for e in regarding] == [
        ("SecretConflict", "Warning", "regcred")]


def test_adopt_existing_takes_over_a_same_named_secret_and_labels_it(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="adopt")
    wait_for_sa(core, ns)
    core.create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="regcred", labels={"team": "x"}),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": '{"auths":{}}', "extra": "1"}))
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: a
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
    adoptExisting: true
"""))
    result = cli("sync", "--config", str(cfg))
    assert result.code == 0, result.output
    secret = read_secret(core, ns, "regcred")
    assert secret.metadata.labels == {"team": "x",
                                      "app.kubernetes.io/managed-by": "pullsecret-syncer"}
    assert set(secret.data) == {".dockerconfigjson"}
    assert "https://index.docker.io/v1/" in dockerconfig_of(secret)["auths"]
    assert pull_secret_names(core, ns) == ["regcred"]


def test_prune_removes_only_our_secret_and_our_service_account_entry(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="prune", labels={"pss-prune": unique})
    wait_for_sa(core, ns)
    core.patch_namespaced_service_account("default", ns, {"imagePullSecrets": [
        {"name": "mine"}]})
    core.create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="mine"), string_data={"k": "v"}))
    mapping = f"""
  - name: p
    namespaces: {{selector: {{matchLabels: {{pss-prune: "{unique}"}}}}}}
    credentials: [hub]
"""
    cfg = write_config(config_text(vault, aws, unique, mapping))
    assert cli("sync", "--config", str(cfg)).code == 0
    assert pull_secret_names(core, ns) == ["mine", "regcred"]

    core.patch_namespace(ns, {"metadata": {"labels": {"pss-prune": "no"}}})
    result = cli("sync", "--config", str(cfg))
    assert result.code == 0, result.output
    with pytest.raises(k8s.exceptions.ApiException) as gone:
        read_secret(core, ns, "regcred")
    assert gone.value.status == 404
    assert pull_secret_names(core, ns) == ["mine"]
    assert read_secret(core, ns, "mine").data == {"k": "dg=="}
    sa = core.read_namespaced_service_account("default", ns)
    assert "pullsecret-syncer.io/image-pull-secrets" not in (sa.metadata.annotations or {})


@pytest.mark.parametrize("bad", ["invalid-json", "missing-password"])
def test_bad_payload_keeps_the_existing_secret_byte_identical_and_exits_1(
    bad: str, cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any,
    vault: Any, aws: Any, unique: str, seeded: dict[str, str],
    namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="badpl")
    ns_other = namespace_factory(prefix="badpl")
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: both
    namespaces: {{names: [{ns}]}}
    credentials: [hub, ghcr]
  - name: hub-only
    namespaces: {{names: [{ns_other}]}}
    credentials: [hub]
"""))
    assert cli("sync", "--config", str(cfg)).code == 0
    before = read_secret(core, ns, "regcred")
    sm = aws.client("secretsmanager")
    if bad == "invalid-json":
        sm.put_secret_value(SecretId=f"pss/{unique}/ghcr",
                            SecretString='{"username": "u", "password": "x-SENTINEL-bad')
    else:
        sm.put_secret_value(SecretId=f"pss/{unique}/ghcr", SecretString=json.dumps(
            {"username": "u", "registry": "ghcr.io", "passwd": "y-SENTINEL-bad"}))
    # the other mapping still converges in the same pass
    core.delete_namespaced_secret("regcred", ns_other)

    result = cli("sync", "--config", str(cfg))
    assert result.code == 1
    assert "ghcr" in result.stderr
    if bad == "missing-password":
        assert "password" in result.stderr
    after = read_secret(core, ns, "regcred")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == before.data
    assert read_secret(core, ns_other, "regcred").metadata.labels[
        "app.kubernetes.io/managed-by"] == "pullsecret-syncer"


def test_backend_down_keeps_secrets_and_blocks_only_what_needs_it(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
    fault_proxy: Callable[..., Any],
) -> None:
    ns_old = namespace_factory(prefix="down")
    ns_aws = namespace_factory(prefix="down")
    vault_proxy = fault_proxy(vault.addr)
    mappings = f"""
  - name: v
    namespaces: {{names: [{ns_old}]}}
    credentials: [hub]
  - name: a
    namespaces: {{names: [{ns_aws}]}}
    credentials: [ghcr]
"""
    cfg = write_config(config_text(vault, aws, unique, mappings, vault_addr=vault_proxy.url))
    for ns in (ns_old, ns_aws):
        wait_for_sa(core, ns)
    assert cli("sync", "--config", str(cfg)).code == 0
    before = read_secret(core, ns_old, "regcred")
    ns_new = namespace_factory(prefix="down")  # never had a Secret
    wait_for_sa(core, ns_new)
    cfg = write_config(config_text(vault, aws, unique, mappings.replace(
        f"names: [{ns_old}]", f"names: [{ns_old}, {ns_new}]"), vault_addr=vault_proxy.url))
    core.delete_namespaced_secret("regcred", ns_aws)
    vault_proxy.fail(503)

    result = cli("sync", "--config", str(cfg))
    assert result.code == 1
    assert "hub" in result.stderr
    after = read_secret(core, ns_old, "regcred")
    assert after.data == before.data
    assert after.metadata.resource_version == before.metadata.resource_version
    assert pull_secret_names(core, ns_old) == ["regcred"]
    # a never-read credential blocks only its own Secrets: no Secret, no dangling SA reference
    with pytest.raises(k8s.exceptions.ApiException):
        read_secret(core, ns_new, "regcred")
    assert pull_secret_names(core, ns_new) == []
    # the AWS-backed mapping is unaffected
    assert read_secret(core, ns_aws, "regcred").type == "kubernetes.io/dockerconfigjson"


def test_plan_prints_actions_in_text_and_json_and_writes_nothing(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, kube: Any,
    vault: Any, aws: Any, unique: str, seeded: dict[str, str],
    namespace_factory: Callable[..., str], fault_proxy: Callable[..., Any],
    stack_env: dict[str, str],
) -> None:
    ns = namespace_factory(prefix="plan")
    wait_for_sa(core, ns)
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: p
    namespaces: {{names: [{ns}]}}
    credentials: [hub, ghcr]
"""))
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    text = cli("plan", "--config", str(cfg), env=env)
    assert text.code == 0, text.output
    assert text.stdout.splitlines() == [
        f"create secret {ns}/regcred (hub, ghcr)",
        f"patch serviceaccount {ns}/default +regcred",
    ]
    as_json = cli("plan", "--config", str(cfg), "--output", "json", env=env)
    assert json.loads(as_json.stdout) == [
        {"action": "create", "kind": "secret", "namespace": ns, "name": "regcred",
         "credentials": ["hub", "ghcr"]},
        {"action": "patch", "kind": "serviceaccount", "namespace": ns, "name": "default",
         "credentials": []},
    ]
    assert proxy.writes() == 0


def test_check_validates_and_connect_reads_every_credential_without_showing_values(
    cli: Callable[..., Result], write_config: Callable[[str], Path], vault: Any, aws: Any,
    unique: str, seeded: dict[str, str], stack_env_for: Callable[..., dict[str, str]],
) -> None:
    env = stack_env_for(kube=False, vault=True, aws=True)
    cfg = write_config(config_text(vault, aws, unique, """
  - name: x
    namespaces: {names: [nowhere]}
    credentials: [hub, legacy, ghcr]
"""))
    plain = cli("check", "--config", str(cfg), env=env)
    assert plain.code == 0 and "ok" in plain.stdout
    connected = cli("check", "--config", str(cfg), "--connect", env=env)
    assert connected.code == 0, connected.output
    for name in ("hub", "legacy", "ghcr"):
        assert f"'{name}'" in connected.stdout
    aws.client("secretsmanager").delete_secret(SecretId=f"pss/{unique}/ghcr",
                                               ForceDeleteWithoutRecovery=True)
    failing = cli("check", "--config", str(cfg), "--connect", env=env)
    assert failing.code == 1
    assert "ghcr" in failing.stdout


def test_config_error_exits_2_naming_file_and_key_path_without_traceback(
    cli: Callable[..., Result], write_config: Callable[[str], Path], tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    cfg = write_config("""
version: 1
backends:
  v: {type: vault, address: "http://127.0.0.1:1", auth: {method: token}}
credentials:
  hub: {backend: v, path: a}
mappings:
  - name: m
    namespaces: {names: [x]}
    credentials: [hub, ghrc]
""")
    for command in ("check", "sync", "plan"):
        result = cli(command, "--config", str(cfg), env=env)
        assert result.code == 2
        assert f"{cfg}: mappings[0].credentials[1]: unknown credential 'ghrc'" in result.stderr


def test_approle_login_works_for_a_full_sync(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
    tmp_path: Path, leak_values: list[str], stack_env: dict[str, str],
) -> None:
    root = vault.client()
    policy = f"pss-{unique}"
    root.sys.create_or_update_policy(policy, f"""
path "secret/data/pss/{unique}/*" {{ capabilities = ["read"] }}
""")
    role = f"r-{unique}"
    root.auth.approle.create_or_update_approle(role, token_policies=[policy],
                                               mount_point=vault.approle_mount)
    role_id = root.auth.approle.read_role_id(role, mount_point=vault.approle_mount)["data"][
        "role_id"]
    secret_id = root.auth.approle.generate_secret_id(role, mount_point=vault.approle_mount)[
        "data"]["secret_id"]
    leak_values.append(secret_id)
    sid_file = tmp_path / "secret-id"
    sid_file.write_text(secret_id)
    ns = namespace_factory(prefix="approle")
    wait_for_sa(core, ns)
    cfg = write_config(f"""
version: 1
backends:
  vault:
    type: vault
    address: {vault.addr}
    auth: {{method: approle, roleId: {role_id}, secretIdFile: {sid_file}}}
credentials:
  hub: {{backend: vault, path: pss/{unique}/hub, registry: docker.io}}
mappings:
  - name: m
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
""")
    env = {k: v for k, v in stack_env.items() if k != "VAULT_TOKEN"}
    result = cli("sync", "--config", str(cfg), env=env)
    assert result.code == 0, result.output
    assert pull_secret_names(core, ns) == ["regcred"]


def test_a_terminating_namespace_is_left_alone(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, seeded: dict[str, str], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="dying")
    wait_for_sa(core, ns)
    # a finalizer on an object inside keeps the namespace Terminating while we look
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
        name="hold", finalizers=["pullsecret-syncer.test/hold"])))
    core.delete_namespace(ns)
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: d
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
"""))
    try:
        result = cli("sync", "--config", str(cfg))
        assert result.code == 0, result.output
        assert core.list_namespaced_secret(
            ns, label_selector="app.kubernetes.io/managed-by=pullsecret-syncer").items == []
    finally:
        core.patch_namespaced_config_map("hold", ns, {"metadata": {"finalizers": None}})


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_sync_exits_143_or_130(
    sig: int, code: int, write_config: Callable[[str], Path], vault: Any, aws: Any,
    unique: str, seeded: dict[str, str], fault_proxy: Callable[..., Any],
    stack_env: dict[str, str], leak_values: list[str],
) -> None:
    slow_vault = fault_proxy(vault.addr)
    slow_vault.delay(30)  # the pass is stuck reading a credential when the signal comes
    cfg = write_config(config_text(vault, aws, unique, """
  - name: s
    namespaces: {names: [nowhere]}
    credentials: [hub]
""", vault_addr=slow_vault.url))
    proc = subprocess.Popen(product.installed().argv("sync", "--config", str(cfg)),
                            env=stack_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_until(lambda: slow_vault.count() >= 1, timeout=30, what="the credential read")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == code, out + err
    assert "Traceback" not in out + err
    assert_no_leak(out + err, leak_values)
