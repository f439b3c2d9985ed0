"""Percentile bootstrap intervals over items.

A resample plan is a deterministic function of (number of items, n_resamples, seed): item indices
drawn with replacement by ``numpy.random.default_rng(seed)``, a block of resamples at a time (whole
index rows per block, the block size fixed by the number of items, to bound memory at 50,000+ items).
``bootstrap_interval``, ``bootstrap_metric`` and ``evaluate_probs`` all read the same plan, so for one
seed every metric is computed on the same item resamples and intervals are comparable.

Means of per-item values are bootstrapped without copying rows: each resample is a row of draw
counts, and its mean is (counts @ values) / counts.sum(). Micro/macro F1 and ECE are not means of
per-item values, but their sufficient statistics (per-label tp/fp/fn, per-bin sums of p and t) are
sums over items, so ``evaluate_probs`` gets them for all resamples with the same matrix products.
The interval is the (1 - confidence)/2 and (1 + confidence)/2 percentiles of the resampled
statistics (NaN resamples left out); the point value is the statistic on the full data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from labeldist.metrics.alignment import ece, ece_bins
from labeldist.metrics.classification import binarize, f1_from_counts, macro_f1, micro_f1, per_label_f1
from labeldist.metrics.registry import MEAN_METRICS, METRICS

_BLOCK_CELLS = 1 << 22  # index cells per block (~32 MB of int64 indices)


def _index_blocks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks (rows x n) of item indices; concatenated they are the n_resamples x n index matrix."""
    if n <= 0 or n_resamples <= 0:
        return
    rng = np.random.default_rng(seed)
    rows = max(1, min(n_resamples, _BLOCK_CELLS // n))
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n))


def _count_blocks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The same plan as draw counts: blocks (rows x n) of how often each item is drawn."""
    for idx in _index_blocks(n, n_resamples, seed):
        rows = len(idx)
        flat = (idx + n * np.arange(rows)[:, None]).ravel()
        yield np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)


def resample_indices(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The whole plan as one n_resamples x n index matrix (for inspection and tests)."""
    blocks = list(_index_blocks(n, n_resamples, seed))
    return np.concatenate(blocks) if blocks else np.zeros((max(n_resamples, 0), max(n, 0)), dtype=int)


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    stats = np.asarray(stats, dtype=float)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return float("nan"), float("nan")
    low, high = np.percentile(stats, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(low), float(high)


class _MeanAccumulator:
    """Bootstrap of a NaN-aware mean of per-item values, fed count blocks."""

    def __init__(self, values: np.ndarray):
        values = np.asarray(values, dtype=float).ravel()
        self.finite = np.isfinite(values)
        kept = values[self.finite]
        # centred on one observed value: constant values give exactly that value in every resample
        self.anchor = float(kept[0]) if len(kept) else float("nan")
        self.centred = kept - self.anchor if len(kept) else kept
        self.value = self.anchor + float(self.centred.mean()) if len(kept) else float("nan")
        self.stats: list[np.ndarray] = []

    def add(self, counts: np.ndarray) -> None:
        kept = counts if self.finite.all() else counts[:, self.finite]
        total = kept.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.stats.append(self.anchor + (kept @ self.centred) / total)

    def result(self, confidence: float) -> tuple[float, float, float]:
        stats = np.concatenate(self.stats) if self.stats else np.zeros(0)
        return (self.value, *_percentiles(stats, confidence))


def bootstrap_interval(per_item_values, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0):
    """(value, low, high): NaN-aware mean of the per-item values and its percentile bootstrap
    interval over items. NaN items are left out of every mean (as in ``np.nanmean``)."""
    acc = _MeanAccumulator(per_item_values)
    for counts in _count_blocks(len(acc.finite), n_resamples, seed):
        acc.add(counts)
    return acc.result(confidence)


def bootstrap_metric(
    fn: Callable[..., float],
    arrays: Sequence,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
):
    """(value, low, high) for any statistic ``fn(*arrays)`` of item-row arrays (e.g. micro_f1 on
    gold and pred): item rows of all arrays are resampled together, one call of fn per resample."""
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("bootstrap_metric needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays differ in their number of items: {[len(a) for a in arrays]}")
    value = float(fn(*arrays)) if n else float("nan")
    stats = [float(fn(*(a[row] for a in arrays))) for idx in _index_blocks(n, n_resamples, seed) for row in idx]
    return (value, *_percentiles(np.array(stats), confidence))


def _as_matrix(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an items x labels array, got shape {a.shape}")
    return a


def evaluate_probs(
    probs,
    targets,
    gold,
    threshold=0.5,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    n_bins: int = 10,
) -> dict:
    """Every metric with a percentile bootstrap interval over items, all on the same resamples.

    Returns ``{metric: {"value", "low", "high"}}`` for micro_f1, macro_f1, jaccard, exact_match,
    mamd, bce, brier, spearman, ece; ``per_label_f1`` (list, no interval) and ``spearman_skipped``
    (items whose Spearman is undefined, left out of its mean). Predictions are
    ``probs >= threshold`` (scalar or one threshold per label).
    """
    return evaluate_many([probs], targets, gold, [threshold], n_resamples, seed, confidence, n_bins)[0]


# the means of per-item values, in the registry's order (labeldist.metrics.registry)
_MEAN_METRICS = MEAN_METRICS


class _Row:
    """One predictor's per-item sufficient statistics: the columns its resampled metrics need.

    Columns: for each mean metric, the centred per-item value (0 where NaN) and a finite
    indicator (the resampled NaN-aware mean is anchor + counts@centred / counts@finite); per-label
    true and false positives (false negatives are gold minus true positives); per-bin count and
    sums of p and t for ECE. Every column is a sum over items, so one matrix product with the
    resample counts gives all resamples at once."""

    def __init__(self, probs, targets, gold, threshold, n_bins: int):
        n, self.n_labels = probs.shape
        self.n_bins = n_bins
        pred = binarize(probs, threshold)
        per_item = {key: METRICS[key].per_item(probs, targets, gold, pred) for key in _MEAN_METRICS}
        columns, self.anchors, self.values = [], [], {}
        for key in _MEAN_METRICS:
            values = np.asarray(per_item[key], dtype=float)
            finite = np.isfinite(values)
            # centred on one observed value: constant values give exactly that value in every resample
            anchor = float(values[finite][0]) if finite.any() else float("nan")
            centred = np.where(finite, values - (anchor if finite.any() else 0.0), 0.0)
            self.anchors.append(anchor)
            self.values[key] = anchor + float(centred[finite].mean()) if finite.any() else float("nan")
            columns += [centred[:, None], finite[:, None].astype(float)]
        columns += [gold * pred, (1 - gold) * pred]
        bins = ece_bins(probs, n_bins)
        cell = (np.arange(n)[:, None] * n_bins + bins).ravel()
        for weights in (None, probs.ravel(), targets.ravel()):
            columns.append(np.bincount(cell, weights=weights, minlength=n * n_bins).reshape(n, n_bins))
        self.matrix = np.hstack(columns)
        self.width = self.matrix.shape[1]
        empty = n == 0
        self.point = {
            "micro_f1": float("nan") if empty else micro_f1(gold, pred),
            "macro_f1": float("nan") if empty else macro_f1(gold, pred),
            "ece": ece(probs, targets, n_bins),
        }
        self.per_label_f1 = per_label_f1(gold, pred).tolist() if not empty else [float("nan")] * self.n_labels
        self.spearman_skipped = int(np.isnan(per_item["spearman"]).sum())
        self.stats: dict[str, list[np.ndarray]] = {key: [] for key in METRICS}

    def add(self, sums: np.ndarray, gold_sums: np.ndarray) -> None:
        """``sums``: resamples x this row's columns (counts @ matrix); ``gold_sums``: resamples x labels."""
        k, b = self.n_labels, self.n_bins
        with np.errstate(invalid="ignore", divide="ignore"):
            for i, key in enumerate(_MEAN_METRICS):
                self.stats[key].append(self.anchors[i] + sums[:, 2 * i] / sums[:, 2 * i + 1])
            at = 2 * len(_MEAN_METRICS)
            tp, fp = sums[:, at : at + k], sums[:, at + k : at + 2 * k]
            fn = gold_sums - tp
            self.stats["micro_f1"].append(f1_from_counts(tp.sum(1), fp.sum(1), fn.sum(1)))
            self.stats["macro_f1"].append(f1_from_counts(tp, fp, fn).mean(1))
            at += 2 * k
            count, sum_p, sum_t = sums[:, at : at + b], sums[:, at + b : at + 2 * b], sums[:, at + 2 * b : at + 3 * b]
            self.stats["ece"].append(np.abs(sum_p - sum_t).sum(1) / count.sum(1))

    def result(self, confidence: float) -> dict:
        def interval(value: float, stats: list) -> dict:
            low, high = _percentiles(np.concatenate(stats) if stats else np.zeros(0), confidence)
            return {"value": value, "low": low, "high": high}

        # in the registry's order: what evaluation.json and every table show
        out = {
            key: interval(self.values[key] if metric.kind == "mean" else self.point[metric.kind], self.stats[key])
            for key, metric in METRICS.items()
        }
        out["per_label_f1"] = self.per_label_f1
        out["spearman_skipped"] = self.spearman_skipped
        return out


def paired_difference(row: _Row, reference: _Row, ours: dict, theirs: dict, confidence: float) -> dict:
    """Every metric of ``row`` minus the same metric of ``reference``, resample by resample.

    Both rows were computed on the same resamples, so the interval of the difference is far
    narrower than two overlapping intervals suggest when the rows move together. ``p`` is the
    two-sided bootstrap p-value: twice the share of resampled differences on the far side of 0
    (capped at 1), i.e. how often resampling the items reverses (or ties) the sign. ``ours`` and
    ``theirs`` are the two rows' results, whose point values are subtracted."""
    out = {}
    for key in METRICS:
        a = np.concatenate(row.stats[key]) if row.stats[key] else np.zeros(0)
        b = np.concatenate(reference.stats[key]) if reference.stats[key] else np.zeros(0)
        differences = a - b
        differences = differences[np.isfinite(differences)]
        low, high = _percentiles(differences, confidence)
        if len(differences):
            p = min(1.0, 2 * min(float((differences <= 0).mean()), float((differences >= 0).mean())))
        else:
            p = float("nan")
        out[key] = {"value": ours[key]["value"] - theirs[key]["value"], "low": low, "high": high, "p": p}
    return out


def evaluate_many(
    probs_list: Sequence,
    targets,
    gold,
    thresholds: Sequence,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    n_bins: int = 10,
    versus: int | None = None,
) -> list[dict]:
    """``evaluate_probs`` for several predictors of the same items in one pass over the resamples.

    Each resample block's draw counts are made once and multiplied with every predictor's
    sufficient statistics at once (one matrix product), so a table of many estimators costs
    little more than one row. ``versus``: the index of a reference predictor; every other
    predictor's result then holds ``"difference"``, its paired difference from the reference
    (:func:`paired_difference`) on the same resamples.
    """
    targets, gold = _as_matrix("targets", targets), _as_matrix("gold", gold)
    if targets.shape != gold.shape:
        raise ValueError(f"targets and gold differ in shape: {targets.shape}, {gold.shape}")
    if len(probs_list) != len(thresholds):
        raise ValueError(f"{len(probs_list)} predictors but {len(thresholds)} thresholds")
    rows = []
    for probs, threshold in zip(probs_list, thresholds):
        probs = _as_matrix("probs", probs)
        if probs.shape != gold.shape:
            raise ValueError(f"probs, targets and gold differ in shape: {probs.shape}, {targets.shape}, {gold.shape}")
        rows.append(_Row(probs, targets, gold, threshold, n_bins))
    if not rows:
        return []
    matrix = np.hstack([gold] + [row.matrix for row in rows])
    edges = np.cumsum([gold.shape[1]] + [row.width for row in rows])
    for counts in _count_blocks(len(gold), n_resamples, seed):
        sums = counts @ matrix
        for row, start, stop in zip(rows, edges[:-1], edges[1:]):
            row.add(sums[:, start:stop], sums[:, : gold.shape[1]])
    results = [row.result(confidence) for row in rows]
    if versus is not None:
        if not 0 <= versus < len(rows):
            raise ValueError(f"versus must index one of the {len(rows)} predictors, not {versus}")
        for i, (row, result) in enumerate(zip(rows, results)):
            if i != versus:
                result["difference"] = paired_difference(row, rows[versus], result, results[versus], confidence)
    return results
