"""The Pod part of the ClusterAPI contract, on FakeCluster and on the real apiserver: Pending Pods
listed and watched through the field selector `status.phase=Pending` as small records, and
eviction through policy/v1 — a running Pod that a PodDisruptionBudget covers is refused with 429
(TooManyRequests), a Pending one is evicted whatever its budget says (the apiserver's own rule),
and the controller's replacement is admitted with the ServiceAccount's imagePullSecrets."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from syncer.kube import api, errors

IMAGE = "registry.contract.test/team/app:1"
INIT_IMAGE = "registry.contract.test/team/init:1"


def pending(world: Any, ns: str) -> dict[str, Any]:
    return {p.name: p for p in world.cluster.list(api.PODS, selector=api.PENDING).items
            if p.namespace == ns}


def test_pending_pods_are_listed_with_only_what_the_decision_needs(world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns, pulls=("theirs",))
    world.deployment(ns, "web", image=IMAGE)
    owned = world.pods(ns, "web")[0]
    world.kubelet(ns, owned, reason="ImagePullBackOff")
    world.bare_pod(ns, "bare", image=IMAGE, init_image=INIT_IMAGE)
    world.kubelet(ns, "bare", reason="ErrImagePull", init=True)
    world.bare_pod(ns, "runs", image=IMAGE)
    world.kubelet(ns, "runs", phase="Running")
    found = pending(world, ns)
    assert set(found) == {owned, "bare"}  # a Running Pod is not Pending
    web, bare = found[owned], found["bare"]
    assert (web.has_controller, bare.has_controller) == (True, False)
    assert (web.controller_kind, bare.controller_kind) == ("ReplicaSet", "")  # Jobs are spared
    assert (web.service_account, web.phase, web.terminating) == ("default", "Pending", False)
    assert web.image_pull_secrets == ("theirs",)  # the ServiceAccount admission plugin's copy
    assert web.waiting == ((IMAGE, "ImagePullBackOff"),)
    assert bare.waiting == ((INIT_IMAGE, "ErrImagePull"),)
    assert web.uid and web.resource_version.isdigit()


def test_a_pod_that_starts_running_leaves_a_pending_watch_as_deleted(world: Any) -> None:
    ns = world.namespace()
    world.bare_pod(ns, "p", image=IMAGE)
    start = world.cluster.list(api.PODS, selector=api.PENDING).resource_version
    world.kubelet(ns, "p", reason="ImagePullBackOff")
    world.kubelet(ns, "p", phase="Running")
    events = world.cluster.watch(api.PODS, resource_version=start, timeout_seconds=10,
                                 selector=api.PENDING)
    mine = (e for e in events if e.type != "BOOKMARK" and e.record.namespace == ns)
    got = [(e.type, e.record.phase) for e in itertools.islice(mine, 2)]
    events.close()
    assert got == [("MODIFIED", "Pending"), ("DELETED", "Pending")]  # its last Pending state


def test_an_evicted_pod_is_gone_and_its_replacement_gets_the_accounts_secrets(
        world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns)
    world.deployment(ns, "web", image=IMAGE)
    first = world.pods(ns, "web")[0]
    assert pending(world, ns)[first].image_pull_secrets == ()
    world.foreign_edit_service_account(ns, "default", ("regcred",))  # the secret arrives late
    world.cluster.evict_pod(ns, first, uid=pending(world, ns)[first].uid)
    assert first not in pending(world, ns)
    with pytest.raises(errors.NotFound):
        world.cluster.evict_pod(ns, first)
    second = world.replacement(ns, "web", instead_of=first)
    assert pending(world, ns)[second].image_pull_secrets == ("regcred",)


def test_evicting_another_pod_of_the_same_name_is_a_conflict(world: Any) -> None:
    ns = world.namespace()
    world.bare_pod(ns, "p", image=IMAGE)
    with pytest.raises(errors.Conflict):
        world.cluster.evict_pod(ns, "p", uid="0b1d2c3e-0000-4000-8000-000000000000")
    assert "p" in pending(world, ns)


def test_a_budget_refuses_to_evict_a_running_pod_with_429(world: Any) -> None:
    ns = world.namespace()
    world.deployment(ns, "web", image=IMAGE)
    pod = world.pods(ns, "web")[0]
    world.kubelet(ns, pod, phase="Running")
    world.budget(ns, "web")
    with pytest.raises(errors.TooManyRequests) as info:
        world.cluster.evict_pod(ns, pod)
    assert info.value.status == 429 and "disruption budget" in str(info.value)
    assert world.pods(ns, "web") == [pod]  # nothing forced


def test_a_pending_pod_is_evicted_whatever_its_budget_says(world: Any) -> None:
    ns = world.namespace()
    world.deployment(ns, "web", image=IMAGE)
    pod = world.pods(ns, "web")[0]
    world.kubelet(ns, pod, reason="ImagePullBackOff")
    world.budget(ns, "web")
    world.cluster.evict_pod(ns, pod)
    assert pod not in pending(world, ns)
