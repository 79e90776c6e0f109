"""`pullsecret-syncer run` on the real stack: watches, refresh, resync, reload, metrics, signals."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration import conftest as shared
from tests.integration.conftest import (
    CONVERGE,
    daemon_config,
    dockerconfig_of,
    has_secret_and_ref,
    pull_secret_names,
    read_secret,
    wait_for_sa,
)
from tests.integration.daemonproc import DaemonProcess, wait_until

HUB_PW = "hub-pw-SENTINEL-d1"
GHCR_PW = "ghcr-pw-SENTINEL-d2"
start_daemon = shared.start_daemon  # the fixture now lives in conftest.py; kept importable here


@pytest.fixture
def creds(vault: Any, aws: Any, unique: str) -> dict[str, Any]:
    shared.seed_credentials(vault, aws, unique, hub_password=HUB_PW, ghcr_password=GHCR_PW)
    return {"vault": vault, "aws": aws}


def test_new_namespace_and_new_service_account_are_synced_within_seconds(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique))
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    ns = namespace_factory(prefix="live")
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="new namespace")
    auths = dockerconfig_of(read_secret(core, ns, "regcred"))["auths"]
    assert set(auths) == {"https://index.docker.io/v1/", "ghcr.io"}

    core.create_namespaced_service_account(ns, k8s.V1ServiceAccount(
        metadata=k8s.V1ObjectMeta(name="later")))
    wait_until(lambda: pull_secret_names(core, ns, "later") == ["regcred"], timeout=CONVERGE,
               what="new ServiceAccount")

    other = namespace_factory(prefix="elsewhere")
    wait_for_sa(core, other)
    core.patch_namespace(other, {"metadata": {"labels": {"pss-live": unique}}})
    wait_until(lambda: has_secret_and_ref(core, other), timeout=CONVERGE, what="relabelled in")
    core.patch_namespace(other, {"metadata": {"labels": {"pss-live": "off"}}})
    wait_until(lambda: pull_secret_names(core, other) == [], timeout=CONVERGE,
               what="relabelled out: entry removed")
    wait_until(lambda: not core.list_namespaced_secret(
        other, label_selector="app.kubernetes.io/managed-by=pullsecret-syncer").items,
        timeout=CONVERGE, what="relabelled out: secret pruned")


def test_deleted_or_edited_secret_and_removed_entry_are_repaired_keeping_foreign_entries(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="live")
    wait_for_sa(core, ns)
    daemon = start_daemon(write_config(daemon_config(creds["vault"], creds["aws"], unique)))
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="initial sync")
    good = read_secret(core, ns, "regcred").data

    core.delete_namespaced_secret("regcred", ns)
    wait_until(lambda: read_secret(core, ns, "regcred").data == good, timeout=CONVERGE,
               what="deleted secret recreated")

    core.patch_namespaced_secret("regcred", ns, {"data": {
        ".dockerconfigjson": "eyJhdXRocyI6e319", "sneaky": "eA=="}})
    wait_until(lambda: read_secret(core, ns, "regcred").data == good, timeout=CONVERGE,
               what="edited secret restored")

    core.patch_namespaced_service_account("default", ns, {"imagePullSecrets": [
        {"name": "theirs"}]})
    wait_until(lambda: pull_secret_names(core, ns) == ["theirs", "regcred"], timeout=CONVERGE,
               what="our entry restored, theirs kept")


@pytest.mark.parametrize("rotated", ["ghcr (moto put_secret_value)", "hub (OpenBao kv put)"])
def test_rotation_reaches_every_namespace_within_the_interval_and_writes_nothing_else(
    rotated: str, creds: dict[str, Any], unique: str, write_config: Callable[[str], Path],
    core: Any,
    kube: Any, stack_env: dict[str, str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    namespaces = [namespace_factory(prefix="live") for _ in range(3)]
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    daemon = start_daemon(write_config(daemon_config(creds["vault"], creds["aws"], unique)),
                          env=env)
    daemon.wait_ready()
    for ns in namespaces:
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE, what=ns)
    time.sleep(1)  # let the echo of our own writes settle
    proxy.reset_counts()

    new_pw = "rotated-SENTINEL-r1"
    if rotated.startswith("ghcr"):
        registry = "ghcr.io"
        creds["aws"].client("secretsmanager").put_secret_value(
            SecretId=f"pss/{unique}/ghcr", SecretString=json.dumps(
                {"username": "ghcruser", "password": new_pw, "registry": registry}))
    else:
        registry = "https://index.docker.io/v1/"
        creds["vault"].client().secrets.kv.v2.create_or_update_secret(
            path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": new_pw},
            mount_point=creds["vault"].kv2_mount)
    for ns in namespaces:
        wait_until(lambda ns=ns: dockerconfig_of(read_secret(core, ns, "regcred"))["auths"][
            registry]["password"] == new_pw, timeout=2 + 2 + CONVERGE, what=f"rotation in {ns}")
    time.sleep(1)
    writes = [(r.method, r.path) for r in proxy.requests
              if r.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert sorted(writes) == sorted(
        ("PATCH", f"/api/v1/namespaces/{ns}/secrets/regcred") for ns in namespaces)


def test_idle_daemon_makes_zero_writes_and_one_backend_read_per_credential_per_interval(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, stack_env: dict[str, str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    namespaces = [namespace_factory(prefix="live") for _ in range(4)]
    kube_proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    vault_proxy = fault_proxy(creds["vault"].addr)
    aws_proxy = fault_proxy(creds["aws"].endpoint)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(kube_proxy.url))}
    cfg = daemon_config(creds["vault"], creds["aws"], unique, refresh="3s",
                        vault_addr=vault_proxy.url, aws_endpoint=aws_proxy.url)
    daemon = start_daemon(write_config(cfg), env=env)
    daemon.wait_ready()
    for ns in namespaces:
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE, what=ns)
    time.sleep(1)
    kube_proxy.reset_counts()
    vault_proxy.reset_counts()
    aws_proxy.reset_counts()
    idle_from = time.monotonic()

    def reads() -> int:
        return vault_proxy.count(method="GET", path=rf"/v1/secret/data/pss/{unique}/hub")

    # three refresh intervals, counted by what happened rather than by the clock: a loaded
    # machine may stretch them, and then the bound below stretches with them
    wait_until(lambda: reads() >= 3 and aws_proxy.count(method="POST") >= 3, timeout=60,
               what="three refreshes of each credential")
    intervals = (time.monotonic() - idle_from) / 3.0
    assert kube_proxy.writes() == 0, kube_proxy.requests
    assert reads() <= intervals + 1, reads()  # one per 3 s interval, whatever the namespaces
    assert aws_proxy.count(method="POST") <= intervals + 1
    # no per-namespace GETs either: the caches answer
    assert kube_proxy.count(method="GET", path=r"/api/v1/namespaces/[^/?]+/") == 0


def test_watch_cut_and_410_gone_are_recovered_without_missing_an_event(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, stack_env: dict[str, str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    # the first namespace watch is answered 410 Gone; service-account watches are cut mid-stream
    proxy.fail(410, method="GET", path=r"^/api/v1/namespaces\?.*watch=", times=1)
    proxy.cut_watch(after_seconds=1.5, path=r"^/api/v1/serviceaccounts\?.*watch=", times=3)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    daemon = start_daemon(write_config(daemon_config(creds["vault"], creds["aws"], unique)),
                          env=env)
    daemon.wait_ready()
    ns = namespace_factory(prefix="live")
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="first namespace")
    # events that happen while watches are being cut and re-established are not missed
    names = []
    for _ in range(3):
        names.append(namespace_factory(prefix="live"))
        time.sleep(0.7)
    for name in names:
        wait_until(lambda name=name: has_secret_and_ref(core, name), timeout=CONVERGE,
                   what=f"{name} during watch cuts")
    namespace_lists = proxy.count(method="GET", path=r"^/api/v1/namespaces\?(?!.*watch=)")
    assert namespace_lists >= 2  # the 410 made it list again
    wait_until(lambda: proxy.count(
        method="GET", path=r"^/api/v1/serviceaccounts\?.*watch=") >= 4, timeout=CONVERGE,
        what="three cut service-account watches re-established")
    late = namespace_factory(prefix="live")
    wait_until(lambda: has_secret_and_ref(core, late), timeout=CONVERGE, what="after the cuts")


def test_config_reload_applies_a_valid_change_and_rejects_an_invalid_one(
    creds: dict[str, Any], unique: str, tmp_path: Path, core: Any,
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="reload")
    wait_for_sa(core, ns)
    cfg = tmp_path / "live.yaml"
    one = f"""
  - name: r
    namespaces: {{names: [{ns}]}}
    credentials: [hub]
"""
    cfg.write_text(daemon_config(creds["vault"], creds["aws"], unique, mappings=one))
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="first config")

    # invalid: rejected with errors logged, the old config keeps running
    cfg.write_text("version: 1\nmappings: [{name: r}]\n")
    wait_until(lambda: any(r.get("msg", "").startswith("config rejected")
                           for r in daemon.log_records()), timeout=CONVERGE,
               what="rejection logged")
    core.delete_namespaced_secret("regcred", ns)
    wait_until(lambda: read_secret(core, ns, "regcred"), timeout=CONVERGE,
               what="old config still enforced")

    # valid, swapped in like a ConfigMap update (atomic rename), then SIGHUP also works
    renamed = one.replace("name: r\n", "name: r\n    secretName: other\n")
    tmp = tmp_path / "live.yaml.new"
    tmp.write_text(daemon_config(creds["vault"], creds["aws"], unique, mappings=renamed))
    tmp.replace(cfg)
    wait_until(lambda: has_secret_and_ref(core, ns, "other"), timeout=CONVERGE,
               what="new secretName applied")
    wait_until(lambda: pull_secret_names(core, ns) == ["other"], timeout=CONVERGE,
               what="old entry pruned")
    daemon.signal(signal.SIGHUP)
    assert daemon.proc.poll() is None


def test_a_same_named_secret_found_only_on_create_is_a_conflict_and_left_alone(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    daemon = start_daemon(write_config(daemon_config(creds["vault"], creds["aws"], unique)))
    daemon.wait_ready()
    ns = namespace_factory(prefix="elsewhere")  # not selected yet: the daemon has no list of it
    wait_for_sa(core, ns)
    theirs = core.create_namespaced_secret(ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="regcred"), string_data={"k": "theirs"}))
    core.patch_namespace(ns, {"metadata": {"labels": {"pss-live": unique}}})
    wait_until(lambda: any(e.reason == "SecretConflict" for e in
                           core.list_namespaced_event(ns).items), timeout=CONVERGE,
               what="SecretConflict event after the create lost")
    time.sleep(2)
    after = read_secret(core, ns, "regcred")
    assert after.metadata.resource_version == theirs.metadata.resource_version
    assert pull_secret_names(core, ns) == []
    assert not [e for e in core.list_namespaced_event(ns).items if e.reason == "WriteFailed"]
    assert (daemon.metric("conflicts_total", kind="secret") or 0) >= 1


def test_a_config_map_symlink_swap_is_picked_up(
    creds: dict[str, Any], unique: str, tmp_path: Path, core: Any,
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    """A ConfigMap volume updates by pointing `..data` at a new timestamped directory."""
    ns = namespace_factory(prefix="cm")
    wait_for_sa(core, ns)
    mount = tmp_path / "configmap"
    mount.mkdir()

    def publish(version: str, secret_name: str) -> None:
        payload = mount / f"..{version}"
        payload.mkdir()
        (payload / "config.yaml").write_text(daemon_config(
            creds["vault"], creds["aws"], unique, mappings=f"""
  - name: cm
    namespaces: {{names: [{ns}]}}
    secretName: {secret_name}
    credentials: [hub]
"""))
        tmp_link = mount / "..data_tmp"
        tmp_link.symlink_to(payload.name)
        tmp_link.replace(mount / "..data")  # atomic, as the kubelet does

    publish("2026_11_28_01", "first")
    (mount / "config.yaml").symlink_to("..data/config.yaml")
    daemon = start_daemon(mount / "config.yaml")
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns, "first"), timeout=CONVERGE, what="first")
    publish("2026_11_28_02", "second")
    wait_until(lambda: has_secret_and_ref(core, ns, "second"), timeout=CONVERGE,
               what="config from the swapped ..data")
    wait_until(lambda: pull_secret_names(core, ns) == ["second"], timeout=CONVERGE,
               what="old secret's entry pruned")


def test_metrics_health_and_sigterm(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    ns = namespace_factory(prefix="live")
    daemon = start_daemon(write_config(daemon_config(creds["vault"], creds["aws"], unique)))
    assert wait_until(lambda: daemon.get("/healthz")[0] == 200, timeout=CONVERGE,
                      what="/healthz")
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="sync")
    metrics = wait_until(lambda: (m := daemon.metrics()) and m.get(
        'pullsecret_syncer_kube_writes_total{action="patch",kind="serviceaccount"}', 0) >= 1
        and m, timeout=CONVERGE, what="metrics")
    for name in ("hub", "ghcr"):
        assert metrics[f'pullsecret_syncer_credential_up{{credential="{name}"}}'] == 1.0
        assert metrics[f'pullsecret_syncer_credential_fetch_total{{credential="{name}",'
                       'result="success"}'] >= 1
        assert metrics[f'pullsecret_syncer_credential_last_success_timestamp_seconds'
                       f'{{credential="{name}"}}'] > time.time() - 60
        change = "pullsecret_syncer_credential_last_change_timestamp_seconds"
        assert f'{change}{{credential="{name}"}}' in metrics
    assert metrics['pullsecret_syncer_kube_writes_total{action="create",kind="secret"}'] >= 1
    assert metrics["pullsecret_syncer_is_leader"] == 1.0
    assert metrics['pullsecret_syncer_managed_secrets{mapping="live"}'] >= 1
    _, text = daemon.get("/metrics")
    assert ns not in text  # no namespace in any label
    records = daemon.log_records()
    assert records and all({"level", "msg"} <= set(r) for r in records)
    assert any(r.get("namespace") == ns and r.get("action") == "create" for r in records)

    started = time.monotonic()
    code = daemon.terminate(timeout=15)
    assert time.monotonic() - started < 10
    assert code == 143
