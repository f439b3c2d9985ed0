"""Classification metrics at a threshold, on items x labels 0/1 arrays.

Conventions (chosen to match scikit-learn so the tests can compare directly):

- ``binarize``: a label is predicted when ``probs >= threshold`` (threshold scalar or one per label).
- F1 with nothing to find and nothing claimed (tp = fp = fn = 0) is 0, scikit-learn's default
  (``zero_division`` "warn", which scores 0), so that macro-F1 compares with everyone else's: a label
  absent from the evaluated items' gold scores 0 if it is never predicted, and caps even a perfect
  predictor's macro-F1 below 1 (evaluation says how many labels have no gold). Until 2026-11-30
  labeldist scored such labels 1 (``zero_division=1``), which lifted HateXplain's macro-F1 to 0.76
  beside a micro-F1 of 0. Applies per label (``per_label_f1``, ``macro_f1``) and to the pooled
  counts (``micro_f1``). Equal to ``f1_score(gold, pred, average=..., zero_division=0)``.
  Threshold tuning alone keeps ``zero_division=1`` (see ``tune_thresholds``).
- Example-based Jaccard: per item |G ∩ P| / |G ∪ P|, and 1 for an item with no gold and no predicted
  label; equal to ``jaccard_score(gold, pred, average="samples", zero_division=1)``.
- Exact match: share of items whose predicted label set equals the gold set (scikit-learn's
  multilabel ``accuracy_score``).
"""

from __future__ import annotations

import numpy as np

THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)


def _pair(gold, pred) -> tuple[np.ndarray, np.ndarray]:
    gold, pred = np.asarray(gold, dtype=float), np.asarray(pred, dtype=float)
    if gold.ndim != 2 or gold.shape != pred.shape:
        raise ValueError(f"gold and pred must be items x labels arrays of one shape, got {gold.shape} and {pred.shape}")
    return gold, pred


def binarize(probs, threshold=0.5) -> np.ndarray:
    """0/1 predictions: ``probs >= threshold``; threshold a scalar, one value per label (last axis),
    or one per item and label (the shape of ``probs``: cross-fitted thresholds, one set per fold)."""
    probs = np.asarray(probs, dtype=float)
    threshold = np.asarray(threshold, dtype=float)
    per_label = threshold.ndim == 1 and threshold.shape[0] == probs.shape[-1]
    if threshold.ndim and not per_label and threshold.shape != probs.shape:
        raise ValueError(
            f"threshold must be a scalar, have one value per label ({probs.shape[-1]}) or the shape of the "
            f"probabilities {probs.shape}, got {threshold.shape}"
        )
    return (probs >= threshold).astype(float)


def f1_from_counts(tp, fp, fn, zero_division: float = 0.0):
    """Elementwise F1 = 2tp / (2tp + fp + fn), and ``zero_division`` where the denominator is 0
    (nothing to find, nothing claimed)."""
    tp, fp, fn = (np.asarray(a, dtype=float) for a in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, 2 * tp / safe, zero_division)


def label_counts(gold, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label true positives, false positives and false negatives."""
    gold, pred = _pair(gold, pred)
    return (gold * pred).sum(0), ((1 - gold) * pred).sum(0), (gold * (1 - pred)).sum(0)


def per_label_f1(gold, pred) -> np.ndarray:
    """F1 of each label over the items (0 for a label never gold and never predicted)."""
    return f1_from_counts(*label_counts(gold, pred))


def micro_f1(gold, pred) -> float:
    """F1 of the counts pooled over all (item, label) pairs (0 when nothing is gold or predicted)."""
    tp, fp, fn = label_counts(gold, pred)
    return float(f1_from_counts(tp.sum(), fp.sum(), fn.sum()))


def macro_f1(gold, pred) -> float:
    """Unweighted mean over labels of ``per_label_f1``."""
    return float(per_label_f1(gold, pred).mean())


def jaccard_per_item(gold, pred) -> np.ndarray:
    """|G ∩ P| / |G ∪ P| per item; 1 when both sets are empty."""
    gold, pred = _pair(gold, pred)
    inter = (gold * pred).sum(1)
    union = np.maximum(gold, pred).sum(1)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)


def jaccard(gold, pred) -> float:
    """Example-based Jaccard: mean over items of ``jaccard_per_item``."""
    return float(jaccard_per_item(gold, pred).mean())


def exact_match_per_item(gold, pred) -> np.ndarray:
    """1.0 where the item's predicted label set equals its gold set, else 0.0."""
    gold, pred = _pair(gold, pred)
    return (gold == pred).all(1).astype(float)


def exact_match(gold, pred) -> float:
    """Share of items predicted exactly (subset accuracy)."""
    return float(exact_match_per_item(gold, pred).mean())


def tune_thresholds(probs, gold, grid=THRESHOLD_GRID) -> np.ndarray:
    """Per label, the grid threshold whose ``probs >= threshold`` gives that label's best F1 on a
    calibration set. Ties go to the threshold closest to 0.5, and between two equally close ones
    to the lower. Here F1 with nothing to find and nothing claimed is 1 (``zero_division=1``): for
    a label with no gold item in the calibration set, predicting nothing is the right answer, so
    the threshold is one high enough to predict nothing."""
    probs, gold = _pair(probs, gold)
    grid = np.asarray(grid, dtype=float).ravel()
    if not len(grid):
        raise ValueError("empty threshold grid")
    pred = probs[None, :, :] >= grid[:, None, None]  # grid x items x labels
    positive = gold.astype(bool)[None]
    tp = (pred & positive).sum(1)
    fp = (pred & ~positive).sum(1)
    fn = (~pred & positive).sum(1)
    scores = f1_from_counts(tp, fp, fn, zero_division=1.0)  # grid x labels
    # lexicographic choice: best score, then distance to 0.5 (rounded against float noise), then lower
    distance = np.round(np.abs(grid - 0.5), 12)
    order = np.lexsort((grid, distance))  # grid positions by (distance, value)
    ranked = scores[order]  # grid (ranked) x labels
    best = np.argmax(ranked == ranked.max(0, keepdims=True), axis=0)  # first ranked position at the max
    return grid[order][best]
