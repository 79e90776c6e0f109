"""Watch caches: list+watch of Namespaces, ServiceAccounts and our Secrets, kept in memory.

Like client-go's Reflector, an informer takes only an `api.ListerWatcher` and one `Kind`. It lists
once, then watches from the list's resourceVersion (bookmarks move it along); a `410 Gone`
re-lists, any other error reconnects from the last seen version after a jittered backoff. Every
change tells the daemon which namespace to look at again; a re-list tells it to look at all.
Our own writes are put into the cache at once (write-through); a watch event older than such a
write never overwrites it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Generic

from syncer.core import model
from syncer.kube import api, errors

log = logging.getLogger("syncer.run")

WATCH_TIMEOUT_SECONDS = 240
MAX_BACKOFF = 30.0
Key = tuple[str, str]


def newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion `candidate` is at least as new as `current` (numeric in
    practice; when either is not a number, trust the newcomer)."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


def key_of(record: api.Record) -> Key:
    return (record.namespace, record.name)


def namespace_of(record: api.Record) -> str:
    """The namespace a change concerns (for a Namespace: itself)."""
    return record.namespace or record.name


class Informer(Generic[api.R]):
    """One resource's cache: key -> record, fed by list+watch (`run` on a thread)."""

    def __init__(self, cluster: api.ListerWatcher, kind: api.Kind[api.R], *,
                 on_change: Callable[[str | None], None], stop: threading.Event,
                 selector: api.Selector = api.EVERYTHING,
                 watch_timeout: int = WATCH_TIMEOUT_SECONDS,
                 rand: Callable[[], float] = random.random,
                 on_revision: Callable[[api.R | None, api.R], None] | None = None) -> None:
        self._cluster = cluster
        self._on_revision = on_revision  # (cached, new) for each revision a watch delivers
        self.kind = kind
        self._on_change = on_change
        self._stop = stop
        self._selector = selector
        self._watch_timeout = watch_timeout
        self._rand = rand
        self._lock = threading.Lock()
        self._items: dict[Key, api.R] = {}
        self._rv = ""
        self.synced = threading.Event()
        self.relists = 0
        self._failures = 0

    # ---- cache access ---------------------------------------------------------------------
    def items(self) -> dict[Key, api.R]:
        with self._lock:
            return dict(self._items)

    def put(self, record: api.R) -> None:
        """Write-through after our own write, so the next pass does not act on stale data."""
        with self._lock:
            self._put_locked(record)

    def _put_locked(self, record: api.R) -> bool:
        """Store `record` unless the cache holds a newer one; whether it was stored."""
        key = key_of(record)
        old = self._items.get(key)
        if old is None or newer(record.resource_version, old.resource_version):
            self._items[key] = record
            return True
        return False

    def discard(self, key: Key) -> None:
        with self._lock:
            self._items.pop(key, None)

    def resource_version(self) -> str:
        with self._lock:
            return self._rv

    # ---- list + watch ---------------------------------------------------------------------
    def relist(self) -> None:
        """Replace the cache with a fresh list (also used by the periodic resync)."""
        listing = self._cluster.list(self.kind, selector=self._selector)
        fresh = {key_of(r): r for r in listing.items}
        with self._lock:
            self._items = fresh
            self._rv = listing.resource_version
        self.relists += 1
        self.synced.set()

    def run(self) -> None:
        """List, then watch until stopped (the thread's body)."""
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                    self._on_change(None)  # anything may have changed while we were not looking
                self.watch_once()
            except errors.Gone:
                log.info("watch expired; re-listing", extra={"kind": self.kind.name})
                need_list = True
            except errors.KubeError as exc:
                delay = self.backoff()
                log.warning("watch failed; reconnecting", extra={
                    "kind": self.kind.name, "error": str(exc), "retry_in": round(delay, 2)})
                if self._stop.wait(delay):
                    return
                need_list = need_list or not self.resource_version()

    def backoff(self) -> float:
        """The next reconnect delay: 1 s, 2 s, 4 s … (at most 30 s), jittered down by ≤ 50 %."""
        self._failures += 1
        return min(MAX_BACKOFF, 0.5 * 2.0 ** min(self._failures, 8)) * (0.5 + 0.5 * self._rand())

    def watch_once(self) -> bool:
        """One watch request, applied to the cache; whether it delivered anything. A watch that
        delivered events was healthy: a reset after hours of streaming (load balancers do
        that) must not inherit the backoff of earlier failures."""
        streamed = False
        for event in self._cluster.watch(self.kind, resource_version=self.resource_version(),
                                         timeout_seconds=self._watch_timeout,
                                         selector=self._selector):
            if self._stop.is_set():
                break
            if not streamed:
                streamed = True
                self._failures = 0
            before: tuple[api.R | None] | None = None  # the revision this one follows
            with self._lock:
                if event.resource_version:
                    self._rv = event.resource_version
                record = event.record
                if record is None:  # a BOOKMARK: only the resourceVersion moves
                    continue
                if event.type == "DELETED":
                    self._items.pop(key_of(record), None)
                else:
                    old = self._items.get(key_of(record))
                    if self._put_locked(record):  # never older than a write-through
                        before = (old,)
            if before is not None and self._on_revision is not None:
                self._on_revision(before[0], record)
            self._on_change(namespace_of(record))
        return streamed


class Caches:
    """The three informers the daemon needs, and a consistent-enough view for one pass."""

    def __init__(self, cluster: api.ListerWatcher, *, on_change: Callable[[str | None], None],
                 stop: threading.Event, watch_timeout: int = WATCH_TIMEOUT_SECONDS,
                 on_service_account: Callable[[model.ServiceAccount | None,
                                               model.ServiceAccount], None] | None = None,
                 ) -> None:
        self.namespaces = Informer(cluster, api.NAMESPACES, on_change=on_change, stop=stop,
                                   watch_timeout=watch_timeout)
        self.service_accounts = Informer(cluster, api.SERVICE_ACCOUNTS, on_change=on_change,
                                         stop=stop, watch_timeout=watch_timeout,
                                         on_revision=on_service_account)
        self.secrets = Informer(cluster, api.SECRETS, selector=api.MANAGED, on_change=on_change,
                                stop=stop, watch_timeout=watch_timeout)
        self.all: tuple[Informer[model.Namespace], Informer[model.ServiceAccount],
                        Informer[model.Secret]] = (
            self.namespaces, self.service_accounts, self.secrets)
        # Same-named Secrets we do not manage, found by the resync's lists or by a 409.
        self._lock = threading.Lock()
        self._unmanaged: dict[Key, model.Secret] = {}

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.all)

    def set_unmanaged(self, secrets: list[model.Secret]) -> None:
        with self._lock:
            self._unmanaged = {key_of(s): s for s in secrets if not s.managed}

    # ---- the write-through cache of reconcile.apply ------------------------------------------
    def note_secret(self, key: Key, secret: model.Secret | None) -> None:
        """Record what a write (or a 409) taught us about one Secret."""
        if secret is None:
            self.secrets.discard(key)
            with self._lock:
                self._unmanaged.pop(key, None)
        elif secret.managed:
            self.secrets.put(secret)
            with self._lock:
                self._unmanaged.pop(key, None)
        else:  # not (or no longer, once handed back) carrying our label
            self.secrets.discard(key)
            with self._lock:
                self._unmanaged[key] = secret

    def note_service_account(self, sa: model.ServiceAccount) -> None:
        self.service_accounts.put(sa)

    def view(self) -> model.ClusterView:
        secrets = dict(self.secrets.items())
        with self._lock:
            for key, secret in self._unmanaged.items():
                secrets.setdefault(key, secret)
        accounts: dict[str, dict[str, model.ServiceAccount]] = {}
        for (ns, name), sa in self.service_accounts.items().items():
            accounts.setdefault(ns, {})[name] = sa
        namespaces = {name: ns for (_, name), ns in self.namespaces.items().items()}
        return model.ClusterView(namespaces, secrets, accounts)
