"""Estimators: per-label probabilities from a run (scikit-learn-like fit / predict_proba)."""

from labeldist.estimators.slots import ESTIMATORS, SOURCES, First, Max, Mean, NoisyOr, Output, make_estimator

__all__ = ["ESTIMATORS", "SOURCES", "First", "Max", "Mean", "NoisyOr", "Output", "make_estimator"]
