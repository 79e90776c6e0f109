"""Turn the request records of the demo's counting proxies into a few readable numbers.

Pure: takes the records (method, path, query, status) the fault proxies kept and sorts them into
backend reads per credential, Kubernetes writes by verb and resource, and Kubernetes reads by kind
(LIST, WATCH, GET of one object).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# /api/v1/[namespaces/NS/]RESOURCE[/NAME] and /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME]
_KUBE_PATH = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+)(?=/))?"
    r"/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+))?$"
)
_WATCH = re.compile(r"(^|&)watch=(1|true)(&|$)", re.IGNORECASE)


class Record(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def status(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class KubeTally:
    """Kubernetes API requests, sorted by what they were."""

    writes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (verb, resource)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)  # 409/422 of those
    lists: int = 0
    watches: int = 0
    gets: Counter[str] = field(default_factory=Counter)  # resource of single-object GETs

    def writes_line(self) -> str:
        if not self.writes:
            return "none"
        parts = []
        for (verb, resource), n in sorted(self.writes.items()):
            text = f"{verb} {resource} {n}"
            lost = self.refused.get((verb, resource), 0)
            if lost:
                text += f" ({lost} refused: another writer changed the object first)"
            parts.append(text)
        return ", ".join(parts)

    def write_count(self, resource: str) -> int:
        return sum(n for (_, res), n in self.writes.items() if res == resource)


def kube(records: Iterable[Record]) -> KubeTally:
    writes: Counter[tuple[str, str]] = Counter()
    refused: Counter[tuple[str, str]] = Counter()
    gets: Counter[str] = Counter()
    lists = watches = 0
    for r in records:
        m = _KUBE_PATH.match(r.path)
        if m is None:
            continue
        resource, name = m["resource"], m["name"]
        if r.method in WRITE_METHODS:
            writes[(r.method, resource)] += 1
            if r.status in (409, 422):
                refused[(r.method, resource)] += 1
        elif r.method == "GET" and _WATCH.search(r.query):
            watches += 1
        elif r.method == "GET" and name is None:
            lists += 1
        elif r.method == "GET":
            gets[resource] += 1
    return KubeTally(writes=writes, refused=refused, lists=lists, watches=watches, gets=gets)


def count(records: Iterable[Record], *, method: str, path: str) -> int:
    """Requests with `method` whose path matches the regex `path` (answered or not)."""
    pattern = re.compile(path)
    return sum(1 for r in records if r.method == method and pattern.search(r.path))
