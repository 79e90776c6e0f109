"""Reliability under backend faults (docs/operations.md), on the real stack through the fault proxy.

Each test injects a fault into Vault (OpenBao) or AWS (moto) while `run` keeps going, checks the
outcome, and checks "nothing lost" byte for byte: every managed Secret keeps its data and its
resourceVersion while no write is expected, every foreign `imagePullSecrets` entry stays.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.integration import conftest as shared
from tests.integration.conftest import (
    CONVERGE,
    Result,
    add_foreign_entries,
    auth_of,
    daemon_config,
    dockerconfig_of,
    has_secret_and_ref,
    pull_secret_names,
    read_secret,
    snapshot,
)
from tests.integration.daemonproc import DaemonProcess, wait_until

HUB_PW = "hub-pw-SENTINEL-r1"
GHCR_PW = "ghcr-pw-SENTINEL-r2"
HUB = "https://index.docker.io/v1/"


# --------------------------------------------------------------------------- helpers


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we return: connection refused


def log_errors(daemon: DaemonProcess, credential: str) -> list[str]:
    return [str(r.get("error", "")) for r in daemon.log_records()
            if r.get("credential") == credential and r.get("level") == "error"]


def seed(vault: Any, aws: Any, unique: str) -> None:
    shared.seed_credentials(vault, aws, unique, hub_password=HUB_PW, ghcr_password=GHCR_PW)


# --------------------------------------------------------------------------- case 1


def test_backend_down_or_throttling_keeps_secrets_byte_identical_backs_off_and_recovers(
    vault: Any, aws: Any, kube: Any, core: Any, unique: str, stack_env: dict[str, str],
    write_config: Callable[[str], Path], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
    leak_values: list[str],
) -> None:
    seed(vault, aws, unique)
    leak_values.extend([auth_of("hubuser", HUB_PW), auth_of("ghcruser", GHCR_PW)])
    namespaces = [namespace_factory(prefix="live") for _ in range(2)]
    for ns in namespaces:
        add_foreign_entries(core, ns)
    vproxy, aproxy = fault_proxy(vault.addr), fault_proxy(aws.endpoint)
    kproxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(kproxy.url))}
    # hub refreshes every 8 s so that its backoff (1 s, 2 s, 4 s … capped there) can be seen
    good_text = daemon_config(vault, aws, unique, refresh="2s", vault_addr=vproxy.url,
                              aws_endpoint=aproxy.url).replace(
        "registry: docker.io}", "registry: docker.io, refreshInterval: 8s}")
    cfg = write_config(good_text)
    daemon = start_daemon(cfg, env=env)
    daemon.wait_ready()
    for ns in namespaces:
        wait_until(lambda ns=ns: pull_secret_names(core, ns) == ["theirs-a", "theirs-b",
                                                                 "regcred"],
                   timeout=CONVERGE, what=f"initial sync of {ns}")
    before = snapshot(core, namespaces)
    kproxy.reset_counts()

    # -- 503 from Vault, 429 from AWS, for many refresh intervals
    hub_path = rf"^/v1/secret/data/pss/{unique}/hub"
    vproxy.fail(503, path=hub_path)
    aproxy.fail(429)
    wait_until(lambda: daemon.metric("credential_up", credential="hub") == 0
               and daemon.metric("credential_up", credential="ghcr") == 0,
               timeout=CONVERGE + 8, what="both credentials reported down")
    vproxy.reset_counts()
    aproxy.reset_counts()
    window = time.monotonic()
    time.sleep(12)  # six refresh intervals of ghcr, well past hub's 8 s

    def hub_attempts() -> list[float]:
        return [r.started for r in vproxy.requests if re.search(hub_path, r.target)]

    # enough retries to see the backoff grow, however long a loaded machine takes for them
    wait_until(lambda: len(hub_attempts()) >= 3 and aproxy.count(method="POST") >= 3,
               timeout=60, what="three retries of each backend")
    stretch = max(1.0, (time.monotonic() - window) / 12)  # > 1 only if we had to wait longer
    attempts = hub_attempts()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) <= 6 * stretch, attempts  # 1 s, 2 s, 4 s, 8 s …: far fewer than 1/s
    # the backoff grows: 1 s, 2 s, 4 s … each ±25 % jitter, so adjacent steps never overlap
    assert gaps[-1] > gaps[0], gaps
    aws_attempts = aproxy.count(method="POST")
    assert aws_attempts <= 9 * stretch, aws_attempts  # capped at the 2 s interval: < 1/s
    assert snapshot(core, namespaces) == before
    assert daemon.metric("credential_up", credential="hub") == 0
    assert daemon.metric("credential_up", credential="ghcr") == 0

    # -- connection refused (the config now points both backends at a closed port)
    port = closed_port()
    cfg.write_text(good_text.replace(vproxy.url, f"http://127.0.0.1:{port}").replace(
        aproxy.url, f"http://127.0.0.1:{port}"))
    wait_until(lambda: any("cannot connect" in e for e in log_errors(daemon, "hub"))
               and any("cannot reach" in e for e in log_errors(daemon, "ghcr")),
               timeout=CONVERGE + 8, what="connection refused reported for both")
    assert snapshot(core, namespaces) == before
    assert kproxy.writes() == 0, kproxy.requests  # zero deletes, zero writes of any kind
    assert daemon.metric("credential_up", credential="hub") == 0

    # -- recovery on the first good read; unchanged content writes nothing
    vproxy.clear()
    aproxy.clear()
    vproxy.reset_counts()
    cfg.write_text(good_text)
    wait_until(lambda: daemon.metric("credential_up", credential="hub") == 1
               and daemon.metric("credential_up", credential="ghcr") == 1,
               timeout=8 + CONVERGE, what="both credentials up again")
    hub_reads = [r for r in vproxy.requests if re.search(hub_path, r.target)]
    assert hub_reads[0].status == 200  # the first read after the outage succeeded and counted
    assert snapshot(core, namespaces) == before
    assert kproxy.writes() == 0, kproxy.requests
    new_pw = "hub-after-outage-SENTINEL-r3"
    leak_values.append(auth_of("hubuser", new_pw))
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": new_pw},
        mount_point=vault.kv2_mount)
    for ns in namespaces:
        wait_until(lambda ns=ns: dockerconfig_of(read_secret(core, ns, "regcred"))["auths"][
            HUB]["password"] == new_pw, timeout=8 + CONVERGE, what=f"rotation in {ns}")
        assert pull_secret_names(core, ns) == ["theirs-a", "theirs-b", "regcred"]


# --------------------------------------------------------------------------- case 2


def test_invalid_or_missing_payloads_keep_the_last_good_secret_and_never_read_blocks_only_its_own(
    vault: Any, aws: Any, core: Any, unique: str, write_config: Callable[[str], Path],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    seed(vault, aws, unique)
    sm = aws.client("secretsmanager")
    flip_id, never_id = f"pss/{unique}/flip", f"pss/{unique}/never"
    sm.create_secret(Name=flip_id, SecretString=json.dumps(
        {"username": "flipper", "password": "flip-SENTINEL-ok", "registry": "flip.example"}))
    sm.create_secret(Name=never_id, SecretString='{"password": "never-SENTINEL-x"')  # bad JSON
    ns_flip, ns_hub, ns_mixed, ns_never = (namespace_factory(prefix="pl") for _ in range(4))
    for ns in (ns_flip, ns_hub, ns_mixed, ns_never):
        add_foreign_entries(core, ns)
    cfg = write_config(daemon_config(vault, aws, unique, refresh="1s").replace(
        "credentials:\n", f"""credentials:
  flip: {{backend: aws, secretId: {flip_id}}}
  never: {{backend: aws, secretId: {never_id}}}
""", 1).split("mappings:")[0] + f"""mappings:
  - name: flip
    namespaces: {{names: [{ns_flip}]}}
    credentials: [flip]
  - name: hub
    namespaces: {{names: [{ns_hub}]}}
    credentials: [hub]
  - name: mixed
    namespaces: {{names: [{ns_mixed}]}}
    credentials: [hub, never]
  - name: never
    namespaces: {{names: [{ns_never}]}}
    credentials: [never]
    serviceAccounts: ["*"]
""")
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    for ns in (ns_flip, ns_hub):
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE, what=ns)
    before = snapshot(core, [ns_flip, ns_hub])

    def errors() -> float:
        return daemon.metric("credential_fetch_total", credential="flip", result="error") or 0

    variants: list[tuple[str, Callable[[], Any], str]] = [
        ("invalid JSON", lambda: sm.put_secret_value(
            SecretId=flip_id, SecretString='{"username": "u", "password": "SENTINEL-cut'),
         "not valid JSON"),
        ("no password", lambda: sm.put_secret_value(SecretId=flip_id, SecretString=json.dumps(
            {"username": "u", "registry": "flip.example", "passwd": "pw-SENTINEL-nopw"})),
         "'password'"),
        ("empty username", lambda: sm.put_secret_value(SecretId=flip_id, SecretString=json.dumps(
            {"username": "", "password": "pw-SENTINEL-nouser", "registry": "flip.example"})),
         "'username'"),
        (".dockerconfigjson not JSON", lambda: sm.put_secret_value(
            SecretId=flip_id, SecretString=json.dumps(
                {".dockerconfigjson": '{"auths": {"x": SENTINEL'})), ".dockerconfigjson"),
        ("not found", lambda: sm.delete_secret(SecretId=flip_id, ForceDeleteWithoutRecovery=True),
         "not found"),
    ]
    for what, inject, named in variants:
        seen = errors()
        inject()
        wait_until(lambda seen=seen: errors() >= seen + 2, timeout=CONVERGE,
                   what=f"{what}: two failed reads")
        assert snapshot(core, [ns_flip, ns_hub]) == before, what
        assert daemon.metric("credential_up", credential="flip") == 0, what
        assert any(named in e for e in log_errors(daemon, "flip")), (what, log_errors(
            daemon, "flip")[-3:])

    # the never-read credential blocked only its own Secrets: no Secret, no dangling reference
    for ns in (ns_mixed, ns_never):
        assert all(s.metadata.name != "regcred" for s in core.list_namespaced_secret(ns).items)
        assert pull_secret_names(core, ns) == ["theirs-a", "theirs-b"]
    assert daemon.metric("credential_up", credential="never") == 0
    assert daemon.metric("credential_up", credential="hub") == 1
    assert (daemon.metric("reconcile_errors_total", reason="credential_unavailable") or 0) >= 1
    # and a namespace added now still converges for the healthy credential
    core.delete_namespaced_secret("regcred", ns_hub)
    wait_until(lambda: read_secret(core, ns_hub, "regcred").data == before[f"{ns_hub}/secret"][0],
               timeout=CONVERGE, what="healthy mapping repaired meanwhile")


# --------------------------------------------------------------------------- case 3


def test_vault_tokens_that_expire_or_are_revoked_are_replaced_by_a_new_login_and_a_dead_static_token_is_reported(  # noqa: E501
    vault: Any, vault_kubernetes_auth: str, aws: Any, core: Any, unique: str, tmp_path: Path,
    stack_env: dict[str, str], write_config: Callable[[str], Path],
    fault_proxy: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str], leak_values: list[str],
) -> None:
    root = vault.client()
    seed(vault, aws, unique)
    policy = f"reliability-{unique}"
    root.sys.create_or_update_policy(
        policy, f'path "{vault.kv2_mount}/data/pss/{unique}/*" {{ capabilities = ["read"] }}\n')
    # AppRole on its own mount; its tokens live 3 s at most, so they expire during the test
    approle_mount = f"approle-{unique}"
    root.sys.enable_auth_method("approle", path=approle_mount)
    root.auth.approle.create_or_update_approle(
        "puller", token_policies=[policy], token_ttl="3s", token_max_ttl="3s",
        mount_point=approle_mount)
    role_id = root.auth.approle.read_role_id("puller", mount_point=approle_mount)["data"][
        "role_id"]
    secret_id = root.auth.approle.generate_secret_id("puller", mount_point=approle_mount)[
        "data"]["secret_id"]
    # Kubernetes auth: a ServiceAccount token of our own namespace
    ns_auth = namespace_factory(prefix="auth")
    core.create_namespaced_service_account(ns_auth, k8s.V1ServiceAccount(
        metadata=k8s.V1ObjectMeta(name="puller")))
    jwt = core.create_namespaced_service_account_token("puller", ns_auth,
                                                       k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[]))).status.token
    root.auth.kubernetes.create_role(
        name=f"puller-{unique}", bound_service_account_names=["puller"],
        bound_service_account_namespaces=[ns_auth], policies=[policy], ttl="1h",
        mount_point=vault.kubernetes_mount)
    # a static token
    static = root.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]
    leak_values.extend([secret_id, jwt, static, auth_of("hubuser", HUB_PW)])
    files = {}
    for name, value in (("secret-id", secret_id), ("jwt", jwt), ("token", static)):
        files[name] = tmp_path / name
        files[name].write_text(value)

    ns_a, ns_k, ns_s = (namespace_factory(prefix="tok") for _ in range(3))
    for ns in (ns_a, ns_k, ns_s):
        add_foreign_entries(core, ns)
    vproxy = fault_proxy(vault.addr)
    path = f"pss/{unique}/hub"
    cfg = write_config(f"""
version: 1
defaults: {{refreshInterval: 1s}}
backends:
  va: {{type: vault, address: {vproxy.url}, auth: {{method: approle, roleId: {role_id},
        secretIdFile: {files['secret-id']}, mount: {approle_mount}}}}}
  vk: {{type: vault, address: {vproxy.url}, auth: {{method: kubernetes, role: puller-{unique},
        jwtFile: {files['jwt']}, mount: {vault.kubernetes_mount}}}}}
  vs: {{type: vault, address: {vproxy.url}, auth: {{method: token, tokenFile: {files['token']}}}}}
credentials:
  ca: {{backend: va, path: {path}, registry: docker.io}}
  ck: {{backend: vk, path: {path}, registry: docker.io}}
  cs: {{backend: vs, path: {path}, registry: docker.io}}
mappings:
  - {{name: a, namespaces: {{names: [{ns_a}]}}, credentials: [ca]}}
  - {{name: k, namespaces: {{names: [{ns_k}]}}, credentials: [ck]}}
  - {{name: s, namespaces: {{names: [{ns_s}]}}, credentials: [cs]}}
""")
    env = {k: v for k, v in stack_env.items() if k != "VAULT_TOKEN"}
    daemon = start_daemon(cfg, env=env)
    daemon.wait_ready()
    for ns in (ns_a, ns_k, ns_s):
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE, what=ns)
    static_before = snapshot(core, [ns_s])

    # expiry: AppRole tokens (3 s max TTL) are replaced by fresh logins, no read fails
    approle_logins = rf"^/v1/auth/{approle_mount}/login$"
    wait_until(lambda: vproxy.count(method="POST", path=approle_logins) >= 3,
               timeout=CONVERGE + 5, what="three AppRole logins as tokens expire")
    assert not daemon.metric("credential_fetch_total", credential="ca", result="error")

    # revocation mid-run: every AppRole and Kubernetes token and the static token die at once
    k8s_logins = rf"^/v1/auth/{vault.kubernetes_mount}/login$"
    logins_before = (vproxy.count(method="POST", path=approle_logins),
                     vproxy.count(method="POST", path=k8s_logins))
    root.sys.revoke_prefix(f"auth/{approle_mount}/login")
    root.sys.revoke_prefix(f"auth/{vault.kubernetes_mount}/login")
    root.auth.token.revoke(static)
    new_pw = "hub-after-revoke-SENTINEL-r4"
    leak_values.append(auth_of("hubuser", new_pw))
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "hubuser", "password": new_pw}, mount_point=vault.kv2_mount)
    for ns in (ns_a, ns_k):
        wait_until(lambda ns=ns: dockerconfig_of(read_secret(core, ns, "regcred"))["auths"][HUB][
            "password"] == new_pw, timeout=CONVERGE, what=f"next refresh after re-login in {ns}")
    assert vproxy.count(method="POST", path=approle_logins) > logins_before[0]
    assert vproxy.count(method="POST", path=k8s_logins) > logins_before[1]

    # the dead static token: reported (metric, log line naming the credential), Secrets kept
    wait_until(lambda: daemon.metric("credential_up", credential="cs") == 0,
               timeout=CONVERGE, what="static token reported down")
    assert any("access denied" in e for e in log_errors(daemon, "cs")), log_errors(daemon, "cs")
    assert snapshot(core, [ns_s]) == static_before
    assert daemon.metric("credential_up", credential="ca") == 1
    assert daemon.metric("credential_up", credential="ck") == 1
    # an operator rotates the token file: picked up without a restart
    fresh = root.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]
    leak_values.append(fresh)
    files["token"].write_text(fresh)
    wait_until(lambda: dockerconfig_of(read_secret(core, ns_s, "regcred"))["auths"][HUB][
        "password"] == new_pw, timeout=CONVERGE, what="rotated token file used")
    for ns in (ns_a, ns_k, ns_s):
        assert pull_secret_names(core, ns) == ["theirs-a", "theirs-b", "regcred"]


# --------------------------------------------------------------------------- case 4


def test_aws_rotation_in_flight_syncs_only_awscurrent(
    vault: Any, aws: Any, core: Any, unique: str, write_config: Callable[[str], Path],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
    leak_values: list[str],
) -> None:
    seed(vault, aws, unique)
    sm = aws.client("secretsmanager")
    ns = namespace_factory(prefix="rot")
    add_foreign_entries(core, ns)
    cfg = write_config(daemon_config(vault, aws, unique, refresh="1s", mappings=f"""
  - name: rot
    namespaces: {{names: [{ns}]}}
    credentials: [ghcr]
"""))
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="initial sync")
    before = snapshot(core, [ns])
    secret_id = f"pss/{unique}/ghcr"

    def reads() -> float:
        return daemon.metric("credential_fetch_total", credential="ghcr", result="success") or 0

    pending_pw = "ghcr-pending-SENTINEL-r5"
    leak_values.append(auth_of("ghcruser", pending_pw))
    token = f"pending-{unique}-0000-0000-000000000000"
    # an empty pending version first (a rotation that has not put its value yet), then a real one
    sm.put_secret_value(SecretId=secret_id, ClientRequestToken=token + "e",
                        SecretString="{}", VersionStages=["AWSPENDING"])
    seen = reads()
    wait_until(lambda: reads() >= seen + 3, timeout=CONVERGE, what="three reads")
    assert snapshot(core, [ns]) == before
    sm.put_secret_value(SecretId=secret_id, ClientRequestToken=token + "p",
                        SecretString=json.dumps({"username": "ghcruser", "password": pending_pw,
                                                 "registry": "ghcr.io"}),
                        VersionStages=["AWSPENDING"])
    seen = reads()
    wait_until(lambda: reads() >= seen + 3, timeout=CONVERGE, what="three more reads")
    assert snapshot(core, [ns]) == before
    assert daemon.metric("credential_up", credential="ghcr") == 1

    # the rotation finishes: AWSCURRENT moves to the pending version, which is then synced
    current = next(v for v in sm.list_secret_version_ids(SecretId=secret_id)["Versions"]
                   if "AWSCURRENT" in v["VersionStages"])["VersionId"]
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSCURRENT",
                                   MoveToVersionId=token + "p", RemoveFromVersionId=current)
    wait_until(lambda: dockerconfig_of(read_secret(core, ns, "regcred"))["auths"]["ghcr.io"][
        "password"] == pending_pw, timeout=CONVERGE, what="promoted version synced")
    assert pull_secret_names(core, ns) == ["theirs-a", "theirs-b", "regcred"]


# --------------------------------------------------------------------------- case 12


def test_a_secret_the_apiserver_rejects_as_too_big_is_reported_and_the_old_one_kept(
    vault: Any, aws: Any, core: Any, unique: str, write_config: Callable[[str], Path],
    cli: Callable[..., Result], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    seed(vault, aws, unique)
    ns = namespace_factory(prefix="big")
    add_foreign_entries(core, ns)
    cfg = write_config(daemon_config(vault, aws, unique, refresh="1s", mappings=f"""
  - name: big
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
"""))
    assert cli("sync", "--config", str(cfg)).code == 0
    before = snapshot(core, [ns])
    huge = "huge-SENTINEL-" + "x" * (800 * 1024)  # with its base64 `auth`: > 1 MiB rendered
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": huge},
        mount_point=vault.kv2_mount)

    result = cli("sync", "--config", str(cfg))
    assert result.code == 1, result.output
    assert f"secrets {ns}/regcred" in result.stderr and "422" in result.stderr, result.stderr
    assert snapshot(core, [ns]) == before
    events = [e for e in core.list_namespaced_event(ns).items if e.reason == "WriteFailed"]
    assert events and all(e.type == "Warning" for e in events)
    assert events[0].involved_object.kind == "Secret"
    assert events[0].involved_object.name == "regcred"

    daemon = start_daemon(cfg)
    wait_until(lambda: (daemon.metric("reconcile_errors_total", reason="kube_write") or 0) >= 1,
               timeout=CONVERGE, what="reconcile_errors_total{reason=kube_write}")
    time.sleep(2)  # a few refreshes and retried passes
    assert snapshot(core, [ns]) == before
    assert daemon.proc.poll() is None
