"""Metrics: plain functions on items x labels arrays, and bootstrap intervals over items.

Conventions: F1 of a label with no gold and no predicted positive is 1 (scikit-learn's
zero_division=1); example-based Jaccard of an item with neither is 1; per-item Spearman is NaN
when predictions or targets are constant over the labels, and such items are left out of its
mean (counted in spearman_skipped); ECE uses 10 equal-width bins over all (item, label) pairs
with soft targets. Intervals: percentile bootstrap over items, all metrics on the same resamples.
"""

from __future__ import annotations

import numpy as np


def binarize(probs: np.ndarray, threshold) -> np.ndarray:
    return (np.asarray(probs) >= np.asarray(threshold)).astype(float)


def _f1(tp, fp, fn):
    denominator = 2 * tp + fp + fn
    # nothing to find and nothing claimed scores 1 (scikit-learn's zero_division=1): otherwise a
    # label absent from the evaluated items would cap even the oracle's macro F1 below 1
    return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 1.0)


def per_label_f1(gold, pred):
    tp = (gold * pred).sum(0)
    return _f1(tp, ((1 - gold) * pred).sum(0), (gold * (1 - pred)).sum(0))


def micro_f1(gold, pred):
    tp = (gold * pred).sum()
    return float(_f1(tp, ((1 - gold) * pred).sum(), (gold * (1 - pred)).sum()))


def macro_f1(gold, pred):
    return float(per_label_f1(gold, pred).mean())


def jaccard_per_item(gold, pred):
    inter = (gold * pred).sum(1)
    union = np.maximum(gold, pred).sum(1)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)


def exact_match_per_item(gold, pred):
    return (gold == pred).all(1).astype(float)


def mamd_per_item(probs, targets):
    return (2 * np.abs(probs - targets)).mean(1)


def bce_per_item(probs, targets, eps=1e-6):
    p = np.clip(probs, eps, 1 - eps)
    return -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean(1)


def brier_per_item(probs, targets):
    return ((probs - targets) ** 2).mean(1)


def spearman_per_item(probs, targets):
    from scipy.stats import rankdata

    rp, rt = rankdata(probs, axis=1), rankdata(targets, axis=1)
    rp = rp - rp.mean(1, keepdims=True)
    rt = rt - rt.mean(1, keepdims=True)
    denominator = np.sqrt((rp**2).sum(1) * (rt**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rp * rt).sum(1) / denominator, np.nan)


def ece(probs, targets, n_bins=10):
    p, t = np.ravel(probs), np.ravel(targets)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            total += inside.mean() * abs(p[inside].mean() - t[inside].mean())
    return float(total)


THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)


def tune_thresholds(probs, gold, grid=THRESHOLD_GRID):
    """Per label, the grid threshold with the best F1 on a calibration set (ties: nearest 0.5)."""
    best = np.full(probs.shape[1], 0.5)
    for label in range(probs.shape[1]):
        scores = [per_label_f1(gold[:, [label]], binarize(probs[:, [label]], g))[0] for g in grid]
        top = max(scores)
        candidates = [g for g, s in zip(grid, scores) if s == top]
        best[label] = min(candidates, key=lambda g: abs(g - 0.5))
    return best


def _interval(values: np.ndarray, confidence: float) -> dict:
    values = values[np.isfinite(values)]
    if not len(values):
        return {"low": float("nan"), "high": float("nan")}
    low, high = np.percentile(values, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    return {"low": float(low), "high": float(high)}


def _resample_weights(rng, n: int, n_resamples: int) -> np.ndarray:
    """(resamples x items) counts of a bootstrap: each row draws n items with replacement."""
    draws = rng.integers(0, n, size=(n_resamples, n)) if n else np.zeros((n_resamples, 0), int)
    weights = np.zeros((n_resamples, n), dtype=np.float32)
    for r in range(n_resamples):
        weights[r] = np.bincount(draws[r], minlength=n)
    return weights


def _resampled_ece(probs, targets, weights, n_bins=10) -> np.ndarray:
    """ECE of every resample at once: each item's per-bin count and sums of p and t, then one
    weighted sum per resample (resamples x items @ items x (3 * bins))."""
    n = len(probs)
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    rows = np.repeat(np.arange(n), probs.shape[1])
    flat = rows * n_bins + bins.ravel()
    size = n * n_bins
    per_item = np.stack(
        [
            np.bincount(flat, minlength=size),
            np.bincount(flat, weights=probs.ravel(), minlength=size),
            np.bincount(flat, weights=targets.ravel(), minlength=size),
        ]
    ).reshape(3, n, n_bins)
    counts, sum_p, sum_t = (weights @ per_item[i] for i in range(3))  # resamples x bins
    total = counts.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(sum_p - sum_t).sum(1) / total


def evaluate_probs(probs, targets, gold, threshold=0.5, n_resamples=1000, seed=0, confidence=0.95) -> dict:
    """Every metric with a bootstrap interval; all metrics share the same item resamples."""
    probs, targets, gold = (np.asarray(a, dtype=float) for a in (probs, targets, gold))
    pred = binarize(probs, threshold)
    n = len(probs)
    rng = np.random.default_rng(seed)
    weights = _resample_weights(rng, n, n_resamples)  # resamples x items: how often each item is drawn
    per_item = {
        "jaccard": jaccard_per_item(gold, pred),
        "exact_match": exact_match_per_item(gold, pred),
        "mamd": mamd_per_item(probs, targets),
        "bce": bce_per_item(probs, targets),
        "brier": brier_per_item(probs, targets),
        "spearman": spearman_per_item(probs, targets),
    }
    out = {}
    for key, values in per_item.items():
        finite = np.isfinite(values)
        value = float(values[finite].mean()) if finite.any() else float("nan")
        kept = weights[:, finite]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (kept @ values[finite]) / kept.sum(1)
        out[key] = {"value": value, **_interval(means, confidence)}
    # count metrics: each resample's counts are weighted sums of the items' counts
    tp, fp, fn = gold * pred, (1 - gold) * pred, gold * (1 - pred)
    rtp, rfp, rfn = weights @ tp, weights @ fp, weights @ fn  # resamples x labels
    out["micro_f1"] = {"value": micro_f1(gold, pred), **_interval(_f1(rtp.sum(1), rfp.sum(1), rfn.sum(1)), confidence)}
    out["macro_f1"] = {"value": macro_f1(gold, pred), **_interval(_f1(rtp, rfp, rfn).mean(1), confidence)}
    out["ece"] = {"value": ece(probs, targets), **_interval(_resampled_ece(probs, targets, weights), confidence)}
    out["per_label_f1"] = per_label_f1(gold, pred).tolist()
    out["spearman_skipped"] = int(np.isnan(per_item["spearman"]).sum())
    return out
