"""Score a run's estimators for classification (gold) and alignment (vote fractions).

Every row gets the same item resamples for its intervals. Two reference rows frame the table:
``oracle`` predicts the vote fractions themselves (MAMD 0: the ceiling) and ``prior`` predicts
each label's mean vote fraction *on the calibration run* (a constant: the floor); nothing about
the evaluated run's votes or gold goes into anything fitted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeldist.estimators import make_estimator
from labeldist.metrics import evaluate_many, tune_thresholds
from labeldist.runs.arrays import RunArrays

METRICS = ("micro_f1", "macro_f1", "jaccard", "exact_match", "mamd", "bce", "brier", "spearman", "ece")
DEFAULT_ESTIMATORS = ("first", "max", "mean", "noisy-or", "output")


def parse_estimator(spec: str) -> tuple[str, str]:
    """``max`` -> (max, exact); ``max@first-token`` -> (max, first-token)."""
    name, _, source = spec.partition("@")
    return name.strip(), (source.strip() or "exact")


def evaluate_run(
    run_dir: str | Path,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    *,
    calibrate_on: str | Path | None = None,
    threshold: str = "0.5",
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    started = time.perf_counter()
    run = RunArrays.load(run_dir)
    calibration = RunArrays.load(calibrate_on) if calibrate_on else None
    if calibration is not None and calibration.labels != run.labels:
        raise ValueError(f"calibration run {calibrate_on} has labels {calibration.labels}, not {run.labels}")
    if threshold == "tuned" and calibration is None:
        raise ValueError("--threshold tuned needs --calibrate-on RUN (thresholds are tuned on another run)")
    if calibration is not None and set(calibration.ids) & set(run.ids):
        shared = len(set(calibration.ids) & set(run.ids))
        raise ValueError(f"the calibration run shares {shared} items with the evaluated run")

    predictions: dict[str, tuple[np.ndarray, object]] = {}
    unscored: dict[str, int] = {}
    notes: list[str] = []
    for spec in estimators:
        name, source = parse_estimator(spec)
        estimator = make_estimator(name, source)
        estimator.fit(calibration)
        probs = estimator.predict_proba(run)
        predictions[spec] = (probs, _threshold(threshold, estimator, calibration))
        if getattr(estimator, "unscored_", 0):
            unscored[spec] = estimator.unscored_
    predictions["oracle"] = (run.targets, 0.5)
    if calibration is not None:
        predictions["prior"] = (np.broadcast_to(calibration.targets.mean(axis=0), run.targets.shape), 0.5)
    else:
        notes.append("no --calibrate-on run: the constant-prior row needs one and is left out")
    scored = evaluate_many(
        [probs for probs, _ in predictions.values()],
        run.targets,
        run.gold,
        [cut for _, cut in predictions.values()],
        n_resamples=n_resamples,
        seed=seed,
    )
    rows: dict[str, dict] = {}
    for (name, (_, cut)), result in zip(predictions.items(), scored):
        if isinstance(cut, np.ndarray):
            result["thresholds"] = cut.tolist()
        if name in unscored:
            result["unscored_items"] = unscored[name]
        rows[name] = result
    with_votes = int(run.votes_available.sum())
    if with_votes < len(run):
        notes.append(
            f"{len(run) - with_votes} of {len(run)} items have no annotator votes: their alignment "
            "metrics compare with the gold labels (0/1) instead"
        )
    unparsed = int((~run.parsed).sum())
    if unparsed:
        notes.append(f"{unparsed} answers could not be parsed: slot estimators give them no label")
    return {
        "run": str(run_dir),
        "calibration_run": str(calibrate_on) if calibrate_on else None,
        "items": len(run),
        "items_with_votes": with_votes,
        "labels": list(run.labels),
        "threshold": threshold,
        "bootstrap": {"resamples": n_resamples, "confidence": 0.95, "seed": seed},
        "estimators": rows,
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _threshold(threshold: str, estimator, calibration: RunArrays | None):
    if threshold == "tuned":
        return tune_thresholds(estimator.predict_proba(calibration), calibration.gold)
    try:
        return float(threshold)
    except ValueError:
        raise ValueError(f"threshold must be a number or 'tuned', not {threshold!r}") from None


def write_evaluation(result: dict, run_dir: str | Path) -> Path:
    path = Path(run_dir) / "evaluation.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    return path


def format_table(result: dict, metrics: Sequence[str] = METRICS) -> str:
    """Rows: estimators (then the reference rows); columns: metrics as value [low, high]."""
    rows = result["estimators"]
    name_width = max(len(name) for name in rows) + 2
    cell = 22
    lines = ["".ljust(name_width) + "".join(m.rjust(cell) for m in metrics)]
    for name, row in rows.items():
        cells = []
        for metric in metrics:
            value = row.get(metric)
            if value is None or value.get("value") is None or np.isnan(value["value"]):
                cells.append("n/a".rjust(cell))
            else:
                cells.append(f"{value['value']:.3f} [{value['low']:.3f},{value['high']:.3f}]".rjust(cell))
        lines.append(name.ljust(name_width) + "".join(cells))
    return "\n".join(lines)
