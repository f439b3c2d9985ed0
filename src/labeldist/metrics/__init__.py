"""Classification and alignment metrics with bootstrap intervals over items.

Plain functions on numpy items x labels arrays: ``probs`` (predicted per-label probabilities),
``targets`` (vote fractions), ``gold`` (0/1), ``pred`` (0/1, ``binarize(probs, threshold)``).
Conventions are documented in each submodule: classification (F1 as scikit-learn's default,
0 where nothing is gold or predicted), alignment (MAMD, soft BCE, Brier, Spearman with NaN for
constant vectors, ECE), bootstrap (shared item resamples for every metric of one seed).
"""

from labeldist.metrics.alignment import (
    bce,
    bce_per_item,
    brier,
    brier_per_item,
    ece,
    mamd,
    mamd_per_item,
    spearman,
    spearman_per_item,
)
from labeldist.metrics.bootstrap import bootstrap_interval, bootstrap_metric, evaluate_many, evaluate_probs, resample_indices
from labeldist.metrics.classification import (
    THRESHOLD_GRID,
    binarize,
    exact_match,
    exact_match_per_item,
    f1_from_counts,
    jaccard,
    jaccard_per_item,
    macro_f1,
    micro_f1,
    per_label_f1,
    tune_thresholds,
)

__all__ = [
    "THRESHOLD_GRID",
    "bce",
    "bce_per_item",
    "binarize",
    "bootstrap_interval",
    "bootstrap_metric",
    "brier",
    "brier_per_item",
    "ece",
    "evaluate_many",
    "evaluate_probs",
    "exact_match",
    "exact_match_per_item",
    "f1_from_counts",
    "jaccard",
    "jaccard_per_item",
    "macro_f1",
    "mamd",
    "mamd_per_item",
    "micro_f1",
    "per_label_f1",
    "resample_indices",
    "spearman",
    "spearman_per_item",
    "tune_thresholds",
]
