"""The suite's standing tables (table.md, table.json) from its finished cells."""

from __future__ import annotations

import json
from pathlib import Path

from labeldist import atomic
from labeldist.metrics.registry import SUITE_METRICS
from labeldist.workflows.suite.config import Suite
from labeldist.workflows.suite.samples import Cell, cells

TABLE_METRICS = SUITE_METRICS  # the registry's metrics marked for the suite's table, in their order


def table_rows(suite: Suite, out: Path) -> tuple[list[dict], list[dict]]:
    """(rows of every finished cell, per-cell summaries incl. unfinished cells)."""
    rows, summaries = [], []
    out = Path(out)
    listed = cells(suite, out)
    # cells of models given on the command line (--model) are in the table too
    for ds in suite.datasets:
        for method in suite.methods:
            for path in sorted((out / "cells" / ds.id).glob(f"*/{method}/cell.json")):
                model = json.loads(path.read_text(encoding="utf-8")).get("model", path.parent.parent.name)
                if not any(c.folder == path.parent for c in listed):
                    listed.append(Cell(ds, model, method, path.parent))
    order = {ds.id: i for i, ds in enumerate(suite.datasets)}
    listed.sort(key=lambda c: (order[c.dataset.id], c.model, c.method))
    for cell in listed:
        path = cell.folder / "cell.json"
        if not path.is_file():
            summaries.append({"cell": cell.key, "finished": False})
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        result = record["evaluation"]
        summaries.append(
            {
                "cell": cell.key,
                "finished": True,
                "seconds": record["seconds"],
                "items": result["items"],
                "run_seconds_total": record.get("run_seconds_total"),
            }
        )
        for name, row in result["estimators"].items():
            if name.startswith("encoder[model=") and Path(name[len("encoder[model=") : -1]).parent.name == "encoders":
                name = "encoder"  # the suite's own per-dataset encoder
            # Spearman is undefined on an item whose votes (or probabilities) are all equal, so the
            # mean runs over fewer items than the other columns; the table says over how many
            spearman_items = result["items"] - int(row.get("spearman_skipped") or 0)
            rows.append(
                {
                    "dataset": cell.dataset.id,
                    "model": cell.model,
                    "method": cell.method,
                    "estimator": name,
                    "items": result["items"],
                    "spearman_items": spearman_items,
                    **{m: row.get(m) for m in TABLE_METRICS},
                }
            )
    return rows, summaries


def _seconds(value) -> str:
    return "n/a" if value is None else f"{float(value):.0f}"


def write_tables(suite: Suite, out: str | Path) -> dict:
    """``table.md`` and ``table.json`` in ``out`` from every finished cell."""
    from labeldist.evaluation import format_rows

    out = Path(out)
    rows, summaries = table_rows(suite, out)
    finished = sum(s["finished"] for s in summaries)
    lines = [
        f"Suite `{suite.name}` ({suite.source}): {finished} of {len(summaries)} cells finished. "
        f"Threshold {suite.threshold}; 95% bootstrap intervals over items ({suite.resamples} resamples).",
        "",
        format_rows(rows, ("dataset", "model", "method", "estimator", "items", "spearman_items"), TABLE_METRICS, style="markdown")
        if rows
        else "(no finished cells)",
        "",
        "`spearman_items`: the items where per-item Spearman is defined (neither the probabilities nor the vote "
        "fractions all equal); n/a where no item has two labels that differ (binary sets).",
    ]
    timed = [s for s in summaries if s["finished"]]
    if timed:
        lines += ["", "| cell | evaluated items | calibration run s | evaluated run s | cell s |", "|---|---|---|---|---|"]
        for s in timed:
            run_seconds = s.get("run_seconds_total") or {}
            lines.append(
                f"| {s['cell']} | {s['items']} | {_seconds(run_seconds.get('calibration'))} | "
                f"{_seconds(run_seconds.get('eval'))} | {_seconds(s['seconds'])} |"
            )
        total = sum(s["seconds"] or 0 for s in timed)
        lines += [
            "",
            f"Cell time in total: {total / 60:.1f} min. Run columns add up every attempt at that run "
            "(an earlier quick pass included); the cell column is the suite call that finished the "
            "cell, evaluation included.",
        ]
    unfinished = [s["cell"] for s in summaries if not s["finished"]]
    if unfinished:
        lines += ["", "Not finished: " + ", ".join(unfinished)]
    atomic.write_text(out / "table.md", "\n".join(lines) + "\n")
    table = {"suite": suite.name, "source": suite.source, "metrics": list(TABLE_METRICS), "cells": summaries, "rows": rows}
    atomic.write_json(out / "table.json", table)
    return table
