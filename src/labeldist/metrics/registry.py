"""Every metric labeldist reports, in one place: its name, how it is computed, which way is better,
how it is shown, and where it appears. The bootstrap (:mod:`labeldist.metrics.bootstrap`),
``evaluate``'s tables and evaluation.json, the HTML report and the suite's tables all read
:data:`METRICS`, in its order.

A metric that is a mean over items (most are) is one entry with a ``per_item`` function of
``(probs, targets, gold, pred)`` (items x labels arrays; ``pred`` is ``binarize(probs,
threshold)``) returning one value per item, NaN where undefined (left out of the mean, as
Spearman's constant vectors are): the bootstrap resamples it with the others. Micro/macro F1 and
ECE are not means over items; their sufficient statistics are the bootstrap's own
(``per_item`` None, ``kind`` names them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labeldist.metrics.alignment import bce_per_item, brier_per_item, mamd_per_item, spearman_per_item
from labeldist.metrics.classification import exact_match_per_item, jaccard_per_item


@dataclass(frozen=True)
class Metric:
    """One metric. ``against``: what it compares the probabilities with ("gold" labels or the
    annotators' "votes"); ``higher_is_better``; ``digits`` shown in tables; ``suite``: a column of
    the suite's summary table, at this position (None: not there); ``kind``: "mean" (of ``per_item``), or the bootstrap's own
    "micro_f1", "macro_f1", "ece"; ``summary``: what it is, in words."""

    name: str
    against: str
    higher_is_better: bool
    summary: str
    per_item: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    kind: str = "mean"
    digits: int = 3
    suite: int | None = None

    def format(self, value: float | None) -> str:
        """``value`` as tables show it (n/a where missing or NaN)."""
        if value is None or not np.isfinite(value):
            return "n/a"
        return f"{value:.{self.digits}f}"


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("micro_f1", "gold", True, "F1 over all (item, label) decisions", kind="micro_f1"),
        Metric("macro_f1", "gold", True, "mean over labels of each label's F1", kind="macro_f1", suite=5),
        Metric(
            "jaccard",
            "gold",
            True,
            "per item: |gold ∩ predicted| / |gold ∪ predicted|",
            lambda p, t, g, y: jaccard_per_item(g, y),
        ),
        Metric(
            "exact_match",
            "gold",
            True,
            "per item: the predicted set is the gold set",
            lambda p, t, g, y: exact_match_per_item(g, y),
        ),
        Metric(
            "mamd",
            "votes",
            False,
            "per item: mean absolute difference of probabilities and vote fractions",
            lambda p, t, g, y: mamd_per_item(p, t),
            suite=1,
        ),
        Metric(
            "bce",
            "votes",
            False,
            "per item: binary cross-entropy against the vote fractions",
            lambda p, t, g, y: bce_per_item(p, t),
            suite=2,
        ),
        Metric(
            "brier",
            "votes",
            False,
            "per item: mean squared difference of probabilities and vote fractions",
            lambda p, t, g, y: brier_per_item(p, t),
            suite=3,
        ),
        Metric(
            "spearman",
            "votes",
            True,
            "per item: rank correlation of probabilities and vote fractions (NaN for constant vectors)",
            lambda p, t, g, y: spearman_per_item(p, t),
            suite=4,
        ),
        Metric("ece", "votes", False, "expected calibration error against the vote fractions (10 bins)", kind="ece"),
    )
}

# the metrics that are means of per-item values (what the bootstrap resamples column by column)
MEAN_METRICS: tuple[str, ...] = tuple(name for name, metric in METRICS.items() if metric.kind == "mean")
# the suite's summary table
SUITE_METRICS: tuple[str, ...] = tuple(
    sorted((name for name, metric in METRICS.items() if metric.suite is not None), key=lambda name: METRICS[name].suite)
)
