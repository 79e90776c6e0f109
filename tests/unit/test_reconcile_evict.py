"""Evictions on FakeCluster with a fake clock: the rate limits of docs/recycle-pods.md, a
budget's refusal asked again later and never forced, Warning Events for Pods we never evict
(hourly at most), and `plan`/`sync`'s one round."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from syncer.core import model
from syncer.decide import plan, recycle
from syncer.kube import errors, fake
from syncer.reconcile import evict, findings
from syncer.telemetry import observability
from tests.unit import builders, fakes

NS = "team-a"
IMAGE = "harbor.example.com/team/app:1"


def eviction(name: str, *, uid: str = "") -> recycle.EvictPod:
    return recycle.EvictPod(NS, name, secret_name="regcred", mapping="team-a", observed_uid=uid)


def missing(name: str) -> recycle.MissingSecret:
    return recycle.MissingSecret(NS, name, "uid-x", "team-a", "regcred", "default",
                                 "no-controller")


@pytest.fixture
def clock() -> fakes.FakeClock:
    return fakes.FakeClock()


@pytest.fixture
def cluster() -> fake.FakeCluster:
    c = fake.FakeCluster()
    c.add_namespace(NS)
    return c


def evictor(cluster: fake.FakeCluster, clock: fakes.FakeClock,
            metrics: observability.Metrics | None = None) -> evict.Evictor:
    metrics = metrics or observability.Metrics()
    return evict.Evictor(cluster, metrics=metrics,
                         found=findings.Findings(cluster, metrics=metrics, clock=clock),
                         limiter=evict.Limiter(clock=clock))


def stuck(cluster: fake.FakeCluster, name: str, **kw: Any) -> model.Pod:
    return cluster.add_pod(NS, name, waiting=((IMAGE, "ImagePullBackOff"),), **kw)


# --- the limiter ------------------------------------------------------------------------------


def test_at_most_ten_evictions_a_minute_in_all(clock: fakes.FakeClock) -> None:
    limiter = evict.Limiter(clock=clock)
    assert [limiter.take((NS, f"p{i}")) for i in range(10)] == [0.0] * 10
    clock.advance(20)
    assert limiter.take((NS, "p10")) == pytest.approx(40.0)  # the first slot frees at +60 s
    clock.advance(40)
    assert limiter.take((NS, "p10")) == 0.0


def test_each_pod_at_most_once_in_ten_minutes(clock: fakes.FakeClock) -> None:
    limiter = evict.Limiter(clock=clock)
    assert limiter.take((NS, "p")) == 0.0
    limiter.evicted((NS, "p"))
    clock.advance(300)
    assert limiter.take((NS, "p")) == pytest.approx(300.0)
    assert limiter.take((NS, "other")) == 0.0
    clock.advance(300)
    assert limiter.take((NS, "p")) == 0.0


def test_the_limiter_forgets_expired_pods(clock: fakes.FakeClock) -> None:
    limiter = evict.Limiter(clock=clock, memory=5, per_window=100)
    for i in range(5):
        limiter.evicted((NS, f"old{i}"))
    clock.advance(601)
    limiter.evicted((NS, "new"))
    assert limiter.take((NS, "old0")) == 0.0 and limiter.take((NS, "new")) > 0


# --- the evictor ------------------------------------------------------------------------------


def test_an_eviction_deletes_the_pod_counts_it_and_logs_namespace_pod_and_mapping(
        cluster: fake.FakeCluster, clock: fakes.FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    metrics = observability.Metrics()
    pod = stuck(cluster, "web-1")
    with caplog.at_level(logging.INFO, logger="syncer.reconcile"):
        out = evictor(cluster, clock, metrics).run([eviction("web-1", uid=pod.uid)])
    assert out.evicted == [eviction("web-1", uid=pod.uid)] and out.ok
    assert cluster.stored("pods", NS, "web-1") is None
    assert metrics.pods_recycled.labels(mapping="team-a")._value.get() == 1
    line = next(r for r in caplog.records if r.getMessage() == "evict pod team-a/web-1 (team-a)")
    assert (line.__dict__["namespace"], line.__dict__["object"], line.__dict__["mapping"]) == (
        NS, "web-1", "team-a")


def test_a_hundred_stuck_pods_give_ten_evictions_and_the_rest_wait(
        cluster: fake.FakeCluster, clock: fakes.FakeClock) -> None:
    ev = evictor(cluster, clock)
    decisions = [eviction(stuck(cluster, f"p{i:03}").name) for i in range(100)]
    first = ev.run(decisions)
    assert len(first.evicted) == 10 and cluster.requests["POST pods/eviction"] == 10
    assert first.later == {NS: pytest.approx(60.0)}
    assert len(first.deferred) == 90
    clock.advance(30)
    assert ev.run(decisions[10:]).evicted == []  # still inside the minute: no request at all
    assert cluster.requests["POST pods/eviction"] == 10
    clock.advance(30)
    assert len(ev.run(decisions[10:]).evicted) == 10


def test_a_budgets_refusal_is_asked_again_later_and_never_forced(
        cluster: fake.FakeCluster, clock: fakes.FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    stuck(cluster, "web-1", phase="Running")  # became Ready after the decision: guarded
    cluster.protect_pod(NS, "web-1")
    ev = evictor(cluster, clock)
    with caplog.at_level(logging.WARNING, logger="syncer.reconcile"):
        out = ev.run([eviction("web-1")])
        assert out.refused == [eviction("web-1")] and out.later == {NS: 60.0}
        assert cluster.stored("pods", NS, "web-1") is not None
        assert ev.run([eviction("web-1")]).later == {NS: pytest.approx(60.0)}
        assert cluster.requests["POST pods/eviction"] == 1  # not asked again at once
        clock.advance(60)
        ev.run([eviction("web-1")])
    assert cluster.requests["POST pods/eviction"] == 2
    assert cluster.requests["DELETE pods"] == 0 and cluster.stored("pods", NS, "web-1")
    refusals = [r for r in caplog.records if "refused by a PodDisruptionBudget" in r.getMessage()]
    assert len(refusals) == 1  # logged once an hour, not per attempt


def test_a_pod_gone_or_replaced_meanwhile_is_dropped(cluster: fake.FakeCluster,
                                                     clock: fakes.FakeClock) -> None:
    stuck(cluster, "web-2")
    out = evictor(cluster, clock).run([eviction("web-1"), eviction("web-2", uid="older")])
    assert out.ok and out.evicted == [] and out.later == {}
    assert cluster.stored("pods", NS, "web-2") is not None


def test_a_403_stops_the_round_and_is_left_to_the_caller(cluster: fake.FakeCluster,
                                                         clock: fakes.FakeClock) -> None:
    tried: list[str] = []

    def no_grant(req: fake.Request) -> None:
        if req.kind == "pods/eviction":
            tried.append(req.name)
            raise errors.Forbidden("POST pods/eviction: 403 Forbidden", status=403)

    cluster.fault = no_grant
    for name in ("a", "b"):
        stuck(cluster, name)
    out = evictor(cluster, clock).run([eviction("a"), eviction("b")])
    assert out.forbidden is not None and not out.ok
    assert tried == ["a"]  # every other would be refused the same way


def test_a_server_error_is_retried_later(cluster: fake.FakeCluster,
                                         clock: fakes.FakeClock) -> None:
    def broken(req: fake.Request) -> None:
        if req.kind == "pods/eviction":
            raise errors.Retryable("POST pods/eviction: 503", status=503)

    cluster.fault = broken
    stuck(cluster, "a")
    out = evictor(cluster, clock).run([eviction("a")])
    assert out.failures and out.later == {NS: 30.0}


def test_bare_pods_get_one_warning_event_an_hour_and_are_never_deleted(
        cluster: fake.FakeCluster, clock: fakes.FakeClock) -> None:
    stuck(cluster, "bare", controller=False)
    ev = evictor(cluster, clock)
    for _ in range(3):
        assert ev.run([missing("bare")]).warned == [missing("bare")]
    clock.advance(3600)
    ev.run([missing("bare")])
    reasons = [(ref.kind, ref.name, reason) for ref, reason, _ in cluster.events]
    assert reasons == [("Pod", "bare", "PullSecretMissing")] * 2
    assert cluster.stored("pods", NS, "bare") is not None
    assert cluster.requests["POST pods/eviction"] == 0


def test_a_dry_run_plans_and_writes_nothing(cluster: fake.FakeCluster,
                                            clock: fakes.FakeClock) -> None:
    stuck(cluster, "a")
    out = evictor(cluster, clock).run([eviction("a"), missing("bare")], dry_run=True)
    assert out.planned == [eviction("a")] and out.evicted == []
    assert cluster.requests["POST pods/eviction"] == 0 and cluster.events == []


# --- plan and sync ----------------------------------------------------------------------------


def world(cluster: fake.FakeCluster, *, recycle_pods: bool = True) -> tuple[Any, Any, Any]:
    m = builders.make_mapping("team-a", patterns=("team-*",), credentials=("harbor",))
    cfg = builders.make_config(m.model_copy(update={"recycle_pods": recycle_pods}))
    creds = {"harbor": builders.basic("harbor.example.com", "bot", "pw")}
    cluster.put_service_account(NS, "default")
    sa = cluster.stored("serviceaccounts", NS, "default")
    view = model.ClusterView({NS: cluster.stored("namespaces", "", NS)}, {},
                             {NS: {"default": sa}})
    return cfg, creds, view


def test_one_shot_decides_against_the_accounts_as_the_pass_left_them(
        cluster: fake.FakeCluster) -> None:
    cfg, creds, view = world(cluster)
    stuck(cluster, "web-1")
    done: list[plan.Action] = [
        plan.CreateSecret(model.SecretContent(NS, "regcred", "team-a", ("harbor",), b"{}")),
        plan.PatchServiceAccount(NS, "default", "1", add=("regcred",))]
    metrics = observability.Metrics()
    out = evict.one_shot(cluster, cfg, creds, view, done, metrics=metrics,
                         found=findings.Findings(cluster, metrics=metrics), dry_run=True)
    assert [e.name for e in out.planned] == ["web-1"]
    assert evict.one_shot(cluster, cfg, creds, view, [], metrics=metrics,
                          found=findings.Findings(cluster, metrics=metrics),
                          dry_run=True).planned == []


def test_one_shot_lists_no_pods_unless_a_mapping_recycles(cluster: fake.FakeCluster) -> None:
    cfg, creds, view = world(cluster, recycle_pods=False)
    metrics = observability.Metrics()
    evict.one_shot(cluster, cfg, creds, view, [], metrics=metrics,
                   found=findings.Findings(cluster, metrics=metrics), dry_run=False)
    assert cluster.requests["LIST pods"] == 0


def test_one_shot_without_the_grant_reports_forbidden_and_counts_it(
        cluster: fake.FakeCluster) -> None:
    cfg, creds, view = world(cluster)

    def no_grant(req: fake.Request) -> None:
        if req.kind == "pods":
            raise errors.Forbidden("LIST pods: 403 Forbidden", status=403)

    cluster.fault = no_grant
    metrics = observability.Metrics()
    out = evict.one_shot(cluster, cfg, creds, view, [], metrics=metrics,
                         found=findings.Findings(cluster, metrics=metrics), dry_run=False)
    assert out.forbidden is not None
    assert metrics.reconcile_errors.labels(reason="recycle_forbidden")._value.get() == 1
