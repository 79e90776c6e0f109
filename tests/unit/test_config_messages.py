"""Config messages never contain the offending value, and our own help text is never mangled.

Our validators' messages are fixed texts (they cannot contain the value, so they are shown whole);
only a plugin's free-text message is scrubbed, and the scrubbed text never contains the value.
"""

from __future__ import annotations

from typing import Any

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from backends import durations
from syncer.config import models
from syncer.config.problems import Problems, scrub
from tests.unit.examples import examples

HINT = "expected a duration such as 30s, 5m, 1h, 1m30s, 1500ms or a number of seconds"
DURATION_MESSAGES = {HINT, "must be at least 1s", "must be at most 8760h (365 days)"}
LABEL_KEY_MESSAGES = {
    "must be a label key: [prefix/]name with at most one '/'",
    "must be a label key: the prefix before '/' must be a DNS-1123 subdomain (lower-case "
    "letters, digits, '-' and '.') of at most 253 characters",
    "must be a label key: the name must be at most 63 letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit",
}


def messages(model: type[pydantic.BaseModel], data: Any) -> list[str]:
    """The message part of each problem line (the key path is the user's own text)."""
    problems = Problems("cfg.yaml")
    problems.validate(model, data, ("x",))
    return [line.split(": ", 2)[2] for line in problems.lines]


class _Echoing(pydantic.BaseModel):
    """A careless plugin: its validators put the value into their messages."""

    model_config = pydantic.ConfigDict(extra="forbid", alias_generator=to_camel)
    address: str | None = None
    region: str | None = None

    @pydantic.field_validator("address")
    @classmethod
    def _value_error(cls, value: str) -> str:
        raise ValueError(f"address {value} is not reachable ({value!r})")

    @pydantic.field_validator("region")
    @classmethod
    def _custom_error(cls, value: str) -> str:
        raise PydanticCustomError("region", "unknown region {r}", {"r": value})


_durationish = st.text(alphabet="0123456789.mshd -_:", min_size=1, max_size=12)


@settings(max_examples=examples(300), deadline=None)
@given(value=_durationish)
def test_duration_messages_are_our_fixed_text_whatever_the_value(value: str) -> None:
    try:
        durations.parse_duration(value)
    except ValueError:
        got = messages(models.Defaults, {"refreshInterval": value})
        assert len(got) == 1
        assert got[0] in DURATION_MESSAGES  # whole, nothing replaced by "<value hidden>"
    else:
        assert messages(models.Defaults, {"refreshInterval": value}) == []


def test_a_value_inside_the_hint_leaves_the_hint_whole() -> None:
    for value in ("1m30", "30s, 5m", "ms or a number", "1500ms or", "s"):
        assert messages(models.Defaults, {"refreshInterval": value}) == [HINT]


@settings(max_examples=examples(200), deadline=None)
@given(key=st.text(alphabet="ab.-_/Z9 *", min_size=1, max_size=70))
def test_label_key_messages_are_our_fixed_text_whatever_the_key(key: str) -> None:
    got = messages(models.Requirement, {"key": key, "operator": "Exists"})
    assert set(got) <= LABEL_KEY_MESSAGES


@settings(max_examples=examples(300), deadline=None)
@given(value=st.text(min_size=3, max_size=24), field=st.sampled_from(["address", "region"]))
def test_a_plugin_message_never_contains_the_value(value: str, field: str) -> None:
    got = messages(_Echoing, {field: value})
    assert len(got) == 1
    assert value not in got[0]


@settings(max_examples=examples(300), deadline=None)
@given(value=st.text(min_size=3, max_size=24), message=st.text(max_size=40))
def test_scrub_removes_every_occurrence_even_next_to_the_placeholder(
    value: str, message: str
) -> None:
    text = message.replace("@", value)
    assert value not in scrub(text, value)


def test_scrub_keeps_text_without_the_value_and_short_values() -> None:
    assert scrub("must be set", "SENTINEL") == "must be set"
    assert scrub("no x here", "x") == "no x here"
    assert scrub("bad SENTINEL", "SENTINEL") == "bad <value hidden>"
    assert scrub("n>a", "n>a") == "<value hidden>"
    assert scrub("port 8200 bad", 8200) == "port <value hidden> bad"
    assert scrub("is True", True) == "is True"
