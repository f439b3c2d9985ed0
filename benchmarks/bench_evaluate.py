"""Benchmark: `labeldist evaluate` on a large synthetic run (target: 50,000 items x 30 labels < 10 s).

Writes a run folder in the official run-store format (run.json + Parquet parts, written with
``RunStore.append`` exactly as ``labeldist run`` writes them): ``--items`` items, ``--labels``
labels, 1-4 slots per item with Dirichlet label distributions, 3-6 annotators' vote fractions,
gold = majority. Then times, in one process:

(a) labeldist   ``evaluate_run`` with the default estimators (first, max, mean, noisy-or,
                output) plus the oracle and prior rows, 1,000 bootstrap resamples each;
(b) baseline    the straightforward way to get the same numbers: records read with pandas and
                turned into arrays in a Python loop over items and slots, then every resample
                scored by scikit-learn / scipy calls in a Python loop. Too slow to run in full,
                so it is timed on ``--baseline-resamples`` resamples (default 3) for one
                estimator and scaled to 1,000 resamples x 7 rows.

Reports seconds, the speed-up (b)/(a), and whether (a) meets the 10 s target.

Run from the repository root:  .venv/bin/python benchmarks/bench_evaluate.py [--items 50000 --labels 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import f1_score, jaccard_score

from labeldist.evaluation import evaluate_run
from labeldist.runs.store import RunStore


def write_synthetic_run(path: Path, n_items: int, n_labels: int, seed: int = 0, prefix: str = "item") -> None:
    rng = np.random.default_rng(seed)
    labels = [f"label_{i:02d}" for i in range(n_labels)]
    store = RunStore(path)
    # open() checks and returns the manifest; a run's is written once its model has loaded
    store.write_manifest(store.open({"synthetic": True, "items": n_items, "labels": n_labels}, {"labels": labels}))
    prior = rng.dirichlet(np.full(n_labels, 0.3))
    batch: list[dict] = []
    for i in range(n_items):
        annotators = int(rng.integers(3, 7))
        votes = rng.random((annotators, n_labels)) < np.clip(prior * 3, 0, 0.9)
        fractions = votes.mean(axis=0)
        gold = [labels[j] for j in np.flatnonzero(fractions >= 0.5)]
        n_slots = int(rng.integers(1, 5))
        slots = []
        for s in range(n_slots):
            dist = rng.dirichlet(np.concatenate([prior * 5 + 0.05, [1.0]]))
            chosen = int(np.argmax(dist[:-1]))
            slots.append(
                {
                    "index": s,
                    "chosen": labels[chosen] if s < n_slots - 1 else "<stop>",
                    "raw": labels[chosen],
                    "label_probs": dist[:-1].tolist(),
                    "label_logprobs": np.log(dist[:-1]).tolist(),
                    "first_token_probs": (dist[:-1] * 0.9).tolist(),
                    "stop_prob": float(dist[-1]),
                    "stop_logprob": float(np.log(dist[-1])),
                    "entropy": float(-(dist * np.log(dist)).sum()),
                    "mass": 1.0,
                }
            )
        generated = sorted({s["raw"] for s in slots[:-1]})
        batch.append(
            {
                "id": f"{prefix}{i:06d}",
                "prompt": "synthetic prompt " * 20,
                "answer": json.dumps(generated),
                "generated_tokens": 10,
                "finished": True,
                "parsed": True,
                "complete": True,
                "labels": generated,
                "unknown": [],
                "corrections": "{}",
                "gold": gold,
                "vote_fractions": fractions.tolist(),
                "votes_available": True,
                "demonstration_ids": [],
                "slots": slots,
            }
        )
        if len(batch) == 5000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)


def baseline(path: Path, n_resamples: int, seed: int = 0) -> tuple[float, float]:
    """The straightforward way: a Python loop to arrays, sklearn/scipy per resample.

    Returns (load seconds, seconds per resample for one row)."""
    started = time.perf_counter()
    store = RunStore(path)
    labels = store.read_manifest()["labels"]
    records = store.read()
    index = {label: i for i, label in enumerate(labels)}
    n, k = len(records), len(labels)
    probs = np.zeros((n, k))
    gold = np.zeros((n, k), dtype=int)
    targets = np.zeros((n, k))
    for row, record in enumerate(records.itertuples(index=False)):
        slot_probs = np.array([slot["label_probs"] for slot in record.slots])
        probs[row] = slot_probs.max(axis=0)
        for label in record.gold:
            gold[row, index[label]] = 1
        targets[row] = record.vote_fractions
    load_seconds = time.perf_counter() - started

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for _ in range(n_resamples):
        rows = rng.integers(0, n, n)
        p, g, t = probs[rows], gold[rows], targets[rows]
        predicted = (p >= 0.5).astype(int)
        f1_score(g, predicted, average="micro", zero_division=1)
        f1_score(g, predicted, average="macro", zero_division=1)
        jaccard_score(g, predicted, average="samples", zero_division=1)
        np.abs(p - t).sum(axis=1).mean()
        np.mean(-(t * np.log(np.clip(p, 1e-7, 1)) + (1 - t) * np.log(np.clip(1 - p, 1e-7, 1))))
        np.mean((p - t) ** 2)
        np.nanmean([spearmanr(p[i], t[i]).statistic for i in range(n)])
    per_resample = (time.perf_counter() - started) / n_resamples
    return load_seconds, per_resample


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--labels", type=int, default=30)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the synthetic run here and keep it")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--smoke", action="store_true", help="500 items x 8 labels, 20 resamples: does it run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.labels, args.resamples, args.baseline_resamples = 500, 8, 20, 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    run = args.keep or workdir / "run"
    calibration = workdir / "calibration"
    try:
        started = time.perf_counter()
        if not (run / "run.json").exists():
            write_synthetic_run(run, args.items, args.labels, seed=0)
        write_synthetic_run(calibration, min(2000, args.items), args.labels, seed=1, prefix="calibration")
        print(f"synthetic runs written in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        result = evaluate_run(run, None, calibrate_on=calibration, n_resamples=args.resamples)
        labeldist_seconds = time.perf_counter() - started
        rows = len(result["estimators"])

        load_seconds, per_resample = baseline(run, args.baseline_resamples)
        baseline_seconds = load_seconds + per_resample * args.resamples * rows

        figures = {
            "items": args.items,
            "labels": args.labels,
            "resamples": args.resamples,
            "rows": rows,
            "labeldist_seconds": round(labeldist_seconds, 2),
            "baseline_load_seconds": round(load_seconds, 2),
            "baseline_seconds_per_resample_row": round(per_resample, 3),
            "baseline_seconds_estimated": round(baseline_seconds, 1),
            "speedup": round(baseline_seconds / labeldist_seconds, 1),
            "target_seconds": 10,
            "meets_target": labeldist_seconds < 10,
        }
        print(
            f"(a) labeldist evaluate: {labeldist_seconds:.2f} s for {args.items} items x {args.labels} labels, "
            f"{rows} rows x {args.resamples} resamples"
        )
        print(
            f"(b) baseline: load {load_seconds:.2f} s + {per_resample:.3f} s per resample and row "
            f"-> {baseline_seconds:.0f} s estimated"
        )
        print(f"speed-up (b)/(a): {figures['speedup']}x; under 10 s: {figures['meets_target']}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
