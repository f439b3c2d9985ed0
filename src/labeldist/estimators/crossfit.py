"""Cross-fitting as a meta-estimator: an estimator that learns (platt, probe, a tuned threshold)
evaluated on the run it learns from, without any item's prediction seeing its own votes or gold.

``CrossFit(estimator, k, seed)`` splits the run's items into ``k`` folds (a permutation drawn with
``seed``, :func:`fold_split`), fits a clone of ``estimator`` on every fold's complement, and
predicts each fold with the clone that never saw it: out-of-fold predictions, as scikit-learn's
``cross_val_predict``. It predicts only the run it was fitted on (the folds are that run's).
"""

from __future__ import annotations

import numpy as np

from labeldist.estimators.base import Estimator, clone
from labeldist.runs.arrays import RunArrays


def fold_split(run: RunArrays, k: int, seed: int) -> list[tuple[RunArrays, RunArrays, np.ndarray]]:
    """(fit-on, predict, positions) for each of ``k`` folds of a seeded permutation of the items."""
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, not {k}")
    if len(run) < k:
        raise ValueError(f"{run.path} has {len(run)} items, fewer than the {k} cross-fitting folds")
    order = np.random.default_rng(seed).permutation(len(run))
    parts = np.array_split(order, k)
    folds = []
    for i, held_out in enumerate(parts):
        held_out = np.sort(held_out)
        rest = np.sort(np.concatenate([part for j, part in enumerate(parts) if j != i]))
        folds.append((run.take(rest), run.take(held_out), held_out))
    return folds


class CrossFit(Estimator):
    """Out-of-fold predictions of ``estimator`` on the run it is fitted on (see the module)."""

    name = "cross-fit"

    def __init__(self, estimator: Estimator, k: int = 5, seed: int = 0):
        self.estimator = estimator
        self.k = k
        self.seed = seed

    def fit(self, run: RunArrays) -> CrossFit:
        """Fit one clone of the estimator per fold, on the other folds' items."""
        self.folds_ = fold_split(run, self.k, self.seed)
        self.estimators_ = [clone(self.estimator).fit(train) for train, _, _ in self.folds_]
        self.ids_ = list(run.ids)
        return self

    def _check(self, run: RunArrays) -> None:
        if not hasattr(self, "estimators_"):
            raise ValueError("call fit(run) before predict_proba(run)")
        if list(run.ids) != self.ids_:
            raise ValueError("a cross-fitted estimator predicts only the run it was fitted on, in the same item order")

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """Each item's probabilities from the clone fitted without its fold."""
        self._check(run)
        probs = np.full((len(run), len(run.labels)), np.nan)
        for estimator, (_, test, where) in zip(self.estimators_, self.folds_):
            probs[where] = estimator.predict_proba(test)
        return probs

    def fitted(self) -> list | None:
        """What each fold's clone learnt (None where none learnt anything)."""
        fits = [estimator.fitted() for estimator in self.estimators_]
        fits = [fit for fit in fits if fit is not None]
        return fits or None

    def unscored(self, run: RunArrays) -> int:
        """Items no fold's clone gives a probability."""
        self._check(run)
        return sum(estimator.unscored(test) for estimator, (_, test, _) in zip(self.estimators_, self.folds_))
