"""Estimators: per-label probabilities from a run (scikit-learn-like fit / predict_proba)."""

from labeldist.estimators.base import Estimator, clone
from labeldist.estimators.bradley_terry import bradley_terry
from labeldist.estimators.platt import Platt
from labeldist.estimators.registry import DEFAULT_ESTIMATORS, ESTIMATORS, make_estimator, parse_estimator, split_specs
from labeldist.estimators.slot_heuristics import SOURCES, First, Max, Mean, NoisyOr, Output
from labeldist.estimators.unary_pairwise import Pairwise, Unary

__all__ = [
    "DEFAULT_ESTIMATORS",
    "ESTIMATORS",
    "Estimator",
    "SOURCES",
    "First",
    "Max",
    "Mean",
    "NoisyOr",
    "Output",
    "Pairwise",
    "Platt",
    "Unary",
    "bradley_terry",
    "clone",
    "make_estimator",
    "parse_estimator",
    "split_specs",
]
