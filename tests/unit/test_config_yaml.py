"""Every YAML problem is a config problem at a line and column, never another exception.

Also: merge keys (``<<``) work as YAML defines them and are not duplicate keys, while a real
duplicate key still is one. The CLI answers each of these files with exit 2 and one line per
problem (``check`` runs in-process, as the daemon's reload runs the same loader).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncer import cli, config

SENTINEL = "SENTINEL-yaml-1"

BASE = """\
version: 1
backends:
  vault-dev:
    type: vault
    address: https://vault.example.com
    auth: {method: kubernetes, role: puller}
credentials:
  hub:
    backend: vault-dev
    path: registries/hub
    registry: docker.io
mappings:
  - name: team-a
    namespaces: {names: [team-a]}
    credentials: [hub]
"""


def problems_of(tmp_path: Path, text: str | bytes) -> tuple[str, ...]:
    path = tmp_path / "cfg.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    for line in caught.value.problems:
        assert line.startswith(f"{path}: "), line
        assert SENTINEL not in line, line
    return tuple(line.removeprefix(f"{path}: ") for line in caught.value.problems)


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("2024-02-30", "not a valid date or timestamp; quote it if it is meant as a string"),
        ("2024-13-01 10:00:00", "not a valid date or timestamp; quote it if it is meant as a"),
        ("!!timestamp SENTINEL-yaml-1", "not a valid date or timestamp"),
        ("!!int SENTINEL-yaml-1", "not an integer (tagged !!int)"),
        ("!!bool SENTINEL-yaml-1", "not true or false (tagged !!bool)"),
        ("!!float SENTINEL-yaml-1", "not a number (tagged !!float)"),
        ("!!python/object:os.system SENTINEL-yaml-1", "unsupported tag: only YAML's standard"),
        ("!!python/name:os.system ''", "unsupported tag: only YAML's standard tags"),
        ("!secret SENTINEL-yaml-1", "unsupported tag: only YAML's standard tags"),
        ("!<tag:example.com,2024:x> SENTINEL-yaml-1", "unsupported tag"),
        ("!!binary SENTINEL-yaml-1", "invalid YAML: failed to decode base64 data"),
        ("*SENTINEL-yaml-1", "invalid YAML: found undefined alias '…'"),
    ],
)
def test_a_value_yaml_cannot_construct_is_a_problem_at_its_line_and_column(
    tmp_path: Path, snippet: str, message: str
) -> None:
    text = BASE.replace("path: registries/hub", f"path: {snippet}")
    got = problems_of(tmp_path, text)
    assert len(got) == 1
    assert got[0].startswith("line 10, column 11: " + message), got


def test_a_valid_date_where_a_string_is_expected_says_to_quote_it(tmp_path: Path) -> None:
    got = problems_of(tmp_path, BASE.replace("path: registries/hub", "path: 2024-02-29"))
    assert got == ("credentials.hub.path: expected a string (quote the value in YAML)",)


@pytest.mark.parametrize("snippet", ["!!binary YWJj", "!!null SENTINEL-yaml-1", "!!set {a, b}"])
def test_a_tagged_value_of_the_wrong_type_is_a_type_error(tmp_path: Path, snippet: str) -> None:
    got = problems_of(tmp_path, BASE.replace("path: registries/hub", f"path: {snippet}"))
    assert got == ("credentials.hub.path: expected a string",)


def test_an_unknown_escape_in_a_quoted_string_is_located(tmp_path: Path) -> None:
    got = problems_of(tmp_path, BASE.replace("path: registries/hub", f'path: "\\q {SENTINEL}"'))
    assert got == (
        "line 10, column 13: invalid YAML: found unknown escape character 'q' (while scanning a "
        "double-quoted scalar)",
    )


def test_standard_tags_still_work(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE.replace("path: registries/hub", "path: !!str 2024-02-30"))
    assert cfg.credentials["hub"].ref.options.path == "2024-02-30"  # type: ignore[attr-defined]


def test_an_equals_sign_is_a_plain_string(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE.replace("path: registries/hub", "path: ="))
    assert cfg.credentials["hub"].ref.options.path == "="  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x [*x]\n", "line 1, column 8: an alias refers to a node that contains it"),
        ("a: &x {b: *x}\n", "line 1, column 11: an alias refers to a node that contains it"),
        ("a: &x {<<: *x}\n", "line 1, column 12: an alias refers to a node that contains it"),
        ("a: &x [1]\nb: &x [2]\n", "line 2, column 4: duplicate anchor (first defined on line 1)"),
        ("a: {<<: 5}\n", "line 1, column 9: a merge key (<<) takes a mapping or a list of"),
        ("a: {<<: [{b: 1}, 5]}\n", "line 1, column 18: a merge key (<<) takes a mapping or"),
        ("? [a]\n: 1\n", "line 1, column 3: a key must be a string, not a list or mapping"),
        ("a: " + "[" * 150 + "]" * 150 + "\n", "line 1, column 103: nested more than 100 levels"),
        ("a: " + "{b: " * 150 + "1" + "}" * 150, "line 1, column 397: nested more than 100"),
    ],
)
def test_structural_yaml_problems_are_located(tmp_path: Path, text: str, expected: str) -> None:
    got = problems_of(tmp_path, text)
    assert len(got) == 1
    assert got[0].startswith(expected), got


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    got = problems_of(tmp_path, "\n".join(lines) + "\n")
    assert got == ("line 5, column 5: more than 100000 values once aliases are expanded",)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"version: 1\nkey: \xff\xfe\n", "line 2, column 6: not valid UTF-8"),
        ("version: 1\n\u00e9: \udcff\n".encode("utf-8", "surrogateescape"), "line 2, column 4:"),
        (b"\xff" + SENTINEL.encode(), "line 1, column 1: not valid UTF-8"),
        (
            b"version: 1\nkey: a\x00b\n",
            "line 2, column 7: invalid YAML: character U+0000 is not allowed in YAML",
        ),
        (b"a: \x1b[31m\n", "line 1, column 4: invalid YAML: character U+001B is not allowed"),
        (bytes(range(256)), "line 2, column 118: not valid UTF-8"),
    ],
)
def test_binary_content_and_bad_encodings_are_located(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    got = problems_of(tmp_path, data)
    assert len(got) == 1
    assert got[0].startswith(expected), got


def test_a_syntax_error_never_quotes_the_document(tmp_path: Path) -> None:
    got = problems_of(tmp_path, f"version: 1\nbackends: {{a: [{SENTINEL}\n")
    assert len(got) == 1
    assert re.match(r"^line 3, column 1: invalid YAML: \S", got[0]), got


# --- merge keys ------------------------------------------------------------------------------


def test_merge_keys_inside_the_sections_resolve_with_explicit_keys_winning(
    tmp_path: Path,
) -> None:
    text = """\
version: 1
backends:
  vault-dev: &vault
    type: vault
    address: https://vault.example.com
    auth: {method: kubernetes, role: puller}
  vault-eu:
    <<: *vault
    address: https://vault.eu.example.com
credentials:
  hub: &hub {backend: vault-dev, path: registries/hub, registry: docker.io}
  quay: &quay {backend: vault-eu, path: registries/quay, registry: quay.io, refreshInterval: 5m}
  ghcr:
    <<: [*quay, *hub]
    path: registries/ghcr
    registry: ghcr.io
mappings:
  - &mapping
    name: team-a
    namespaces: {names: [team-a]}
    credentials: [hub, ghcr]
  - <<: *mapping
    name: team-b
"""
    cfg = load(tmp_path, text)
    eu = cfg.backends["vault-eu"].settings
    assert eu.address == "https://vault.eu.example.com"  # type: ignore[attr-defined]
    assert eu.auth.role == "puller"  # type: ignore[attr-defined]
    ghcr = cfg.credentials["ghcr"]
    assert ghcr.backend == "vault-eu"  # the earlier merged mapping wins over the later one
    assert ghcr.refresh_interval == 300.0
    assert ghcr.registry == "ghcr.io"  # explicit keys win over merged ones
    assert ghcr.ref.options.path == "registries/ghcr"  # type: ignore[attr-defined]
    assert [m.name for m in cfg.mappings] == ["team-a", "team-b"]
    assert cfg.mappings[1].credentials == ("hub", "ghcr")


def test_a_real_duplicate_key_is_still_reported_next_to_a_merge(tmp_path: Path) -> None:
    text = BASE.replace(
        "    registry: docker.io\n",
        "    registry: docker.io\n    <<: {mount: kv}\n    path: SENTINEL-yaml-1\n",
    )
    assert problems_of(tmp_path, text) == ("line 13, column 5: duplicate key 'path'",)


def test_a_duplicate_inside_a_merged_mapping_is_reported_where_it_is_written(
    tmp_path: Path,
) -> None:
    text = BASE.replace(
        "    registry: docker.io\n",
        "    registry: docker.io\n    <<: {mount: kv, mount: SENTINEL-yaml-1}\n",
    )
    assert problems_of(tmp_path, text) == ("line 12, column 21: duplicate key 'mount'",)


def test_two_merge_keys_in_one_mapping_are_duplicates(tmp_path: Path) -> None:
    text = BASE.replace(
        "    registry: docker.io\n", "    registry: docker.io\n    <<: {mount: a}\n    <<: {x: 1}\n"
    )
    assert problems_of(tmp_path, text) == ("line 13, column 5: duplicate key '<<'",)


# --- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet",
    ["2024-02-30", "!!int abc", "!!bool x", "!!python/object:os.system x", "!unknown x", "*nope"],
)
def test_check_exits_2_with_one_located_line_for_yaml_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], snippet: str
) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(BASE.replace("path: registries/hub", f"path: {snippet}"), encoding="utf-8")

    assert cli.main(["check", "--config", str(path)]) == 2

    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1
    assert re.match(rf"^{re.escape(str(path))}: line 10, column 11: \S", lines[0]), lines
    assert "Traceback" not in out.err and "internal error" not in out.err
    assert out.out == ""
