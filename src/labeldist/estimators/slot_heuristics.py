"""Estimators that read the per-slot distributions of a run (no fitting).

Each turns the slots of an item into one probability per label:

- ``first``: the label's probability at slot 1 (the original code's baseline);
- ``max``: its largest probability over all slots (the paper's headline estimator);
- ``mean``: its mean over slots;
- ``noisy-or``: 1 - prod_k (1 - p_k), the chance it comes up at some slot if slots were
  independent draws;
- ``output``: 1 for labels in the answer, ``epsilon`` otherwise.

The slot readings and the first-token approximation are those of "Large Language Models Do
Multi-Label Classification Differently" (EMNLP 2025, arXiv 2505.17510), the research code
labeldist starts from.

``source="exact"`` reads the exact label probabilities; ``source="first-token"`` the original
method's first-token approximation, so the two can be compared (closing slots carry no
first-token numbers and are skipped there). An item whose answer could not be parsed has no
slots: it gets 0 for every label (the model named none), counted by ``unscored(run)``.
"""

from __future__ import annotations

import numpy as np

from labeldist.estimators.base import Estimator
from labeldist.prompts.methods import RunMethod
from labeldist.runs.arrays import RunArrays

SOURCES = ("exact", "first-token")


class SlotEstimator(Estimator):
    """scikit-learn-like: ``fit(run)`` (nothing to learn here) and ``predict_proba(run)``."""

    name = "slots"

    def __init__(self, source: str = "exact"):
        self.source = source

    def _slots(self, run: RunArrays) -> np.ndarray:
        if run.method != RunMethod.GENERATE:
            raise ValueError(f"run {run.path} is a {run.method} run (no generation slots): use the {run.method} estimator")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")
        return run.slot_probs if self.source == "exact" else run.first_token

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """The subclass's combination of each item's slots, clipped to [0, 1]; 0 for items without slots."""
        slots = self._slots(run)
        scored = ~np.all(np.isnan(slots), axis=(1, 2))
        out = np.zeros((len(run), len(run.labels)))
        if scored.any():
            out[scored] = self._combine(slots[scored])
        return np.clip(out, 0.0, 1.0)

    def unscored(self, run: RunArrays) -> int:
        """Items without label slots (unparseable answers): they get 0 for every label."""
        return int(np.all(np.isnan(self._slots(run)), axis=(1, 2)).sum())

    def _combine(self, slots: np.ndarray) -> np.ndarray:  # (items, slots, labels) -> (items, labels)
        raise NotImplementedError


class First(SlotEstimator):
    """Estimator ``first``: each label's probability at the first slot that has numbers."""

    name = "first"

    def _combine(self, slots):
        # the first slot that has numbers (slot 1 for exact; for first-token, slot 1 unless the
        # answer was empty, whose only slot is a closing one)
        has = ~np.all(np.isnan(slots), axis=2)
        first = has.argmax(axis=1)
        return slots[np.arange(len(slots)), first]


class Max(SlotEstimator):
    """Estimator ``max``: each label's largest probability over the slots."""

    name = "max"

    def _combine(self, slots):
        return np.nanmax(slots, axis=1)


class Mean(SlotEstimator):
    """Estimator ``mean``: each label's mean probability over the slots."""

    name = "mean"

    def _combine(self, slots):
        return np.nanmean(slots, axis=1)


class NoisyOr(SlotEstimator):
    """Estimator ``noisy-or``: 1 - prod over slots of (1 - p), the chance a label comes up at some slot."""

    name = "noisy-or"

    def _combine(self, slots):
        return 1.0 - np.nanprod(1.0 - slots, axis=1)


class Output(Estimator):
    """1 for the labels the model wrote, ``epsilon`` for the others."""

    name = "output"
    exact_only = "reads the generated answer"

    def __init__(self, epsilon: float = 1e-3):
        self.epsilon = epsilon

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """1 where the generated answer names the label, ``epsilon`` elsewhere (generation runs only)."""
        if run.method != RunMethod.GENERATE:
            raise ValueError(f"run {run.path} is a {run.method} run (no generated answer): use the {run.method} estimator")
        return np.where(run.generated > 0, 1.0, self.epsilon)


SLOT_ESTIMATORS = {cls.name: cls for cls in (First, Max, Mean, NoisyOr)}
