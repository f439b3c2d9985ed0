"""Markdown tables of the size-series experiment (docs/results.md, "Scale within one family") from
what experiments/scale.sh writes: runs/analyses/scale-SET/analyses.json (slot-1 statistics,
paired differences) and runs/SET-MODEL/evaluation-scale.json (first / max / Platt / prior /
oracle, Platt and prior cross-fitted), plus each run's run.json (seconds per item).

Usage: .venv/bin/python experiments/scale_tables.py [--sets hx-test,ge-dev,tw-test] [--models smollm2,gemma3,qwen05,qwen15]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAMES = {
    "smollm2": "SmolLM2-135M",
    "gemma3": "Gemma-3-270M",
    "qwen05": "Qwen2.5-Coder-0.5B",
    "qwen15": "Qwen2.5-Coder-1.5B",
}
ROWS = ("first", "max", "platt", "prior", "oracle")


def cell(value, digits=3, signed=False):
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(entry, digits=3, signed=False, key="value"):
    if not entry or entry.get(key) is None:
        return "n/a"
    low, high = entry.get("low"), entry.get("high")
    if low is None or high is None:
        return cell(entry[key], digits, signed)
    return f"{cell(entry[key], digits, signed)} [{cell(low, digits, signed)}, {cell(high, digits, signed)}]"


def seconds_per_item(run: Path) -> str:
    manifest = json.loads((run / "run.json").read_text())
    attempts = [a for a in manifest.get("attempts", []) if a.get("items_labelled")]
    items = sum(a["items_labelled"] for a in attempts)
    seconds = sum(a.get("model_seconds") or 0 for a in attempts)
    return f"{seconds / items:.1f}" if items else "n/a"


def slot_table(set_name: str, models: list[str]) -> None:
    path = Path("runs/analyses") / f"scale-{set_name}" / "analyses.json"
    if not path.exists():
        print(f"\n({path} missing)\n")
        return
    stats = json.loads(path.read_text())
    print(f"\n**{set_name}**: slot 1 and the answers\n")
    print(
        "| model | items | labels per answer | answers with 2+ | slot-1 entropy (nats) | top label | top > 0.9 "
        "| slot-1 mass on labels | stop at slot 1 | Spearman, slot 1 vs votes | top label written first "
        "| 1st / 2nd label gold (2+) | s per item |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for short in models:
        name = f"{set_name}-{short}"
        run = stats["runs"].get(name)
        if run is None:
            continue
        summary, spikiness, entropy = run["summary"], run["spikiness"], run["entropy"]["slot1"]
        by_count = summary.get("answers_by_label_count", {})
        two_plus = sum(v for k, v in by_count.items() if int(k) >= 2)
        order = run["label_order"]
        positions = order.get("by_position") or []
        gold_share = (
            " / ".join(cell(p["value"], 2) for p in positions[:2]) + f" (n={order['answers_with_2plus']})" if positions else "n/a"
        )
        first = run["first_vs_output"]["top_label_is_first_written"]
        evaluation = json.loads((Path("runs") / name / "evaluation-scale.json").read_text())
        spearman = evaluation["estimators"]["first"]["spearman"]
        print(
            f"| {NAMES[short]} | {summary['items']} | {summary['labels_per_answer']:.2f} | {two_plus} "
            f"| {entropy['mean']:.3f} [{entropy['low']:.3f}, {entropy['high']:.3f}] | {cell(spikiness['top1_mean'])} "
            f"| {cell(spikiness['top1_above_0.9_share'] * 100, 1)}% | {cell(spikiness['label_mass_mean'])} "
            f"| {cell(spikiness['stop_mean'])} | {interval(spearman)} "
            f"| {interval(first, 2)} | {gold_share} | {seconds_per_item(Path('runs') / name)} |"
        )
    paired = [r for r in stats.get("paired", []) if r["first"].endswith("qwen05") and r["second"].endswith("qwen15")]
    others = [r for r in stats.get("paired", []) if r not in paired]
    print("\nPaired differences over the same items, second minus first, mean [95% bootstrap interval]:\n")
    print("| second - first | items | slot-1 entropy (nats) | labels only | top label | Spearman with the votes |")
    print("|---|---|---|---|---|---|")
    for row in paired + others:
        first_model, second_model = (row[k].rsplit("-", 1)[-1] for k in ("first", "second"))
        values = [
            interval(row.get(key), 3, True, "difference")
            for key in ("slot1_entropy", "slot1_labels_only", "slot1_top_label", "slot1_spearman")
        ]
        print(f"| {NAMES[second_model]} - {NAMES[first_model]} | {row['items']} | " + " | ".join(values) + " |")


def estimator_table(set_name: str, models: list[str]) -> None:
    print(f"\n**{set_name}**: estimators (threshold 0.5; Platt and prior 5-fold cross-fitted on the items)\n")
    print("| model | estimator | macro-F1 | MAMD | BCE | per-item Spearman |")
    print("|---|---|---|---|---|---|")
    for short in models:
        path = Path("runs") / f"{set_name}-{short}" / "evaluation-scale.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text())["estimators"]
        for name in ROWS:
            row = rows.get(name)
            if row is None:
                continue
            metrics = [interval(row[m]) for m in ("macro_f1", "mamd", "bce", "spearman")]
            print(f"| {NAMES[short]} | {name} | " + " | ".join(metrics) + " |")


parser = argparse.ArgumentParser()
parser.add_argument("--sets", default="hx-test,ge-dev,tw-test")
parser.add_argument("--models", default="smollm2,gemma3,qwen05,qwen15")
args = parser.parse_args()
models = args.models.split(",")
for set_name in args.sets.split(","):
    slot_table(set_name, models)
    estimator_table(set_name, models)
