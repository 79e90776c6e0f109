"""Render the results table of docs/benchmarks.md from a results JSON of benchmarks/run.py, so
that no figure in the docs is typed by hand:

    python3 benchmarks/render.py benchmarks/results-1000-big.json   # prints the Markdown table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    lines = ["| metric | target | measured | protocol minimum | ratio | met |",
             "|---|---|---|---|---|---|"]
    for row in results["rows"]:
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        lines.append(f"| {row['metric'].strip()} | {row['target']} | {cell(row['measured'])} | "
                     f"{cell(row['minimum'])} | {cell(row['ratio'])} | {met} |")
    m = results["machine"]
    lines.append("")
    lines.append(f"Machine: {m['cpus']} x {m['cpu_model']}, {m['mem_gib']} GiB, Python "
                 f"{m['python']}; load average {m['loadavg_start'][0]:.1f} at the start, "
                 f"{m['loadavg_end'][0]:.1f} at the end; {results['total_seconds']:.0f} s in all. "
                 f"Command: `{results['command']}`.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    print(table(json.loads(Path(argv[1]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
