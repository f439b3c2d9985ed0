"""Platt scaling of a slot estimator, fitted on a calibration run against vote fractions.

The model's raw label probabilities are typically far too small or too large (a 135M model
answering ``[]`` gives every label a few percent); Platt scaling maps a feature of them through a
fitted sigmoid, p = sigmoid(a * x + b), with soft targets: the calibration items' vote fractions
(gold 0/1 where there are no votes), loss = soft binary cross-entropy. The method is Platt's
(J. Platt, "Probabilistic outputs for support vector machines and comparisons to regularized
likelihood methods", Advances in Large Margin Classifiers, 1999).

Features (x), from a base slot estimator's probability p (default ``max``):

- ``stop``: log p - log p_stop, p_stop = the probability of stopping at slot 1, i.e. of the
  answer "no label" (``[]``): the label's log-odds against "none". With ``source="first-token"``
  this is the nearest the records come to the original code's baseline feature (a label's
  first-token logit minus that of "none", one shared sigmoid: ``platt-shared[base=first,
  feature=stop]@first-token``): p is the label's first-token share, renormalised over the label
  set as the original did, and p_stop the exact stop probability, as records keep no first-token
  logit of the close. Where ``]`` is one token the two differ by the label set's share of the
  vocabulary at that step, a per-item shift the shared sigmoid cannot undo: read its row as the
  original's feature, not its exact numbers;
- ``logp``: log p;
- ``logit``: log p - log (1 - p).

``scope="shared"`` fits one (a, b) for all labels; ``scope="label"`` one per label, each pulled
toward the shared fit by a ridge penalty ``ridge * ((a_k - a)^2 + (b_k - b)^2)`` (in units of
items), so a label that is rare in the calibration run falls back on the shared mapping instead
of overfitting a handful of positives.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from labeldist.estimators.base import Estimator
from labeldist.estimators.slot_heuristics import SLOT_ESTIMATORS
from labeldist.estimators.unary_pairwise import Pairwise, Unary
from labeldist.runs.arrays import RunArrays

FEATURES = ("stop", "logp", "logit")
SCOPES = ("label", "shared")
_FLOOR = 1e-12  # probabilities below this are this (log 0 would be -inf)


class Platt(Estimator):
    """``fit(calibration_run)`` then ``predict_proba(run)``; fitted ``slope_``, ``intercept_`` per label.

    ``base`` is a slot estimator's name (``max``, ``first``, ..., ``unary``, ``pairwise``, read
    from ``source``), or an estimator object with ``name`` and ``predict_proba`` (as
    scikit-learn's CalibratedClassifierCV takes its estimator): ``Platt(base=Max("first-token"))``."""

    name = "platt"
    learns = True

    def __init__(self, base="max", feature: str | None = None, scope: str = "label", source: str = "exact", ridge: float = 10.0):
        self.base = base
        self.feature = feature
        self.scope = scope
        self.source = source
        self.ridge = ridge

    # -- features ------------------------------------------------------------------------------

    @property
    def _base_name(self) -> str:
        return self.base if isinstance(self.base, str) else self.base.name

    @property
    def _base_source(self) -> str:
        return self.source if isinstance(self.base, str) else getattr(self.base, "source", self.source)

    def _base_estimator(self):
        """The base as an estimator object (built from its name with the run's source)."""
        if not isinstance(self.base, str):
            if self.base.name in ("platt", "output"):
                raise ValueError(f"platt needs a slot estimator as its base, not {self.base.name!r}")
            return self.base
        if self.base in SLOT_ESTIMATORS:
            return SLOT_ESTIMATORS[self.base](source=self.source)
        if self.base in ("unary", "pairwise"):
            return Unary() if self.base == "unary" else Pairwise()
        raise ValueError(f"platt needs a slot estimator as its base, not {self.base!r}")

    def requirements(self) -> frozenset[str]:
        """Its base's: Platt reads what the base estimator reads."""
        return self._base_estimator().requirements()

    def _feature_name(self) -> str:
        base = self._base_name
        # runs without slots (unary, pairwise) have no stop probability: their base's logit
        default = "logit" if base in ("unary", "pairwise") else "stop" if self._base_source == "exact" else "logp"
        feature = self.feature or default
        if feature not in FEATURES:
            raise ValueError(f"platt feature must be one of {FEATURES}, not {feature!r}")
        if feature == "stop" and base in ("unary", "pairwise"):
            raise ValueError(f"platt feature 'stop' reads generation slots; base {base!r} has none (use logit)")
        return feature

    def features(self, run: RunArrays) -> np.ndarray:
        """items x labels feature values x."""
        p = np.clip(self._base_estimator().predict_proba(run), _FLOOR, 1 - _FLOOR)
        feature = self._feature_name()
        if feature == "logp":
            return np.log(p)
        if feature == "logit":
            return np.log(p) - np.log1p(-p)
        # "none" is stopping at slot 1; an unparsed answer has no slots: its stop is taken as 1
        stop = run.stop[:, 0] if run.stop.shape[1] else np.ones(len(run))
        stop = np.clip(np.where(np.isnan(stop), 1.0, stop), _FLOOR, 1.0)
        return np.log(p) - np.log(stop)[:, None]

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, run: RunArrays | None) -> Platt:
        """Fit the sigmoid(s) to the calibration run's features and targets: one shared, or per label pulled toward it."""
        if run is None:
            raise ValueError("platt learns from a calibration run: give --calibrate-on RUN")
        if self.scope not in SCOPES:
            raise ValueError(f"platt scope must be one of {SCOPES}, not {self.scope!r}")
        x, t = self.features(run), run.targets
        if not len(x):
            raise ValueError(f"calibration run {run.path} has no items")
        shared = _fit_sigmoid(x.ravel()[:, None], t.ravel()[:, None], prior=None, ridge=0.0)
        k = x.shape[1]
        if self.scope == "shared":
            self.slope_, self.intercept_ = np.full(k, shared[0][0]), np.full(k, shared[1][0])
        else:
            self.slope_, self.intercept_ = _fit_sigmoid(x, t, prior=(shared[0][0], shared[1][0]), ridge=self.ridge)
        self.calibration_items_ = len(x)
        return self

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """sigmoid(slope * feature + intercept) per label, with the fitted slopes and intercepts."""
        if not hasattr(self, "slope_"):
            raise ValueError("platt is not fitted: call fit(calibration_run) first")
        return expit(self.features(run) * self.slope_ + self.intercept_)

    def fitted(self) -> dict:
        """What was learnt, for the evaluation record."""
        return {
            "base": self._base_name,
            "feature": self._feature_name(),
            "scope": self.scope,
            "ridge": self.ridge,
            "calibration_items": self.calibration_items_,
            "slope": self.slope_.tolist(),
            "intercept": self.intercept_.tolist(),
        }


def _fit_sigmoid(x: np.ndarray, t: np.ndarray, prior: tuple[float, float] | None, ridge: float):
    """Per column j: (a_j, b_j) minimising sum_i BCE(sigmoid(a_j x_ij + b_j), t_ij)
    + ridge * ((a_j - a0)^2 + (b_j - b0)^2). Columns are independent; solved together (L-BFGS)."""
    n, k = x.shape
    a0, b0 = prior if prior is not None else (1.0, 0.0)
    # a tiny pull toward (a0, b0) keeps separable data (e.g. one class only) from diverging
    ridge = max(ridge, 1e-6 * n)

    def loss(params):
        a, b = params[:k], params[k:]
        z = x * a + b
        value = -(t * log_expit(z) + (1 - t) * log_expit(-z)).sum() + ridge * (((a - a0) ** 2).sum() + ((b - b0) ** 2).sum())
        residual = expit(z) - t  # d loss / d z
        grad_a = (residual * x).sum(0) + 2 * ridge * (a - a0)
        grad_b = residual.sum(0) + 2 * ridge * (b - b0)
        return value / n, np.concatenate([grad_a, grad_b]) / n

    start = np.concatenate([np.full(k, a0), np.full(k, b0)])
    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-10})
    return result.x[:k], result.x[k:]
