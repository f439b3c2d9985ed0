"""Benchmark: the exact marginal P(label in answer) and sampled answers against one generation run.

On the same prompts, in one process, after one untimed warm-up item per path:

  (a) generation   HFBackend.generate: greedy answers with every slot (what `labeldist run` does)
  (b) marginal     runs.marginal.marginals at each --tolerances value (nodes expanded per item)
  (c) sampling     HFBackend.sample_answers with --samples draws per item

Reported as ratios of seconds against (a) measured in this run (the goal for (b) at 1e-3: 3x),
with the mean and largest number of trie nodes per item and the mean unsettled mass.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_marginal.py --dataset goemotions --items 12
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_marginal.py --dataset hatexplain --items 12
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from labeldist.data import load_dataset
from labeldist.models.hf import HFBackend
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format
from labeldist.runs.marginal import answer_lead, marginals

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"
DATASETS = {
    # name: (loader, folder, split, pool split, loader settings, id list)
    "goemotions": ("goemotions", "goemotions", "dev", "train", {"grouping": "paper-7"}, "GoEmotions/main_test_set.txt"),
    "hatexplain": (
        "hatexplain",
        "hatexplain",
        "test",
        "dev",
        {"task": "target", "fold_rare": 100},
        "Hatexplain/main_test_set.txt",
    ),
}


def batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="goemotions", choices=sorted(DATASETS))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tolerances", default="1e-3,1e-4", help="marginal tolerances (default: %(default)s)")
    parser.add_argument("--max-nodes", type=int, default=200)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="write all numbers to this file")
    parser.add_argument(
        "--smoke", action="store_true", help="1 item of the bundled GoEmotions subset, 2 shots, 1e-2: does it run"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.dataset, args.items, args.shots, args.tolerances, args.max_nodes, args.samples = "goemotions", 1, 2, "1e-2", 20, 4

    torch.set_num_threads(os.cpu_count() or 1)
    loader, folder, split, pool_split, settings, id_list = DATASETS[args.dataset]
    data_dir = BUNDLED if args.smoke else SHARED / folder
    if not data_dir.exists():
        print(f"{data_dir} is not there: this benchmark reads the real corpora", file=sys.stderr)
        return 2
    ids = None if args.smoke else SHARED / "paper_eval_ids" / id_list
    dataset = load_dataset(loader, data_dir, split, ids=ids if ids is not None and ids.exists() else None, **settings)
    pool = load_dataset(loader, data_dir, pool_split, **settings)
    fmt = get_answer_format("json")
    prompts = build_prompts(dataset, pool, PromptTemplate(), fmt, "random", args.shots, seed=0, shared_demonstrations=True)
    prompts = prompts[: args.items + 1]
    warm, prompts = prompts[:1], prompts[1:]
    labels = dataset.labels
    backend = HFBackend(args.model, device="cpu")
    tolerances = [float(t) for t in args.tolerances.split(",")]

    backend.generate(warm, labels, fmt)
    started = time.perf_counter()
    generations = [g for batch in batches(prompts, args.batch_size) for g in backend.generate(batch, labels, fmt)]
    generation_seconds = time.perf_counter() - started
    leads = [answer_lead(g.answer, p) for g, p in zip(generations, prompts)]

    rows = [{"path": "(a) generation", "seconds": generation_seconds, "ratio": 1.0}]
    marginals(backend, warm, labels, fmt, tolerance=tolerances[0], max_nodes=args.max_nodes, leads=[leads[0]])
    for tolerance in tolerances:
        started = time.perf_counter()
        found = marginals(
            backend, prompts, labels, fmt, tolerance=tolerance, max_nodes=args.max_nodes, batch_size=args.batch_size, leads=leads
        )
        seconds = time.perf_counter() - started
        nodes = np.array([m.nodes for m in found])
        rows.append(
            {
                "path": f"(b) marginal {tolerance:g}",
                "seconds": seconds,
                "ratio": seconds / generation_seconds,
                "nodes_mean": float(nodes.mean()),
                "nodes_max": int(nodes.max()),
                "unsettled_mean": float(np.mean([m.unsettled for m in found])),
                "bound_width_mean": float(np.mean([(m.upper - m.lower).mean() for m in found])),
            }
        )
    if args.samples:
        backend.sample_answers(warm, fmt, 2)
        started = time.perf_counter()
        for batch in batches(prompts, args.batch_size):
            backend.sample_answers(batch, fmt, args.samples)
        seconds = time.perf_counter() - started
        rows.append({"path": f"(c) sampling n={args.samples}", "seconds": seconds, "ratio": seconds / generation_seconds})

    threads = torch.get_num_threads()
    print(f"{args.dataset}, {args.model}, {len(prompts)} items, {args.shots} shared demonstrations, {threads} threads")
    print(f"{'path':24s} {'seconds':>9s} {'x (a)':>7s} {'nodes/item':>11s} {'max':>5s} {'unsettled':>10s} {'bound width':>12s}")
    for row in rows:
        extra = (
            f" {row['nodes_mean']:11.1f} {row['nodes_max']:5d} {row['unsettled_mean']:10.4f} {row['bound_width_mean']:12.4f}"
            if "nodes_mean" in row
            else ""
        )
        print(f"{row['path']:24s} {row['seconds']:9.1f} {row['ratio']:7.2f}{extra}")
    if args.json:
        numbers = {"dataset": args.dataset, "model": args.model, "items": len(prompts), "rows": rows}
        args.json.write_text(json.dumps(numbers, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
