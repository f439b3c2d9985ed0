"""Score a run's estimators for classification (gold) and alignment (vote fractions).

Every row gets the same item resamples for its intervals. Two reference rows frame the table:
``oracle`` predicts the vote fractions themselves (MAMD 0: the ceiling) and ``prior`` predicts
each label's mean vote fraction *on the calibration run* (a constant: the floor); nothing about
the evaluated run's votes or gold goes into anything fitted. With cross-fitting (``cross_fit=K``)
the calibration items are the other folds of the run itself, never an item's own fold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeldist import atomic
from labeldist.errors import DataError
from labeldist.estimators import DEFAULT_ESTIMATORS, make_estimator, parse_estimator
from labeldist.estimators.crossfit import CrossFit, fold_split
from labeldist.metrics import evaluate_many, tune_thresholds
from labeldist.metrics.registry import METRICS as REGISTRY
from labeldist.runs.arrays import RunArrays
from labeldist.runs.store import RunStore

METRICS = tuple(REGISTRY)  # every metric, in the registry's order (labeldist.metrics.registry)


def evaluate_run(
    run_dir: str | Path,
    estimators: Sequence[str] | None = None,
    *,
    calibrate_on: str | Path | None = None,
    **settings,
) -> dict:
    """:func:`evaluate` on the run at ``run_dir`` (and the calibration run at ``calibrate_on``)."""
    started = time.perf_counter()
    run = RunArrays.load(run_dir)
    calibration = RunArrays.load(calibrate_on) if calibrate_on else None
    result = evaluate(run, estimators, calibration=calibration, started=started, **settings)
    in_split = (run.manifest or {}).get("dataset", {}).get("items")
    if isinstance(in_split, int) and len(run) < in_split:
        result["notes"].append(
            f"{len(run)} of the split's {in_split} items are recorded (a run with --limit or --ids, or one "
            "stopped early: rerun its command to finish it)"
        )
    return result


def evaluate(
    run: RunArrays,
    estimators: Sequence[str] | None = None,
    *,
    calibration: RunArrays | None = None,
    threshold: str = "0.5",
    n_resamples: int = 1000,
    seed: int = 0,
    cross_fit: int | None = None,
    fold_seed: int = 0,
    versus: str | None = None,
    started: float | None = None,
) -> dict:
    """Score ``estimators`` (specs such as ``max`` or ``platt[base=first]``; the method's defaults
    when None) on ``run``, against gold (classification) and vote fractions (alignment), with
    bootstrap intervals; no files are read or written.

    Fitted estimators (platt, probe, encoder, tuned thresholds, the prior row) are fitted on
    ``calibration`` (another run of other items), or, with ``cross_fit=K``, on the run itself by
    K-fold cross-fitting: the items are split into K folds (a permutation drawn with
    ``fold_seed``) and each fold is predicted by estimators fitted on the other K-1, so no item's
    prediction has seen its own votes or gold. Use it when no separate calibration run exists.

    ``versus``: an estimator spec (added to ``estimators`` when not among them) or a reference
    row (``prior``, ``oracle``); every other row then holds ``difference``: its metrics minus
    the reference's on the same bootstrap resamples, with an interval and a two-sided bootstrap
    p-value (:func:`labeldist.metrics.bootstrap.paired_difference`). Use it for every "A beats
    B" claim: overlapping intervals of two rows say little when the rows move together."""
    started = time.perf_counter() if started is None else started
    run_dir, calibrate_on = run.path, calibration.path if calibration is not None else None
    if cross_fit is not None and calibration is not None:
        raise ValueError("give either a calibration run or cross-fitting folds, not both")
    if cross_fit is not None and cross_fit < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, not {cross_fit}")
    if cross_fit is not None and len(run) < cross_fit:
        raise ValueError(f"{run_dir} has {len(run)} items, fewer than the {cross_fit} cross-fitting folds")
    _threshold(threshold, None, None, check_only=True)
    if not len(run):
        raise DataError(run_dir, None, "has no records yet: nothing to evaluate")
    # items in id order: the bootstrap draws positions, so the same seed must see the same items
    # whatever order the records were written in (a resumed run stores them in another order)
    run = run.take(np.argsort(np.asarray(run.ids, dtype=object), kind="stable"))
    if calibration is not None and not len(calibration):
        raise DataError(calibrate_on, None, "has no records yet: nothing to calibrate on")
    if estimators is None:
        estimators = list(DEFAULT_ESTIMATORS[run.method])
        estimators += ["marginal"] if run.marginal_lower is not None else []
        estimators += ["sample"] if run.sampled is not None else []
        if calibration is None and cross_fit is None:
            estimators = [e for e in estimators if not e.startswith("platt")]
    if versus is not None and versus not in estimators and versus not in ("prior", "oracle"):
        estimators = [*estimators, versus]
    if calibration is not None and calibration.method != run.method:
        raise ValueError(f"calibration run {calibrate_on} is a {calibration.method} run, but {run_dir} is a {run.method} run")
    if calibration is not None and calibration.labels != run.labels:
        raise ValueError(f"calibration run {calibrate_on} has labels {calibration.labels}, not {run.labels}")
    if threshold == "tuned" and calibration is None and cross_fit is None:
        raise ValueError("--threshold tuned needs --calibrate-on RUN or --cross-fit K (thresholds are tuned on other items)")
    if calibration is not None and set(calibration.ids) & set(run.ids):
        shared = len(set(calibration.ids) & set(run.ids))
        raise ValueError(f"the calibration run shares {shared} items with the evaluated run")

    predictions: dict[str, tuple[np.ndarray, object]] = {}
    unscored: dict[str, int] = {}
    fitted: dict[str, object] = {}
    notes: list[str] = []
    if cross_fit is not None:
        folds = fold_split(run, cross_fit, fold_seed)
        notes.append(
            f"cross-fitted: {cross_fit} folds of the run itself (fold seed {fold_seed}); every item is predicted "
            "by estimators fitted on the other folds, and the prior row is the other folds' mean"
        )
    for spec in estimators:
        name, params, source = parse_estimator(spec)
        estimator = make_estimator(name, source, **params)
        # what the estimator reads, checked before anything is fitted (Estimator.needs)
        if why := estimator.lacking(run):
            raise ValueError(f"{spec}: {why}")
        if estimator.learns and calibration is not None and (why := estimator.lacking(calibration)):
            raise ValueError(f"{spec}, on the calibration run: {why}")
        if cross_fit is None:
            estimator.fit(calibration)
            cut = _threshold(threshold, estimator, calibration)
        else:  # out-of-fold predictions; each fold's threshold is tuned on the items its clone saw
            estimator = CrossFit(estimator, cross_fit, fold_seed).fit(run)
            cuts = [_threshold(threshold, one, train) for one, (train, _, _) in zip(estimator.estimators_, estimator.folds_)]
            cut = _per_item(cuts, estimator.folds_, run.targets.shape)
        if (learnt := estimator.fitted()) is not None:
            fitted[spec] = learnt
        if missing := estimator.unscored(run):
            unscored[spec] = missing
        predictions[spec] = (np.asarray(estimator.predict_proba(run), dtype=float), cut)
    predictions["oracle"] = (run.targets, 0.5)
    if cross_fit is not None:
        predictions["prior"] = (cross_fitted_prior(run, folds), 0.5)
    elif calibration is not None:
        predictions["prior"] = (np.broadcast_to(calibration.targets.mean(axis=0), run.targets.shape), 0.5)
    else:
        notes.append("no --calibrate-on run: the constant-prior row needs one and is left out")
    if versus is not None and versus not in predictions:
        raise ValueError(f"--versus {versus}: there is no such row (the prior row needs --calibrate-on or --cross-fit)")
    scored = evaluate_many(
        [probs for probs, _ in predictions.values()],
        run.targets,
        run.gold,
        [cut for _, cut in predictions.values()],
        n_resamples=n_resamples,
        seed=seed,
        versus=None if versus is None else list(predictions).index(versus),
    )
    rows: dict[str, dict] = {}
    for (name, (_, cut)), result in zip(predictions.items(), scored):
        if isinstance(cut, np.ndarray) and cut.ndim == 1:
            result["thresholds"] = cut.tolist()
        if name in unscored:
            result["unscored_items"] = unscored[name]
        if name in fitted:
            result["fitted"] = fitted[name]
        rows[name] = result
    with_votes = int(run.votes_available.sum())
    if with_votes < len(run):
        notes.append(
            f"{len(run) - with_votes} of {len(run)} items have no annotator votes: their alignment "
            "metrics compare with the gold labels (0/1) instead"
        )
    absent = [label for label, count in zip(run.labels, run.gold.sum(axis=0)) if count == 0]
    if absent:
        shown = ", ".join(absent[:8]) + (" ..." if len(absent) > 8 else "")
        notes.append(
            f"{len(absent)} of {len(run.labels)} labels are gold for none of these items ({shown}): their F1 is 0 "
            f"(scikit-learn's convention), so macro-F1 is at most {(len(run.labels) - len(absent)) / len(run.labels):.3f}"
        )
    unparsed = int((~run.parsed).sum())
    if unparsed:
        notes.append(f"{unparsed} answers could not be parsed: slot estimators give them no label")
    result = {
        "run": str(run_dir),
        "calibration_run": str(calibrate_on) if calibrate_on else None,
        "items": len(run),
        "items_with_votes": with_votes,
        "labels": list(run.labels),
        "labels_without_gold": absent,
        "threshold": threshold,
        "bootstrap": {"resamples": n_resamples, "confidence": 0.95, "seed": seed},
        "estimators": rows,
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if cross_fit is not None:  # only then: evaluation.json of a calibration run stays as it was
        result["cross_fit"] = {"folds": cross_fit, "seed": fold_seed}
    if versus is not None:  # likewise: an evaluation without --versus is byte-for-byte as before
        result["versus"] = versus
    return result


def _per_item(cuts: list, folds: list, shape: tuple[int, int]):
    """One threshold per fold -> one per item and label (or the shared scalar if all agree)."""
    if all(np.ndim(cut) == 0 for cut in cuts) and len({float(cut) for cut in cuts}) == 1:
        return cuts[0]
    per_item = np.empty(shape)
    for cut, (_, _, where) in zip(cuts, folds):
        per_item[where] = cut
    return per_item


def _threshold(threshold: str, estimator, calibration: RunArrays | None, check_only: bool = False):
    """The decision threshold: a number in [0, 1], or per-label thresholds tuned on ``calibration``."""
    if threshold == "tuned":
        return None if check_only else tune_thresholds(estimator.predict_proba(calibration), calibration.gold)
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in [0, 1] or 'tuned', not {threshold!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1] or 'tuned', not {threshold!r}")
    return value


def write_evaluation(result: dict, run_dir: str | Path) -> Path:
    """Write ``result`` as indented JSON to ``run_dir/evaluation.json`` and return that path."""
    path = Path(run_dir) / "evaluation.json"
    atomic.write_json(path, result)
    return path


def format_table(result: dict, metrics: Sequence[str] = METRICS, style: str = "text", width: int | None = None) -> str:
    """Rows: estimators (then the reference rows); columns: metrics as value [low, high]."""
    rows = [{"estimator": name, **row} for name, row in result["estimators"].items()]
    return format_rows(rows, ("estimator",), metrics, style, width)


def format_rows(
    rows: Sequence[dict],
    keys: Sequence[str],
    metrics: Sequence[str] = METRICS,
    style: str = "text",
    width: int | None = None,
) -> str:
    """A table of rows: ``keys`` columns as text, ``metrics`` as value [low, high].

    ``style``: "text" (aligned columns for a terminal) or "markdown" (a pipe table). ``width``
    (text only): the metric columns are wrapped into blocks no wider than this, each block
    repeating the key columns (as pandas wraps a wide frame); None: one line per row."""
    if style not in ("text", "markdown"):
        raise ValueError(f"table style must be text or markdown, not {style!r}")
    header = [*keys, *metrics]
    body = [[str(row.get(key, "")) for key in keys] + [_cell(row.get(metric)) for metric in metrics] for row in rows]
    if style == "text" and width is not None:
        # a key longer than a third of the width (a model given as a long path) keeps its end
        longest = max(12, width // 3)
        body = [
            [c if len(c) <= longest else "…" + c[-(longest - 1) :] for c in cells[: len(keys)]] + cells[len(keys) :]
            for cells in body
        ]
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in column) + 2 for column in zip(header, *body)]
    k = len(keys)
    blocks: list[list[int]] = [[]]
    for column in range(k, len(header)):
        used = sum(widths[:k]) + sum(widths[c] for c in blocks[-1])
        if width is not None and blocks[-1] and used + widths[column] > width:
            blocks.append([])
        blocks[-1].append(column)
    out = []
    for block in blocks:
        lines = []
        for cells in [header, *body]:
            text = [c.ljust(w) for c, w in zip(cells[:k], widths)] + [cells[c].rjust(widths[c]) for c in block]
            lines.append("".join(text).rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def format_differences(result: dict, metrics: Sequence[str] = METRICS, style: str = "text", width: int | None = None) -> str:
    """Rows: estimators; columns: each metric's paired difference from ``result["versus"]`` as
    value [low, high] (an interval that excludes 0 is marked *), from an evaluation with ``versus``."""
    if not result.get("versus"):
        raise ValueError("this evaluation was made without versus: it holds no paired differences")
    rows = []
    for name, row in result["estimators"].items():
        if "difference" not in row:
            continue
        rows.append({"estimator": f"{name} - {result['versus']}", **marked(row["difference"], metrics)})
    return format_rows(rows, ("estimator",), metrics, style, width)


def marked(difference: dict, metrics: Sequence[str] = METRICS) -> dict:
    """A row's paired differences (``difference`` of an evaluation with ``versus``) with each
    cell marked ``*`` where its interval excludes 0, as tables show them."""
    out = {}
    for metric in metrics:
        cell = dict(difference[metric])
        cell["mark"] = "*" if cell["low"] > 0 or cell["high"] < 0 else ""
        out[metric] = cell
    return out


def cross_fitted_prior(run: RunArrays, folds) -> np.ndarray:
    """The ``prior`` row under cross-fitting: each item gets each label's mean vote fraction on
    the other folds (``folds``: :func:`~labeldist.estimators.crossfit.fold_split` of ``run``)."""
    prior = np.empty(run.targets.shape)
    for train, _, where in folds:
        prior[where] = train.targets.mean(axis=0)
    return prior


def _cell(value) -> str:
    if not isinstance(value, dict) or value.get("value") is None or np.isnan(value["value"]):
        return "n/a"
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]{value.get('mark', '')}"


def compare_runs(run_dirs: Sequence[str | Path], estimators: Sequence[str] | None = None) -> list[dict]:
    """One row per (run, estimator) from each run's evaluation.json, with the run's model, dataset
    and split. ``estimators`` keeps only those rows (the reference rows oracle and prior too if
    named)."""

    rows = []
    for run_dir in run_dirs:
        store = RunStore(run_dir)
        manifest = store.read_manifest()
        path = Path(run_dir) / "evaluation.json"
        if not path.exists():
            raise DataError(str(run_dir), None, f"has no evaluation.json: run `labeldist evaluate {run_dir} --save` first")
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(str(path), err.lineno, f"invalid JSON: {err.msg}") from None
        config = manifest.get("config", {})
        dataset = manifest.get("dataset", {})
        for name, row in result.get("estimators", {}).items():
            if estimators is not None and name not in estimators:
                continue
            rows.append(
                {
                    "run": Path(run_dir).name,
                    "model": config.get("model", manifest.get("model", "")),
                    "dataset": "/".join(
                        (str(dataset.get("name", config.get("dataset", ""))), str(dataset.get("split", config.get("split", ""))))
                    ),
                    "items": result.get("items"),
                    "calibration": Path(result["calibration_run"]).name if result.get("calibration_run") else "",
                    "estimator": name,
                    **{metric: row.get(metric) for metric in METRICS},
                }
            )
    return rows
