"""Benchmark: `labeldist run --engine ray` against a plain run of the same items.

Three `labeldist run` processes, one after another, on the same items and settings, each into a
fresh run folder:

  (a) plain      --engine local, torch using every core
  (b) ray x1     --engine ray --workers 1 (a local cluster started by the run; the worker's
                 torch uses every core)
  (c) ray xN     --engine ray --workers N (the cores shared out: cores / N threads each)

Reported per path: items/s while labelling (run.json's items_per_second: model loading and the
cluster's start excluded), the wall seconds of the whole command (included), and both as ratios
against (a) measured in the same invocation; then whether the records equal (a)'s (answers
exactly, probabilities to 1e-6). With --device cuda, (b) is the Ray overhead on one GPU.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_ray.py                 # SmolLM2, 32 items
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_ray.py --items 8 --json runs/bench_ray.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labeldist.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "src" / "labeldist" / "resources" / "goemotions_subset"


def run(argv: list[str], out: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "labeldist", *argv, "--out", str(out)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"labeldist run failed:\n{done.stderr[-3000:]}")
    attempt = json.loads((out / "run.json").read_text())["attempts"][-1]
    return {"items": attempt["items_labelled"], "items_per_second": attempt["items_per_second"], "wall_seconds": round(wall, 2)}


def same_records(a: Path, b: Path) -> bool:
    x = RunStore(a).read().sort_values("id").reset_index(drop=True)
    y = RunStore(b).read().sort_values("id").reset_index(drop=True)
    if x["id"].tolist() != y["id"].tolist() or x["answer"].tolist() != y["answer"].tolist():
        return False
    for slots_x, slots_y in zip(x["slots"], y["slots"]):
        for s, t in zip(slots_x, slots_y):
            if not np.allclose(s["label_probs"], t["label_probs"], atol=1e-6, rtol=0):
                return False
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--shots", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="2 items, 2 shots, one batch each: does it run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.shots, args.batch_size = 2, 2, 1
    cores = os.cpu_count() or 1
    argv = ["run", "--dataset", "goemotions", "--data-dir", str(SUBSET), "--split", "dev", "--grouping", "paper-7"]
    argv += ["--model", args.model, "--limit", str(args.items), "--shots", str(args.shots), "--sampler", "balanced"]
    argv += ["--batch-size", str(args.batch_size), "--device", args.device, "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = {
            "plain": run(argv, folder / "plain", cores),
            "ray x1": run([*argv, "--engine", "ray", "--workers", "1"], folder / "ray1", cores),
            f"ray x{args.workers}": run(
                [*argv, "--engine", "ray", "--workers", str(args.workers)], folder / "rayn", max(1, cores // args.workers)
            ),
        }
        equal = {name: same_records(folder / "plain", folder / out) for name, out in (("ray x1", "ray1"), ("ray xN", "rayn"))}
    base = rows["plain"]
    print(f"{args.model}, {args.items} GoEmotions items, batch {args.batch_size}, {cores} cores, device {args.device}")
    print(f"{'path':10s} {'items/s':>8s} {'ratio':>6s} {'wall s':>7s} {'ratio':>6s}")
    for name, row in rows.items():
        speed, wall = row["items_per_second"], row["wall_seconds"]
        print(f"{name:10s} {speed:8.3f} {speed / base['items_per_second']:6.2f} {wall:7.1f} {wall / base['wall_seconds']:6.2f}")
    print(f"records equal to the plain run's: {equal}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows, "equal": equal}, indent=2))


if __name__ == "__main__":
    main()
