"""Config problems as lines ``<file>: <key path>: <message>``; pydantic errors turned into them.

Every message names a key path and what was expected; none contains the offending value
(docs/operations.md), so a password typed into the wrong key of the file never reaches a
terminal or a log. The models' validators report a broken rule between keys with :func:`rule`
or :func:`rules`; such problems are listed after the type errors of the same block.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import pydantic
from pydantic_core import PydanticCustomError

from syncer.config.formats import Via

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=pydantic.BaseModel)

TRUSTED_PREFIX = "config_"  # error types whose messages never contain the input
RULE = "config_rule"  # a rule between keys (a reference, a duplicate), raised by a validator
_MIN_SCRUBBED = 3  # shorter values occur in any sentence; hiding them would hide the sentence
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "dict_type": "expected a mapping",
    "mapping_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dataclass_type": "expected a mapping",
    "missing": "required key is missing",
    "invalid_key": "keys must be strings",
    "none_required": "expected no value",
    "url_type": "expected a URL string",
    "url_parsing": "expected a URL",
    "url_scheme": "expected a URL with an allowed scheme",
}


class ConfigError(Exception):
    """The config file is unusable; ``problems`` has one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def rule(message: str) -> PydanticCustomError:
    """A broken rule at the key being validated (``raise problems.rule(...)``)."""
    return PydanticCustomError(RULE, message)


def rules(found: Sequence[tuple[Loc, str]]) -> pydantic.ValidationError:
    """Broken rules at keys below the one being validated (``loc`` relative to it)."""
    return pydantic.ValidationError.from_exception_data(
        "config",
        [{"type": PydanticCustomError(RULE, message), "loc": loc, "input": None}
         for loc, message in found],
    )


def format_path(loc: Loc) -> str:
    """``("mappings", 0, "credentials", 1)`` -> ``mappings[0].credentials[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


class Problems:
    """Collects every problem of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.lines)

    def add(self, loc: Loc | str, message: str) -> None:
        where = loc if isinstance(loc, str) else format_path(loc)
        self.lines.append(f"{self.file}: {where}: {message}")

    def unknown_key(self, loc: Loc, key: object, allowed: Iterable[str]) -> None:
        allowed = sorted(set(allowed))
        if not isinstance(key, str):
            self.add(loc[:-1], "keys must be strings")
            return
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        close = [camel] if camel in allowed else difflib.get_close_matches(key, allowed, n=1)
        if close:
            self.add(loc, f"unknown key; did you mean {close[0]!r}?")
        else:
            self.add(loc, f"unknown key (allowed: {', '.join(allowed) or 'none'})")

    def validate(
        self,
        model: type[M],
        data: Any,
        where: Loc,
        *,
        extra_allowed: Sequence[str] = (),
        context: Any = None,
    ) -> M | None:
        """``model`` validated from ``data`` (found at ``where``), or None after adding problems.

        The file's keys are the models' aliases: a field's Python name is an unknown key.
        """
        try:
            return model.model_validate(data, context=context, by_alias=True, by_name=False)
        except pydantic.ValidationError as exc:
            errors = exc.errors(include_url=False)
            for error in sorted(errors, key=lambda e: bool(e["type"] == RULE)):
                self._add_pydantic(error, model, data, where, extra_allowed)
            return None
        except Exception as exc:  # a plugin validator's bug must not become a traceback
            self.add(where, f"could not be validated ({type(exc).__name__})")
            return None

    def _add_pydantic(
        self,
        error: Any,
        model: type[pydantic.BaseModel],
        data: Any,
        where: Loc,
        extra_allowed: Sequence[str],
    ) -> None:
        loc: Loc = tuple(error["loc"])
        kind: str = error["type"]
        user_loc = _user_loc(loc, data, kind)
        if kind == "extra_forbidden" and user_loc:
            parent = _model_at(model, loc[:-1])
            allowed = list(_aliases(parent)) if parent is not None else []
            if len(loc) == 1:
                allowed += extra_allowed
            self.unknown_key((*where, *user_loc), user_loc[-1], allowed)
            return
        self.add((*where, *user_loc), _message(error))


def _user_loc(loc: Loc, data: Any, kind: str) -> Loc:
    """The part of pydantic's ``loc`` that names keys the user wrote (drops union member tags)."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif i == len(loc) - 1 and kind in ("missing", "extra_forbidden", RULE):
            pass
        else:
            continue
        out.append(part)
    return tuple(out)


def _message(error: Any) -> str:
    """Our message for one pydantic error; only a plugin's own free text is scrubbed.

    The fixed texts below and our validators' messages (error types starting with ``config_``)
    never contain the input, so they are shown as they are: scrubbing them would mangle help
    text (a value ``1m30`` would turn "such as … 1m30s" into "… <value hidden>s").
    """
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if kind.startswith(TRUSTED_PREFIX):
        return str(error.get("msg", "invalid value"))
    if kind in _EXPECTED:
        message = _EXPECTED[kind]
        if kind == "string_type" and isinstance(value, bool | int | float | datetime.date):
            message += " (quote the value in YAML)"
        return message
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected', 'one of the allowed values')}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s)"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), "?")
        return f"must be {kind.replace('_', ' ').replace(' equal', ' or equal to')} {bound}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    # A plugin's validator wrote this text (ValueError, assert): it may quote the input.
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return scrub(message, value)


def scrub(message: str, value: Any) -> str:
    """``message`` without ``value`` in it, should a plugin's validator have put it there."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return message
    text = str(value)
    if len(text) < _MIN_SCRUBBED or text not in message:
        return message
    placeholder = "<value hidden>" if text not in "<value hidden>" else "…"
    message = message.replace(text, placeholder)
    while text in message:  # the placeholder and its neighbours spelled the value again
        message = message.replace(text, "…")  # shorter each time: this ends
    return message


def _unwrap(tp: Any) -> Any:
    """The model/list/dict inside Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            via = [m for m in tp.__metadata__ if isinstance(m, Via)]
            tp = via[0].written if via else typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(model: Any, loc: Loc) -> type[pydantic.BaseModel] | None:
    """The model class that validates the object at ``loc`` below ``model``, if one does."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = _written(fields[part])
        elif origin is tuple:
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        elif origin in (list, set, frozenset, Sequence) or origin is dict:
            tp = typing.get_args(tp)[-1] if typing.get_args(tp) else Any
        elif origin in (typing.Union, types.UnionType):
            tp = _union_member(tp, part)
            if tp is None:
                return None
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel) else None


def _written(field: Any) -> Any:
    """The type a field is written as in the file (a :class:`Via`'s, else its annotation)."""
    via = [m for m in field.metadata if isinstance(m, Via)]
    return via[0].written if via else field.annotation


def _union_member(union: Any, tag: str | int) -> Any:
    """The member of a union that pydantic's ``loc`` names (its Tag, or its class name)."""
    for member in typing.get_args(union):
        if typing.get_origin(member) is typing.Annotated:
            tags = [m.tag for m in typing.get_args(member)[1:] if isinstance(m, pydantic.Tag)]
            if tag in tags:
                return member
        inner = _unwrap(member)
        if isinstance(inner, type) and inner.__name__ == tag:
            return member
    return None


def _aliases(model: type[pydantic.BaseModel]) -> Iterable[str]:
    return ((f.alias or n) for n, f in model.model_fields.items())
