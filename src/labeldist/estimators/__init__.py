"""Estimators: per-label probabilities from a run (scikit-learn-like fit / predict_proba)."""

from labeldist.estimators.platt import Platt
from labeldist.estimators.registry import ESTIMATORS, make_estimator, parse_estimator, split_specs
from labeldist.estimators.slots import SOURCES, First, Max, Mean, NoisyOr, Output

__all__ = [
    "ESTIMATORS",
    "SOURCES",
    "First",
    "Max",
    "Mean",
    "NoisyOr",
    "Output",
    "Platt",
    "make_estimator",
    "parse_estimator",
    "split_specs",
]
