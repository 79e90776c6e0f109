"""`recyclePods` end to end (docs/recycle-pods.md) on the real apiserver: the controller-manager's
deployment, replicaset and disruption controllers run; no kubelet does, so the tests write Pod
status through the status subresource (tests/stack/workloads.py) — a container waiting in
`ImagePullBackOff` — and a Pod is "in the race window" when it was created before the syncer had
patched its ServiceAccount (its namespace is labelled for the mapping only afterwards).

The rate-limit test runs on the real time scale (10 evictions per minute): about 90 seconds.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Result, auth_of, pull_secret_names, wait_for_sa
from tests.integration.daemonproc import DaemonProcess, wait_until
from tests.integration.test_rbac import (  # noqa: F401 - syncer_sa is a fixture
    REPO,
    Identity,
    kubectl,
    rebind,
    syncer_sa,
    warning_events,
)
from tests.stack import workloads

PW = "recycle-pw-SENTINEL-7q"
MAPPING = "recycle"
CONVERGE = 20.0
COMPONENT = REPO / "deploy" / "kubernetes" / "components" / "recycle-pods" / "rbac.yaml"


@pytest.fixture
def setting(vault: Any, unique: str, leak_values: list[str],
            write_config: Callable[[str], Path]) -> dict[str, Any]:
    """A credential for `harbor-<unique>.test` in Vault and a config whose one mapping, with
    recyclePods, selects namespaces labelled `pss-recycle=<unique>`."""
    path = f"pss/{unique}/recycle"
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "bot", "password": PW}, mount_point=vault.kv2_mount)
    leak_values.extend([PW, auth_of("bot", PW)])
    registry = f"harbor-{unique}.test"
    cfg = write_config(f"""
version: 1
defaults: {{refreshInterval: 30s}}
backends:
  vault: {{type: vault, address: {vault.addr}, auth: {{method: token}}}}
credentials:
  priv: {{backend: vault, path: {path}, registry: {registry}}}
mappings:
  - name: {MAPPING}
    namespaces: {{selector: {{matchLabels: {{pss-recycle: "{unique}"}}}}}}
    credentials: [priv]
    recyclePods: true
""")
    return {"config": cfg, "image": f"{registry}/team/app:1", "label": {"pss-recycle": unique}}


@pytest.fixture
def race_ns(namespace_factory: Callable[..., str], core: Any) -> str:
    """A namespace the mapping does not select yet (`select` labels it)."""
    ns = namespace_factory(prefix="rcy")
    wait_for_sa(core, ns)
    return ns


def select(core: Any, ns: str, setting: dict[str, Any]) -> None:
    core.patch_namespace(ns, {"metadata": {"labels": setting["label"]}})


def stuck(core: Any, ns: str, app: str, image: str, *, reason: str = "ImagePullBackOff",
          pull_secrets: tuple[str, ...] = ()) -> str:
    """A Deployment whose Pod the kubelet reports stuck pulling `image`; the Pod's name."""
    workloads.deployment(core, ns, app, image=image, pull_secrets=pull_secrets)
    pod = workloads.wait_pods(core, ns, app, 1)[0].metadata.name
    workloads.kubelet(core, ns, pod, reason=reason)
    return str(pod)


def replaced(core: Any, ns: str, app: str, old: str) -> Any:
    return wait_until(lambda: (not workloads.exists(core, ns, old)) and workloads.wait_pods(
        core, ns, app, 1, exclude=frozenset({old}), timeout=0)[0], timeout=CONVERGE,
        what=f"{ns}/{old} evicted and replaced")


def evictions(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [r for r in daemon.log_records() if r.get("action") == "evict"
            and str(r.get("msg", "")).startswith("evict pod ")]


def test_a_deployment_created_in_the_race_window_is_evicted_once_and_comes_back_with_it(
    setting: dict[str, Any], race_ns: str, core: Any,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    ns = race_ns
    old = stuck(core, ns, "web", setting["image"])
    assert core.read_namespaced_pod(old, ns).spec.image_pull_secrets is None
    daemon = start_daemon(setting["config"])
    daemon.wait_ready()
    select(core, ns, setting)
    new = replaced(core, ns, "web", old)
    assert [r.name for r in new.spec.image_pull_secrets] == ["regcred"]  # admission's copy
    assert pull_secret_names(core, ns) == ["regcred"]
    time.sleep(3)  # room for a second eviction, which must not come
    assert daemon.metric("pods_recycled_total", mapping=MAPPING) == 1
    [line] = evictions(daemon)
    assert (line["msg"], line["namespace"], line["object"], line["mapping"]) == (
        f"evict pod {ns}/{old} ({MAPPING})", ns, old, MAPPING)
    assert [p.metadata.name for p in workloads.pods(core, ns, "web")] == [new.metadata.name]


def test_a_bare_pod_gets_a_warning_event_and_is_never_deleted(
    setting: dict[str, Any], race_ns: str, core: Any,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    ns = race_ns
    workloads.bare_pod(core, ns, "bare", image=setting["image"])
    workloads.kubelet(core, ns, "bare")
    daemon = start_daemon(setting["config"])
    daemon.wait_ready()
    select(core, ns, setting)
    [event] = wait_until(lambda: warning_events(core, "PullSecretMissing", name="bare",
                                                namespace=ns), timeout=CONVERGE,
                         what="the PullSecretMissing event")
    assert "no controller" in event.message and "regcred" in event.message
    time.sleep(3)
    assert workloads.exists(core, ns, "bare")
    assert not daemon.metric("pods_recycled_total", mapping=MAPPING)


def test_pods_our_secret_cannot_help_are_left_alone(
    setting: dict[str, Any], race_ns: str, core: Any,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    ns = race_ns
    unique = setting["label"]["pss-recycle"]
    witness = stuck(core, ns, "web", setting["image"])
    alone = {
        "elsewhere": stuck(core, ns, "elsewhere", f"quay.io/{unique}/app:1"),
        "carries": stuck(core, ns, "carries", setting["image"], pull_secrets=("regcred",)),
        "creating": stuck(core, ns, "creating", setting["image"], reason="ContainerCreating"),
        "never": stuck(core, ns, "never", setting["image"], reason="ErrImageNeverPull"),
    }
    daemon = start_daemon(setting["config"])
    daemon.wait_ready()
    select(core, ns, setting)
    replaced(core, ns, "web", witness)  # the recycler has looked at this namespace
    time.sleep(3)
    for app, pod in alone.items():
        assert workloads.exists(core, ns, pod), f"{app}: {pod} was evicted"
    assert daemon.metric("pods_recycled_total", mapping=MAPPING) == 1


def test_a_budget_that_refuses_the_eviction_is_not_forced(
    setting: dict[str, Any], race_ns: str, core: Any, kube: Any,
    fault_proxy: Callable[..., Any], stack_env: dict[str, str],
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """The apiserver evicts a Pending Pod whatever its budget says (it serves nothing); the
    budget holds once the Pod runs. So: the Pod becomes Ready while our eviction is on its way
    (held by the proxy), and the budget refuses it with 429."""
    ns = race_ns
    pod = stuck(core, ns, "web", setting["image"])
    workloads.budget(core, ns, "web")
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    proxy.delay(4.0, method="POST", path=r"/pods/[^/]+/eviction$")
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    daemon = start_daemon(setting["config"], env=env)
    daemon.wait_ready()
    select(core, ns, setting)
    wait_until(lambda: proxy.count(method="POST", path="/eviction"), timeout=CONVERGE,
               what="the eviction on its way")
    workloads.kubelet(core, ns, pod, phase="Running")  # Ready now: the budget counts it
    [answer] = wait_until(lambda: [r.status for r in proxy.requests
                                   if r.path.endswith("/eviction") and r.status], timeout=15,
                          what="the eviction answered")
    assert answer == 429
    time.sleep(2)
    assert workloads.exists(core, ns, pod)
    assert proxy.count(method="DELETE", path="/pods") == 0  # nothing forced
    assert not daemon.metric("pods_recycled_total", mapping=MAPPING)
    assert any("refused by a PodDisruptionBudget" in str(r.get("msg"))
               for r in daemon.log_records())


def log_time(record: dict[str, Any]) -> float:
    return datetime.datetime.strptime(str(record["time"]), "%Y-%m-%dT%H:%M:%S%z").timestamp()


def test_a_hundred_stuck_pods_give_at_most_ten_evictions_a_minute(
    setting: dict[str, Any], race_ns: str, core: Any,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    ns = race_ns
    workloads.deployment(core, ns, "many", image=setting["image"], replicas=100)
    first = workloads.wait_pods(core, ns, "many", 100, timeout=120)
    for pod in first:
        workloads.kubelet(core, ns, pod.metadata.name)
    daemon = start_daemon(setting["config"])
    daemon.wait_ready()
    select(core, ns, setting)
    wait_until(lambda: daemon.metric("pods_recycled_total", mapping=MAPPING), timeout=CONVERGE,
               what="the first eviction")
    started = time.monotonic()
    while time.monotonic() - started < 50:  # well inside the first minute
        assert (daemon.metric("pods_recycled_total", mapping=MAPPING) or 0) <= 10
        time.sleep(1)
    assert daemon.metric("pods_recycled_total", mapping=MAPPING) == 10
    wait_until(lambda: (daemon.metric("pods_recycled_total", mapping=MAPPING) or 0) > 10,
               timeout=40, what="the next minute's evictions")
    times = sorted(log_time(r) for r in evictions(daemon))
    assert times[10] - times[0] >= 59, times  # log times have whole seconds
    assert len(times) <= 20


def test_plan_shows_the_eviction_and_sync_performs_it(
    setting: dict[str, Any], race_ns: str, core: Any, cli: Callable[..., Result],
) -> None:
    ns = race_ns
    pod = stuck(core, ns, "web", setting["image"])
    select(core, ns, setting)
    cfg = str(setting["config"])
    shown = cli("plan", "--config", cfg)
    assert shown.code == 0, shown.output
    assert shown.stdout.splitlines() == [
        f"create secret {ns}/regcred (priv)", f"patch serviceaccount {ns}/default +regcred",
        f"evict pod {ns}/{pod} ({MAPPING})"]
    as_json = cli("plan", "--config", cfg, "--output", "json")
    assert json.loads(as_json.stdout)[-1] == {
        "action": "evict", "kind": "pod", "namespace": ns, "name": pod, "credentials": ["priv"],
        "mapping": MAPPING}
    assert workloads.exists(core, ns, pod)  # plan writes nothing
    done = cli("sync", "--config", cfg)
    assert done.code == 0, done.output
    assert "recycle: 1 pods evicted" in done.stderr
    assert f"evicted pod {ns}/{pod} ({MAPPING})" in done.stdout.splitlines()
    new = replaced(core, ns, "web", pod)
    assert [r.name for r in new.spec.image_pull_secrets] == ["regcred"]


def touch(config: Path) -> None:
    """Change the config file on disk (a comment): the daemon re-reads it, as on SIGHUP."""
    with config.open("a") as f:
        f.write(f"# touched {time.monotonic()}\n")


@pytest.fixture
def grant(syncer_sa: Identity, kube: Any) -> Iterator[Callable[[], None]]:  # noqa: F811
    """`grant()` binds the recycle-pods component's rules to the syncer's ServiceAccount."""
    objects = rebind([d for d in yaml.safe_load_all(COMPONENT.read_text()) if d],
                     namespace=syncer_sa.namespace, suffix=syncer_sa.namespace[-6:])
    applied: list[bool] = []

    def apply() -> None:
        kubectl(Path(kube.kubeconfig), "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
        applied.append(True)
        wait_until(lambda: syncer_sa.http("GET", "/api/v1/pods?limit=1").status_code == 200,
                   timeout=CONVERGE, what="the recycle-pods grant in force")

    yield apply
    if applied:
        kubectl(Path(kube.kubeconfig), "delete", "--ignore-not-found", "-f", "-",
                stdin=yaml.safe_dump_all(objects))


def test_without_the_grant_one_error_and_secrets_synced_and_with_it_pods_are_recycled(
    setting: dict[str, Any], race_ns: str, core: Any, syncer_sa: Identity,  # noqa: F811
    grant: Callable[[], None], stack_env_for: Callable[..., dict[str, str]],
    start_daemon: Callable[..., DaemonProcess], cli: Callable[..., Result],
) -> None:
    ns = race_ns
    pod = stuck(core, ns, "web", setting["image"])
    env = {**stack_env_for(kube=True, vault=True), "KUBECONFIG": str(syncer_sa.kubeconfig)}
    daemon = start_daemon(setting["config"], env=env)
    daemon.wait_ready()
    select(core, ns, setting)
    wait_until(lambda: pull_secret_names(core, ns) == ["regcred"], timeout=CONVERGE,
               what="the namespace synced without the grant")
    wait_until(lambda: daemon.metric("reconcile_errors_total", reason="recycle_forbidden"),
               timeout=CONVERGE, what="the refused Pod list counted")
    touch(setting["config"])  # a reload retries at once: refused again, not logged again
    wait_until(lambda: (daemon.metric("reconcile_errors_total", reason="recycle_forbidden")
                        or 0) >= 2, timeout=CONVERGE, what="the second refusal")
    errors = [r for r in daemon.log_records() if r.get("level") == "error"]
    assert [r["msg"] for r in errors] == [
        "recyclePods is on but not allowed to read pods (403): add the recycle-pods RBAC "
        "component; everything else keeps working; retrying every 5 minutes"]
    assert daemon.get("/healthz")[0] == 200 and workloads.exists(core, ns, pod)

    one_shot = cli("sync", "--config", str(setting["config"]), env=env)
    assert one_shot.code == 1, one_shot.output
    assert one_shot.stderr.count("error: recyclePods: not allowed to read or evict pods") == 1

    grant()
    touch(setting["config"])
    new = replaced(core, ns, "web", pod)
    assert [r.name for r in new.spec.image_pull_secrets] == ["regcred"]
    assert daemon.metric("pods_recycled_total", mapping=MAPPING) == 1
