"""Alignment of predicted per-label probabilities ``probs`` with annotator vote fractions ``targets``.

Both are items x labels arrays in [0, 1]. Per-item metrics average over the labels; the scalar
wrappers average the per-item vectors over items (the per-item vectors are what the bootstrap
resamples).

- MAMD (LeWiDi 2025 multi-label average Manhattan distance): per label the Manhattan distance
  between Bernoulli(p) and Bernoulli(t), |p - t| + |(1 - p) - (1 - t)| = 2|p - t|; in [0, 2].
- Soft binary cross-entropy: -(t log p + (1 - t) log(1 - p)) with p clipped to [eps, 1 - eps].
  Not 0 at p = t for soft t (it is the NLL of the vote fractions, minimal at p = t).
- Brier: (p - t)^2; in [0, 1].
- Spearman: rank correlation of the item's p and t vectors over labels (``scipy.stats.spearmanr``
  semantics: average ranks for ties, Pearson on ranks). NaN when either vector is constant
  (including items with a single label); the scalar wrapper skips NaN items and can report how many.
- ECE over all (item, label) pairs, equal-width bins on p (bin = min(floor(p * n_bins), n_bins - 1),
  so p = 1 falls in the last bin): sum over bins of (share of pairs in the bin) * |mean p - mean t|,
  with soft t. In [0, 1]. Binned ECE as in M. P. Naeini, G. Cooper and M. Hauskrecht,
  "Obtaining well calibrated probabilities using Bayesian binning" (AAAI 2015) and C. Guo et al.,
  "On calibration of modern neural networks" (ICML 2017), here over (item, label) pairs.
"""

from __future__ import annotations

import numpy as np


def _pair(probs, targets) -> tuple[np.ndarray, np.ndarray]:
    probs, targets = np.asarray(probs, dtype=float), np.asarray(targets, dtype=float)
    if probs.ndim != 2 or probs.shape != targets.shape:
        raise ValueError(f"probs and targets must be items x labels arrays of one shape, got {probs.shape} and {targets.shape}")
    return probs, targets


def mamd_per_item(probs, targets) -> np.ndarray:
    """Per item, the mean over labels of the Manhattan distance 2|p - t| (MAMD)."""
    probs, targets = _pair(probs, targets)
    return (2 * np.abs(probs - targets)).mean(1)


def bce_per_item(probs, targets, eps: float = 1e-6) -> np.ndarray:
    """Per item, the mean over labels of the soft binary cross-entropy, p clipped to [eps, 1 - eps]."""
    probs, targets = _pair(probs, targets)
    p = np.clip(probs, eps, 1 - eps)
    return -(targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean(1)


def brier_per_item(probs, targets) -> np.ndarray:
    """Per item, the mean over labels of the Brier score (p - t)^2."""
    probs, targets = _pair(probs, targets)
    return ((probs - targets) ** 2).mean(1)


def spearman_per_item(probs, targets) -> np.ndarray:
    """Per item, the Spearman correlation of p and t over the labels; NaN where either is constant."""
    probs, targets = _pair(probs, targets)
    # scipy.stats takes 0.6 s to import: only when a metric is computed, not for `labeldist --help`
    from scipy.stats import rankdata

    rp, rt = rankdata(probs, axis=1), rankdata(targets, axis=1)
    rp = rp - rp.mean(1, keepdims=True)
    rt = rt - rt.mean(1, keepdims=True)
    denominator = np.sqrt((rp**2).sum(1) * (rt**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denominator > 0, (rp * rt).sum(1) / denominator, np.nan)
    return np.clip(rho, -1.0, 1.0)  # clip keeps NaN; removes 1 + 1e-16 style rounding


def mamd(probs, targets) -> float:
    """Mean MAMD over items."""
    return float(mamd_per_item(probs, targets).mean())


def bce(probs, targets, eps: float = 1e-6) -> float:
    """Mean soft binary cross-entropy over items."""
    return float(bce_per_item(probs, targets, eps).mean())


def brier(probs, targets) -> float:
    """Mean Brier score over items."""
    return float(brier_per_item(probs, targets).mean())


def spearman(probs, targets, return_skipped: bool = False):
    """Mean per-item Spearman over the items where it is defined (NaN if none). With
    ``return_skipped``, returns ``(mean, number of items skipped)``."""
    rho = spearman_per_item(probs, targets)
    defined = ~np.isnan(rho)
    value = float(rho[defined].mean()) if defined.any() else float("nan")
    return (value, int((~defined).sum())) if return_skipped else value


def ece_bins(probs, n_bins: int = 10) -> np.ndarray:
    """The equal-width bin of each probability: min(floor(p * n_bins), n_bins - 1)."""
    return np.clip((np.asarray(probs, dtype=float) * n_bins).astype(int), 0, n_bins - 1)


def ece(probs, targets, n_bins: int = 10) -> float:
    """Expected calibration error over all (item, label) pairs in ``n_bins`` equal-width bins; NaN when empty."""
    probs, targets = _pair(probs, targets)
    if not probs.size:
        return float("nan")
    bins = ece_bins(probs, n_bins).ravel()
    sum_p = np.bincount(bins, weights=probs.ravel(), minlength=n_bins)
    sum_t = np.bincount(bins, weights=targets.ravel(), minlength=n_bins)
    # sum_b (n_b / N) |sum_p_b / n_b - sum_t_b / n_b| = sum_b |sum_p_b - sum_t_b| / N
    return float(np.abs(sum_p - sum_t).sum() / probs.size)
