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

from labeldist.metrics.alignment import (
    bce_per_item,
    brier_per_item,
    ece,
    ece_bins,
    mamd_per_item,
    spearman_per_item,
)
from labeldist.metrics.classification import (
    binarize,
    exact_match_per_item,
    f1_from_counts,
    jaccard_per_item,
    macro_f1,
    micro_f1,
    per_label_f1,
)

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
    probs, targets, gold = _as_matrix("probs", probs), _as_matrix("targets", targets), _as_matrix("gold", gold)
    if not probs.shape == targets.shape == gold.shape:
        raise ValueError(f"probs, targets and gold differ in shape: {probs.shape}, {targets.shape}, {gold.shape}")
    n, n_labels = probs.shape
    pred = binarize(probs, threshold)

    means = {
        "jaccard": _MeanAccumulator(jaccard_per_item(gold, pred)),
        "exact_match": _MeanAccumulator(exact_match_per_item(gold, pred)),
        "mamd": _MeanAccumulator(mamd_per_item(probs, targets)),
        "bce": _MeanAccumulator(bce_per_item(probs, targets)),
        "brier": _MeanAccumulator(brier_per_item(probs, targets)),
        "spearman": _MeanAccumulator(spearman_per_item(probs, targets)),
    }
    # sums over items: per-label tp, fp, fn; per-bin count and sums of p and t (items x bins)
    tp, fp, fn = gold * pred, (1 - gold) * pred, gold * (1 - pred)
    bins = ece_bins(probs, n_bins)
    cell = (np.arange(n)[:, None] * n_bins + bins).ravel()
    bin_stats = [
        np.bincount(cell, weights=w, minlength=n * n_bins).reshape(n, n_bins) for w in (None, probs.ravel(), targets.ravel())
    ]
    micro, macro, eces = [], [], []
    for counts in _count_blocks(n, n_resamples, seed):
        for acc in means.values():
            acc.add(counts)
        rtp, rfp, rfn = counts @ tp, counts @ fp, counts @ fn  # rows x labels
        micro.append(f1_from_counts(rtp.sum(1), rfp.sum(1), rfn.sum(1)))
        macro.append(f1_from_counts(rtp, rfp, rfn).mean(1))
        count, sum_p, sum_t = (counts @ s for s in bin_stats)  # rows x bins
        eces.append(np.abs(sum_p - sum_t).sum(1) / count.sum(1))

    def interval(value: float, stats: list) -> dict:
        low, high = _percentiles(np.concatenate(stats) if stats else np.zeros(0), confidence)
        return {"value": value, "low": low, "high": high}

    empty = n == 0
    out = {
        "micro_f1": interval(float("nan") if empty else micro_f1(gold, pred), micro),
        "macro_f1": interval(float("nan") if empty else macro_f1(gold, pred), macro),
    }
    for key, acc in means.items():
        value, low, high = acc.result(confidence)
        out[key] = {"value": value, "low": low, "high": high}
    out["ece"] = interval(ece(probs, targets, n_bins), eces)
    out["per_label_f1"] = per_label_f1(gold, pred).tolist() if not empty else [float("nan")] * n_labels
    out["spearman_skipped"] = int(np.isnan(spearman_per_item(probs, targets)).sum())
    return out
