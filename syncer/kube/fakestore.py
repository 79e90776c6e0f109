"""The store behind `FakeCluster`: every record by (kind, namespace, name), the one
resourceVersion counter of an apiserver, the change log its watches read, and how label and field
selectors (and a watch through one) see a record.

Thread-safe: every method takes `cond` (re-entrant), which `FakeCluster` also holds around each
request so that a check and the write after it are one step.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from syncer.core import model
from syncer.kube import api, errors

Key = tuple[str, str, str]  # kind (its plural resource name), namespace, name


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: what a watch of `kind` from before `rv` is sent."""

    rv: int
    kind: str
    type: api.EventType
    record: api.Record | None  # None for a BOOKMARK
    previous: api.Record | None  # before the change, to tell a selector's enter from leave


def key(kind: str, record: api.Record) -> Key:
    return (kind, record.namespace, record.name)


def _typed(kind: api.Kind[api.R], record: api.Record) -> api.R:
    """A stored record as its kind's type: the store keeps each record under the kind it was
    written as, so this is the one place where the key vouches for the type."""
    del kind  # only the type parameter matters
    return cast(api.R, record)


# ---- selectors, as the apiserver's `GetAttrs` of each kind expose them ------------------------
def _labels(record: api.Record) -> Mapping[str, str]:
    return record.labels if isinstance(record, model.Namespace | model.Secret) else {}


def _fields(record: api.Record) -> dict[str, str]:
    fields = {"metadata.name": record.name, "metadata.namespace": record.namespace}
    if isinstance(record, model.Pod):
        fields["status.phase"] = record.phase
    if isinstance(record, model.Event):
        fields["reason"] = record.reason
    return fields


def selects(selector: api.Selector, record: api.Record) -> bool:
    """Equality-based label and field selectors, as far as the syncer uses them."""
    for text, attrs in ((selector.labels, _labels(record)), (selector.fields, _fields(record))):
        for term in filter(None, (text or "").split(",")):
            name, _, value = term.partition("=")
            if attrs.get(name.strip()) != value.strip():
                return False
    return True


def as_seen(selector: api.Selector, change: Change,
            ) -> tuple[api.EventType, api.Record | None] | None:
    """How a watch with `selector` sees a change, as the apiserver's watch cache sends it:
    entering the selection is ADDED; leaving it is DELETED with the previous content (at the
    change's resourceVersion); None when the watch does not see it at all."""
    record, old = change.record, change.previous
    if change.type == "BOOKMARK" or record is None:
        return "BOOKMARK", None
    now, before = selects(selector, record), old is not None and selects(selector, old)
    if change.type == "MODIFIED" and now and not before:
        return "ADDED", record
    if change.type == "MODIFIED" and before and not now and old is not None:
        return "DELETED", dataclasses.replace(old, resource_version=record.resource_version)
    return (change.type, record) if now else None


class Store:
    """Records of every kind in one map, versioned and logged like etcd behind an apiserver."""

    def __init__(self) -> None:
        self.cond = threading.Condition()  # an RLock underneath: methods nest
        self._rv = itertools.count(1)
        self.last_rv = 0
        self._uids = itertools.count(1)
        self._objects: dict[Key, api.Record] = {}
        self._log: list[Change] = []
        self._compacted = 0
        self._watch_generation = 0
        self._watch_error: errors.KubeError | None = None

    def new_uid(self) -> str:
        with self.cond:
            return f"uid-{next(self._uids)}"

    # ---- reads --------------------------------------------------------------------------------
    def get(self, kind: api.Kind[api.R], namespace: str, name: str) -> api.R | None:
        with self.cond:
            record = self._objects.get((kind.name, namespace, name))
            return None if record is None else _typed(kind, record)

    def stored(self, kind: str, namespace: str, name: str) -> api.Record | None:
        """By the kind's name, for tests: the record as stored."""
        with self.cond:
            return self._objects.get((kind, namespace, name))

    def select(self, kind: api.Kind[api.R], selector: api.Selector) -> list[api.R]:
        """Every record of `kind` that `selector` selects, by namespace and name."""
        with self.cond:
            return [_typed(kind, r) for k, r in sorted(self._objects.items())
                    if k[0] == kind.name and selects(selector, r)]

    def in_namespace(self, namespace: str) -> list[tuple[str, api.Record]]:
        """(kind, record) of every object in `namespace`."""
        with self.cond:
            return [(k[0], r) for k, r in self._objects.items() if k[1] == namespace]

    # ---- writes: a new resourceVersion and a watch event each ----------------------------------
    def put(self, kind: api.Kind[api.R], record: api.R, etype: api.EventType) -> api.R:
        """Store `record` as ADDED or MODIFIED, stamped with the next resourceVersion."""
        with self.cond:
            rv = self._next_rv()
            record = dataclasses.replace(record, resource_version=str(rv))
            self._log.append(Change(rv, kind.name, etype, record,
                                    self._objects.get(key(kind.name, record))))
            self._objects[key(kind.name, record)] = record
            self.cond.notify_all()
            return record

    def delete(self, kind: str, record: api.Record) -> None:
        """Remove the object `record` names (its last content goes to the watches)."""
        with self.cond:
            rv = self._next_rv()
            previous = self._objects.pop(key(kind, record), None)
            self._log.append(Change(rv, kind, "DELETED", record, previous))
            self.cond.notify_all()

    def bookmark(self, kind: str) -> None:
        with self.cond:
            self._log.append(Change(self._next_rv(), kind, "BOOKMARK", None, None))
            self.cond.notify_all()

    def _next_rv(self) -> int:
        self.last_rv = next(self._rv)
        return self.last_rv

    # ---- watches ------------------------------------------------------------------------------
    def compact(self) -> None:
        """Like etcd compaction: watches from any version seen so far get 410 Gone."""
        with self.cond:
            self._compacted = self.last_rv + 1
            self._log.clear()

    def end_watches(self, *, error: errors.KubeError | None = None) -> None:
        """End every open watch (the server's timeout), or cut it with `error`."""
        with self.cond:
            self._watch_generation += 1
            self._watch_error = error
            self.cond.notify_all()

    def open_watch(self, kind: api.Kind[api.R], resource_version: str) -> tuple[int, int]:
        """(the version to watch from, the generation of open watches); Gone when compacted."""
        with self.cond:
            since = int(resource_version or 0)
            if since < self._compacted:
                raise errors.Gone(f"WATCH {kind.name}: 410 Expired", status=410, reason="Expired")
            return since, self._watch_generation

    def stream(self, kind: api.Kind[api.R], *, since: int, generation: int,
               timeout_seconds: int, selector: api.Selector,
               ) -> Iterator[api.WatchEvent[api.R]]:
        """The changes after `since` as the watch sees them, until `timeout_seconds` pass or
        `end_watches` (0 s: what is pending, then the end)."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            with self.cond:
                while True:
                    batch = [(c.rv, *seen) for c in self._log
                             if c.rv > since and c.kind == kind.name
                             and (seen := as_seen(selector, c)) is not None]
                    left = deadline - time.monotonic()
                    if batch or generation != self._watch_generation or left <= 0:
                        break
                    self.cond.wait(min(left, 0.1))
                if generation != self._watch_generation:
                    if self._watch_error is not None:
                        raise self._watch_error
                    return
            for rv, etype, record in batch:
                since = rv
                yield api.WatchEvent(
                    etype, None if record is None else _typed(kind, record), str(rv))
            if not batch and time.monotonic() >= deadline:
                return
