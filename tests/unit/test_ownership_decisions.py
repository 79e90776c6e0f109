"""Ownership on FakeCluster: an object is ours only if this installation wrote it where it
stands. Copies of our Secrets and other installations' objects are never touched; adopted
Secrets are handed back, not deleted; each installation keeps its own ServiceAccount entries."""

from __future__ import annotations

import dataclasses

from syncer import config
from syncer.core import model
from syncer.decide import plan
from syncer.kube import fake
from syncer.present import actions as render
from syncer.reconcile import engine, observe, uninstall
from syncer.telemetry import observability
from tests.unit import builders

CREDS = {"dockerhub": builders.basic("docker.io", "u", "pw-SENTINEL-own")}


def sync(cluster: fake.FakeCluster, cfg: config.Config) -> engine.Report:
    eng = engine.Engine(cluster, metrics=observability.Metrics())
    return eng.reconcile(cfg, CREDS, observe.observe(cluster, cfg))


def deletes(cluster: fake.FakeCluster) -> int:
    return cluster.requests["DELETE secrets"]


def world(*namespaces: str) -> fake.FakeCluster:
    cluster = fake.FakeCluster()
    for name in namespaces:
        cluster.add_namespace(name)
        cluster.put_service_account(name, "default", image_pull_secrets=("theirs",))
    return cluster


def copy_of(secret: model.Secret, namespace: str, name: str | None = None) -> model.Secret:
    """What `kubectl get secret -o yaml | kubectl apply -n NS -f -` makes: same labels and
    annotations, a new object."""
    return dataclasses.replace(secret, namespace=namespace, name=name or secret.name, uid="",
                               resource_version="")


def test_written_secret_records_its_instance_and_place() -> None:
    cluster = world("a")
    sync(cluster, builders.make_config(builders.make_mapping(names=("a",)), instance="one"))
    annotations = cluster.stored("secrets", "a", "regcred").annotations
    assert annotations[model.INSTANCE_ANNOTATION] == "one"
    assert annotations[model.WRITTEN_AS_ANNOTATION] == "a/regcred"


def test_a_users_copy_elsewhere_or_renamed_survives_every_pass() -> None:
    cluster = world("a", "other")
    cfg = builders.make_config(builders.make_mapping(names=("a",)))
    sync(cluster, cfg)
    ours = cluster.stored("secrets", "a", "regcred")
    cluster.put_secret(copy_of(ours, "other"))  # a namespace no mapping selects
    cluster.put_secret(copy_of(ours, "a", "regcred-copy"))  # beside ours, renamed
    for _ in range(3):
        assert sync(cluster, cfg).ok
    assert deletes(cluster) == 0
    assert cluster.stored("secrets", "other", "regcred") is not None
    assert cluster.stored("secrets", "a", "regcred-copy") is not None


def test_a_copy_taking_our_name_in_a_selected_namespace_is_a_conflict() -> None:
    cluster = world("a", "b")
    sync(cluster, builders.make_config(builders.make_mapping(names=("a",))))
    cluster.put_secret(copy_of(cluster.stored("secrets", "a", "regcred"), "b"))
    writes = cluster.writes()
    report = sync(cluster, builders.make_config(builders.make_mapping(names=("a", "b"))))
    assert [(c.namespace, c.name) for c in report.conflicts] == [("b", "regcred")]
    assert cluster.writes() == writes  # neither the copy nor b's ServiceAccount is touched
    assert cluster.stored("serviceaccounts", "b", "default").image_pull_secrets == ("theirs",)


def test_two_instances_never_delete_each_others_objects_and_share_a_service_account() -> None:
    cluster = world("a", "b", "shared")
    one = builders.make_config(
        builders.make_mapping("m1", names=("a", "shared"), secret_name="pull-one"),
        instance="team-one")
    two = builders.make_config(
        builders.make_mapping("m2", names=("b", "shared"), secret_name="pull-two"),
        instance="platform.two")
    for _ in range(3):
        assert sync(cluster, one).ok and sync(cluster, two).ok
    assert deletes(cluster) == 0
    shared = cluster.stored("serviceaccounts", "shared", "default")
    assert shared.image_pull_secrets == ("theirs", "pull-one", "pull-two")
    assert (model.added_by(shared, "team-one"), model.added_by(shared, "platform.two")) == (
        ("pull-one",), ("pull-two",))
    writes = cluster.writes()
    assert not sync(cluster, one).applied and not sync(cluster, two).applied
    assert cluster.writes() == writes  # idle: nothing to fight over

    report = uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False,
                           instance="team-one")
    assert sorted(render.describe(a) for a in report.applied) == [
        "delete secret a/pull-one (dockerhub)", "delete secret shared/pull-one (dockerhub)",
        "unpatch serviceaccount a/default -pull-one",
        "unpatch serviceaccount shared/default -pull-one"]
    shared = cluster.stored("serviceaccounts", "shared", "default")
    assert shared.image_pull_secrets == ("theirs", "pull-two")
    assert model.added_by(shared, None) == ("pull-two",)
    assert cluster.stored("secrets", "b", "pull-two") is not None
    assert cluster.stored("secrets", "shared", "pull-two") is not None


def test_another_instances_secret_is_never_adopted_and_never_pruned() -> None:
    cluster = world("a")
    sync(cluster, builders.make_config(builders.make_mapping(names=("a",)), instance="one"))
    theirs = cluster.stored("secrets", "a", "regcred")
    greedy = builders.make_config(builders.make_mapping("other", names=("a",), adopt=True),
                                  instance="two")
    report = sync(cluster, greedy)
    assert [c.name for c in report.conflicts] == ["regcred"]
    assert cluster.stored("secrets", "a", "regcred") == theirs
    # a config of instance two that no longer maps `a` prunes nothing of instance one
    assert sync(cluster, builders.make_config(instance="two")).applied == []
    assert cluster.stored("secrets", "a", "regcred") == theirs


def test_secrets_from_before_instances_belong_to_default_and_gain_the_annotations_once() -> None:
    cluster = world("a")
    cfg = builders.make_config(builders.make_mapping(names=("a",)))
    sync(cluster, cfg)
    written = cluster.stored("secrets", "a", "regcred")
    legacy = {k: v for k, v in written.annotations.items()
              if k in (model.MAPPING_ANNOTATION, model.CREDENTIALS_ANNOTATION)}
    cluster.put_secret(dataclasses.replace(written, annotations=legacy))
    assert not model.owned_by(cluster.stored("secrets", "a", "regcred"), "other")
    report = sync(cluster, cfg)
    assert [render.describe(a) for a in report.applied] == ["update secret a/regcred (dockerhub)"]
    assert cluster.stored("secrets", "a", "regcred").uid == written.uid
    assert sync(cluster, cfg).applied == []


def adopted_world() -> tuple[fake.FakeCluster, config.Config]:
    cluster = world("a")
    cluster.put_secret(model.Secret(
        namespace="a", name="regcred", managed=False, type=model.SECRET_TYPE,
        digest=model.digest(b'{"auths":{}}'), data_keys=(model.DOCKERCONFIG_KEY,), labels={},
        annotations={}, resource_version=""))
    cfg = builders.make_config(builders.make_mapping(names=("a",), adopt=True))
    assert [render.describe(a) for a in sync(cluster, cfg).applied] == [
        "adopt secret a/regcred (dockerhub)", "patch serviceaccount a/default +regcred"]
    return cluster, cfg


def test_a_pruned_adopted_secret_is_handed_back_not_deleted() -> None:
    cluster, _ = adopted_world()
    uid = cluster.stored("secrets", "a", "regcred").uid
    report = sync(cluster, builders.make_config())  # the mapping is gone: prune
    assert [render.describe(a) for a in report.applied] == [
        "unpatch serviceaccount a/default -regcred", "release secret a/regcred (dockerhub)"]
    released = cluster.stored("secrets", "a", "regcred")
    assert (released.uid, released.managed, released.annotations) == (uid, False, {})
    assert deletes(cluster) == 0
    assert sync(cluster, builders.make_config()).applied == []  # not ours any more


def test_uninstall_hands_an_adopted_secret_back() -> None:
    cluster, _ = adopted_world()
    report = uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False)
    assert [render.describe(a) for a in report.applied] == [
        "unpatch serviceaccount a/default -regcred", "release secret a/regcred (dockerhub)"]
    assert cluster.stored("secrets", "a", "regcred").managed is False
    assert deletes(cluster) == 0


def test_uninstall_of_one_instance_leaves_copies_and_all_instances_takes_every_one() -> None:
    cluster = world("a", "b", "other")
    sync(cluster, builders.make_config(builders.make_mapping(names=("a",))))
    sync(cluster, builders.make_config(builders.make_mapping(names=("b",)), instance="x"))
    cluster.put_secret(copy_of(cluster.stored("secrets", "a", "regcred"), "other"))
    report = uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False)
    assert sorted(render.describe(a) for a in report.applied) == [
        "delete secret a/regcred (dockerhub)", "unpatch serviceaccount a/default -regcred"]
    everything = uninstall.run(cluster, metrics=observability.Metrics(), dry_run=False,
                               instance=None)
    assert sorted(render.describe(a) for a in everything.applied) == [
        "delete secret b/regcred (dockerhub)", "unpatch serviceaccount b/default -regcred"]
    assert cluster.stored("secrets", "other", "regcred") is not None  # a copy: nobody's
    assert cluster.stored("serviceaccounts", "b", "default").image_pull_secrets == ("theirs",)


def test_service_account_items_keep_the_format_from_before_instances_for_default() -> None:
    sa = model.ServiceAccount("a", "default", ("x", "regcred", "pull"),
                              ("regcred", "team.one:pull"), "1")
    assert model.added_by(sa, "default") == ("regcred",)
    assert model.added_by(sa, "team.one") == ("pull",)
    change = plan.service_account_change(sa, add=(), remove=("pull",), instance="team.one")
    assert change is not None
    assert (change.image_pull_secrets, change.ours) == (("x", "regcred"), ("regcred",))
    # a name another installation also recorded stays in the list
    both = dataclasses.replace(sa, ours=("pull", "team.one:pull"))
    change = plan.service_account_change(both, add=(), remove=("pull",), instance="team.one")
    assert change is not None
    assert (change.image_pull_secrets, change.ours) == (None, ("pull",))
