"""Markdown tables for docs/results.md from the evaluation JSON files experiments/evaluation.sh writes.

Usage: .venv/bin/python experiments/tables.py [--metrics micro_f1,macro_f1] runs/hx-test-smollm2/evaluation-0.5.json [...]
"""

import argparse
import json

from labeldist.evaluation import format_table

METRICS = "micro_f1,macro_f1,jaccard,mamd,bce,brier,spearman,ece"

parser = argparse.ArgumentParser()
parser.add_argument("--metrics", default=METRICS, help="comma list of metric columns")
parser.add_argument("paths", nargs="+")
args = parser.parse_args()
for path in args.paths:
    with open(path) as handle:
        result = json.load(handle)
    print(
        f"\n`{result['run']}` (calibration `{result['calibration_run']}`), threshold {result['threshold']}, "
        f"{result['items']} items ({result['items_with_votes']} with votes)\n"
    )
    print(format_table(result, tuple(args.metrics.split(",")), style="markdown"))
