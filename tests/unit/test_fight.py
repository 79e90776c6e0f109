"""The fight state machine (`syncer.decide.fight`) on a fake clock: when a ServiceAccount becomes
contested, how long restores wait, when the back-off resets, and what is not a removal."""

from __future__ import annotations

import dataclasses

import pytest

from syncer.core import model
from syncer.decide import fight, plan
from syncer.kube import codec

NS, SA = "team-a", "default"


def sa(names: tuple[str, ...], *, ours: tuple[str, ...] = ("regcred",), writer: str = "",
       name: str = SA) -> model.ServiceAccount:
    return model.ServiceAccount(NS, name, names, ours, "1", pull_secrets_writer=writer)


def removed_by(manager: str, name: str = SA) -> fight.Removal:
    return fight.Removal(NS, name, ("regcred",), manager)


class Fight:
    """A tracker and a clock; `revert` is the other writer, `restore` is us."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.tracker = fight.Tracker()

    def revert(self, manager: str = "argocd-controller", name: str = SA) -> bool:
        return self.tracker.removed(removed_by(manager, name), self.now)

    def hold(self, name: str = SA) -> float:
        return self.tracker.hold(NS, name, self.now)

    def restore(self, name: str = SA) -> None:
        assert self.hold(name) == 0
        self.tracker.restored(NS, name, self.now)

    def contested(self) -> list[tuple[str, str, str]]:
        return [(c.namespace, c.name, c.manager) for c in self.tracker.contested(self.now)]

    def wait_and_restore(self) -> float:
        """Let the clock run to the restore (as the daemon's delayed queue does)."""
        wait = self.hold()
        self.now += wait
        self.restore()
        return wait


# --------------------------------------------------------------------------- detection


def test_a_removal_is_our_entry_gone_from_a_revision_and_names_its_writer() -> None:
    before = sa(("theirs", "regcred"))
    after = sa(("theirs",), writer="argocd-controller")
    assert fight.removal(before, after) == fight.Removal(NS, SA, ("regcred",),
                                                         "argocd-controller")
    assert fight.removal(None, after) is None  # first sight: nothing to compare
    assert fight.removal(sa(("theirs",)), after) is None  # it was not there before
    # someone else's entry going is not our business
    assert fight.removal(sa(("theirs", "regcred")), sa(("regcred",), writer="x")) is None
    # an entry of that name we did not add (no annotation) is not ours either
    assert fight.removal(sa(("regcred",), ours=()), sa((), ours=(), writer="x")) is None


def test_our_own_write_is_not_counted_as_a_removal() -> None:
    ours = sa(("theirs",), ours=(), writer=model.FIELD_MANAGER)
    assert fight.removal(sa(("theirs", "regcred")), ours) is None


def test_our_own_unpatch_is_not_counted_even_when_the_revision_names_another_writer() -> None:
    # dropping the whole list leaves no owner of the field: the revision names the last other
    # writer, so our prune is recognised by our own announcement instead
    f = Fight()
    for _ in range(5):
        f.tracker.unpatching(NS, SA, ("regcred",), f.now)
        assert f.revert("kube-controller-manager") is False
        f.now += 1
    assert f.contested() == []
    f.now += fight.OWN_UNPATCH_GRACE
    f.revert("kube-controller-manager")  # much later: a real removal again
    assert f.tracker.remembered() == 1


def test_an_unknown_writer_is_still_a_writer() -> None:
    found = fight.removal(sa(("regcred",)), sa((), writer=""))
    assert found is not None and found.manager == fight.UNKNOWN_MANAGER


# --------------------------------------------------------------------------- threshold, window


def test_the_third_removal_by_the_same_manager_within_ten_minutes_makes_it_contested() -> None:
    f = Fight()
    assert f.revert() is False
    f.restore()
    f.now += 200
    assert f.revert() is False
    f.restore()
    f.now += 200
    assert f.revert() is True  # 400 s after the first: within the window
    assert f.contested() == [(NS, SA, "argocd-controller")]
    f.restore()  # the first three repairs are all immediate
    assert f.revert() is False  # already contested: not "newly" again
    assert f.hold() == fight.BASE_BACKOFF


def test_removals_spread_wider_than_the_window_never_make_a_fight() -> None:
    f = Fight()
    for _ in range(10):
        assert f.revert() is False
        f.restore()
        f.now += fight.WINDOW / 2 + 1  # never three within ten minutes
    assert f.contested() == []


def test_the_contested_state_ends_ten_minutes_after_the_removals_stop() -> None:
    f = Fight()
    for _ in range(3):
        f.revert()
        f.restore()
        f.now += 1
    assert f.contested()
    f.now += fight.WINDOW - 4
    assert f.contested()  # the first removal is still inside
    f.now += 3
    assert f.contested() == []
    assert f.hold() == 0


def test_two_managers_alternating_are_counted_apart() -> None:
    f = Fight()
    for manager in ("argocd-controller", "helm", "argocd-controller", "helm"):
        assert f.revert(manager) is False
        f.restore()
        f.now += 1
    assert f.contested() == []  # two each: neither reached three
    assert f.revert("helm") is True
    assert f.contested() == [(NS, SA, "helm")]


def test_a_fight_on_one_service_account_does_not_slow_repairs_of_another() -> None:
    f = Fight()
    for _ in range(4):
        f.revert()
        f.wait_and_restore()
    assert f.hold() == 0 or f.contested()
    f.revert()
    assert f.hold() > 0
    assert f.revert(name="builder") is False  # a one-off edit elsewhere
    assert f.hold("builder") == 0


# --------------------------------------------------------------------------- back-off


def test_restores_of_a_contested_entry_back_off_from_30_seconds_doubling_to_an_hour() -> None:
    f = Fight()
    waits = []
    for _ in range(14):  # the other writer reverts at once, every time
        f.revert()
        waits.append(f.wait_and_restore())
    assert waits[:3] == [0, 0, 0]
    assert waits[3:11] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert waits[11:] == [3600, 3600, 3600]  # capped
    # ... the war costs a handful of writes an hour once at the cap
    assert f.contested() == [(NS, SA, "argocd-controller")]


def test_writes_in_the_first_two_minutes_of_a_fast_fight_are_few() -> None:
    f = Fight()
    start, writes = f.now, 0
    while True:
        f.revert()  # the other writer notices our entry within 0.3 s
        f.now += f.hold()
        if f.now - start > 120:
            break
        f.restore()
        writes += 1
        f.now += 0.3
    assert writes == 5  # 3 immediate, then after 30 s and 60 s


def test_a_revert_reported_before_our_write_is_answered_still_counts_against_that_restore(
        ) -> None:
    # A writer that reverts within milliseconds: the watch reports the removal of our restored
    # entry before the worker hears our PATCH's 200. That removal belongs to this restore: the
    # back-off keeps doubling, never "resets" as if the entry had stayed, and no new round of
    # immediate repairs starts.
    f = Fight()
    for _ in range(3):
        f.revert()
        f.wait_and_restore()  # the third removal: contested, repaired at once
    f.revert()
    waits = []
    for _ in range(4):
        wait = f.hold()
        waits.append(round(wait))
        f.now += wait
        sent = f.now
        f.now += 0.05
        f.revert()  # reported while our write is in flight
        f.now += 0.05
        f.tracker.restored(NS, SA, f.now, sent=sent)
    assert waits == [30, 60, 120, 240]
    assert f.contested() == [(NS, SA, "argocd-controller")]


def test_the_back_off_resets_once_the_entry_stayed_for_one_back_off_period() -> None:
    f = Fight()
    for _ in range(6):
        f.revert()
        f.wait_and_restore()
    assert f.tracker.contested(f.now)[0].backoff == 240
    f.now += 240  # the entry stayed a whole back-off period
    f.revert()
    assert f.hold() == 0  # starts over: repaired at once ...
    f.restore()
    f.now += 1
    f.revert()
    assert f.hold() == pytest.approx(fight.BASE_BACKOFF - 1)  # ... then 30 s again


def test_a_slow_reverter_gets_its_entry_back_after_each_revert_and_stays_reported() -> None:
    f = Fight()
    for _ in range(8):  # Argo CD's periodic sync: every three minutes
        f.revert()
        f.wait_and_restore()
        f.now += 180
    assert f.contested() == [(NS, SA, "argocd-controller")]
    f.revert()
    assert f.hold() == 0


def test_the_memory_is_bounded_and_forgets_calm_service_accounts_first() -> None:
    tracker = fight.Tracker(memory=10)
    now = 0.0
    for _ in range(3):
        tracker.removed(removed_by("argocd", "fighting"), now)
    for i in range(50):
        tracker.removed(removed_by("kubectl", f"sa-{i}"), now)
        now += fight.WINDOW + 1
    assert tracker.remembered() <= 10


# --------------------------------------------------------------------------- what the user reads


def test_the_message_names_the_writer_and_the_fix() -> None:
    argo = fight.message("argocd-controller", ("regcred",), 30)
    assert "'argocd-controller'" in argo and "ignoreDifferences" in argo
    assert "RespectIgnoreDifferences=true" in argo and "/imagePullSecrets" in argo
    helm = fight.message("helm", ("regcred",), 60)
    assert "'helm'" in helm and "leave imagePullSecrets out" in helm
    assert "ignoreDifferences" not in helm


# --------------------------------------------------------------------------- managedFields


def entry(manager: str, time: str, *fields: str) -> dict[str, object]:
    return {"manager": manager, "operation": "Update", "time": time,
            "fieldsV1": {f: {} for f in fields}}


def test_the_writer_is_the_manager_that_owns_the_list_now() -> None:
    managed = [entry("kube-controller-manager", "2026-12-06T01:00:00Z", "f:metadata"),
               entry("argocd-controller", "2026-12-06T01:00:05Z", "f:imagePullSecrets"),
               entry(model.FIELD_MANAGER, "2026-12-06T01:00:09Z", "f:metadata")]
    assert codec.pull_secrets_writer(managed) == "argocd-controller"


def test_a_dropped_list_names_the_latest_writer_other_than_us() -> None:
    managed = [entry("helm", "2026-12-06T01:00:03Z", "f:metadata"),
               entry("kube-controller-manager", "2026-12-06T01:00:00Z", "f:metadata"),
               entry(model.FIELD_MANAGER, "2026-12-06T01:00:09Z", "f:metadata")]
    assert codec.pull_secrets_writer(managed) == "helm"
    assert codec.pull_secrets_writer([entry(model.FIELD_MANAGER, "x", "f:metadata")]) == ""
    assert codec.pull_secrets_writer(None) == ""


def test_after_the_other_writer_stops_the_fight_is_over_one_back_off_period_later() -> None:
    f = Fight()
    for _ in range(5):
        f.revert()
        f.wait_and_restore()
    level = f.tracker.contested(f.now)[0].backoff
    assert level == 120  # waits so far: 0, 0, 0, 30, 60
    f.now += fight.WINDOW + 1  # more than that back-off, and the window is empty too
    assert f.contested() == []
    assert f.revert() is False  # a one-off edit much later: repaired at once
    assert f.hold() == 0


# --------------------------------------------------------------------------- what `plan` can know


def event(name: str, last_seen: str, *, manager: str = "argocd-controller", ns: str = NS,
          reason: str = fight.EVENT_REASON, component: str = "pullsecret-syncer",
          kind: str = "ServiceAccount") -> model.Event:
    return model.Event(ns, f"{name}.x", reason, fight.message(manager, ("regcred",), 30),
                       kind, name, component, last_seen)


def test_plan_reads_the_contested_service_accounts_from_the_daemons_recent_events() -> None:
    import datetime

    now = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
    accounts = {NS: {"default": sa(()), "builder": sa(()), "gone-later": sa(())},
                "elsewhere": {"default": sa(())}}
    events = [
        event("default", "2026-12-06T11:10:00Z", manager="helm"),
        event("default", "2026-12-06T11:50:00Z"),  # the latest report wins
        event("builder", "2026-12-06T10:59:00Z"),  # over an hour ago: the fight may be over
        event("missing", "2026-12-06T11:59:00Z"),  # that ServiceAccount is gone
        event("default", "2026-12-06T11:59:00Z", ns="elsewhere"),  # not a namespace of ours
        event("gone-later", "2026-12-06T11:59:00Z", component="someone-else"),
        event("gone-later", "2026-12-06T11:59:00Z", reason="WriteFailed"),
        event("gone-later", "not a time"),
    ]
    assert fight.reported(events, now=now, accounts=accounts, namespaces={NS}) == [
        (NS, "default", "argocd-controller")]
    assert fight.describe(NS, "default", "argocd-controller") == (
        "contested serviceaccount team-a/default (by argocd-controller)")


def test_our_first_write_to_an_untracked_service_account_starts_field_tracking() -> None:
    untracked = dataclasses.replace(sa(("theirs",), ours=()), tracked=False)
    change = plan.service_account_change(untracked, add=("regcred",), remove=())
    assert change is not None and change.track_fields
    ops = codec.service_account_patch(change)
    assert ops[0]["op"] == "test"  # the precondition stays first
    assert ops[-1] == {"op": "add", "path": "/metadata/managedFields", "value": [{
        "manager": model.FIELD_MANAGER, "operation": "Update", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:imagePullSecrets": {}}}]}
    tracked = plan.service_account_change(sa(("theirs",), ours=()), add=("regcred",), remove=())
    assert tracked is not None and not tracked.track_fields  # nothing to seed
    assert all(op["path"] != "/metadata/managedFields"
               for op in codec.service_account_patch(tracked))


def test_only_this_installations_entries_count_as_removed() -> None:
    """Another installation's entry going is not our fight (its own daemon sees it)."""
    before = sa(("regcred", "other"), ours=("regcred", "b.sync:other"))
    assert fight.removal(before, sa(("regcred",), ours=before.ours, writer="x")) is None
    mine = fight.removal(before, sa(("other",), ours=before.ours, writer="x"))
    assert mine is not None and mine.entries == ("regcred",)
    as_b = fight.removal(before, sa(("regcred",), ours=before.ours, writer="x"),
                         instance="b.sync")
    assert as_b is not None and as_b.entries == ("other",)
