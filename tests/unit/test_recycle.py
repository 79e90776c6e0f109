"""The pure recycling decision: which Pending Pods are evicted, which get a Warning Event, which
are left alone — and the scene it decides in (the desired state, our Secrets, the accounts as a
pass leaves them)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from syncer import config
from syncer.core import model
from syncer.decide import plan, recycle
from syncer.present import actions as render
from tests.unit import builders

NS = "team-a"
PRIVATE = "harbor.example.com/team/app:1"
ELSEWHERE = "quay.io/other/app:1"


def account(*pulls: str, name: str = "default") -> model.ServiceAccount:
    return model.ServiceAccount(NS, name, pulls, (), "1")


def pod(*, waiting: tuple[tuple[str, str], ...] = ((PRIVATE, "ImagePullBackOff"),),
        pulls: tuple[str, ...] = (), controller: bool = True, phase: str = "Pending",
        sa: str = "default", terminating: bool = False, name: str = "web-1",
        kind: str = "ReplicaSet") -> model.Pod:
    return model.Pod(NS, name, "uid-1", "7", sa, pulls, controller, phase, waiting, terminating,
                     controller_kind=kind if controller else "")


def secret(name: str = "regcred", *, managed: bool = True) -> model.Secret:
    return model.Secret(NS, name, managed, model.SECRET_TYPE, b"{}", (model.DOCKERCONFIG_KEY,),
                        {}, {}, "3")


CREDENTIALS = {"harbor": builders.basic("harbor.example.com/team", "bot", "pw"),
               "hub": builders.basic("docker.io", "bot", "pw")}


def make_config(*, recycle_pods: bool = True, **mapping: Any) -> config.Config:
    mapping.setdefault("credentials", ("harbor",))
    m = builders.make_mapping("team-a", patterns=("team-*",), **mapping)
    return builders.make_config(m.model_copy(update={"recycle_pods": recycle_pods}))


def view(*accounts: model.ServiceAccount, secrets: tuple[model.Secret, ...] = (secret(),),
         ) -> model.ClusterView:
    return model.ClusterView({NS: model.Namespace(NS)},
                             {(s.namespace, s.name): s for s in secrets},
                             {NS: {a.name: a for a in accounts}})


def decide(p: model.Pod, *, cfg: config.Config | None = None,
           v: model.ClusterView | None = None) -> recycle.Decision:
    where = recycle.scene(cfg or make_config(), CREDENTIALS, v or view(account("regcred")))
    return recycle.decide(p, where)


EVICT = recycle.EvictPod(NS, "web-1", secret_name="regcred", mapping="team-a",
                         credentials=("harbor",), observed_uid="uid-1")


@pytest.mark.parametrize(("case", "subject", "expected"), [
    ("stuck in ImagePullBackOff", pod(), EVICT),
    ("stuck in ErrImagePull", pod(waiting=((PRIVATE, "ErrImagePull"),)), EVICT),
    ("an init container is stuck", pod(waiting=((PRIVATE, "ImagePullBackOff"),
                                               ("nginx", "PodInitializing"))), EVICT),
    ("got the SA's other entries at creation", pod(pulls=("theirs",)), EVICT),
    ("ContainerCreating is not a pull failure", pod(waiting=((PRIVATE, "ContainerCreating"),)),
     None),
    ("ErrImageNeverPull: no secret helps", pod(waiting=((PRIVATE, "ErrImageNeverPull"),)), None),
    ("InvalidImageName: no secret helps", pod(waiting=((PRIVATE, "InvalidImageName"),)), None),
    ("CrashLoopBackOff is not ours", pod(waiting=((PRIVATE, "CrashLoopBackOff"),)), None),
    ("nothing waits", pod(waiting=()), None),
    ("a registry our credentials do not cover", pod(waiting=((ELSEWHERE, "ImagePullBackOff"),)),
     None),
    ("another path of the same host",
     pod(waiting=(("harbor.example.com/ops/x", "ErrImagePull"),)), None),
    ("already carries the secret", pod(pulls=("regcred",)), None),
    ("no longer Pending", pod(phase="Running"), None),
    ("already terminating", pod(terminating=True), None),
    ("runs as an account that does not list it", pod(sa="builder"), None),
    ("a bare Pod is never evicted", pod(controller=False), recycle.MissingSecret(
        NS, "web-1", "uid-1", "team-a", "regcred", "default", "no-controller")),
    ("its template names its own secrets", pod(pulls=("from-template",)), recycle.MissingSecret(
        NS, "web-1", "uid-1", "team-a", "regcred", "default", "own-pull-secrets")),
    # an evicted Pod counts against its Job's backoffLimit: warned about, never evicted
    ("a Job's Pod is not evicted", pod(kind="Job"), recycle.MissingSecret(
        NS, "web-1", "uid-1", "team-a", "regcred", "default", "job")),
    ("a StatefulSet's Pod is", pod(kind="StatefulSet"), EVICT),
])
def test_what_is_decided_about_a_pending_pod(case: str, subject: model.Pod,
                                             expected: recycle.Decision) -> None:
    cfg = make_config()
    v = view(account("theirs", "regcred"), account("other", name="builder"))
    assert decide(subject, cfg=cfg, v=v) == expected, case


def test_nothing_is_evicted_while_the_account_does_not_list_the_secret_yet() -> None:
    assert decide(pod(), v=view(account("theirs"))) is None


def test_nothing_is_evicted_while_our_secret_does_not_exist() -> None:
    assert decide(pod(), v=view(account("regcred"), secrets=())) is None
    theirs = view(account("regcred"), secrets=(secret(managed=False),))
    assert decide(pod(), v=theirs) is None


def test_a_mapping_without_recycle_pods_evicts_nothing() -> None:
    assert decide(pod(), cfg=make_config(recycle_pods=False)) is None
    assert not recycle.enabled(make_config(recycle_pods=False))
    assert recycle.enabled(make_config())


def test_a_namespace_the_mapping_does_not_select_is_left_alone() -> None:
    cfg = make_config(exclude=(NS,))
    assert decide(pod(), cfg=cfg) is None


def test_a_credential_without_a_value_yet_covers_nothing() -> None:
    where = recycle.scene(make_config(), {}, view(account("regcred")))
    assert recycle.decide(pod(), where) is None


def test_docker_hub_images_without_a_registry_are_covered_by_a_docker_io_credential() -> None:
    cfg = make_config(credentials=("hub",))
    assert decide(pod(waiting=(("nginx:1.27", "ImagePullBackOff"),)), cfg=cfg) == (
        dataclasses.replace(EVICT, credentials=("hub",)))


def test_decide_all_keeps_only_evictions_and_warnings_in_name_order() -> None:
    where = recycle.scene(make_config(), CREDENTIALS, view(account("regcred")))
    pods = [pod(name="b"), pod(name="a", controller=False), pod(name="c", pulls=("regcred",))]
    got = recycle.decide_all(pods, where)
    assert [(type(d).__name__, d.name) for d in got] == [("MissingSecret", "a"), ("EvictPod", "b")]


def test_plan_projection_lets_plan_show_the_evictions_sync_would_do() -> None:
    before = view(account("theirs"), secrets=())
    content = model.SecretContent(NS, "regcred", "team-a", ("harbor",), b"{}")
    actions: list[plan.Action] = [plan.CreateSecret(content),
                                  plan.PatchServiceAccount(NS, "default", "1", add=("regcred",))]
    after = recycle.project(before, actions)
    assert after.service_accounts[NS]["default"].image_pull_secrets == ("theirs", "regcred")
    assert (NS, "regcred") in after.secrets
    assert before.service_accounts[NS]["default"].image_pull_secrets == ("theirs",)  # untouched
    assert decide(pod(pulls=("theirs",)), v=after) == EVICT
    gone = recycle.project(after, [plan.DeleteSecret(NS, "regcred", "3"),
                                   plan.PatchServiceAccount(NS, "default", "2",
                                                            remove=("regcred",))])
    assert decide(pod(pulls=("theirs",)), v=gone) is None


def test_evictions_are_described_for_plan() -> None:
    assert render.describe(EVICT) == "evict pod team-a/web-1 (team-a)"
    assert render.as_json(EVICT) == {"action": "evict", "kind": "pod", "namespace": NS,
                                   "name": "web-1", "credentials": ["harbor"],
                                   "mapping": "team-a"}
