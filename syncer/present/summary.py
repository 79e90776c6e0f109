"""The words of a plan: the past tense of its verbs, counts per action kind in a fixed order,
and `plan`'s summary line (docs/cli-output.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from syncer.decide import plan, progress

_VERB_ORDER = ("create", "adopt", "update", "replace", "patch", "unpatch", "release", "delete")


def past_tense(verb: str) -> str:
    """`create` -> `created`, `patch` -> `patched` (every verb of a plan is regular)."""
    return verb + "d" if verb.endswith("e") else verb + "ed"


def counts(actions: Iterable[plan.Action]) -> list[tuple[str, int]]:
    """(`create secret`, 50), … in a fixed verb order (unknown verbs last, by name)."""
    tally = Counter(f"{a.verb} {a.kind}" for a in actions)

    def order(key: str) -> tuple[int, str]:
        verb = key.split(" ", 1)[0]
        rank = _VERB_ORDER.index(verb) if verb in _VERB_ORDER else len(_VERB_ORDER)
        return rank, key

    return [(key, tally[key]) for key in sorted(tally, key=order)]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def plan_summary(actions: Iterable[plan.Action], *, conflicts: int, blocked: int, qps: float,
                 burst: int) -> str:
    """`plan: 100 actions (50 create secret, 50 patch serviceaccount), 100 writes, about 3s at
    --kube-qps 20 --kube-burst 40`, plus conflicts and blocked Secrets when there are any."""
    acts = list(actions)
    if acts:
        kinds = ", ".join(f"{n} {key}" for key, n in counts(acts))
        writes = progress.total_writes(acts)
        took = progress.format_duration(progress.write_seconds(writes, qps=qps, burst=burst))
        line = (f"plan: {_plural(len(acts), 'action')} ({kinds}), {_plural(writes, 'write')}, "
                f"about {took} at --kube-qps {qps:g} --kube-burst {burst}")
    else:
        line = "plan: nothing to write"
    extra = ([_plural(conflicts, "conflict")] if conflicts else []) + (
        [f"{blocked} blocked"] if blocked else [])
    return line + (f"; {', '.join(extra)}" if extra else "")
