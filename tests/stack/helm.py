"""helm (v3) for the chart tests: find the binary, run it in private Helm homes, render the chart.

The binary, first found wins: `PSS_HELM` (an existing helm v3), the cache that
`build-helm.sh` fills (`~/.cache/pullsecret-syncer/helm-<version>/helm`, v3.22.0 unless
`PSS_HELM_VERSION` says otherwise). Every run gets its own
HELM_CACHE_HOME / HELM_CONFIG_HOME / HELM_DATA_HOME, so neither the machine's Helm repositories
nor its plugins take part, and nothing is written to $HOME.

`values.schema.json` embeds the config file's JSON Schema (config/schema.json) as the `config`
value's schema, so a bad config is refused at `helm install`. `python3 tests/stack/helm.py
values-schema` (run by `make schema`) rewrites that part after config/schema.json changed;
tests/deploy/test_helm_chart.py fails while it is stale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as a script: make `stack` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stack import procs

DEFAULT_VERSION = "3.22.0"  # build-helm.sh pins the same (a unit test checks)
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "pullsecret-syncer"
VALUES_SCHEMA = CHART / "values.schema.json"
CONFIG_SCHEMA = REPO / "config" / "schema.json"
# The `$id` of the embedded config schema: its `#/$defs/…` references resolve inside it.
CONFIG_SCHEMA_ID = "https://pullsecret-syncer.io/schemas/config.json"


def version() -> str:
    """The helm version the tests use: `PSS_HELM_VERSION` (as build-helm.sh reads it), else
    the pin."""
    return os.environ.get("PSS_HELM_VERSION", DEFAULT_VERSION).removeprefix("v")


def cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pullsecret-syncer" / f"helm-{version()}"


def find_binary() -> Path:
    """helm from PSS_HELM or the cache; StackUnavailableError (with the fix) otherwise."""
    if os.environ.get("PSS_HELM"):
        path = Path(os.environ["PSS_HELM"])
        if not os.access(path, os.X_OK):
            raise procs.StackUnavailableError(f"PSS_HELM={path} is not an executable file")
        return path
    path = cache_dir() / "helm"
    if not os.access(path, os.X_OK):
        raise procs.StackUnavailableError(
            f"helm missing in {path.parent}: run `bash tests/stack/build-helm.sh` (or "
            f"`make setup`) once: it builds helm v{version()} through the Go module proxy "
            "(≈ 2 min cold)")
    return path


@dataclass(frozen=True, slots=True)
class Helm:
    """One helm binary with private Helm homes under `home`, optionally bound to a cluster."""

    binary: Path
    home: Path
    kubeconfig: Path | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HELM_", "KUBECONFIG"))}
        for name in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{name}_HOME"] = str(self.home / name.lower())
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 180,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`helm ARGS` (with `--kubeconfig` when bound); asserts exit 0 when `check`."""
        argv = [str(self.binary), *args]
        if self.kubeconfig is not None:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              env=self.env(), timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stderr}{proc.stdout[-2000:]}")
        return proc

    def bound(self, kubeconfig: Path) -> Helm:
        return Helm(binary=self.binary, home=self.home, kubeconfig=kubeconfig)


def values_args(values: dict[str, Any] | None, directory: Path) -> list[str]:
    """`-f FILE` for a values dict (written as YAML under `directory`), or nothing."""
    if not values:
        return []
    fd, name = tempfile.mkstemp(prefix="values-", suffix=".yaml", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(values, fh, sort_keys=False)
    return ["-f", name]


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


_LOOKAROUND = ("(?=", "(?!", "(?<=", "(?<!")


def portable_pattern(pattern: str) -> str:
    """`pattern` as Go's RE2 (helm), ECMA-262 (editors) and Python's `re` all read it: named
    groups become plain groups, and lookaround assertions are dropped. Dropping a zero-width
    assertion only makes the pattern accept more, so the chart's schema never refuses a value
    the daemon takes; the daemon's own loader still applies the whole rule."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        if pattern[i] == "\\":
            out.append(pattern[i:i + 2])
            i += 2
        elif in_class or pattern[i] == "[":
            in_class = pattern[i] != "]" if in_class else True
            out.append(pattern[i])
            i += 1
        elif pattern.startswith("(?P<", i):
            out.append("(?:")
            i = pattern.index(">", i) + 1
        elif pattern.startswith(_LOOKAROUND, i):
            i = _group_end(pattern, i)
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _group_end(pattern: str, start: int) -> int:
    """The index after the `)` that closes the group opened at `start`."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced group in pattern {pattern!r}")


def _portable(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: portable_pattern(v) if k == "pattern" and isinstance(v, str)
                else _portable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_portable(v) for v in node]
    return node


def values_schema_with_current_config() -> str:
    """values.schema.json as it must read: its `config` schema replaced by config/schema.json."""
    schema = json.loads(VALUES_SCHEMA.read_text(encoding="utf-8"))
    config = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
    config.pop("$schema", None)  # the embedding document names the dialect
    embedded = {
        "$id": CONFIG_SCHEMA_ID,
        "description": "The configuration as YAML values, checked against config/schema.json.",
        "$comment": "Generated by `make schema` from config/schema.json, with its patterns "
                    "made portable (no lookaround: helm's Go regexp has none); the daemon "
                    "checks the full rules when it loads the file.",
        **_portable({k: v for k, v in config.items() if k != "description"}),
    }
    described = {
        "description": "The daemon's configuration file (docs/configuration.md): YAML values, "
                       "or the file's text (`--set-file config=FILE`, kept verbatim).",
        "anyOf": [
            {"type": "string", "minLength": 1,
             "description": "The file's text, kept as it is (comments included); the daemon "
                            "checks it, run `pullsecret-syncer check --config FILE` first."},
            embedded,
        ],
    }
    schema["properties"]["config"] = described
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if argv != ["values-schema"]:
        print("usage: python3 tests/stack/helm.py values-schema", file=sys.stderr)
        return 2
    VALUES_SCHEMA.write_text(values_schema_with_current_config(), encoding="utf-8")
    print(f"wrote {VALUES_SCHEMA.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
