"""Linear probes on the hidden state at the first label slot.

What does the model know before it commits to its first label? A run made with
``--save-hidden`` stores, for every item, the hidden states (embedding output and every layer)
at the position where slot 1 is decided. A probe is one logistic regression per label on one
layer's state, fitted on a *training* run (``labeldist evaluate --calibrate-on TRAIN`` or
``labeldist probe --train TRAIN``) and applied to the evaluated run.

Targets (``target``):

- ``votes`` (default): the annotators' vote fractions, as soft targets (gold 0/1 for items
  without votes). Soft targets go to scikit-learn as two weighted copies of each item, one
  positive with weight t and one negative with weight 1 - t: the weighted log-loss is then
  exactly the soft binary cross-entropy.
- ``gold``: the gold labels.
- ``model-output``: the labels the model went on to write; with it, the probe asks whether
  slot 1 already holds the labels generated later (``workflows.probe_report.later_label_scores``).

Features are standardised with the training run's means and deviations. A label that is
constant in the training run (never or always present) gets that constant's rate, clipped away
from 0 and 1, instead of a regression.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from labeldist.estimators.base import Estimator
from labeldist.runs.arrays import RunArrays

TARGETS = ("votes", "gold", "model-output")
_EPS = 1e-4


def hidden_states(run: RunArrays, layer: int) -> np.ndarray:
    """items x hidden: one layer's first-slot state for each item of ``run`` (RunArrays.hidden_states)."""
    return run.hidden_states(layer)


class Probe(Estimator):
    """``fit(training_run)`` then ``predict_proba(run)``; one logistic regression per label."""

    name = "probe"
    needs = frozenset({"generation", "hidden_states"})
    learns = True

    def __init__(self, layer: int = -1, target: str = "votes", C: float = 1.0, source: str = "exact"):
        self.layer = layer
        self.target = target
        self.C = C
        self.source = source

    def _check(self) -> None:
        if self.source != "exact":
            raise ValueError("probe reads hidden states; it has no first-token variant")
        if self.target not in TARGETS:
            raise ValueError(f"probe target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        if float(self.layer) != int(self.layer):
            raise ValueError(f"probe layer must be a whole number, not {self.layer!r}")

    def targets(self, run: RunArrays) -> np.ndarray:
        """items x labels targets of ``run`` by ``target``: gold, the labels written, or vote fractions."""
        if self.target == "gold":
            return run.gold.astype(float)
        if self.target == "model-output":
            return run.generated.astype(float)
        return run.targets

    def fit(self, run: RunArrays | None) -> Probe:
        """Standardise the training run's hidden states and fit one soft-target logistic regression per label."""
        if run is None:
            raise ValueError("probe learns from a training run: give --calibrate-on RUN (a run made with --save-hidden)")
        self._check()
        x = hidden_states(run, int(self.layer))
        t = np.clip(self.targets(run), 0.0, 1.0)
        self.scaler_ = StandardScaler().fit(x)
        z = self.scaler_.transform(x)
        n = len(z)
        features = np.vstack([z, z])
        self.models_: list[LogisticRegression | float] = []
        for k in range(t.shape[1]):
            column = t[:, k]
            if column.min() == column.max():
                self.models_.append(float(np.clip(column[0], _EPS, 1 - _EPS)))
                continue
            classes = np.r_[np.ones(n), np.zeros(n)]
            weights = np.r_[column, 1 - column]
            keep = weights > 0
            model = LogisticRegression(C=self.C, max_iter=5000, tol=1e-8)
            model.fit(features[keep], classes[keep], sample_weight=weights[keep])
            self.models_.append(model)
        self.training_items_ = n
        self.training_run_ = run.path
        return self

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """Each label's regression applied to the run's standardised hidden states (a constant for constant labels)."""
        if not hasattr(self, "models_"):
            raise ValueError("probe is not fitted: call fit(training_run) first")
        if len(self.models_) != len(run.labels):
            raise ValueError(f"probe was fitted on {len(self.models_)} labels, {run.path} has {len(run.labels)}")
        z = self.scaler_.transform(hidden_states(run, int(self.layer)))
        out = np.empty((len(z), len(self.models_)))
        for k, model in enumerate(self.models_):
            out[:, k] = model if isinstance(model, float) else model.predict_proba(z)[:, 1]
        return out

    def fitted(self) -> dict:
        """The layer, target, C, training run and item count, and the labels fitted as constants."""
        return {
            "layer": int(self.layer),
            "target": self.target,
            "C": self.C,
            "training_run": self.training_run_,
            "training_items": self.training_items_,
            "constant_labels": [i for i, m in enumerate(self.models_) if isinstance(m, float)],
        }
