"""Read the config file's YAML: every problem is one ``line L, column C: …`` config problem.

PyYAML's ``SafeLoader`` raises more than ``yaml.YAMLError`` for documents that scan and parse but
cannot be constructed (an impossible date such as ``2024-02-30``, ``!!int abc``, ``!!bool x``) and
builds recursive structures from aliases. This loader reports each of those at the line and column
of the node, bounds nesting and alias expansion, applies merge keys (``<<: *base``) exactly as YAML
defines them (explicit keys win over merged ones, earlier merged mappings over later ones) and
reports duplicate keys. Messages never quote the document: only key names, tags and positions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

import yaml

MAX_DEPTH = 100  # a real config nests 8 levels deep
MAX_VALUES = 100_000  # values once aliases are expanded ("billion laughs" stops here)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_FAILED_VALUE = {
    "tag:yaml.org,2002:int": "not an integer (tagged !!int)",
    "tag:yaml.org,2002:float": "not a number (tagged !!float)",
    "tag:yaml.org,2002:bool": "not true or false (tagged !!bool)",
    "tag:yaml.org,2002:timestamp": (
        "not a valid date or timestamp; quote it if it is meant as a string"
    ),
}


class Sink(Protocol):
    """Where problems go (:class:`syncer.config.problems.Problems`)."""

    def add(self, loc: str, message: str) -> None: ...


class _Problem(Exception):
    """A problem at a position of the document, raised from inside the loader."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _Loader(yaml.SafeLoader):
    """SafeLoader with bounds, merge keys that are not duplicates, and located value errors."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.duplicates: list[tuple[Any, str]] = []
        self._depth = 0
        self._open: list[str] = []  # anchors of the nodes being composed (ancestors)
        self._sizes: dict[int, int] = {}  # id(node) -> values below it, aliases expanded
        self._pairs_of: dict[int, list[tuple[yaml.Node, yaml.Node]]] = {}

    # -- composing: recursion, nesting and size ------------------------------------------------

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _Problem(
                    event.start_mark, "an alias refers to a node that contains it (recursion)"
                )
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if anchor is not None and anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise _Problem(event.start_mark, f"duplicate anchor (first defined on line {first})")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Problem(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        if anchor is not None:
            self._open.append(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.pop()
        if node is not None:
            self._count(node)
        return node

    def _count(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        if size > MAX_VALUES:
            raise _Problem(
                node.start_mark, f"more than {MAX_VALUES} values once aliases are expanded"
            )
        self._sizes[id(node)] = size

    # -- constructing: located value errors, merges, duplicates --------------------------------

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (_Problem, yaml.YAMLError):
            raise
        except RecursionError:
            raise _Problem(node.start_mark, "nested too deeply") from None
        except Exception:
            # e.g. ValueError("day is out of range for month"), KeyError from !!bool x
            message = _FAILED_VALUE.get(node.tag, "not a valid value of its tag")
            raise _Problem(node.start_mark, message) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise _Problem(node.start_mark, f"expected a mapping, found a {node.id}")
        mapping: dict[Any, Any] = {}
        for key_node, value_node in self._pairs(node, depth=0):
            key = self.construct_object(key_node, deep=True)
            if not _hashable(key):
                raise _Problem(key_node.start_mark, "a key must be a string, not a list or mapping")
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def _pairs(self, node: yaml.MappingNode, *, depth: int) -> list[tuple[yaml.Node, yaml.Node]]:
        """The node's key/value pairs with merge keys applied, in "last one wins" order.

        YAML's merge key: the explicit keys of the mapping override merged ones, and among the
        merged mappings (``<<: [*a, *b]``) the earlier overrides the later. Only the explicit keys
        are checked for duplicates (each mapping once, where it is written).
        """
        cached = self._pairs_of.get(id(node))
        if cached is not None:
            return cached
        if depth > MAX_DEPTH:
            raise _Problem(node.start_mark, f"merge keys nested more than {MAX_DEPTH} levels deep")
        explicit = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        merges = [(k, v) for k, v in node.value if k.tag == _MERGE_TAG]
        self._check_duplicates(explicit, merges)
        merged: list[list[tuple[yaml.Node, yaml.Node]]] = []
        for _, value_node in merges:
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise _Problem(
                        source.start_mark, "a merge key (<<) takes a mapping or a list of mappings"
                    )
                merged.append(self._pairs(source, depth=depth + 1))
        pairs = [pair for source_pairs in reversed(merged) for pair in source_pairs] + explicit
        self._pairs_of[id(node)] = pairs
        return pairs

    def _check_duplicates(
        self,
        explicit: list[tuple[yaml.Node, yaml.Node]],
        merges: list[tuple[yaml.Node, yaml.Node]],
    ) -> None:
        seen: set[Any] = set()
        for key_node, _ in explicit:
            key = self.construct_object(key_node, deep=True)
            if not _hashable(key):
                raise _Problem(key_node.start_mark, "a key must be a string, not a list or mapping")
            if (type(key), key) in seen:
                name = key if isinstance(key, str) else "(a key that is not a string)"
                self.duplicates.append((key_node.start_mark, name))
            seen.add((type(key), key))
        for key_node, _ in merges[1:]:
            self.duplicates.append((key_node.start_mark, "<<"))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _unsupported_tag(loader: _Loader, node: yaml.Node) -> Any:
    raise _Problem(
        node.start_mark,
        "unsupported tag: only YAML's standard tags (such as !!str, !!int, !!bool) are allowed",
    )


def _plain_string(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


# `=` (YAML 1.1's "value" key) and a `<<` outside key position are plain strings to a user.
_Loader.add_constructor("tag:yaml.org,2002:value", _plain_string)
_Loader.add_constructor(_MERGE_TAG, _plain_string)
_Loader.add_constructor(None, _unsupported_tag)


def read(path: Path, problems: Sink) -> Any:
    """The parsed document, or None after adding problems (file, encoding, YAML, duplicates)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add("(file)", "not found")
        return None
    except IsADirectoryError:
        problems.add("(file)", "is a directory, not a file")
        return None
    except OSError as exc:
        problems.add("(file)", f"cannot be read ({exc.strerror or type(exc).__name__})")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add(_position(data[: exc.start].decode("utf-8")), "not valid UTF-8")
        return None
    return parse(text, problems)


def parse(text: str, problems: Sink) -> Any:
    """The document in ``text``, or None after adding problems."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # the reader checks every character up front
        code = exc.character if isinstance(exc.character, int) else 0
        problems.add(
            _position(text[: exc.position]),
            f"invalid YAML: character U+{code:04X} is not allowed in YAML",
        )
        return None
    try:
        document = loader.get_single_data()
    except _Problem as exc:
        problems.add(_at(exc.mark), exc.message)
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _at(mark) if mark else "(file)"
        problems.add(where, f"invalid YAML: {_yaml_problem(exc.problem, exc.context)}")
        return None
    except (yaml.YAMLError, RecursionError):
        problems.add("(file)", "invalid YAML")
        return None
    finally:
        loader.dispose()
    for mark, key in loader.duplicates:
        problems.add(_at(mark), f"duplicate key {key!r}")
    return None if loader.duplicates else document


def _position(before: str) -> str:
    """``line L, column C`` of the character after ``before``."""
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return f"line {line}, column {column}"


def _yaml_problem(problem: str | None, context: str | None) -> str:
    """PyYAML's description of a problem, minus any quoted piece of the document."""
    if problem and context:
        text = f"{problem} ({context})"
    else:
        text = problem or context or "syntax error"
    return re.sub(
        r"'([^']*)'|\"([^\"]*)\"",
        lambda m: m.group(0) if len(m.group(0)) <= 4 or m.group(0)[1:2] == "<" else "'…'",
        text,
    )
