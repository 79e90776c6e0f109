"""The ClusterAPI contract: each case runs on FakeCluster and on the real apiserver (1.37 by
default) and must behave the same — statuses, preconditions, watch semantics."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from syncer.core import model
from syncer.decide import plan
from syncer.kube import api, errors

PW = "pw-SENTINEL-contract"
DATA = b'{"auths":{"ghcr.io":{"auth":"' + PW.encode() + b'"}}}'


def content(ns: str, name: str = "regcred", data: bytes = DATA) -> model.SecretContent:
    return model.SecretContent(namespace=ns, name=name, mapping="m", credentials=("c",),
                               data=data)


def take(events: Iterator[api.WatchEvent[Any]], n: int) -> list[api.WatchEvent[Any]]:
    """The first `n` non-bookmark events of a watch (then the watch is closed)."""
    got = list(itertools.islice((e for e in events if e.type != "BOOKMARK"), n))
    close = getattr(events, "close", None)
    if close is not None:
        close()
    return got


# --- Secrets --------------------------------------------------------------------------------------


def test_created_secret_reads_back_as_managed_with_its_data(world: Any) -> None:
    ns = world.namespace()
    created = world.cluster.create_secret(content(ns))
    got = world.cluster.get_secret(ns, "regcred")
    assert (got.managed, got.type, got.digest, got.data_keys) == (
        True, model.SECRET_TYPE, model.digest(DATA), (model.DOCKERCONFIG_KEY,))
    assert got.annotations == {model.MAPPING_ANNOTATION: "m", model.CREDENTIALS_ANNOTATION: "c",
                               model.INSTANCE_ANNOTATION: "default",
                               model.WRITTEN_AS_ANNOTATION: f"{ns}/regcred"}
    assert got.uid and got.uid == created.uid
    assert got.resource_version == created.resource_version


def test_creating_a_taken_name_is_already_exists(world: Any) -> None:
    ns = world.namespace()
    world.foreign_secret(ns, "regcred")
    with pytest.raises(errors.AlreadyExists):
        world.cluster.create_secret(content(ns))


def test_update_at_a_stale_resource_version_is_a_conflict(world: Any) -> None:
    ns = world.namespace()
    first = world.cluster.create_secret(content(ns))
    world.cluster.update_secret(content(ns, data=b'{"auths":{}}'),
                                resource_version=first.resource_version, drop_keys=())
    with pytest.raises(errors.Conflict):
        world.cluster.update_secret(content(ns), resource_version=first.resource_version,
                                    drop_keys=())
    assert world.cluster.get_secret(ns, "regcred").digest == model.digest(b'{"auths":{}}')


def test_update_keeps_the_uid_and_moves_the_resource_version(world: Any) -> None:
    ns = world.namespace()
    first = world.cluster.create_secret(content(ns))
    second = world.cluster.update_secret(content(ns, data=b'{"auths":{}}'),
                                         resource_version=first.resource_version, drop_keys=())
    assert second.uid == first.uid
    assert int(second.resource_version) > int(first.resource_version)
    assert second.digest == model.digest(b'{"auths":{}}')


def test_update_adopts_a_foreign_secret_and_drops_its_other_keys(world: Any) -> None:
    ns = world.namespace()
    world.foreign_secret(ns, "regcred", type_=model.SECRET_TYPE)
    theirs = world.cluster.get_secret(ns, "regcred")
    assert not theirs.managed
    adopted = world.cluster.update_secret(content(ns), resource_version=theirs.resource_version,
                                          drop_keys=theirs.data_keys)
    assert adopted.managed and adopted.digest == model.digest(DATA) and adopted.uid == theirs.uid


def test_release_hands_an_adopted_secret_back_with_its_data_and_uid(world: Any) -> None:
    ns = world.namespace()
    world.foreign_secret(ns, "regcred", type_=model.SECRET_TYPE)
    theirs = world.cluster.get_secret(ns, "regcred")
    adopted = world.cluster.update_secret(
        dataclasses.replace(content(ns), adopted=True), resource_version=theirs.resource_version,
        drop_keys=theirs.data_keys)
    assert adopted.annotations[model.ADOPTED_ANNOTATION] == "true"
    released = world.cluster.release_secret(ns, "regcred",
                                            resource_version=adopted.resource_version)
    assert (released.managed, released.labels, released.annotations) == (False, {}, {})
    assert released.uid == theirs.uid and released.digest == model.digest(DATA)
    assert world.cluster.get_secret(ns, "regcred") == released
    with pytest.raises(errors.Conflict):
        world.cluster.release_secret(ns, "regcred", resource_version=adopted.resource_version)


def test_changing_the_type_of_a_secret_is_invalid(world: Any) -> None:
    ns = world.namespace()
    world.foreign_secret(ns, "regcred", type_="Opaque", managed=True)
    old = world.cluster.get_secret(ns, "regcred")
    with pytest.raises(errors.Invalid):
        world.cluster.update_secret(content(ns), resource_version=old.resource_version,
                                    drop_keys=old.data_keys)


def test_changing_the_data_of_an_immutable_secret_is_invalid(world: Any) -> None:
    ns = world.namespace()
    world.foreign_secret(ns, "regcred", type_=model.SECRET_TYPE, immutable=True, managed=True)
    old = world.cluster.get_secret(ns, "regcred")
    assert old.immutable
    with pytest.raises(errors.Invalid):
        world.cluster.update_secret(content(ns), resource_version=old.resource_version,
                                    drop_keys=())


def test_a_secret_over_one_mebibyte_is_invalid_and_not_quoted(world: Any) -> None:
    ns = world.namespace()
    huge = b'{"auths":{"x":{"auth":"' + PW.encode() * (1024 * 1024 // len(PW) + 1) + b'"}}}'
    with pytest.raises(errors.Invalid) as info:
        world.cluster.create_secret(content(ns, data=huge))
    assert PW not in str(info.value)


def test_delete_at_a_stale_resource_version_is_a_conflict_and_a_missing_one_is_fine(
        world: Any) -> None:
    ns = world.namespace()
    first = world.cluster.create_secret(content(ns))
    second = world.cluster.update_secret(content(ns, data=b'{"auths":{}}'),
                                         resource_version=first.resource_version, drop_keys=())
    with pytest.raises(errors.Conflict):
        world.cluster.delete_secret(ns, "regcred", resource_version=first.resource_version)
    world.cluster.delete_secret(ns, "regcred", resource_version=second.resource_version)
    with pytest.raises(errors.NotFound):
        world.cluster.get_secret(ns, "regcred")
    world.cluster.delete_secret(ns, "regcred", resource_version=second.resource_version)


def test_writing_into_a_missing_namespace_is_not_found(world: Any) -> None:
    with pytest.raises(errors.NotFound):
        world.cluster.create_secret(content("c-does-not-exist"))


def test_writing_into_a_terminating_namespace_is_namespace_terminating(world: Any) -> None:
    ns = world.namespace()
    world.terminate(ns)
    with pytest.raises(errors.NamespaceTerminating):
        world.cluster.create_secret(content(ns))


def test_reading_a_missing_object_is_not_found(world: Any) -> None:
    ns = world.namespace()
    with pytest.raises(errors.NotFound):
        world.cluster.get_secret(ns, "nope")
    with pytest.raises(errors.NotFound):
        world.cluster.get_service_account(ns, "nope")


# --- ServiceAccounts ------------------------------------------------------------------------------


def test_service_account_change_keeps_order_and_foreign_entries(world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns, "builder", pulls=("theirs-a", "theirs-b"))
    sa = world.cluster.get_service_account(ns, "builder")
    changed = world.cluster.patch_service_account(model.ServiceAccountChange(
        namespace=ns, name="builder", resource_version=sa.resource_version,
        image_pull_secrets=(*sa.image_pull_secrets, "regcred"), ours=("regcred",),
        has_annotations=sa.has_annotations))
    assert changed.image_pull_secrets == ("theirs-a", "theirs-b", "regcred")
    assert changed.ours == ("regcred",)
    assert world.cluster.get_service_account(ns, "builder") == changed


def test_service_account_change_at_a_stale_version_is_a_conflict_and_loses_nothing(
        world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns, "builder", pulls=("theirs-a",))
    stale = world.cluster.get_service_account(ns, "builder")
    world.foreign_edit_service_account(ns, "builder", ("theirs-a", "theirs-b"))
    with pytest.raises(errors.Conflict):
        world.cluster.patch_service_account(model.ServiceAccountChange(
            namespace=ns, name="builder", resource_version=stale.resource_version,
            image_pull_secrets=("theirs-a", "regcred"), ours=("regcred",),
            has_annotations=stale.has_annotations))
    assert world.cluster.get_service_account(ns, "builder").image_pull_secrets == (
        "theirs-a", "theirs-b")


def test_a_revision_names_the_field_manager_that_changed_image_pull_secrets(
        world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns, "builder", pulls=("theirs-a",))
    sa = world.cluster.get_service_account(ns, "builder")
    ours = world.cluster.patch_service_account(model.ServiceAccountChange(
        namespace=ns, name="builder", resource_version=sa.resource_version,
        image_pull_secrets=("theirs-a", "regcred"), ours=("regcred",),
        has_annotations=sa.has_annotations))
    assert ours.pull_secrets_writer == model.FIELD_MANAGER  # our writes say who we are
    world.foreign_edit_service_account(ns, "builder", ("theirs-a",), manager="argocd-controller")
    reverted = world.cluster.get_service_account(ns, "builder")
    assert reverted.pull_secrets_writer == "argocd-controller"
    assert reverted.image_pull_secrets == ("theirs-a",) and reverted.ours == ("regcred",)
    # (a write that drops the whole list leaves no owner behind: see codec's unit tests)


def test_a_service_account_without_field_tracking_names_the_next_writer_after_our_write(
        world: Any) -> None:
    """A ServiceAccount created with no fields (as the controller-manager makes `default`) has no
    managedFields, and the apiserver never starts them on an update: our first write does."""
    ns = world.namespace()
    world.service_account(ns, "plain")
    sa = world.cluster.get_service_account(ns, "plain")
    change = plan.service_account_change(sa, add=("regcred",), remove=())
    assert change is not None
    world.cluster.patch_service_account(change)
    world.foreign_edit_service_account(ns, "plain", ("declared",), manager="argocd-controller")
    reverted = world.cluster.get_service_account(ns, "plain")
    assert reverted.image_pull_secrets == ("declared",)
    assert reverted.pull_secrets_writer == "argocd-controller"
    assert reverted.tracked


def test_removing_our_annotation_leaves_the_account_without_it(world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns, "builder")
    sa = world.cluster.get_service_account(ns, "builder")
    added = world.cluster.patch_service_account(model.ServiceAccountChange(
        ns, "builder", sa.resource_version, ("regcred",), ("regcred",), sa.has_annotations))
    removed = world.cluster.patch_service_account(model.ServiceAccountChange(
        ns, "builder", added.resource_version, (), (), added.has_annotations))
    assert (removed.image_pull_secrets, removed.ours) == ((), ())


# --- list and watch -------------------------------------------------------------------------------


def test_list_with_the_managed_selector_returns_only_ours(world: Any) -> None:
    ns = world.namespace()
    world.cluster.create_secret(content(ns, "ours"))
    world.foreign_secret(ns, "theirs")
    listed = world.cluster.list(api.SECRETS, selector=api.MANAGED)
    names = {(s.namespace, s.name) for s in listed.items}
    assert (ns, "ours") in names and (ns, "theirs") not in names
    assert listed.resource_version.isdigit()
    by_name = world.cluster.list(api.SECRETS, selector=api.named("theirs"))
    assert (ns, "theirs") in {(s.namespace, s.name) for s in by_name.items}


def test_watch_from_a_listing_delivers_our_changes_in_order(world: Any) -> None:
    ns = world.namespace()
    start = world.cluster.list(api.SECRETS, selector=api.MANAGED).resource_version
    created = world.cluster.create_secret(content(ns))
    updated = world.cluster.update_secret(content(ns, data=b'{"auths":{}}'),
                                          resource_version=created.resource_version,
                                          drop_keys=())
    world.foreign_secret(ns, "theirs")  # not selected: never delivered
    world.cluster.delete_secret(ns, "regcred", resource_version=updated.resource_version)
    events = take(world.cluster.watch(api.SECRETS, resource_version=start, timeout_seconds=10,
                                      selector=api.MANAGED), 3)
    assert [(e.type, e.record.name) for e in events] == [
        ("ADDED", "regcred"), ("MODIFIED", "regcred"), ("DELETED", "regcred")]
    assert events[1].record.digest == model.digest(b'{"auths":{}}')
    assert [e.resource_version for e in events[:2]] == [created.resource_version,
                                                          updated.resource_version]


def test_namespaces_are_listed_with_labels_and_terminating_state(world: Any) -> None:
    live = world.namespace(labels={"team": "a"})
    going = world.namespace()
    world.terminate(going)
    found = {n.name: n for n in world.cluster.list(api.NAMESPACES).items}
    assert found[live].labels == {"team": "a"} or dict(found[live].labels).items() >= {
        ("team", "a")}
    assert (found[live].terminating, found[going].terminating) == (False, True)


def test_every_listed_record_names_its_place_and_its_resource_version(world: Any) -> None:
    """What `api.Record` promises of each kind the syncer lists or watches: its namespace ("" for
    a cluster-scoped Namespace), its name, and the resourceVersion it was read at."""
    ns = world.namespace(labels={"team": "a"})
    world.service_account(ns, "builder")
    secret = world.cluster.create_secret(content(ns))
    world.cluster.record_event(model.ObjectRef("Secret", ns, "regcred", secret.uid),
                               reason="SecretConflict", message="a test event")
    world.bare_pod(ns, "lone", image="ghcr.io/org/app:1")
    found: list[tuple[api.Record, str]] = []
    for kind, selector in ((api.NAMESPACES, api.named(ns)), (api.SERVICE_ACCOUNTS,
                           api.named("builder")), (api.SECRETS, api.MANAGED),
                           (api.EVENTS, api.reason("SecretConflict")), (api.PODS, api.PENDING)):
        listing = world.cluster.list(kind, selector=selector)
        found += [(r, listing.resource_version) for r in listing.items if ns in (r.namespace,
                                                                                 r.name)]
    assert sorted((type(r).__name__, r.namespace, r.name) for r, _ in found
                  if not isinstance(r, model.Event)) == [
        ("Namespace", "", ns), ("Pod", ns, "lone"), ("Secret", ns, "regcred"),
        ("ServiceAccount", ns, "builder")]
    assert [(r.namespace, r.object_name) for r, _ in found if isinstance(r, model.Event)] == [
        (ns, "regcred")]
    assert all(r.resource_version.isdigit() and int(r.resource_version) <= int(at)
               for r, at in found), [(r.name, r.resource_version, at) for r, at in found]


# --- Leases and Events ----------------------------------------------------------------------------


def test_lease_create_update_and_their_preconditions(world: Any) -> None:
    ns = world.namespace()
    with pytest.raises(errors.NotFound):
        world.cluster.get_lease(ns, "pss")
    mine = model.Lease(namespace=ns, name="pss", holder="a", duration_seconds=15,
                       acquire_time="2026-12-01T00:00:00.000000Z",
                       renew_time="2026-12-01T00:00:00.000000Z")
    created = world.cluster.create_lease(mine)
    with pytest.raises(errors.AlreadyExists):
        world.cluster.create_lease(mine)
    renewed = world.cluster.update_lease(dataclasses.replace(
        created, renew_time="2026-12-01T00:00:02.000000Z"))
    with pytest.raises(errors.Conflict):
        world.cluster.update_lease(dataclasses.replace(created, holder="b"))
    got = world.cluster.get_lease(ns, "pss")
    assert (got.holder, got.renew_time, got.duration_seconds) == (
        "a", "2026-12-01T00:00:02.000000Z", 15)
    assert got.resource_version == renewed.resource_version
    released = world.cluster.update_lease(dataclasses.replace(got, holder=None))
    assert world.cluster.get_lease(ns, "pss").holder is None
    assert released.holder is None


def test_a_warning_event_is_recorded_about_the_object(world: Any) -> None:
    ns = world.namespace()
    secret = world.cluster.create_secret(content(ns))
    world.cluster.record_event(model.ObjectRef("Secret", ns, "regcred", secret.uid),
                               reason="SecretConflict", message="a test event")
    assert "SecretConflict" in world.events("regcred")


def test_warning_events_are_listed_back_by_reason(world: Any) -> None:
    ns = world.namespace()
    world.service_account(ns, "builder")
    uid = world.cluster.get_service_account(ns, "builder").uid
    world.cluster.record_event(model.ObjectRef("ServiceAccount", ns, "builder", uid),
                               reason="ImagePullSecretsContested", message="a test event")
    found = [e for e in world.cluster.list(
        api.EVENTS, selector=api.reason("ImagePullSecretsContested")).items if e.namespace == ns]
    assert [(e.object_kind, e.object_name, e.message, e.component) for e in found] == [
        ("ServiceAccount", "builder", "a test event", "pullsecret-syncer")]
    assert found[0].last_seen.endswith("Z")
    assert not [e for e in world.cluster.list(api.EVENTS, selector=api.reason("Other")).items
                if e.namespace == ns]


def test_an_event_that_cannot_be_recorded_is_not_an_error(world: Any) -> None:
    world.cluster.record_event(model.ObjectRef("Secret", "c-does-not-exist", "x"),
                               reason="WriteFailed", message="nowhere to go")
