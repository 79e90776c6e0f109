"""The one-shot use cases called as functions, without argv, on FakeCluster and a fake backend:
`plan` writes nothing and `sync` writes what it showed, each write told to the listener as it is
made; `check` reports each backend, credential and registry; `uninstall` reports what it removed.
Reports carry names, never a credential value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backends import base
from syncer import config, oneshot
from syncer.core import model
from syncer.decide import fight, plan, recycle
from syncer.kube import errors, fake
from tests.unit import fakes

NS = "team-a"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    return fakes.load(fakes.write_config(tmp_path), monkeypatch)


@pytest.fixture
def backends() -> dict[str, base.Backend]:
    return {"vault": fakes.FakeBackend(fakes.basic())}


@pytest.fixture
def cluster() -> fake.FakeCluster:
    return fakes.cluster_with(NS)


@dataclass
class Recorder:
    """A listener that keeps what it was told, in order."""

    told: list[str] = field(default_factory=list)

    def planned(self, actions: Sequence[plan.Action]) -> None:
        self.told.append(f"planned {len(actions)}")

    def applied(self, action: plan.Action | recycle.EvictPod) -> None:
        self.told.append(str(action))

    def close(self) -> None:
        self.told.append("closed")


def test_plan_writes_nothing_and_sync_then_writes_exactly_what_plan_showed(
        cfg: config.Config, backends: dict[str, base.Backend],
        cluster: fake.FakeCluster) -> None:
    shown = oneshot.plan(cfg, backends, cluster)
    assert cluster.writes() == 0
    assert shown.ok and shown.exit_status == 0 and shown.written == []
    assert [str(a) for a in shown.planned] == [
        "create secret team-a/regcred (hub, ghcr)",
        "patch serviceaccount team-a/default +regcred"]

    told = Recorder()
    done = oneshot.sync(cfg, backends, cluster, listener=told)
    assert done.ok and done.exit_status == 0
    assert [str(a) for a in done.written] == [str(a) for a in shown.planned]
    assert told.told == ["planned 2", *(str(a) for a in shown.planned), "closed"]
    assert cluster.writes() == 2
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == (
        "theirs", "regcred")

    again = oneshot.sync(cfg, backends, cluster, listener=Recorder())
    assert (again.written, cluster.writes()) == ([], 2)  # an idle pass writes nothing
    assert oneshot.plan(cfg, backends, cluster).planned == []


def test_a_failing_credential_is_reported_by_name_and_fails_the_pass(
        cfg: config.Config, cluster: fake.FakeCluster) -> None:
    def answer(ref: base.CredentialRef) -> dict[str, Any]:
        if ref.name == "hub":
            raise base.AccessDenied("permission denied")
        return {"username": "bot", "password": fakes.PW}

    report = oneshot.sync(cfg, {"vault": fakes.FakeBackend(answer)}, cluster)
    assert report.exit_status == 1
    assert len(report.credentials_failing) == 1 and "'hub'" in report.credentials_failing[0]
    assert fakes.PW not in repr(report)


def test_a_secret_someone_else_wrote_is_a_conflict_left_alone(
        cfg: config.Config, backends: dict[str, base.Backend],
        cluster: fake.FakeCluster) -> None:
    theirs = cluster.put_secret(model.Secret(
        namespace=NS, name="regcred", managed=False, type="Opaque", digest=None,
        data_keys=("x",), labels={}, annotations={}, resource_version=""))
    report = oneshot.sync(cfg, backends, cluster)
    assert report.exit_status == 1
    assert [(c.namespace, c.name, c.mapping) for c in report.conflicts] == [
        (NS, "regcred", "teams")]
    assert cluster.stored("secrets", NS, "regcred").resource_version == theirs.resource_version
    assert "regcred" not in cluster.stored("serviceaccounts", NS, "default").image_pull_secrets


def test_a_cluster_that_cannot_be_read_is_an_error_and_nothing_is_written(
        cfg: config.Config, backends: dict[str, base.Backend],
        cluster: fake.FakeCluster) -> None:
    def refuse(req: fake.Request) -> None:
        if req.verb == "LIST":
            raise errors.Forbidden("LIST namespaces: 403 Forbidden", status=403,
                                   reason="Forbidden")

    cluster.fault = refuse
    told = Recorder()
    report = oneshot.sync(cfg, backends, cluster, listener=told)
    assert report.exit_status == 1 and report.error is not None and "403" in report.error
    assert (report.written, told.told, cluster.writes()) == ([], [], 0)


def test_plan_names_the_service_accounts_the_daemon_found_contested(
        cfg: config.Config, backends: dict[str, base.Backend],
        cluster: fake.FakeCluster) -> None:
    oneshot.sync(cfg, backends, cluster)
    cluster.record_event(model.ObjectRef("ServiceAccount", NS, "default"),
                         reason=fight.EVENT_REASON,
                         message=fight.message("argocd-controller", ("regcred",), 30))
    report = oneshot.plan(cfg, backends, cluster)
    assert report.contested == [oneshot.Contested(NS, "default", "argocd-controller")]
    assert report.ok  # a finding, not a failure

    def no_events(req: fake.Request) -> None:
        if req.kind == "events":
            raise errors.Forbidden("LIST events: 403 Forbidden", status=403, reason="Forbidden")

    cluster.fault = no_events
    unknown = oneshot.plan(cfg, backends, cluster)
    assert unknown.contested == [] and unknown.contested_unknown is not None
    assert unknown.ok


@dataclass
class LoginFails(fakes.FakeBackend):
    def check(self) -> None:
        raise base.AccessDenied("login refused (403)")


def test_check_without_connect_reads_nothing(cfg: config.Config) -> None:
    backend = fakes.FakeBackend(fakes.basic())
    report = oneshot.check(cfg, {"vault": backend})
    assert report.ok and report.statuses == [] and backend.reads == []
    assert (report.backends, report.credentials, report.mappings) == (1, 2, 1)


def test_check_connect_reports_each_backend_and_credential_as_it_goes(
        cfg: config.Config) -> None:
    seen: list[oneshot.Status] = []
    report = oneshot.check(cfg, {"vault": fakes.FakeBackend(fakes.basic())},
                           oneshot.CheckOptions(connect=True), on_status=seen.append)
    assert report.ok and report.exit_status == 0
    assert seen == report.statuses == [
        oneshot.BackendStatus("vault"),
        oneshot.CredentialStatus("ghcr", "vault", registries=("ghcr.io",)),
        oneshot.CredentialStatus("hub", "vault", registries=("https://index.docker.io/v1/",)),
    ]


def test_check_connect_fails_on_a_refused_login_or_an_unreadable_credential(
        cfg: config.Config) -> None:
    def answer(ref: base.CredentialRef) -> dict[str, Any]:
        if ref.name == "ghcr":
            raise base.NotFound("no secret at registries/ghcr")
        return {"username": "bot", "password": fakes.PW}

    report = oneshot.check(cfg, {"vault": LoginFails(answer)},
                           oneshot.CheckOptions(connect=True))
    assert report.exit_status == 1
    login, ghcr, hub = report.statuses
    assert login == oneshot.BackendStatus("vault", error="login refused (403)")
    assert isinstance(ghcr, oneshot.CredentialStatus) and ghcr.error is not None
    assert "'ghcr'" in ghcr.error
    assert isinstance(hub, oneshot.CredentialStatus) and hub.error is None
    assert fakes.PW not in repr(report)


def test_uninstall_dry_run_lists_and_uninstall_removes_what_sync_wrote(
        cfg: config.Config, backends: dict[str, base.Backend],
        cluster: fake.FakeCluster) -> None:
    oneshot.sync(cfg, backends, cluster)
    writes = cluster.writes()
    listed = oneshot.uninstall(cluster, oneshot.UninstallOptions(dry_run=True),
                               listener=Recorder())
    assert cluster.writes() == writes
    assert (listed.service_accounts, listed.secrets, listed.released) == (1, 1, 0)
    assert listed.applied == [] and listed.exit_status == 0

    other = oneshot.uninstall(cluster, oneshot.UninstallOptions(instance="other"))
    assert other.removed == [] and cluster.writes() == writes  # not that installation's

    told = Recorder()
    done = oneshot.uninstall(cluster, listener=told)
    assert done.ok and [str(a) for a in done.removed] == [
        str(a) for a in listed.removed]
    assert told.told == ["planned 2", *(str(a) for a in done.removed), "closed"]
    assert cluster.stored("serviceaccounts", NS, "default").image_pull_secrets == ("theirs",)
    assert cluster.stored("secrets", NS, "regcred") is None
    assert oneshot.uninstall(cluster).removed == []  # twice: nothing the second time


def test_uninstall_on_a_cluster_that_cannot_be_read_is_an_error(
        cluster: fake.FakeCluster) -> None:
    def refuse(req: fake.Request) -> None:
        raise errors.Forbidden(f"{req.verb} {req.kind}: 403 Forbidden", status=403,
                               reason="Forbidden")

    cluster.fault = refuse
    report = oneshot.uninstall(cluster)
    assert report.exit_status == 1 and report.error is not None and report.removed == []
