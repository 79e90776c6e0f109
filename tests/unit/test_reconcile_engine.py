"""The reconcile pass on FakeCluster: writes, race retries and the re-read/recompute path,
replacements, failures, and the hourly de-duplication of what it reports."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from syncer import config
from syncer.core import dockerconfig, model
from syncer.credentials import fetch as credentials
from syncer.kube import errors, fake
from syncer.present import actions as render
from syncer.reconcile import engine, findings, observe
from syncer.telemetry import observability
from tests.unit import fakes

NS = "team-a"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    return fakes.load(fakes.write_config(tmp_path), monkeypatch)


@pytest.fixture
def creds(cfg: config.Config) -> dict[str, dockerconfig.Auths]:
    backend = fakes.FakeBackend(fakes.basic())
    return {n: credentials.read(cfg.credentials[n], backend) for n in ("hub", "ghcr")}


@pytest.fixture
def cluster() -> fake.FakeCluster:
    return fakes.cluster_with(NS)


def run_pass(cluster: fake.FakeCluster, cfg: config.Config, creds: Any, *,
             eng: engine.Engine | None = None, **kw: Any) -> engine.Report:
    eng = eng or engine.Engine(cluster, metrics=observability.Metrics())
    return eng.reconcile(cfg, creds, observe.observe(cluster, cfg), **kw)


def test_first_pass_creates_and_references_then_an_idle_pass_writes_nothing(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    report = run_pass(cluster, cfg, creds)
    assert report.ok and len(report.applied) == 2
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == (
        "theirs", "regcred")
    before = cluster.writes()
    again = run_pass(cluster, cfg, creds)
    assert (again.applied, cluster.writes() - before) == ([], 0)


def test_a_foreign_writer_racing_the_patch_keeps_its_entry(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    raced = []

    def foreign_writer_first(req: fake.Request) -> None:
        if req.verb == "PATCH" and req.kind == "serviceaccounts" and not raced:
            raced.append(req)
            cluster.put_service_account(NS, "default", image_pull_secrets=("theirs", "late"))

    cluster.fault = foreign_writer_first
    report = run_pass(cluster, cfg, creds)
    assert report.ok
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == (
        "theirs", "late", "regcred")
    assert cluster.requests["GET serviceaccounts"] == 1  # one re-read after the lost race
    assert cluster.requests["PATCH serviceaccounts"] == 2


def test_a_managed_secret_edited_mid_pass_is_re_read_and_rewritten(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    run_pass(cluster, cfg, creds)
    good = cluster.stored("secrets", NS, "regcred")
    hand_edit = model.digest(b'{"auths":{}}')
    cluster.put_secret(dataclasses.replace(good, digest=hand_edit))
    edits = []

    def edit_again(req: fake.Request) -> None:
        if req.verb == "PATCH" and req.kind == "secrets" and not edits:
            edits.append(req)
            again = model.digest(b'{"auths":{"x":{}}}')
            cluster.put_secret(dataclasses.replace(good, digest=again))

    cluster.fault = edit_again
    report = run_pass(cluster, cfg, creds)
    assert report.ok
    assert cluster.stored("secrets", NS, "regcred").digest == good.digest
    assert cluster.stored("secrets", NS, "regcred").uid == good.uid  # in place
    assert cluster.requests["GET secrets"] == 1


def test_a_foreign_secret_taking_the_name_mid_pass_is_a_conflict_and_no_reference(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    def someone_else_first(req: fake.Request) -> None:
        if req.verb == "POST" and req.kind == "secrets":
            cluster.fault = None
            cluster.put_secret(model.Secret(
                namespace=NS, name="regcred", managed=False, type="Opaque", digest=None,
                data_keys=("x",), labels={}, annotations={}, resource_version=""))

    cluster.fault = someone_else_first
    report = run_pass(cluster, cfg, creds)
    assert [c.name for c in report.conflicts] == ["regcred"] and not report.ok
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == ("theirs",)
    assert [reason for _, reason, _ in cluster.events] == ["SecretConflict"]


def test_a_managed_secret_of_another_type_is_replaced_with_a_warning_event(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    cluster.put_secret(model.Secret(
        namespace=NS, name="regcred", managed=True, type="Opaque", digest=model.digest(b"{}"),
        data_keys=(model.DOCKERCONFIG_KEY,), annotations={},
        labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE}, resource_version=""))
    old_uid = cluster.stored("secrets", NS, "regcred").uid
    report = run_pass(cluster, cfg, creds)
    new = cluster.stored("secrets", NS, "regcred")
    assert report.ok and new.type == model.SECRET_TYPE and new.uid != old_uid
    assert [(ref.uid, reason) for ref, reason, _ in cluster.events] == [
        (new.uid, "SecretReplaced")]
    again = run_pass(cluster, cfg, creds)
    assert again.applied == []  # replaced once, not a stream of writes


def test_a_failed_write_is_reported_with_an_event_and_no_dangling_reference(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    def reject_secrets(req: fake.Request) -> None:
        if req.verb == "POST" and req.kind == "secrets":
            raise errors.Invalid("POST secrets team-a/regcred: 422 Invalid", status=422,
                                 reason="Invalid")

    cluster.fault = reject_secrets
    report = run_pass(cluster, cfg, creds)
    assert len(report.failures) == 1 and not report.ok
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == ("theirs",)
    assert [reason for _, reason, _ in cluster.events] == ["WriteFailed"]


def test_a_failed_write_puts_its_warning_event_on_the_object_the_pass_saw(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    run_pass(cluster, cfg, creds)
    cluster.put_service_account(NS, "default", image_pull_secrets=("theirs",))  # ours taken out
    account = cluster.stored("serviceaccounts", NS, "default")

    def reject_patches(req: fake.Request) -> None:
        if req.verb == "PATCH" and req.kind == "serviceaccounts":
            raise errors.Invalid("PATCH serviceaccounts team-a/default: 422 Invalid",
                                 status=422, reason="Invalid")

    cluster.fault = reject_patches
    report = run_pass(cluster, cfg, creds)
    assert len(report.failures) == 1
    assert [(ref.kind, ref.name, ref.uid, reason) for ref, reason, _ in cluster.events] == [
        ("ServiceAccount", "default", account.uid, "WriteFailed")]
    assert cluster.requests["GET serviceaccounts"] == 0  # the patch started from what it saw


def test_a_namespace_that_starts_terminating_mid_pass_is_dropped_silently(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    view = observe.observe(cluster, cfg)
    cluster.terminate_namespace(NS)
    report = engine.Engine(cluster, metrics=observability.Metrics()).reconcile(cfg, creds, view)
    assert report.ok and report.failures == [] and cluster.events == []
    assert cluster.requests["PATCH serviceaccounts"] == 0  # nothing after the refused create


def test_a_pass_told_to_stop_leaves_the_rest_for_later(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    answers = iter([True, False])
    report = run_pass(cluster, cfg, creds, proceed=lambda: next(answers))
    assert report.interrupted and len(report.applied) == 1


def test_a_dry_run_makes_no_request_but_reads(cluster: fake.FakeCluster, cfg: config.Config,
                                              creds: Any) -> None:
    view = observe.observe(cluster, cfg)
    before = sum(cluster.requests.values())
    report = engine.Engine(cluster, metrics=observability.Metrics()).reconcile(
        cfg, creds, view, dry_run=True)
    assert len(report.planned) == 2 and report.applied == []
    assert sum(cluster.requests.values()) == before


def test_a_conflict_is_reported_once_an_hour_per_object(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    cluster.put_secret(model.Secret(
        namespace=NS, name="regcred", managed=False, type="Opaque", digest=None,
        data_keys=("x",), labels={}, annotations={}, resource_version=""))
    clock = fakes.FakeClock()
    metrics = observability.Metrics()
    eng = engine.Engine(cluster, metrics=metrics, clock=clock)
    for _ in range(5):
        run_pass(cluster, cfg, creds, eng=eng)
        clock.advance(60)
    assert [reason for _, reason, _ in cluster.events] == ["SecretConflict"]
    assert metrics.conflicts.labels(kind="secret")._value.get() == 1
    clock.advance(findings.REPEAT_SECONDS)
    run_pass(cluster, cfg, creds, eng=eng)
    assert [reason for _, reason, _ in cluster.events] == ["SecretConflict"] * 2


def test_the_memory_of_reported_findings_is_bounded() -> None:
    clock = fakes.FakeClock()
    f = findings.Findings(fake.FakeCluster(), metrics=observability.Metrics(), clock=clock,
                          memory=10)
    for i in range(10):
        assert f.fresh(model.ObjectRef("Secret", "ns", f"s{i}"), "SecretConflict")
    clock.advance(findings.REPEAT_SECONDS + 1)
    assert f.fresh(model.ObjectRef("Secret", "ns", "new"), "SecretConflict")
    assert f.remembered() == 1  # the expired ten were forgotten
    assert f.fresh(model.ObjectRef("Secret", "ns", "s0"), "SecretConflict")


def test_writes_are_counted_in_the_metrics(cluster: fake.FakeCluster, cfg: config.Config,
                                           creds: Any) -> None:
    metrics = observability.Metrics()
    run_pass(cluster, cfg, creds, eng=engine.Engine(cluster, metrics=metrics))
    text = metrics.render().decode()
    assert 'kube_writes_total{action="create",kind="secret"} 1.0' in text
    assert 'kube_writes_total{action="patch",kind="serviceaccount"} 1.0' in text
    assert 'managed_secrets{mapping="teams"} 1.0' in text
    assert fakes.PW not in text


def test_uninstall_unpatches_first_then_deletes_and_keeps_everything_else(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    from syncer.reconcile import uninstall

    run_pass(cluster, cfg, creds)
    cluster.put_secret(model.Secret(
        namespace=NS, name="theirs", managed=False, type="Opaque", digest=None,
        data_keys=("x",), labels={}, annotations={}, resource_version=""))
    report = uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False)
    assert [render.describe(a) for a in report.applied] == [
        f"unpatch serviceaccount {NS}/default -regcred", f"delete secret {NS}/regcred (hub, ghcr)"]
    sa = cluster.stored("serviceaccounts", NS, "default")
    assert (sa.image_pull_secrets, sa.ours) == (("theirs",), ())
    assert cluster.stored("secrets", NS, "regcred") is None
    assert cluster.stored("secrets", NS, "theirs") is not None
    before = cluster.writes()
    assert uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False).applied == []
    assert cluster.writes() == before


def test_uninstall_keeps_a_secret_whose_service_account_could_not_be_unpatched(
        cluster: fake.FakeCluster, cfg: config.Config, creds: Any) -> None:
    from syncer.reconcile import uninstall

    run_pass(cluster, cfg, creds)

    def forbid_sa_patches(req: fake.Request) -> None:
        if req.verb == "PATCH" and req.kind == "serviceaccounts":
            raise errors.Forbidden("PATCH serviceaccounts: 403 Forbidden", status=403)

    cluster.fault = forbid_sa_patches
    report = uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False)
    assert report.applied == [] and len(report.failures) == 2
    assert cluster.stored("secrets", NS, "regcred") is not None  # still listed: still there
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == (
        "theirs", "regcred")
