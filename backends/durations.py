"""Durations as the config file writes them ("30s", "5m", "1h", "1m30s", "1500ms" or seconds): the
parser and the pydantic field type, shared by the config and the backends' settings models.

It lives with the backends so that they depend on nothing above them (the config imports the
backends' settings models, never the other way round).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|h|m|s))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MIN_DURATION = 1.0
MAX_DURATION = 365 * 24 * 3600.0  # longer waits overflow the platform's timeouts
_DURATION_HINT = "expected a duration such as 30s, 5m, 1h, 1m30s, 1500ms or a number of seconds"
_DURATION_MIN_MSG = "must be at least 1s"
_DURATION_MAX_MSG = "must be at most 8760h (365 days)"
# For the schema: the grammar, and the strings certainly shorter than 1s (zero parts plus at most
# one part below a second). A regular expression cannot add up parts, so the schema lets through
# a few odd spellings under 1s ("0.5s0.4s", "0.0001h") that the loader refuses.
_DURATION_GRAMMAR = r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|h|m|s))+$|^[0-9]+(?:\.[0-9]+)?$"
_ZERO_PART = r"0+(?:\.0+)?(?:ms|h|m|s)"
_SUB_PART = r"(?:0+(?:\.[0-9]+)?s|0*[0-9]{1,3}(?:\.[0-9]+)?ms)"
_SUBSECOND = rf"^(?:{_ZERO_PART})*(?:{_SUB_PART}(?:{_ZERO_PART})*)?$|^0+(?:\.[0-9]+)?$"


def parse_duration(value: str | float) -> float:
    """Seconds in ``"30s"``, ``"5m"``, ``"1h"``, ``"1m30s"``, ``"1500ms"`` or a bare number.

    At least 1s and at most 365 days; ValueError (with a message that never quotes the value)
    otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(_DURATION_HINT)
    if isinstance(value, str):
        if _NUMBER.match(value):
            seconds = float(value)
        elif _DURATION.match(value):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
        else:
            raise ValueError(_DURATION_HINT)
    elif isinstance(value, int):
        seconds = (
            float(value) if abs(value) <= MAX_DURATION else math.inf if value > 0 else -math.inf
        )
    else:
        seconds = value
    if not seconds >= MIN_DURATION:  # NaN too
        raise ValueError(_DURATION_MIN_MSG)
    if seconds > MAX_DURATION:
        raise ValueError(_DURATION_MAX_MSG)
    return seconds


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("config_duration", str(exc)) from None


Duration = Annotated[
    float,
    PlainValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": _DURATION_GRAMMAR,
                    "not": {"pattern": _SUBSECOND},
                },
                {"type": "number", "minimum": MIN_DURATION, "maximum": MAX_DURATION},
            ],
            "description": "A duration of at least 1s: 30s, 5m, 1h, 1m30s, 1500ms, or seconds.",
        }
    ),
]
