"""Classification and alignment metrics with bootstrap intervals over items."""

from labeldist.metrics.core import (
    bce_per_item,
    binarize,
    brier_per_item,
    ece,
    evaluate_probs,
    exact_match_per_item,
    jaccard_per_item,
    macro_f1,
    mamd_per_item,
    micro_f1,
    per_label_f1,
    spearman_per_item,
    tune_thresholds,
)

__all__ = [
    "bce_per_item",
    "binarize",
    "brier_per_item",
    "ece",
    "evaluate_probs",
    "exact_match_per_item",
    "jaccard_per_item",
    "macro_f1",
    "mamd_per_item",
    "micro_f1",
    "per_label_f1",
    "spearman_per_item",
    "tune_thresholds",
]
