"""What issue 16's definition of a slot's probability changed: a results table of docs/results.md
(computed under the earlier definition: first-token segmentations, the written form only)
against the same evaluation rerun now (every tokenisation of every surface form).

Usage: .venv/bin/python experiments/definition_change.py "HEADING" runs/RUN/evaluation-0.5.json [...]
where HEADING is the title of a docs/results.md section whose first table is the threshold-0.5
table of that run. Prints one markdown table: estimator, then "before -> after" per metric.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
METRICS = ("macro_f1", "mamd", "bce", "brier", "spearman", "ece")
ESTIMATORS = ("first", "max", "max@first-token", "noisy-or", "platt", "platt-shared")


def old_table(heading: str) -> dict[str, dict[str, str]]:
    """The first table after ``### heading``: estimator -> metric -> value as printed."""
    lines = RESULTS.read_text().splitlines()
    start = lines.index(f"### {heading}")
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] | None = None
    for line in lines[start + 1 :]:
        if line.startswith("### "):
            break
        if not line.startswith("|"):
            if columns is not None and rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if columns is None:
            columns = cells
        elif not set(cells[0]) <= set("-"):
            rows[cells[0]] = {column: re.sub(r" \[.*\]", "", cell) for column, cell in zip(columns[1:], cells[1:])}
    return rows


def new_values(path: str) -> dict[str, dict[str, float | None]]:
    result = json.loads(Path(path).read_text())
    out: dict[str, dict[str, float | None]] = {}
    for estimator, row in result["estimators"].items():
        out[estimator] = {m: (row.get(m) or {}).get("value") for m in METRICS}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pairs", nargs="+", help="HEADING JSON [HEADING JSON ...]")
    args = parser.parse_args()
    for heading, path in zip(args.pairs[::2], args.pairs[1::2]):
        before, after = old_table(heading), new_values(path)
        print(f"\n{heading} (threshold 0.5): before -> after\n")
        print("| estimator | " + " | ".join(METRICS) + " |")
        print("|---|" + "---|" * len(METRICS))
        for estimator in ESTIMATORS:
            if estimator not in before or estimator not in after:
                continue
            cells = []
            for metric in METRICS:
                value = after[estimator][metric]
                shown = "n/a" if value is None or value != value else f"{value:.3f}"  # NaN: n/a
                old = before[estimator].get(metric, "?")
                cells.append(old if old == shown else f"{old} -> **{shown}**")
            print(f"| {estimator} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
