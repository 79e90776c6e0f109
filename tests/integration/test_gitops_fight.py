"""A GitOps fight over `imagePullSecrets`, on the real stack (docs/gitops.md).

Two other writers, each with its own field manager, put a ServiceAccount back to its declared
state whenever our entry appears (polling every 0.3 s, for 2 minutes) — an Argo CD-style patch of
the list (`argocd-controller`) and a Helm-style update that drops the whole list and our
annotation (`helm`). Both run at once in two namespaces of two mappings. The daemon talks to the
apiserver through a fault proxy (no faults), which counts its writes to each ServiceAccount.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.integration.conftest import (
    CONVERGE,
    Result,
    auth_of,
    daemon_config,
    pull_secret_names,
    wait_for_sa,
)
from tests.integration.daemonproc import DaemonProcess, wait_until

HUB_PW = "hub-pw-SENTINEL-g1"
FIGHT_SECONDS = 120.0
POLL = 0.3
MAX_WRITES = 10
ONE_OFF_REPAIR = 5.0
REASON = "ImagePullSecretsContested"
HELM_LABELS = {"app.kubernetes.io/managed-by": "Helm"}
HELM_ANNOTATIONS = {"meta.helm.sh/release-name": "app", "meta.helm.sh/release-namespace": "x"}


class Fighter(threading.Thread):
    """Another writer with self-heal: whenever our entry shows on its ServiceAccount, it puts
    the ServiceAccount back to what it declares. `revert(api, sa)` does that write."""

    def __init__(self, kube: Any, ns: str, name: str,
                 revert: Callable[[Any, Any], None]) -> None:
        super().__init__(name=f"fighter-{ns}/{name}", daemon=True)
        self.api = kube.core()
        self.ns, self.sa_name, self._revert = ns, name, revert
        self.stop = threading.Event()
        self.reverts: list[float] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stop.wait(POLL):
                sa = self.api.read_namespaced_service_account(self.sa_name, self.ns)
                if "regcred" in [r.name for r in sa.image_pull_secrets or []]:
                    try:
                        self._revert(self.api, sa)
                        self.reverts.append(time.time())
                    except k8s.exceptions.ApiException as exc:
                        if exc.status != 409:  # lost a race with us: try again next poll
                            raise
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.api.api_client.close()


def argo_revert(ns: str) -> Callable[[Any, Any], None]:
    """Argo CD self-heal (client-side apply): a patch of the list to its declared value."""
    def revert(api: Any, sa: Any) -> None:
        api.patch_namespaced_service_account(
            "default", ns, {"imagePullSecrets": [{"name": "declared-argo"}]},
            field_manager="argocd-controller")
    return revert


def helm_manifest(ns: str) -> Any:
    return k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(
        name="app", namespace=ns, labels=HELM_LABELS, annotations=HELM_ANNOTATIONS))


def helm_revert(ns: str) -> Callable[[Any, Any], None]:
    """`helm upgrade --force`-style: the declared manifest, without imagePullSecrets, put whole
    (an update that drops the list and our annotation)."""
    def revert(api: Any, sa: Any) -> None:
        body = helm_manifest(ns)
        body.metadata.resource_version = sa.metadata.resource_version
        api.replace_namespaced_service_account("app", ns, body, field_manager="helm")
    return revert


def contested_events(core: Any, ns: str) -> list[Any]:
    return [e for e in core.list_namespaced_event(ns).items if e.reason == REASON]


def test_a_gitops_writer_reverting_our_entry_gets_few_writes_an_event_and_a_gauge(
    unique: str, vault: Any, aws: Any, kube: Any, core: Any, stack_env: dict[str, str],
    write_config: Callable[[str], Path], cli: Callable[..., Result],
    fault_proxy: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str], leak_values: list[str],
) -> None:
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": HUB_PW},
        mount_point=vault.kv2_mount)
    leak_values.append(auth_of("hubuser", HUB_PW))
    ns_argo, ns_helm = namespace_factory(prefix="argo"), namespace_factory(prefix="helm")
    for ns in (ns_argo, ns_helm):
        wait_for_sa(core, ns)
    # what each tool declares, written by the tool itself
    core.patch_namespaced_service_account("default", ns_argo, {
        "imagePullSecrets": [{"name": "declared-argo"}]}, field_manager="argocd-controller")
    core.create_namespaced_service_account(ns_argo, k8s.V1ServiceAccount(
        metadata=k8s.V1ObjectMeta(name="builder")))
    core.create_namespaced_service_account(ns_helm, helm_manifest(ns_helm), field_manager="helm")
    cfg = write_config(daemon_config(vault, aws, unique, mappings=f"""
  - name: argo
    namespaces: {{names: [{ns_argo}]}}
    credentials: [hub]
    serviceAccounts: ["*"]
  - name: helm
    namespaces: {{names: [{ns_helm}]}}
    credentials: [hub]
    serviceAccounts: ["*"]
"""))
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    daemon = start_daemon(cfg, env=env)
    daemon.wait_ready()
    fought = {"argo": (ns_argo, "default"), "helm": (ns_helm, "app")}
    for ns, name in [*fought.values(), (ns_argo, "builder")]:
        wait_until(lambda ns=ns, name=name: "regcred" in pull_secret_names(core, ns, name),
                   timeout=CONVERGE, what=f"initial sync of {ns}/{name}")

    def our_writes(ns: str, name: str, since: float, until: float, *,
                   applied: bool = False) -> list[float]:
        """When the daemon sent a write to that ServiceAccount (`applied`: only those that
        succeeded, not a lost race's 409/422)."""
        path = f"/api/v1/namespaces/{ns}/serviceaccounts/{name}"
        return [r.started for r in proxy.requests if r.method in ("PATCH", "PUT")
                and r.path == path and since <= r.started <= until
                and (not applied or r.status == 200)]

    fighters = {"argo": Fighter(kube, ns_argo, "default", argo_revert(ns_argo)),
                "helm": Fighter(kube, ns_helm, "app", helm_revert(ns_helm))}
    started = time.time()
    for f in fighters.values():
        f.start()
    try:
        # both become contested: Event, gauge and `plan`, while the fight goes on
        for mapping, (ns, name) in fought.items():
            manager = "argocd-controller" if mapping == "argo" else "helm"
            events = wait_until(lambda ns=ns: contested_events(core, ns), timeout=CONVERGE + 10,
                                what=f"{REASON} Event in {ns}")
            assert [(e.type, e.involved_object.name) for e in events] == [("Warning", name)]
            assert f"'{manager}'" in events[0].message, events[0].message
            wait_until(lambda mapping=mapping: daemon.metric(
                "contested_serviceaccounts", mapping=mapping) == 1, timeout=CONVERGE,
                what=f"gauge of {mapping}")
        assert "RespectIgnoreDifferences=true" in contested_events(core, ns_argo)[0].message
        assert "leave imagePullSecrets out" in contested_events(core, ns_helm)[0].message
        # `plan` (a one-shot, without the daemon's memory) knows it from the Events; a
        # finding, not a write, so on stderr beside conflicts: stdout stays the action lines
        planned = cli("plan", "--config", str(cfg))
        assert planned.code == 0, planned.output
        assert f"contested serviceaccount {ns_argo}/default (by argocd-controller)" in (
            planned.stderr.splitlines())
        assert f"contested serviceaccount {ns_helm}/app (by helm)" in planned.stderr.splitlines()
        assert "contested" not in planned.stdout
        as_json = cli("plan", "--config", str(cfg), "--output", "json")
        assert all(d["action"] != "contested" for d in json.loads(as_json.stdout))
        assert f"contested serviceaccount {ns_helm}/app (by helm)" in as_json.stderr
        # a one-off edit of another ServiceAccount during the fight: repaired at once
        time.sleep(max(0.0, started + 45 - time.time()))
        edited = time.time()
        core.patch_namespaced_service_account("builder", ns_argo, {"imagePullSecrets": [
            {"name": "theirs"}]}, field_manager="kubectl-edit")
        wait_until(lambda: pull_secret_names(core, ns_argo, "builder") == ["theirs", "regcred"],
                   timeout=ONE_OFF_REPAIR, what="the one-off edit repaired within 5 s")
        one_off = time.time() - edited
        time.sleep(max(0.0, started + FIGHT_SECONDS - time.time()))
    finally:
        for f in fighters.values():
            f.stop.set()
        for f in fighters.values():
            f.join(10)
    stopped = time.time()
    measured: dict[str, Any] = {"one-off repair (s)": round(one_off, 2)}
    for mapping, (ns, name) in fought.items():
        f = fighters[mapping]
        assert not f.errors, f.errors
        sent = our_writes(ns, name, started, stopped)
        assert len(sent) <= MAX_WRITES, (mapping, sent)
        assert len(f.reverts) >= 3, f.reverts  # it was a fight: at least three rounds
        # the pauses between our restores grow: 30 s, then 60 s (doubling)
        writes = our_writes(ns, name, started, stopped, applied=True)
        gaps = [round(b - a, 1) for a, b in itertools.pairwise(writes)]
        assert gaps[-1] >= 2 * 30 - 1 and gaps[-2] >= 30 - 1, gaps
        assert daemon.metric("contested_serviceaccounts", mapping=mapping) == 1
        measured[mapping] = {"our writes in 2 min": len(sent), "reverts": len(f.reverts),
                             "gaps (s)": gaps}
    # the writers stopped: our entry is back within one back-off period (twice the last gap)
    for mapping, (ns, name) in fought.items():
        last = our_writes(ns, name, started, stopped, applied=True)
        backoff = 2 * (last[-1] - last[-2])
        wait_until(lambda ns=ns, name=name: "regcred" in pull_secret_names(core, ns, name),
                   timeout=max(1.0, last[-1] + backoff - time.time()) + CONVERGE,
                   what=f"{mapping}: our entry back within one back-off period ({backoff:.0f} s)")
        measured[mapping]["back after stop (s)"] = round(time.time() - stopped, 1)
        assert pull_secret_names(core, ns, name)[-1] == "regcred"
    # nothing of theirs was lost, and exactly one Event per ServiceAccount (hourly)
    assert pull_secret_names(core, ns_argo, "default") == ["declared-argo", "regcred"]
    for ns in (ns_argo, ns_helm):
        assert len(contested_events(core, ns)) == 1
    print("fight measurements:", json.dumps(measured))
