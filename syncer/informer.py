"""Watch caches: list+watch of Namespaces, ServiceAccounts and our Secrets, kept in memory.

Each informer lists once, then watches from the list's resourceVersion; a `410 Gone` re-lists,
any other error reconnects from the last seen resourceVersion after a backoff. Every change
tells the daemon which namespace to look at again; a re-list tells it to look at everything.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from syncer import kube, model

log = logging.getLogger(__name__)

T = TypeVar("T")
WATCH_TIMEOUT_SECONDS = 240
MAX_BACKOFF = 30.0


def newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion `candidate` is at least as new as `current` (numeric in
    practice; when either is not a number, trust the newcomer)."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


class Informer(Generic[T]):
    """One resource's cache: key -> record, fed by list+watch on a background thread."""

    def __init__(self, client: kube.Kube, resource: str, *, parse: Callable[[dict[str, Any]], T],
                 key: Callable[[T], tuple[str, str]], on_change: Callable[[str | None], None],
                 stop: threading.Event, label_selector: str | None = None,
                 watch_timeout: int = WATCH_TIMEOUT_SECONDS) -> None:
        self._client = client
        self.resource = resource
        self._parse = parse
        self._key = key
        self._on_change = on_change
        self._stop = stop
        self._label_selector = label_selector
        self._watch_timeout = watch_timeout
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], T] = {}
        self._rv = ""
        self.synced = threading.Event()
        self._streamed = False  # whether the current watch has delivered anything
        self.thread = threading.Thread(target=self._run, name=f"watch-{resource}", daemon=True)

    # ---- cache access ---------------------------------------------------------------------
    def items(self) -> dict[tuple[str, str], T]:
        with self._lock:
            return dict(self._items)

    def put(self, record: T, resource_version: str) -> None:
        """Write-through after our own write, so the next pass does not act on stale data."""
        with self._lock:
            key = self._key(record)
            old = self._items.get(key)
            old_rv = getattr(old, "resource_version", "") if old is not None else ""
            if old is None or newer(resource_version, old_rv):
                self._items[key] = record

    def discard(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)

    # ---- list + watch ---------------------------------------------------------------------
    def relist(self) -> None:
        """Replace the cache with a fresh list (also used by the periodic resync)."""
        if self.resource == "namespaces":
            result = self._client.list_namespaces()
        elif self.resource == "serviceaccounts":
            result = self._client.list_service_accounts()
        else:
            result = self._client.list_secrets(label_selector=self._label_selector)
        fresh: dict[tuple[str, str], T] = {}
        for obj in result.items:
            record = self._parse(obj)
            fresh[self._key(record)] = record
        with self._lock:
            self._items = fresh
            self._rv = result.resource_version
        self.synced.set()

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        failures = 0
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                    self._on_change(None)  # anything may have changed while we were not looking
                self._watch_once()
                failures = 0
            except kube.Gone:
                log.info("watch expired; re-listing", extra={"kind": self.resource})
                need_list = True
            except kube.KubeError as exc:
                # a watch that delivered events was healthy: a reset after hours of streaming
                # (load balancers do that) must not inherit the backoff of earlier failures
                failures = 1 if self._streamed else failures + 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 8)) * random.uniform(0.5, 1.0)  # noqa: S311
                log.warning("watch failed; reconnecting", extra={
                    "kind": self.resource, "error": str(exc)})
                if self._stop.wait(delay):
                    return
                need_list = need_list or not self._rv

    def _watch_once(self) -> None:
        self._streamed = False
        with self._lock:
            rv = self._rv
        for etype, obj in self._client.watch(self.resource, resource_version=rv,
                                             timeout_seconds=self._watch_timeout,
                                             label_selector=self._label_selector):
            if self._stop.is_set():
                return
            self._streamed = True
            meta = obj.get("metadata") or {}
            new_rv = str(meta.get("resourceVersion", ""))
            if etype == "BOOKMARK":
                with self._lock:
                    self._rv = new_rv or self._rv
                continue
            record = self._parse(obj)
            key = self._key(record)
            with self._lock:
                if etype == "DELETED":
                    self._items.pop(key, None)
                else:
                    old = self._items.get(key)
                    old_rv = getattr(old, "resource_version", "") if old is not None else ""
                    if old is None or newer(new_rv, old_rv):  # not older than a write-through
                        self._items[key] = record
                self._rv = new_rv or self._rv
            self._on_change(key[0] if self.resource != "namespaces" else key[1])


def namespace_key(ns: model.Namespace) -> tuple[str, str]:
    return ("", ns.name)


def namespaced_key(obj: model.Secret | model.ServiceAccount) -> tuple[str, str]:
    return (obj.namespace, obj.name)


class Caches:
    """The three informers the daemon needs, and a consistent-enough view for one pass."""

    def __init__(self, client: kube.Kube, *, on_change: Callable[[str | None], None],
                 stop: threading.Event, watch_timeout: int = WATCH_TIMEOUT_SECONDS) -> None:
        self.namespaces: Informer[model.Namespace] = Informer(
            client, "namespaces", parse=kube.parse_namespace, key=namespace_key,
            on_change=on_change, stop=stop, watch_timeout=watch_timeout)
        self.service_accounts: Informer[model.ServiceAccount] = Informer(
            client, "serviceaccounts", parse=kube.parse_service_account, key=namespaced_key,
            on_change=on_change, stop=stop, watch_timeout=watch_timeout)
        self.secrets: Informer[model.Secret] = Informer(
            client, "secrets", parse=kube.parse_secret, key=namespaced_key,
            on_change=on_change, stop=stop, watch_timeout=watch_timeout,
            label_selector=f"{model.MANAGED_BY_LABEL}={model.MANAGED_BY_VALUE}")
        self.all = (self.namespaces, self.service_accounts, self.secrets)
        # Same-named Secrets we do not manage, found by the resync's lists or by a 409 on create.
        self._lock = threading.Lock()
        self._unmanaged: dict[tuple[str, str], model.Secret] = {}

    def start(self) -> None:
        for informer in self.all:
            informer.start()

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.all)

    def alive(self) -> bool:
        return all(i.thread.is_alive() for i in self.all)

    def set_unmanaged(self, secrets: list[model.Secret]) -> None:
        with self._lock:
            self._unmanaged = {(s.namespace, s.name): s for s in secrets if not s.managed}

    def note_secret(self, secret: model.Secret | None, key: tuple[str, str]) -> None:
        """Record what a write (or a 409) taught us about one Secret."""
        if secret is None:
            self.secrets.discard(key)
            with self._lock:
                self._unmanaged.pop(key, None)
        elif secret.managed:
            self.secrets.put(secret, secret.resource_version)
            with self._lock:
                self._unmanaged.pop(key, None)
        else:
            with self._lock:
                self._unmanaged[key] = secret

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
