"""Ownership and bounded memory on the real stack.

- A user's copy of our Secret (`kubectl apply` of its YAML into another namespace, or under another
  name) survives `sync` and `run`: a label can be copied, ownership cannot.
- Two installations (`instance`) with disjoint mappings, running at once, make zero deletes of
  each other's objects (counted in the apiserver's audit log); both add their own entry to one
  ServiceAccount, and `uninstall --instance a` leaves instance b's Secrets and entries.
- 120 Secrets of ~900 KiB that a tenant labels as ours keep the daemon's peak memory (VmHWM)
  under 200 MiB while it repairs a deleted Secret elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration import conftest as shared
from tests.integration.conftest import daemon_config, read_secret
from tests.integration.daemonproc import DaemonProcess, wait_until

HUB_PW = "hub-pw-SENTINEL-own1"
GHCR_PW = "ghcr-pw-SENTINEL-own2"
LABEL = "app.kubernetes.io/managed-by=pullsecret-syncer"
CONVERGE = 20.0
PEAK_LIMIT_KIB = 200 * 1024


@pytest.fixture
def creds(vault: Any, aws: Any, unique: str) -> dict[str, Any]:
    shared.seed_credentials(vault, aws, unique, hub_password=HUB_PW, ghcr_password=GHCR_PW)
    return {"vault": vault, "aws": aws}


def config(creds: dict[str, Any], unique: str, *, instance: str, mappings: str,
           refresh: str = "2s") -> str:
    return f"instance: {instance}\n" + daemon_config(
        creds["vault"], creds["aws"], unique, refresh=refresh, mappings=mappings)


def mapping(name: str, namespaces: list[str], secret_name: str = "regcred") -> str:
    return f"""
  - name: {name}
    namespaces: {{names: {json.dumps(namespaces)}}}
    secretName: {secret_name}
    credentials: [hub, ghcr]
"""


def audit_secret_deletes(kube: Any, offset: int, namespaces: set[str]) -> list[str]:
    """DELETEs of Secrets in `namespaces` after byte `offset` of the audit log (whoever sent
    them: ours, the CLI's, or another installation's)."""
    with kube.audit_log.open("rb") as fh:
        fh.seek(offset)
        events = [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]
    return [f"{e['objectRef'].get('namespace')}/{e['objectRef'].get('name')}" for e in events
            if e.get("verb") == "delete" and e.get("objectRef", {}).get("resource") == "secrets"
            and e.get("stage") == "ResponseComplete"
            and e.get("objectRef", {}).get("namespace") in namespaces]


def kubectl_copy(kube: Any, source: dict[str, Any], namespace: str, name: str) -> None:
    """`kubectl get secret -o yaml | kubectl apply -n NS -f -`, with the fields a user strips
    so that apply accepts it (the server's own metadata, the source namespace)."""
    meta = dict(source["metadata"])
    for key in ("namespace", "uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    meta["name"] = name
    doc = json.dumps({**source, "metadata": meta})
    subprocess.run(["kubectl", "--kubeconfig", str(kube.kubeconfig), "apply", "-n", namespace,
                    "-f", "-"], input=doc, text=True, check=True, capture_output=True,
                   timeout=60)


def kubectl_get(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    proc = subprocess.run(["kubectl", "--kubeconfig", str(kube.kubeconfig), "get", "secret",
                           name, "-n", namespace, "-o", "json"], text=True, check=True,
                          capture_output=True, timeout=60)
    return dict(json.loads(proc.stdout))


def pull_names(core: Any, ns: str, sa: str = "default") -> list[str]:
    account = core.read_namespaced_service_account(sa, ns)
    return [r.name for r in account.image_pull_secrets or []]


def wait_for_sa(core: Any, ns: str) -> None:
    wait_until(lambda: core.read_namespaced_service_account("default", ns), timeout=30,
               what=f"default ServiceAccount in {ns}")


def test_a_users_copy_of_our_secret_survives_sync_and_run(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, cli: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    if kube.audit_log is None:
        pytest.skip("needs the stack's own apiserver (audit log), not PSS_KUBECONFIG")
    ours, other = namespace_factory(prefix="own"), namespace_factory(prefix="copy")
    wait_for_sa(core, ours)
    cfg = write_config(config(creds, unique, instance=f"i-{unique}",
                              mappings=mapping("own", [ours])))
    assert cli("sync", "--config", str(cfg)).code == 0
    source = kubectl_get(kube, ours, "regcred")
    kubectl_copy(kube, source, other, "regcred")  # a namespace no mapping selects
    kubectl_copy(kube, source, ours, "regcred-copy")  # beside ours, another name
    mark = kube.audit_log.stat().st_size
    for _ in range(2):
        synced = cli("sync", "--config", str(cfg))
        assert synced.code == 0, synced.output
        assert "delete" not in synced.stdout, synced.stdout
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    core.delete_namespaced_secret("regcred", ours)  # a repair pass runs over the namespace
    wait_until(lambda: read_secret(core, ours, "regcred"), timeout=CONVERGE, what="repaired")
    time.sleep(2)
    assert audit_secret_deletes(kube, mark, {ours, other}) == [f"{ours}/regcred"]  # the test's
    assert read_secret(core, other, "regcred").data == source["data"]
    assert read_secret(core, ours, "regcred-copy").data == source["data"]


def test_two_instances_never_delete_each_others_objects_and_uninstall_only_their_own(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, cli: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    if kube.audit_log is None:
        pytest.skip("needs the stack's own apiserver (audit log), not PSS_KUBECONFIG")
    a, b, shared = (namespace_factory(prefix=p) for p in ("insta", "instb", "shared"))
    for ns in (a, b, shared):
        wait_for_sa(core, ns)
    one, two = f"a.{unique}", f"b.{unique}"
    cfg_a = write_config(config(creds, unique, instance=one,
                                mappings=mapping("team", [a, shared], "pull-a")))
    cfg_b = write_config(config(creds, unique, instance=two,
                                mappings=mapping("team", [b, shared], "pull-b")))
    mark = kube.audit_log.stat().st_size
    daemons = [start_daemon(cfg_a), start_daemon(cfg_b)]
    for daemon in daemons:
        daemon.wait_ready()
    wait_until(lambda: pull_names(core, shared) == ["pull-a", "pull-b"]
               or pull_names(core, shared) == ["pull-b", "pull-a"], timeout=CONVERGE,
               what="both entries on the shared ServiceAccount")
    for _ in range(3):  # repeated full passes of both, while both daemons run
        for cfg in (cfg_a, cfg_b):
            synced = cli("sync", "--config", str(cfg))
            assert synced.code == 0, synced.output
    time.sleep(3)  # a few refresh intervals of both daemons
    assert audit_secret_deletes(kube, mark, {a, b, shared}) == []
    annotation = core.read_namespaced_service_account("default", shared).metadata.annotations
    assert sorted(annotation["pullsecret-syncer.io/image-pull-secrets"].split(",")) == [
        f"{one}:pull-a", f"{two}:pull-b"]

    daemons[0].terminate()
    removed = cli("uninstall", "--instance", one)
    assert removed.code == 0, removed.output
    assert f"{a}/pull-a" in removed.stdout and f"{b}/" not in removed.stdout, removed.stdout
    assert pull_names(core, shared) == ["pull-b"] and pull_names(core, b) == ["pull-b"]
    for ns in (b, shared):
        assert read_secret(core, ns, "pull-b").data
    assert not core.list_namespaced_secret(a, label_selector=LABEL).items
    assert audit_secret_deletes(kube, mark, {b}) == []


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_secrets_a_tenant_labels_as_ours_cannot_take_the_daemon_past_200_mib(
    creds: dict[str, Any], unique: str, write_config: Callable[[str], Path], core: Any,
    kube: Any, start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    tenant, ours = namespace_factory(prefix="tenant"), namespace_factory(prefix="repaired")
    wait_for_sa(core, ours)
    auth = base64.b64encode(os.urandom(675 * 1024)).decode()
    payload = json.dumps({"auths": {"x.example": {"auth": auth}}}).encode()  # ~900 KiB
    encoded = base64.b64encode(payload).decode()
    for i in range(120):
        core.create_namespaced_secret(tenant, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=f"fat-{i}", labels={
                "app.kubernetes.io/managed-by": "pullsecret-syncer"}),
            type="kubernetes.io/dockerconfigjson", data={".dockerconfigjson": encoded}))
    daemon = start_daemon(write_config(config(creds, unique, instance=f"m-{unique}",
                                              mappings=mapping("mem", [ours]))),
                          args=("--resync-interval", "20s"))
    daemon.wait_ready(timeout=120)
    wait_until(lambda: read_secret(core, ours, "regcred"), timeout=CONVERGE, what="first sync")
    core.delete_namespaced_secret("regcred", ours)
    wait_until(lambda: read_secret(core, ours, "regcred"), timeout=CONVERGE, what="repair")
    time.sleep(25)  # one more full re-list of every Secret (the resync) while measuring
    core.delete_namespaced_secret("regcred", ours)
    wait_until(lambda: read_secret(core, ours, "regcred"), timeout=CONVERGE, what="repair again")
    peak = vm_hwm_kib(daemon.proc.pid)
    print(f"daemon VmHWM with 120 x ~900 KiB labelled Secrets: {peak / 1024:.1f} MiB")
    assert peak < PEAK_LIMIT_KIB, f"VmHWM {peak / 1024:.1f} MiB"
    assert not [s for s in core.list_namespaced_secret(tenant).items
                if s.metadata.name.startswith("fat-") and s.metadata.annotations]  # untouched
