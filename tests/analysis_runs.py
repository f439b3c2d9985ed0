"""Real runs of the trained tiny model for the analysis, report and sweep tests.

Made once per test session under pytest's base temporary folder (the tiny model is trained
once too, see :func:`tiny_models.get_trained_tiny_llama`) and reused by every module:

- ``dev`` and ``train``: zero-shot runs over synthetic texts with three annotators each, so
  answers name several labels and vote fractions are real fractions;
- ``sweep``: ``labeldist sweep`` over 3 shares of multi-label demonstrations, 2 shots each.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
from tiny_models import get_trained_tiny_llama, synthetic_examples, tiny_run_argv

from labeldist.cli import main

SWEEP_SHARES = (0.0, 0.5, 1.0)
SWEEP_SHOTS = 2


def write_data(folder: Path, labels, sizes=(("train", 21, 24), ("dev", 22, 20))) -> Path:
    """Generic-table CSVs, one row per (item, annotator): two annotators follow the cue words,
    the third adds or drops a label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, seed, n in sizes:
        rows = []
        for i, example in enumerate(synthetic_examples(n=n, seed=seed)):
            for annotator in ("a1", "a2", "a3"):
                chosen = set(example.labels)
                if annotator == "a3":
                    chosen ^= {rng.choice(labels)}
                rows.append({"id": f"{split}{i:02d}", "text": example.text, "annotator": annotator,
                             "labels": ",".join(sorted(chosen))})  # fmt: skip
        pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)
    return folder


def analysis_runs(base: Path) -> dict:
    """{"dev": run, "train": run, "sweep": folder, "model": TrainedModel, "argv": run argv}."""
    root = Path(base) / "analysis-runs"
    trained = get_trained_tiny_llama(Path(base) / "tiny-model-cache")
    data = root / "data"
    if not (data / "dev.csv").exists():
        write_data(data, trained.labels)
    argv = [*tiny_run_argv(trained, data, "dev", root), "--option", "annotator_column=annotator"]
    out = {"model": trained, "argv": argv, "data": data}
    for split in ("dev", "train"):
        path = root / f"run-{split}"
        if not (path / "run.json").exists():
            run_argv = [*tiny_run_argv(trained, data, split, root), "--option", "annotator_column=annotator"]
            assert main([*run_argv, "--out", str(path)]) == 0
        out[split] = path
    sweep = root / "sweep"
    if not (sweep / "sweep.json").exists() or not (sweep / "sweep.png").exists():
        assert main(sweep_argv(argv, sweep)) == 0
    out["sweep"] = sweep
    return out


def sweep_argv(run_argv: list[str], out: Path) -> list[str]:
    """`labeldist sweep` with the run's options: the pool is the train split, 2 shots."""
    argv = ["sweep", *run_argv[1:]]
    at = argv.index("--shots")
    argv[at + 1] = str(SWEEP_SHOTS)
    return [*argv, "--multilabel-share", ",".join(f"{s:g}" for s in SWEEP_SHARES), "--limit", "12", "--out", str(out)]
