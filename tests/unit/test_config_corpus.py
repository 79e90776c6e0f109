"""The loader and config/schema.json agree on a corpus of good and bad files.

``config_corpus/good/*.yaml`` (and the shipped examples) must pass both; every
``config_corpus/bad/*.yaml`` must fail both, and the loader's message must contain the file's
``# expect:`` line. A few rules cannot be stated in JSON Schema (draft 2020-12): those files are
listed in ``SCHEMA_CANNOT_EXPRESS`` with the reason, and for them the test asserts that the schema
*accepts* the file (so the list stays true) while the loader refuses it. The schema may be more
lenient than the loader, never stricter: an editor must not flag a file the daemon would run.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from syncer import config

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "config_corpus"
GOOD = sorted((CORPUS / "good").glob("*.yaml")) + sorted((ROOT / "config/examples").glob("*.yaml"))
BAD = sorted((CORPUS / "bad").glob("*.yaml"))

_SAME_NUMBER = "JSON has one number type: to a schema 1.0 is the integer 1"
_PORTABLE = ("needs lookahead, which the schema's portable patterns (the ECMA-262 and RE2 "
             "subset that editors and helm both run) do not use")
SCHEMA_CANNOT_EXPRESS = {
    "yaml-duplicate-key": "a duplicate key is gone once parsed: the schema sees the last value",
    "yaml-duplicate-beside-merge": "a duplicate key is gone once parsed",
    "version-float": _SAME_NUMBER,
    "vault-kv-version-float": _SAME_NUMBER,
    "credential-unknown-backend": "a reference to another block (backends)",
    "mapping-unknown-credential": "a reference to another block (credentials)",
    "mapping-same-registry": "registries of other blocks, compared after normalization",
    "mapping-duplicate-name": "uniqueness of one key across the items of a list",
    "credential-refresh-sum-under-1s": "a regular expression cannot add up the parts of a duration",
    "credential-registry-only-globs": _PORTABLE,
    "mapping-label-key-prefix-too-long": _PORTABLE,
}


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "config" / "schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALIDATOR = _validator()


def schema_errors(path: Path) -> list[str]:
    """What the schema says about the file, read as any YAML tool would (PyYAML safe_load)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # not YAML that a schema can be applied to
        return [f"(yaml) {type(exc).__name__}"]
    try:
        return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    except RecursionError:  # a recursive structure from aliases
        return ["(recursive document)"]


def expectation(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# expect: "):
            return line.removeprefix("# expect: ")
    raise AssertionError(f"{path.name} has no '# expect:' line")


def test_the_corpus_is_there_and_every_exception_names_a_bad_file() -> None:
    assert len(GOOD) >= 15
    assert len(BAD) >= 60
    assert set(SCHEMA_CANNOT_EXPRESS) <= {p.stem for p in BAD}
    assert any(p.stem.startswith("vault-") for p in BAD)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_good_files_pass_the_loader_and_the_schema(path: Path) -> None:
    cfg = config.load(path)
    assert cfg.mappings
    assert schema_errors(path) == []


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_files_fail_the_loader_and_the_schema(path: Path) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    lines = [line.removeprefix(f"{path}: ") for line in caught.value.problems]
    assert all(line != problem for line, problem in zip(lines, caught.value.problems, strict=True))
    expected = expectation(path)
    assert any(expected in line for line in lines), (expected, lines)

    errors = schema_errors(path)
    if path.stem in SCHEMA_CANNOT_EXPRESS:
        assert errors == [], f"the schema now rejects {path.name}: drop it from the exceptions"
    else:
        assert errors, f"the schema accepts {path.name}, the loader says {lines}"


def test_bad_files_have_one_problem_each() -> None:
    """Each bad file shows one class of error: one line (so the docs can quote them)."""
    several = {}
    for path in BAD:
        try:
            config.load(path)
        except config.ConfigError as exc:
            if len(exc.problems) != 1:
                several[path.name] = exc.problems
    assert several == {}


def _patterns(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


@pytest.mark.parametrize("schema_file", ["config/schema.json",
                                         "deploy/helm/pullsecret-syncer/values.schema.json"])
def test_every_schema_pattern_is_portable_to_editors_and_helm(schema_file: str) -> None:
    """JSON Schema says ECMA-262; helm validates with Go's RE2. Their common subset has no
    lookaround and no named groups (RE2 lacks the first, ECMA-262 spells the second otherwise)."""
    patterns = _patterns(json.loads((ROOT / schema_file).read_text(encoding="utf-8")))
    assert patterns
    for pattern in patterns:
        for construct in ("(?=", "(?!", "(?<", "(?P"):
            assert construct not in pattern, (construct, pattern)
