"""Property-based: whatever YAML a config file holds, the loader and ``check`` fail cleanly.

Documents are written as YAML text: a realistic config (with anchors, aliases and merge keys)
whose slots get every scalar spelling and tag YAML has (dates and timestamps, valid and not;
binary; nulls; floats such as .inf and .nan; integers in hex, octal, binary, base 60; booleans in
every spelling; standard, Python and local tags), random nesting, unknown keys, extra aliases, and
random bytes. Values the strategy marks secret contain ``SENTINEL`` and sit where a value must
never be echoed: unknown keys' values, wrong-typed slots, password-ish keys. Asserted:

- ``config.load`` returns a Config or raises ConfigError, nothing else;
- ``syncer.cli.main(["check", ...])`` in-process exits 0 or 2; every stderr line is
  ``<file>: <path>: <message>``; no traceback, no "internal error";
- no secret value appears in any message or output.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncer import cli, config
from tests.unit.examples import examples

FILE = "cfg.yaml"
_PATH = (
    r"(?:line \d+, column \d+|\(file\)|\(top level\)|"
    r"(?:[A-Za-z0-9_-]+|\[\"(?:[^\"\\]|\\.)*\"\])"
    r"(?:\.[A-Za-z0-9_-]+|\[\d+\]|\[\"(?:[^\"\\]|\\.)*\"\])*)"
)
LINE = re.compile(rf"^{re.escape(FILE)}: {_PATH}: \S.*$")
# credentials.open_backends names the file by its absolute path (cfg.path), the loader as given.
CLI_LINE = re.compile(rf"^(?:/\S*/)?{re.escape(FILE)}: {_PATH}: \S.*$")
SETTINGS = settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- a tiny YAML writer, so that documents can carry any spelling, tag, anchor or alias --------


@dataclass(frozen=True)
class S:
    """A scalar exactly as written in the YAML source."""

    text: str


@dataclass(frozen=True)
class A:
    """``&name node``."""

    name: str
    node: Any


@dataclass(frozen=True)
class R:
    """``*name``."""

    name: str


def _inline(node: Any) -> str | None:
    """The text of a node that fits after ``key:`` / ``-`` on the same line, else None."""
    if isinstance(node, S):
        return node.text
    if isinstance(node, R):
        return f"*{node.name}"
    if isinstance(node, A):
        inner = _inline(node.node)
        return None if inner is None else f"&{node.name} {inner}"
    if node == {}:
        return "{}"
    if node == []:
        return "[]"
    return None


def _lines(node: Any, indent: int) -> Iterator[str]:
    pad = " " * indent
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _entry(f"{pad}{key}:", value, indent)
    else:
        for item in node:
            yield from _entry(f"{pad}-", item, indent)


def _entry(head: str, value: Any, indent: int) -> Iterator[str]:
    text = _inline(value)
    if text is not None:
        yield f"{head} {text}"
        return
    if isinstance(value, A):  # an anchored block collection: `key: &a` then its entries
        head, value = f"{head} &{value.name}", value.node
    yield head
    yield from _lines(value, indent + 2)


def render(doc: dict[str, Any]) -> str:
    return "\n".join(_lines(doc, 0)) + "\n"


def template() -> dict[str, Any]:
    """A valid config using anchors, aliases and merge keys (``<<: *a``, ``<<: [*a]``)."""
    return {
        "version": S("1"),
        "defaults": {"refreshInterval": S("1m"), "recyclePods": S("false")},
        "backends": {
            "vault-dev": A(
                "vault",
                {
                    "type": S("vault"),
                    "address": S("https://vault.example.com:8200"),
                    "tls": {"insecureSkipVerify": S("false")},
                    "auth": {"method": S("kubernetes"), "role": S("puller")},
                },
            ),
            "vault-eu": {"<<": R("vault"), "address": S("http://127.0.0.1:8200")},
            "aws": {"type": S("aws-secrets-manager"), "region": S("eu-west-1")},
        },
        "credentials": {
            "hub": A(
                "hub",
                {
                    "backend": S("vault-dev"),
                    "path": S("registries/hub"),
                    "registry": S("docker.io"),
                },
            ),
            "quay": {
                "<<": S("[*hub]"),
                "backend": S("vault-eu"),
                "registry": S("quay.io"),
                "verify": {"caCert": S("/etc/ca.pem"), "plainHttp": S("false")},
            },
            "ghcr": {"backend": S("aws"), "secretId": S("prod/ghcr"), "refreshInterval": S("30s")},
        },
        "mappings": [
            A(
                "team",
                {
                    "name": S("team-a"),
                    "namespaces": {
                        "names": [S("team-a")],
                        "selector": {"matchLabels": {"tier": S("dev")}},
                    },
                    "credentials": [S("hub"), S("ghcr")],
                    "recyclePods": S("true"),
                },
            ),
            {"<<": R("team"), "name": S("team-b"), "credentials": [S("quay")]},
        ],
    }


# --- strategies ---------------------------------------------------------------------------------

_SPELLINGS = [
    # booleans in every YAML 1.1 spelling, and things that look like one
    *"true True TRUE false False FALSE yes Yes YES no No NO on On ON off Off OFF y n".split(),
    # nulls
    "~",
    "null",
    "Null",
    "NULL",
    "",
    # integers: decimal, hex, octal, binary, base 60, underscores, signs, huge
    "0",
    "1",
    "2",
    "-1",
    "+12",
    "0x2",
    "0x1F",
    "017",
    "0o17",
    "0b101",
    "1_000",
    "1:30",
    "190:20:30",
    "9" * 400,
    # floats, .inf and .nan
    "1.5",
    "-0.0",
    ".5",
    "1e3",
    "1.0e+3",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    "685.230_15e+03",
    "1.0e+400",
    # dates and timestamps, possible and impossible
    "2024-02-29",
    "2024-02-30",
    "2024-13-01",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "2001-12-14 21:59:43.10 +99:00",
    "0000-01-01",
    # explicit tags: standard, failing, Python, local, verbatim, collections
    "!!binary aGVsbG8=",
    "!!binary 'not base64!'",
    "!!str 5",
    "!!str 2024-02-30",
    "!!int 12",
    "!!int abc",
    "!!int 0x1G",
    "!!float x",
    "!!float 1.5",
    "!!bool yes",
    "!!bool x",
    "!!null x",
    "!!timestamp 2024-02-30",
    "!!timestamp x",
    "!!python/object:os.system x",
    "!!python/object/apply:os.system [id]",
    "!!python/name:os.system ''",
    "!custom x",
    "!<tag:example.com,2024:x> y",
    "!!set {a, b}",
    "!!omap [a: 1, b: 2]",
    "!!omap [a]",
    "!!pairs [a: 1]",
    "!!map [a]",
    "!!seq {a: 1}",
    "!!merge x",
    # durations, registries, strings, flow collections, YAML oddities
    "30s",
    "5m",
    "1h",
    "1m30s",
    "500ms",
    "0s",
    "1500ms",
    "8761h",
    "5 minutes",
    "1m30",
    "'quoted'",
    '"double"',
    '"\\u00e9\\x00"',
    '"\\ud800"',
    "'yes'",
    '"true"',
    "docker.io",
    "https://harbor.example.com/v2/",
    "'*.example.com'",
    "registry-1.docker.io:443",
    "=",
    "<<",
    "[a, b]",
    "{a: 1}",
    "[]",
    "{}",
    "*undefined",
    "|\n  literal",
    "a: b: c",
    "[",
    "'unclosed",
]
_KEYS = [
    "type",
    "address",
    "path",
    "registry",
    "names",
    "name",
    "credentials",
    "backend",
    "auth",
    "tls",
    "verify",
    "caCert",
    "plainHttp",
    "insecureSkipVerify",
    "kvVersion",
    "refreshInterval",
    "selector",
    "matchLabels",
    "tier",
    "recyclePods",
    "<<",
    "x",
    "kv_version",
    "token_file",
]
_BOOLS = "true True TRUE false False FALSE yes Yes YES no No NO on On ON off Off OFF".split()
# Other valid spellings of a slot's value: YAML booleans, integers in other bases, tags.
_VALID = {
    "refreshInterval": ["30s", "1h", "1.5h", "1000ms", "1m30s", "90", "60", "1.5", "!!str 5m"],
    "insecureSkipVerify": ["false", "False", "no", "off", "!!bool false"],
    "plainHttp": _BOOLS,
    "recyclePods": _BOOLS,
    "registry": ["docker.io", "https://harbor.example.com/v2/", "'*.example.com'", "ghcr.io"],
    "tier": ["dev", "''", "'123'", "!!str 2024-02-30", "a.b_c-d"],
    "path": ["a/b", "!!str 2024-02-30", "'yes'", '"x\u00e9"', "!!str 0x1F"],
    "address": ["https://v.example.com:8200", "http://localhost:8200", "http://[::1]:8200"],
    "region": ["us-east-1", "!!str eu-west-1"],
    "version": ["1", "0x1", "01", "!!int 1", "+1"],
    "caCert": ["/etc/ca.pem", "!!str /x"],
}
_SECRET_FORMS = [
    "{}",
    "'{}'",
    '"{}"',
    "!!str {}",
    "!!int {}",
    "!!bool {}",
    "!!float {}",
    "!!timestamp {}",
    "!custom {}",
    "!!binary {}",
    "{}s",
    "[{}]",
    "{{k: {}}}",
    "https://{}.io",
    "*{}",
    "&{} x",
]
_SECRET_KEYS = ["password", "token", "secret", "secretId", "roleId", "pass_word", "x-extra"]
_NAMES = ["hub", "ghcr", "quay", "nope", "team-a", "vault-dev", "vault-eu", "aws", "x"]


@st.composite
def _secret(draw: st.DrawFn) -> S:
    n = draw(st.integers(0, 10**6))
    form = draw(st.sampled_from(_SECRET_FORMS))
    return S(form.format(f"SENTINEL-{n}"))


# Keys whose values messages may quote: names and references, and file paths that backend
# factories name (`tls.caCert … is not a file`). Secrets never go there.
_QUOTED = {"name", "backend", "credentials", "caCert", "tokenFile", "token_file"}


def _has_secret(node: Any) -> bool:
    if isinstance(node, S):
        return "SENTINEL" in node.text
    if isinstance(node, dict):
        return any(_has_secret(v) for v in node.values())
    return isinstance(node, list) and any(_has_secret(v) for v in node)


def _no_quoted_secrets(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: S("x") if k in _QUOTED and _has_secret(v) else _no_quoted_secrets(v)
            for k, v in node.items()
        }
    return [_no_quoted_secrets(v) for v in node] if isinstance(node, list) else node


_scalar = st.one_of(st.sampled_from(_SPELLINGS).map(S), _secret())
_values = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3)
    ),
    max_leaves=6,
).map(_no_quoted_secrets)


def _slots(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the tree, in document order."""
    out = [path]
    if isinstance(node, A):
        node = node.node
    if isinstance(node, dict):
        for key, value in node.items():
            out += _slots(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _slots(value, (*path, i))
    return out


def _container(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for part in path:
        node = node.node if isinstance(node, A) else node
        node = node[part]
    return node.node if isinstance(node, A) else node


def _is_reference(path: tuple[Any, ...]) -> bool:
    """Slots holding names or references, which messages may quote."""
    keys = [p for p in path if isinstance(p, str)]
    return bool(keys) and keys[-1] in ("backend", "name", "credentials")


def _is_file(path: tuple[Any, ...]) -> bool:
    """Slots holding file paths, which backend factories name in their errors (not secrets)."""
    return bool(path) and path[-1] in ("caCert", "tokenFile", "token_file")


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    doc = template()
    anchors = 0
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 2, 3, 4, 5]))):
        slots = _slots(doc)[1:]
        path = draw(st.sampled_from(slots))
        parent = _container(doc, path[:-1])
        action = draw(
            st.sampled_from(["valid", "valid", "set", "set", "delete", "add", "alias", "merge"])
        )
        key = path[-1]
        if action == "valid" and isinstance(key, str) and key in _VALID:
            parent[key] = S(draw(st.sampled_from(_VALID[key])))
        elif action == "valid":
            pass
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            key = draw(st.sampled_from(_SECRET_KEYS + _KEYS))
            parent[key] = draw(_values if key in _KEYS else _secret())
            if key in _QUOTED and _has_secret(parent[key]):
                parent[key] = S("/etc/x.pem" if _is_file((key,)) else "x")
        elif action == "alias":
            # a secret aliased into a name or reference slot *is* a reference there, and
            # references are quoted by design (`unknown backend 'x'`): not such a slot
            later = [t for t in slots[slots.index(path) + 1 :]
                     if not (_is_reference(t) and _has_secret(parent[path[-1]]))]
            if later:
                target = draw(st.sampled_from(later))
                node = parent[path[-1]]
                if not isinstance(node, A):
                    anchors += 1
                    node = A(f"n{anchors}", node)
                    parent[path[-1]] = node
                _container(doc, target[:-1])[target[-1]] = R(node.name)  # inside it: recursion
        elif action == "merge" and isinstance(parent, dict):
            # an alias must follow its anchor in the document
            names = sorted({n.name for n in _anchors(doc, upto=path)})
            chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2)) if names else []
            merged = ", ".join(f"*{n}" for n in chosen)
            parent["<<"] = R(chosen[0]) if len(chosen) == 1 else S(f"[{merged}]")
        elif _is_reference(path):
            names = st.sampled_from(_NAMES).map(S)
            parent[path[-1]] = draw(names | st.lists(names, max_size=3))
        elif _is_file(path):
            parent[path[-1]] = S(draw(st.sampled_from(["/etc/x.pem", "", "~", "5"])))
        else:
            parent[path[-1]] = draw(_values)
    try:
        text = render(doc).encode("utf-8", "surrogatepass")
    except ValueError:
        text = b"version: 1\n"
    if draw(st.booleans()) and draw(st.booleans()):  # random bytes at the start of a line
        junk = draw(st.binary(min_size=1, max_size=6).filter(lambda b: not set(b) & set(b"'\"")))
        lines = text.split(b"\n")
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = junk + lines[at]
        text = b"\n".join(lines)
    return text


def _anchors(doc: Any, *, upto: tuple[Any, ...]) -> list[A]:
    """The anchored nodes that start before the slot ``upto`` in document order."""
    found: list[A] = []
    for slot in _slots(doc)[1:]:
        if slot[: len(upto)] == upto:
            break
        node = _container(doc, slot[:-1])
        value = node[slot[-1]] if isinstance(node, dict | list) else None
        if isinstance(value, A):
            found.append(value)
    return found


# --- the properties ------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAULT_TOKEN", "SENTINEL-env-token")
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield tmp_path
    root.handlers[:] = handlers  # `cli.main` installs its own handler
    root.setLevel(level)


def test_the_template_is_a_valid_config(workdir: Path) -> None:
    Path(FILE).write_text(render(template()), encoding="utf-8")
    cfg = config.load(FILE)
    assert cfg.backends["vault-eu"].settings.auth.role == "puller"  # type: ignore[attr-defined]
    assert cfg.credentials["quay"].ref.options.path == "registries/hub"  # type: ignore[attr-defined]
    assert [m.credentials for m in cfg.mappings] == [("hub", "ghcr"), ("quay",)]


@SETTINGS
@given(text=documents())
def test_any_document_loads_or_gives_clean_config_errors_and_check_exits_0_or_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: bytes
) -> None:
    Path(FILE).write_bytes(text)
    try:
        config.load(FILE)
    except config.ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert LINE.match(line), line
            assert "SENTINEL" not in line, line

    capsys.readouterr()
    status = cli.main(["check", "--config", FILE, "--log-level", "error"])
    out = capsys.readouterr()
    assert status in (0, 2), out
    assert "Traceback" not in out.err + out.out and "internal error" not in out.err
    assert "SENTINEL" not in out.err + out.out
    if status == 2:
        assert out.err
        for line in out.err.splitlines():
            assert CLI_LINE.match(line), line
    else:
        assert out.err == ""
        assert out.out.startswith("config ")


@settings(
    max_examples=examples(150), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.binary(max_size=200)
    | st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_random_bytes_give_only_config_errors(workdir: Path, data: bytes) -> None:
    Path(FILE).write_bytes(data)
    try:
        config.load(FILE)
    except config.ConfigError as exc:
        for line in exc.problems:
            assert LINE.match(line), line
