"""docs/development.md's module map names every module of the tree, so a contributor can find each
room from the docs (a module added without a line there fails here)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_map() -> str:
    text = (REPO / "docs" / "development.md").read_text()
    start = text.index("| package / module | job |")
    end = text.index("\n\n", start)
    return text[start:end]


def named(table: str) -> tuple[set[str], list[str]]:
    """Backticked names in the table: bare words (module stems) and path patterns."""
    words: set[str] = set()
    patterns: list[str] = []
    for token in re.findall(r"`([^`]+)`", table):
        if "/" in token or token.endswith(".py"):
            patterns.append(token.rstrip("/"))
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", token.removesuffix(".py")))
    return words, patterns


def test_every_module_of_the_tree_is_in_the_docs_module_map() -> None:
    table = module_map()
    words, patterns = named(table)
    missing = []
    for top in ("syncer", "backends"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if path.name in ("__init__.py", "__main__.py") or "__pycache__" in rel:
                continue
            # its stem in backticks (`engine`), or a path or glob naming it (`syncer/config*.py`)
            if path.stem in words or any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            missing.append(rel)
    assert not missing, f"modules missing from docs/development.md's module map: {missing}"
