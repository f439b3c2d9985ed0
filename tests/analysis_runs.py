"""Real runs of the trained tiny model for the analysis, report and sweep tests.

Made once per test session under pytest's base temporary folder (the tiny model is trained
once too, see :func:`tiny_models.get_trained_tiny_llama`) and reused by every module:

- ``dev`` and ``train``: zero-shot runs over synthetic texts with three annotators each, so
  answers name several labels and vote fractions are real fractions;
- ``sweep``: ``labeldist sweep`` over 3 shares of multi-label demonstrations, 2 shots each.
"""

from __future__ import annotations

from pathlib import Path

from tiny_models import get_trained_tiny_llama, tiny_run_argv, write_vote_tables

from labeldist.cli import main

SWEEP_SHARES = (0.0, 0.5, 1.0)
SWEEP_SHOTS = 2


def analysis_runs(base: Path) -> dict:
    """{"dev": run, "train": run, "sweep": folder, "model": TrainedModel, "argv": run argv}."""
    root = Path(base) / "analysis-runs"
    trained = get_trained_tiny_llama(Path(base) / "tiny-model-cache")
    data = root / "data"
    if not (data / "dev.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        write_vote_tables(data, trained.labels, (("train", 24, 21), ("dev", 20, 22)))
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
