"""Fights over `imagePullSecrets`: another writer that keeps taking our entry out of a
ServiceAccount.

A GitOps controller with self-heal, a `helm upgrade` or a script declares the ServiceAccount
without our entry and puts it back to that state; we repair it; they revert it again. One removal
is an edit and is repaired at once. When the same other field manager removes our entry
`THRESHOLD` times within `WINDOW` seconds, the ServiceAccount is *contested*: we keep restoring
the entry, but with exponential back-off (`BASE_BACKOFF` doubling to `MAX_BACKOFF`, reset once the
entry has stayed for one back-off period), so the war costs a few writes an hour instead of two
per round at the other tool's pace. Every other ServiceAccount is still repaired at once.

Pure: a small state machine on a clock passed in, kept in memory only (a restart starts calm,
which is safe: at worst three quick repairs before the back-off resumes). Thread-safe, because
the watch thread reports removals while the worker asks whether it may restore.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from syncer.core import model

THRESHOLD = 3  # removals by the same other manager ...
WINDOW = 600.0  # ... within this many seconds make a ServiceAccount contested
BASE_BACKOFF = 30.0
MAX_BACKOFF = 3600.0
OWN_UNPATCH_GRACE = 60.0  # a removal this soon after our own unpatch of that entry is ours
MEMORY = 10_000  # ServiceAccounts remembered; calm ones are forgotten first
EVENT_REASON = "ImagePullSecretsContested"
REPORTED_WITHIN = datetime.timedelta(hours=1)  # the Event repeats hourly while a fight lasts
_MANAGER_IN_MESSAGE = re.compile(r"field manager (['\"])(.*?)\1 keeps removing")
UNKNOWN_MANAGER = "(unknown)"

Key = tuple[str, str]  # (namespace, ServiceAccount name)

ARGO_CD_SNIPPET = """\
spec:
  ignoreDifferences:
    - group: ""
      kind: ServiceAccount
      jsonPointers:
        - /imagePullSecrets
  syncPolicy:
    syncOptions:
      - RespectIgnoreDifferences=true"""


@dataclass(frozen=True, slots=True)
class Removal:
    """Our entries that one revision of a ServiceAccount lost, and the field manager that
    (most likely) wrote that revision."""

    namespace: str
    name: str
    entries: tuple[str, ...]
    manager: str


def removal(old: model.ServiceAccount | None, new: model.ServiceAccount, *,
            instance: str = model.DEFAULT_INSTANCE) -> Removal | None:
    """What `new` took out of `old` that installation `instance` had added, unless we wrote it
    ourselves (None when nothing of ours went, or the writer is us)."""
    if old is None:
        return None
    lost = tuple(n for n in model.added_by(old, instance)
                 if n in old.image_pull_secrets and n not in new.image_pull_secrets)
    if not lost or new.pull_secrets_writer == model.FIELD_MANAGER:
        return None
    return Removal(new.namespace, new.name, lost, new.pull_secrets_writer or UNKNOWN_MANAGER)


def is_argo_cd(manager: str) -> bool:
    return manager.startswith("argocd")


def advice(manager: str) -> str:
    """How to make `manager` stop reverting the field (the Event and the log say it)."""
    if is_argo_cd(manager):
        return ("add to the Argo CD Application: ignoreDifferences [{group: \"\", kind: "
                "ServiceAccount, jsonPointers: [/imagePullSecrets]}] and syncOptions "
                "[RespectIgnoreDifferences=true]")
    return ("leave imagePullSecrets out of the ServiceAccount's manifest (Flux, Helm, kubectl), "
            "or ignore the field in the tool that applies it")


def message(manager: str, entries: tuple[str, ...], backoff: float) -> str:
    """The Warning Event's text (no value, only names)."""
    who = (f"field manager {manager!r}" if manager != UNKNOWN_MANAGER else
           "another writer (its updates drop the whole list and leave no name in managedFields)")
    return (f"{who} keeps removing {', '.join(entries)} from "
            f"imagePullSecrets; pullsecret-syncer restores it with back-off (now "
            f"{int(backoff)}s) instead of fighting. Fix: {advice(manager)}. "
            "See docs/gitops.md.")


def reported(events: Iterable[model.Event], *, now: datetime.datetime,
             accounts: Mapping[str, Mapping[str, model.ServiceAccount]],
             namespaces: set[str]) -> list[tuple[str, str, str]]:
    """What `plan` can know of the daemon's in-memory fight state: the ServiceAccounts (still
    there, in `namespaces`) that it reported as contested within the last hour, and by whom —
    sorted (namespace, name, manager), the latest report of each."""
    latest: dict[tuple[str, str], tuple[datetime.datetime, str]] = {}
    for ev in events:
        if (ev.reason != EVENT_REASON or ev.object_kind != "ServiceAccount"
                or ev.component != model.FIELD_MANAGER or ev.namespace not in namespaces
                or ev.object_name not in accounts.get(ev.namespace, {})):
            continue
        try:
            seen = datetime.datetime.fromisoformat(ev.last_seen)
        except ValueError:
            continue
        if seen.tzinfo is None or now - seen > REPORTED_WITHIN:
            continue
        found = _MANAGER_IN_MESSAGE.search(ev.message)
        key = (ev.namespace, ev.object_name)
        if key not in latest or latest[key][0] < seen:
            latest[key] = (seen, found.group(2) if found else UNKNOWN_MANAGER)
    return sorted((ns, name, manager) for (ns, name), (_, manager) in latest.items())


def describe(namespace: str, name: str, manager: str) -> str:
    """The `plan` line of a contested ServiceAccount."""
    return f"contested serviceaccount {namespace}/{name} (by {manager})"


@dataclass(slots=True)
class _State:
    removals: dict[str, deque[float]] = field(default_factory=dict)  # manager -> times
    entries: tuple[str, ...] = ()  # what was taken out last
    contested_by: str | None = None  # set at the threshold; kept through the back-off
    backoff: float = 0.0  # the current back-off level
    restored_at: float | None = None  # our last restore while contested (None: next is now)
    removed_since: bool = False  # the entry was taken out again after that restore
    last_removed: float = float("-inf")  # when the watch last reported a removal
    own_unpatch: dict[str, float] = field(default_factory=dict)  # entry -> when we took it out


@dataclass(frozen=True, slots=True)
class Contested:
    namespace: str
    name: str
    manager: str
    entries: tuple[str, ...]
    backoff: float  # the delay of the next restore


class Tracker:
    """The fight state of every ServiceAccount that lost one of our entries recently."""

    def __init__(self, *, threshold: int = THRESHOLD, window: float = WINDOW,
                 base: float = BASE_BACKOFF, cap: float = MAX_BACKOFF,
                 memory: int = MEMORY) -> None:
        self._threshold = threshold
        self._window = window
        self._base = base
        self._cap = cap
        self._memory = memory
        self._lock = threading.Lock()
        self._states: dict[Key, _State] = {}

    # ---- what the watch reports -----------------------------------------------------------
    def removed(self, found: Removal, now: float) -> bool:
        """Count one removal of our entries; True when it made the ServiceAccount contested
        (it was not before)."""
        key = (found.namespace, found.name)
        with self._lock:
            st = self._states.get(key)
            if st is None:
                self._forget(now)
                st = self._states[key] = _State()
            if all(now - st.own_unpatch.get(n, -1e18) < OWN_UNPATCH_GRACE
                   for n in found.entries):
                return False  # our own unpatch, echoed by the watch
            self._settle(st, now)
            st.removals.setdefault(found.manager, deque()).append(now)
            st.entries = found.entries
            st.removed_since = True
            st.last_removed = now
            if st.contested_by is None and (by := self._by(st, now)) is not None:
                # from now on restores back off; this repair is still immediate
                st.contested_by, st.backoff, st.restored_at = by, self._base, None
                return True
            return False

    def unpatching(self, namespace: str, name: str, entries: tuple[str, ...],
                   now: float) -> None:
        """We are about to take `entries` out ourselves (prune): not a removal by another."""
        with self._lock:
            st = self._states.get((namespace, name))
            if st is None:
                self._forget(now)
                st = self._states[(namespace, name)] = _State()
            for n in entries:
                st.own_unpatch[n] = now

    # ---- what the worker asks and tells ---------------------------------------------------
    def hold(self, namespace: str, name: str, now: float) -> float:
        """Seconds to wait before restoring our entry on this ServiceAccount (0: now)."""
        with self._lock:
            st = self._states.get((namespace, name))
            if st is None:
                return 0.0
            self._settle(st, now)
            if st.contested_by is None or st.restored_at is None:
                return 0.0
            return max(0.0, st.restored_at + st.backoff - now)

    def restored(self, namespace: str, name: str, now: float, *,
                 sent: float | None = None) -> None:
        """We wrote our entry back (the write was sent at `sent`, answered at `now`): while
        contested, the next restore waits twice as long. A fast writer may take the entry out
        again before the answer is back, and the watch may report that first: a removal
        reported since `sent` is a removal of this restore, not of the last one."""
        with self._lock:
            st = self._states.get((namespace, name))
            if st is None or st.contested_by is None:
                return
            if st.restored_at is not None:
                st.backoff = min(self._cap, st.backoff * 2)
            st.restored_at = now
            st.removed_since = sent is not None and st.last_removed > sent

    # ---- what the user is told ------------------------------------------------------------
    def contested(self, now: float) -> list[Contested]:
        """Every contested ServiceAccount (in back-off, or three removals by one manager
        within the window), sorted."""
        with self._lock:
            out = []
            for (ns, name), st in sorted(self._states.items()):
                self._settle(st, now)
                manager = self._by(st, now) or st.contested_by
                if manager is not None:
                    out.append(Contested(ns, name, manager, st.entries,
                                         st.backoff or self._base))
            return out

    def remembered(self) -> int:
        with self._lock:
            return len(self._states)

    # ---- inside the lock ------------------------------------------------------------------
    def _settle(self, st: _State, now: float) -> None:
        """Once our restored entry has stayed for one back-off period, the fight is over: the
        back-off starts afresh (and the SA is calm unless the window still says otherwise)."""
        if (st.contested_by is not None and st.restored_at is not None
                and not st.removed_since and now - st.restored_at >= st.backoff):
            st.contested_by, st.backoff, st.restored_at = None, 0.0, None

    def _trim(self, st: _State, now: float) -> None:
        for manager in list(st.removals):
            times = st.removals[manager]
            while times and now - times[0] > self._window:
                times.popleft()
            if not times:
                del st.removals[manager]

    def _by(self, st: _State, now: float) -> str | None:
        """The manager this ServiceAccount is contested by (the one with most removals in the
        window), or None."""
        self._trim(st, now)
        counts = [(len(t), t[-1], m) for m, t in st.removals.items() if len(t) >= self._threshold]
        return max(counts)[2] if counts else None

    def _forget(self, now: float) -> None:
        """Bound the memory: drop ServiceAccounts that are calm."""
        if len(self._states) < self._memory:
            return
        for key, st in list(self._states.items()):
            self._trim(st, now)
            recent_unpatch = any(now - t < OWN_UNPATCH_GRACE for t in st.own_unpatch.values())
            if not st.removals and st.contested_by is None and not recent_unpatch:
                del self._states[key]
        while len(self._states) >= self._memory:  # all fighting: drop the oldest
            del self._states[next(iter(self._states))]
