"""Three Markdown tables for docs/results.md about a suite's output folder: what each dataset's
evaluated sample holds (labels, votes per item, disagreement), what each model wrote there
(empty answers, answers with two or more labels, unparsed answers), and MAMD / BCE of the main
estimators side by side (values only; the intervals are in the suite's own table.md).

    python experiments/suite_datasets.py --config suites/real.yaml --out results/real
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from labeldist.data import load_dataset
from labeldist.data.describe import describe
from labeldist.runs import RunStore
from labeldist.workflows.suite import load_suite


def dataset_rows(suite, out: Path) -> list[str]:
    lines = [
        "| dataset | labels | evaluated / calibration items | votes per item | disagreement share | "
        "items nobody labelled | gold multi-label share |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds in suite.datasets:
        ids = {
            role: (out / "ids" / f"{ds.id}-{role}.txt").read_text(encoding="utf-8").split() for role in ("eval", "calibration")
        }
        data = load_dataset(ds.dataset, ds.data_dir, ds.eval_split, **ds.loader_options).restrict(ids["eval"])
        summary = describe(data)
        nobody = float((data.vote_fractions().sum(axis=1) == 0).mean())
        disagreement = summary["disagreement_share"]
        lines.append(
            f"| {ds.id} | {len(data.labels)} | {len(ids['eval'])} / {len(ids['calibration'])} | "
            f"{summary['votes_per_item']:.1f} | {'n/a' if disagreement is None else f'{disagreement:.2f}'} | "
            f"{nobody:.2f} | {summary['multilabel_share']:.2f} |"
        )
    return lines


def answer_rows(suite, out: Path) -> list[str]:
    lines = [
        "| cell | evaluated answers | no label | 2+ labels | not parsed | mean labels per answer |",
        "|---|---|---|---|---|---|",
    ]
    for ds in suite.datasets:
        for cell in sorted((out / "cells" / ds.id).glob("*/*/eval")):
            records = RunStore(cell).read()
            counts = np.array([len(labels) for labels in records["labels"]])
            key = f"{ds.id}/{cell.parent.parent.name}/{cell.parent.name}"
            lines.append(
                f"| {key} | {len(records)} | {int((counts == 0).sum())} | {int((counts >= 2).sum())} | "
                f"{int((~records['parsed'].astype(bool)).sum())} | {counts.mean():.2f} |"
            )
    return lines


SUMMARY_ESTIMATORS = ("first", "max", "max@first-token", "mean", "platt", "probe", "encoder", "prior", "oracle")


def summary_rows(out: Path) -> list[str]:
    table = json.loads((out / "table.json").read_text(encoding="utf-8"))
    cells: dict[tuple[str, str], dict] = {}
    for row in table["rows"]:
        cells.setdefault((row["dataset"], row["model"]), {})[row["estimator"]] = row
    lines = ["| dataset | model | " + " | ".join(SUMMARY_ESTIMATORS) + " |", "|---|---|" + "---|" * len(SUMMARY_ESTIMATORS)]
    for (dataset, model), rows in cells.items():
        shown = []
        for name in SUMMARY_ESTIMATORS:
            row = rows.get(name)
            shown.append("" if row is None else f"{row['mamd']['value']:.3f} / {row['bce']['value']:.3f}")
        lines.append(f"| {dataset} | {model} | " + " | ".join(shown) + " |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    suite = load_suite(args.config)
    print("\n".join(dataset_rows(suite, args.out)))
    print()
    print("\n".join(answer_rows(suite, args.out)))
    print()
    print("\n".join(summary_rows(args.out)))


if __name__ == "__main__":
    main()
