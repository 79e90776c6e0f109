"""Reliability under Kubernetes API faults and concurrency (docs/operations.md), on the real stack.

Faults are injected by the fault proxy in front of the kube-apiserver (error statuses, connection
resets, cut watches, 410 Gone), by concurrent writers and by SIGKILL. Each test checks the outcome
and "nothing lost": Secret data and resourceVersions where no write is expected, and every foreign
`imagePullSecrets` entry.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.integration import conftest as shared
from tests.integration.conftest import (
    CONVERGE,
    FOREIGN_ENTRIES,
    Result,
    add_foreign_entries,
    auth_of,
    daemon_config,
    dockerconfig_of,
    has_secret_and_ref,
    pull_secret_names,
    read_secret,
    snapshot,
    wait_for_sa,
)
from tests.integration.daemonproc import DaemonProcess, wait_until

HUB_PW = "hub-pw-SENTINEL-k1"
GHCR_PW = "ghcr-pw-SENTINEL-k2"
HUB = "https://index.docker.io/v1/"
MANAGED = "app.kubernetes.io/managed-by=pullsecret-syncer"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def creds(vault: Any, aws: Any, unique: str, leak_values: list[str]) -> dict[str, Any]:
    shared.seed_credentials(vault, aws, unique, hub_password=HUB_PW, ghcr_password=GHCR_PW)
    leak_values.extend([auth_of("hubuser", HUB_PW), auth_of("ghcruser", GHCR_PW)])
    return {"vault": vault, "aws": aws}


def rotate_hub(vault: Any, unique: str, password: str, leak_values: list[str]) -> None:
    leak_values.append(auth_of("hubuser", password))
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": password},
        mount_point=vault.kv2_mount)


def hub_password(core: Any, ns: str) -> str:
    return str(dockerconfig_of(read_secret(core, ns, "regcred"))["auths"][HUB]["password"])


def only_names(mapping: str, namespaces: list[str], credentials: str = "[hub]",
               accounts: str = '["default"]') -> str:
    return f"""
  - name: {mapping}
    namespaces: {{names: [{", ".join(namespaces)}]}}
    credentials: {credentials}
    serviceAccounts: {accounts}
"""


def via(kube: Any, proxy: Any, stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}


def managed_secrets(core: Any, ns: str) -> list[str]:
    return [s.metadata.name for s in core.list_namespaced_secret(ns, label_selector=MANAGED).items]


def write_paths(proxy: Any, *, events: bool = False) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in proxy.requests if r.method in WRITES
            and (events or "/events" not in r.path)]


# --------------------------------------------------------------------------- case 5


def test_apiserver_errors_and_resets_on_writes_are_retried_with_backoff_without_duplicates(
    creds: dict[str, Any], unique: str, kube: Any, core: Any, stack_env: dict[str, str],
    write_config: Callable[[str], Path], cli: Callable[..., Result],
    fault_proxy: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str], leak_values: list[str],
) -> None:
    ns, ns2 = namespace_factory(prefix="flaky"), namespace_factory(prefix="flaky")
    for n in (ns, ns2):
        add_foreign_entries(core, n)
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = via(kube, proxy, stack_env)
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique, refresh="1s",
                                     mappings=only_names("flaky", [ns, ns2])))
    create = rf"^/api/v1/namespaces/{ns}/secrets$"
    patch_sa = rf"^/api/v1/namespaces/{ns}/serviceaccounts/default$"
    proxy.fail(500, method="POST", path=create, times=2)
    proxy.reset(method="POST", path=create, times=1)
    proxy.fail(503, method="PATCH", path=patch_sa, times=1)
    proxy.fail(429, method="PATCH", path=patch_sa, times=1)
    proxy.reset(method="PATCH", path=patch_sa, times=1)

    result = cli("sync", "--config", str(cfg), env=env)
    assert result.code == 0, result.output
    posts = [r for r in proxy.requests if r.method == "POST" and re.search(create, r.target)]
    assert [r.status if r.injected != "reset" else "reset" for r in posts] == [
        500, 500, "reset", 201]
    assert posts[-1].started - posts[0].started >= 0.2 + 0.4 + 0.8  # exponential backoff
    patches = [r for r in proxy.requests if r.method == "PATCH" and re.search(patch_sa, r.target)]
    assert [r.injected for r in patches] == ["fail", "fail", "reset", None]
    for n in (ns, ns2):
        assert managed_secrets(core, n) == ["regcred"]  # exactly one Secret, no duplicate
        assert hub_password(core, n) == HUB_PW  # complete and correct
        assert pull_secret_names(core, n) == [*FOREIGN_ENTRIES, "regcred"]

    # the daemon: more failures than one write's retries absorb; the pass retries later
    daemon = start_daemon(cfg, env=env)
    daemon.wait_ready()
    update = rf"^/api/v1/namespaces/{ns2}/secrets/regcred$"
    proxy.reset(method="PATCH", path=update, times=2)
    proxy.fail(503, method="PATCH", path=update, times=5)
    proxy.fail(500, method="PATCH", path=update, times=2)
    new_pw = "hub-flaky-SENTINEL-k3"
    rotate_hub(creds["vault"], unique, new_pw, leak_values)
    wait_until(lambda: hub_password(core, ns) == new_pw, timeout=CONVERGE, what=ns)
    wait_until(lambda: hub_password(core, ns2) == new_pw, timeout=3 * CONVERGE,
               what=f"{ns2} after 9 failed writes")
    assert proxy.count(method="PATCH", path=update) >= 10
    assert (daemon.metric("reconcile_errors_total", reason="kube_write") or 0) >= 1
    for n in (ns, ns2):
        assert managed_secrets(core, n) == ["regcred"]
        assert pull_secret_names(core, n) == [*FOREIGN_ENTRIES, "regcred"]


# --------------------------------------------------------------------------- case 6


def test_a_concurrent_writer_appending_to_the_same_service_account_loses_nothing(
    creds: dict[str, Any], unique: str, kube: Any, core: Any,
    write_config: Callable[[str], Path], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    """A storm driven by events, not by time: each round takes our entry out, then appends
    foreign entries while the daemon puts ours back, and the next round starts only once the
    daemon has repaired it and the appends are done. So every round exercises the race, whatever
    the machine's speed, and the counts below follow from the protocol. Each removal comes from
    another field manager: one writer taking our entry out again and again is a fight, answered
    with back-off (docs/gitops.md) — not what this test is about."""
    ns = namespace_factory(prefix="race")
    wait_for_sa(core, ns)
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique, refresh="2s",
                                     mappings=only_names("race", [ns])))
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns), timeout=CONVERGE, what="initial sync")
    rounds, per_round = 5, 10
    errors: list[BaseException] = []
    conflicts = [0]  # how often the appender lost a race (informative, timing-dependent)

    def read_modify_write(api: Any, change: Callable[[list[str]], list[str] | None], *,
                          manager: str) -> bool:
        """One optimistic update carrying resourceVersion; retried on 409 like any good client."""
        while True:
            sa = api.read_namespaced_service_account("default", ns)
            names = [r.name for r in sa.image_pull_secrets or []]
            new = change(names)
            if new is None:
                return False
            sa.image_pull_secrets = [k8s.V1LocalObjectReference(name=n) for n in new]
            try:
                api.replace_namespaced_service_account("default", ns, sa, field_manager=manager)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise
                conflicts[0] += 1

    def append(first: int) -> None:
        api = kube.core()
        try:
            for i in range(first, first + per_round):
                read_modify_write(api, lambda names, i=i: [*names, f"other-{i}"],
                                  manager="appender")
        except BaseException as exc:
            errors.append(exc)
        finally:
            api.api_client.close()

    for k in range(rounds):
        removed = read_modify_write(core, lambda names: [n for n in names if n != "regcred"]
                                    if "regcred" in names else None, manager=f"remover-{k}")
        assert removed, f"round {k}: our entry was not there to remove"
        appender = threading.Thread(target=append, args=(k * per_round,))
        appender.start()  # appends race with the daemon's repair
        wait_until(lambda: "regcred" in pull_secret_names(core, ns), timeout=CONVERGE,
                   what=f"round {k}: our entry repaired")
        appender.join(120)
        assert not appender.is_alive() and not errors, errors

    names = pull_secret_names(core, ns)
    others = [n for n in names if n.startswith("other-")]
    assert others == [f"other-{i}" for i in range(rounds * per_round)]  # all, in order
    assert names.count("regcred") == 1
    assert len(names) == rounds * per_round + 1
    # the initial patch and exactly one repair per removal: no duplicate, no lost write
    assert daemon.metric("kube_writes_total", kind="serviceaccount", action="patch") == rounds + 1
    assert daemon.metric("contested_serviceaccounts", mapping="race") == 0  # not a fight
    print(f"appender lost {conflicts[0]} races over {rounds} rounds")


# --------------------------------------------------------------------------- case 7


def test_abruptly_cut_watches_and_410_gone_on_every_resource_miss_nothing(
    creds: dict[str, Any], unique: str, kube: Any, core: Any, stack_env: dict[str, str],
    write_config: Callable[[str], Path], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    ns0 = namespace_factory(prefix="live")
    add_foreign_entries(core, ns0)
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    resources = ("namespaces", "serviceaccounts", "secrets")
    for res in resources:
        proxy.fail(410, method="GET", path=rf"^/api/v1/{res}\?.*watch=", times=1)
        proxy.cut_watch(after_seconds=0.8, abrupt=True, path=rf"^/api/v1/{res}\?.*watch=",
                        times=3)
    # no resync during the test: only the watches can see what happens
    daemon = start_daemon(write_config(daemon_config(creds["vault"], creds["aws"], unique)),
                          env=via(kube, proxy, stack_env))
    daemon.wait_ready()
    wait_until(lambda: pull_secret_names(core, ns0) == [*FOREIGN_ENTRIES, "regcred"],
               timeout=CONVERGE, what="initial sync")
    good = read_secret(core, ns0, "regcred").data
    created: list[str] = []
    for step in range(6):  # changes land at random points of cut / reconnecting watches
        time.sleep(random.uniform(0.2, 0.9))
        if step % 3 == 0:
            created.append(namespace_factory(prefix="live"))
        elif step % 3 == 1:
            core.delete_namespaced_secret("regcred", ns0)
        else:
            core.patch_namespaced_service_account("default", ns0, {
                "imagePullSecrets": [{"name": n} for n in FOREIGN_ENTRIES]})
    core.create_namespaced_service_account(ns0, k8s.V1ServiceAccount(
        metadata=k8s.V1ObjectMeta(name=f"late-{unique}")))
    for ns in created:
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE, what=ns)
    wait_until(lambda: read_secret(core, ns0, "regcred").data == good, timeout=CONVERGE,
               what="deleted Secret recreated")
    wait_until(lambda: pull_secret_names(core, ns0) == [*FOREIGN_ENTRIES, "regcred"],
               timeout=CONVERGE, what="removed entry restored, foreign kept")
    wait_until(lambda: pull_secret_names(core, ns0, f"late-{unique}") == ["regcred"],
               timeout=CONVERGE, what="new ServiceAccount")

    def watches(res: str) -> list[Any]:
        return [r for r in proxy.requests if re.search(rf"^/api/v1/{res}\?.*watch=", r.target)]

    for res in resources:  # the reconnects back off, so the last cuts may still be to come
        # an abrupt cut is recorded as a reset (RST to the client)
        wait_until(lambda res=res: sum(r.injected == "reset" for r in watches(res)) >= 2,
                   timeout=2 * CONVERGE, what=f"{res}: abrupt cuts")
        assert sum(r.status == 410 for r in watches(res)) == 1, res
        lists = proxy.count(method="GET", path=rf"^/api/v1/{res}\?(?!.*watch=)")
        assert lists >= 2, res  # the 410 made it list again
    # and after all the cuts the watches still deliver
    core.delete_namespaced_secret("regcred", created[0])
    last = namespace_factory(prefix="live")
    for ns in (created[0], last):
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE, what=ns)
    assert daemon.proc.poll() is None


# --------------------------------------------------------------------------- case 9


def test_two_daemons_without_leader_election_lose_no_entry_and_stop_writing_once_converged(
    creds: dict[str, Any], unique: str, kube: Any, core: Any, stack_env: dict[str, str],
    write_config: Callable[[str], Path], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
    leak_values: list[str],
) -> None:
    namespaces = [namespace_factory(prefix="live") for _ in range(3)]
    for ns in namespaces:
        add_foreign_entries(core, ns)
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = via(kube, proxy, stack_env)
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique, refresh="1s"))
    args = ("--resync-interval", "2s")
    daemons = [start_daemon(cfg, env=env, args=args) for _ in range(2)]
    for d in daemons:
        d.wait_ready()

    def converged(password: str) -> bool:
        return all(hub_password(core, ns) == password and managed_secrets(core, ns) == [
            "regcred"] and pull_secret_names(core, ns) == [*FOREIGN_ENTRIES, "regcred"]
            for ns in namespaces)

    def quiet_for(seconds: float) -> list[tuple[str, str]]:
        time.sleep(1)  # the echo of the last writes
        proxy.reset_counts()
        time.sleep(seconds)
        return write_paths(proxy, events=True)

    wait_until(lambda: converged(HUB_PW), timeout=CONVERGE, what="both converged")
    assert quiet_for(6) == []  # three resyncs and six refreshes each: no flapping

    new_pw = "hub-two-writers-SENTINEL-k4"
    rotate_hub(creds["vault"], unique, new_pw, leak_values)
    late = namespace_factory(prefix="live")
    add_foreign_entries(core, late)
    namespaces.append(late)
    wait_until(lambda: converged(new_pw), timeout=CONVERGE, what="rotation and new namespace")
    assert quiet_for(6) == []
    for ns in namespaces:
        sa = core.read_namespaced_service_account("default", ns)
        assert sa.metadata.annotations["pullsecret-syncer.io/image-pull-secrets"] == "regcred"
    assert all(d.proc.poll() is None for d in daemons)


# --------------------------------------------------------------------------- case 10


def test_unmanaged_same_named_secret_stays_byte_identical_through_many_resyncs_and_edits_are_undone(
    creds: dict[str, Any], unique: str, kube: Any, core: Any, stack_env: dict[str, str],
    write_config: Callable[[str], Path], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
    leak_values: list[str],
) -> None:
    ns_u, ns_m = namespace_factory(prefix="live"), namespace_factory(prefix="live")
    for ns in (ns_u, ns_m):
        add_foreign_entries(core, ns)
    core.create_namespaced_secret(ns_u, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="regcred", labels={"team": "theirs"},
                                  annotations={"note": "hand-made"}),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": '{"auths":{"theirs.example":{"auth":"eDp5"}}}'}))
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    before_u = snapshot(core, [ns_u])
    daemon = start_daemon(
        write_config(daemon_config(creds["vault"], creds["aws"], unique, refresh="1s")),
        env=via(kube, proxy, stack_env), args=("--resync-interval", "1s"))
    daemon.wait_ready()
    wait_until(lambda: has_secret_and_ref(core, ns_m), timeout=CONVERGE, what="managed synced")
    good = read_secret(core, ns_m, "regcred").data
    started = time.monotonic()
    # "hours" of operation, compressed: a resync and a refresh every second for ~15 s, with a
    # hand edit and a rotation in between
    time.sleep(4)
    core.patch_namespaced_secret("regcred", ns_m, {"data": {
        ".dockerconfigjson": "eyJhdXRocyI6e319", "extra": "eA=="}})
    wait_until(lambda: read_secret(core, ns_m, "regcred").data == good, timeout=CONVERGE,
               what="hand edit undone")
    new_pw = "hub-long-run-SENTINEL-k5"
    rotate_hub(creds["vault"], unique, new_pw, leak_values)
    wait_until(lambda: hub_password(core, ns_m) == new_pw, timeout=CONVERGE, what="rotation")
    time.sleep(max(0.0, 15 - (time.monotonic() - started)))

    def resyncs() -> int:
        return proxy.count(method="GET", path=r"^/api/v1/namespaces\?(?!.*watch=)")

    # at least ten resyncs seen, however long a loaded machine takes for them
    wait_until(lambda: resyncs() >= 10, timeout=60, what="ten resyncs")

    assert snapshot(core, [ns_u]) == before_u  # data, resourceVersion, labels, SA entries
    touched = [w for w in write_paths(proxy) if f"/namespaces/{ns_u}/" in w[1]]
    assert touched == []
    conflicts = [e for e in core.list_namespaced_event(ns_u).items
                 if e.reason == "SecretConflict"]
    assert len(conflicts) == 1 and conflicts[0].type == "Warning"  # reported, not spammed
    assert pull_secret_names(core, ns_m) == [*FOREIGN_ENTRIES, "regcred"]


# --------------------------------------------------------------------------- case 11


def test_kube_system_through_a_pattern_or_selector_and_unselected_namespaces_get_no_write(
    creds: dict[str, Any], unique: str, kube: Any, core: Any, stack_env: dict[str, str],
    write_config: Callable[[str], Path], cli: Callable[..., Result],
    fault_proxy: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    reserved = ["kube-system", "kube-public", "kube-node-lease"]
    label = f"pss-sel-{unique}"
    ns_in, ns_out = namespace_factory(prefix="in"), namespace_factory(prefix="out")
    for ns in (ns_in, ns_out):
        wait_for_sa(core, ns)
    before = {ns: {sa.metadata.name: (sa.metadata.resource_version,
                                      [r.name for r in sa.image_pull_secrets or []])
                   for sa in core.list_namespaced_service_account(ns).items}
              for ns in [*reserved, ns_out]}
    for ns in [*reserved, ns_in]:
        core.patch_namespace(ns, {"metadata": {"labels": {label: "yes"}}})
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = via(kube, proxy, stack_env)
    try:
        cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique, refresh="1s",
                                         mappings=f"""
  - name: greedy
    namespaces:
      patterns: ["kube-*", "*-system", "in-{unique}*"]
      selector: {{matchLabels: {{{label}: "yes"}}}}
    credentials: [hub]
    serviceAccounts: ["*"]
"""))
        plan = cli("plan", "--config", str(cfg), env=env)
        assert plan.code == 0, plan.output
        assert f"{ns_in}/regcred" in plan.stdout
        assert not any(ns in plan.stdout for ns in [*reserved, ns_out]), plan.stdout
        result = cli("sync", "--config", str(cfg), env=env)
        assert result.code == 0, result.output
        daemon = start_daemon(cfg, env=env, args=("--resync-interval", "1s"))
        daemon.wait_ready()
        time.sleep(4)  # a few resyncs and refreshes
        assert has_secret_and_ref(core, ns_in)  # the mapping does work where it may
    finally:
        for ns in reserved:
            core.patch_namespace(ns, {"metadata": {"labels": {label: None}}})
    for ns in [*reserved, ns_out]:
        assert [w for w in write_paths(proxy, events=True) if f"/namespaces/{ns}/" in w[1]] == []
        assert "regcred" not in [s.metadata.name for s in core.list_namespaced_secret(ns).items]
        after = {sa.metadata.name: (sa.metadata.resource_version,
                                    [r.name for r in sa.image_pull_secrets or []])
                 for sa in core.list_namespaced_service_account(ns).items}
        assert after == before[ns], ns


# --------------------------------------------------------------------------- case 15


def test_sigkill_at_random_points_of_a_pass_never_leaves_a_reference_to_a_missing_secret(
    creds: dict[str, Any], unique: str, kube: Any, core: Any,
    write_config: Callable[[str], Path], start_daemon: Callable[..., DaemonProcess],
    namespace_factory: Callable[..., str],
) -> None:
    label = f"pss-crash-{unique}"
    namespaces = [namespace_factory(prefix="crash", labels={label: "in"}) for _ in range(30)]
    for ns in namespaces:
        wait_for_sa(core, ns)
    ours = set(namespaces)
    cfg = write_config(daemon_config(creds["vault"], creds["aws"], unique, refresh="30s",
                                     mappings=f"""
  - name: crash
    namespaces: {{selector: {{matchLabels: {{{label}: "in"}}}}}}
    credentials: [hub]
"""))
    slow = ("--kube-qps", "5", "--kube-burst", "1")  # ~12 s for the 60 writes of a full pass
    violations: list[str] = []
    observations = [0]
    stop = threading.Event()

    def watchdog() -> None:
        """Poll: every ServiceAccount reference of ours must name a Secret that exists. SAs
        are read before Secrets, so a Secret deleted after its reference was dropped is fine."""
        api = kube.core()
        try:
            while not stop.is_set():
                accounts = api.list_service_account_for_all_namespaces().items
                secrets = {(s.metadata.namespace, s.metadata.name) for s in
                           api.list_secret_for_all_namespaces(label_selector=MANAGED).items}
                for sa in accounts:
                    ns = sa.metadata.namespace
                    refs = [r.name for r in sa.image_pull_secrets or []]
                    if ns in ours and "regcred" in refs and (ns, "regcred") not in secrets:
                        violations.append(f"{ns}/{sa.metadata.name} -> regcred (missing)")
                    if refs.count("regcred") > 1:
                        violations.append(f"{ns}/{sa.metadata.name}: duplicate entry")
                observations[0] += 1
                stop.wait(0.1)
        finally:
            api.api_client.close()

    def with_ref() -> int:
        return sum(ns in ours and "regcred" in [r.name for r in sa.image_pull_secrets or []]
                   for sa in core.list_service_account_for_all_namespaces().items
                   for ns in [sa.metadata.namespace])

    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    poller = threading.Thread(target=watchdog)
    poller.start()
    try:
        for phase, target in (("create", len(namespaces)), ("prune", 0)):
            if phase == "prune":  # every namespace stops matching: unpatch, then delete
                for ns in namespaces:
                    core.patch_namespace(ns, {"metadata": {"labels": {label: "out"}}})
            progress = []
            for _ in range(3):
                daemon = start_daemon(cfg, args=slow)
                time.sleep(rng.uniform(2.0, 6.0))
                daemon.kill()
                progress.append(with_ref())
            daemon = start_daemon(cfg, args=slow)
            wait_until(lambda target=target, phase=phase: with_ref() == target and (
                phase == "create" or not core.list_secret_for_all_namespaces(
                    label_selector=f"{MANAGED}").items or all(
                    s.metadata.namespace not in ours for s in core.list_secret_for_all_namespaces(
                        label_selector=MANAGED).items)), timeout=60,
                       what=f"{phase}: convergence after kills (seed {seed}, {progress})")
            assert progress[0] != target or phase == "prune", progress  # killed mid-pass
            daemon.terminate()
            if phase == "create":
                for ns in namespaces:
                    assert managed_secrets(core, ns) == ["regcred"], ns
                    assert pull_secret_names(core, ns) == ["regcred"], ns
            else:
                assert all(managed_secrets(core, ns) == [] for ns in namespaces)
        # the watchdog looked often enough to mean something, however slow its lists were
        wait_until(lambda: observations[0] >= 20, timeout=60, what="20 watchdog observations")
    finally:
        stop.set()
        poller.join(30)
    assert violations == [], f"seed {seed}: {violations[:10]}"
