"""How actions read to a person: the line `plan` prints, the past-tense line `sync` prints per
write, and the JSON objects of `--output json`. Names only, never a value: every field comes from
the common shape of an action (`plan.BaseAction`), which holds no credential.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from syncer.decide import plan
from syncer.present import summary


def describe(action: plan.BaseAction) -> str:
    """One line, e.g. `create secret ns/regcred (hub, ghcr)`, `patch serviceaccount ns/default
    +regcred`, `evict pod ns/web-1 (team-a)` — the same line the logs say."""
    return str(action)


def describe_done(action: plan.BaseAction) -> str:
    """`describe` in the past tense: `created secret team-a/regcred (hub, ghcr)`."""
    line = describe(action)
    return summary.past_tense(action.verb) + line[len(action.verb):]


def as_json(action: plan.BaseAction) -> dict[str, object]:
    """`{"action", "kind", "namespace", "name", "credentials"}`, and the mapping of a Pod's
    eviction (a Pod does not say which mapping it was evicted for)."""
    doc: dict[str, object] = {"action": action.verb, "kind": action.kind,
                              "namespace": action.namespace, "name": action.name,
                              "credentials": list(action.credentials)}
    if action.kind == "pod":
        doc["mapping"] = action.mapping
    return doc


def to_json(actions: Iterable[plan.BaseAction]) -> str:
    """The whole list, as `plan --output json` prints it."""
    return json.dumps([as_json(a) for a in actions], indent=2)
