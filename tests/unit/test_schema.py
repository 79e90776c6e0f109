"""config/schema.json is current, and every shipped example passes both the schema and ``load()``.

These use the real backend plugins (``backends.plugins()``), so the schema covers their keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from syncer import config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "config" / "schema.json"
EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_file_matches_the_models() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == config.schema_json(), (
        "config/schema.json is stale: run `make schema`"
    )


def test_python_m_syncer_config_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "syncer.config"], capture_output=True, check=True, cwd=ROOT
    ).stdout.decode()
    assert out == config.schema_json()


def test_the_required_examples_ship() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"vault-dev.yaml", "mixed.yaml", "aws-irsa.yaml", "demo.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid_for_the_schema_and_the_loader(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(document)]
    assert errors == []
    cfg = config.load(path)
    assert cfg.mappings


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(extra=1), []),
        (lambda d: d["mappings"][0].update(secret_name="x"), ["mappings", 0]),
        (lambda d: d["credentials"]["ghcr"].update(kvVersion=2), ["credentials", "ghcr"]),
        (lambda d: d["backends"]["aws"].update(type="vault-ish"), ["backends", "aws"]),
        (lambda d: d.update(version=2), ["version"]),
        (
            lambda d: d["defaults"].update(refreshInterval="5 minutes"),
            ["defaults", "refreshInterval"],
        ),
        (lambda d: d["mappings"][0].update(secretName="Not_A_Name"), ["mappings", 0, "secretName"]),
        (lambda d: d["backends"].update({"bad,name": {"type": "vault"}}), ["backends"]),
    ],
)
def test_schema_rejects_what_the_loader_rejects(change: Any, where: list[Any]) -> None:
    document = yaml.safe_load((ROOT / "config" / "examples" / "demo.yaml").read_text())
    change(document)
    errors = list(_validator().iter_errors(document))
    assert errors
    assert any(list(e.absolute_path)[: len(where)] == where for e in _with_context(errors))


def _with_context(errors: list[Any]) -> list[Any]:
    """The errors and, for anyOf failures, the errors of each alternative."""
    return [x for e in errors for x in [e, *_with_context(list(e.context or []))]]
