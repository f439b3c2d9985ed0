"""Estimators of unary and pairwise runs (the model judged candidates; see prompts.judgements).

- ``unary``: P(yes) / (P(yes) + P(no)) for "is this label reasonable for the text?";
- ``pairwise``: Bradley–Terry strengths fitted per item to the soft outcomes of every ordered
  pair, P(i beats j) = average over both orders of the model's P(i is named), then
  P(label) = sigmoid(s_label - s_none): how likely the label beats "no label".

The pairwise model is Bradley and Terry's (R. A. Bradley and M. E. Terry, "Rank analysis of
incomplete block designs: I. The method of paired comparisons", Biometrika 39, 1952); its fit is
in :mod:`labeldist.estimators.bradley_terry`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from labeldist.estimators.base import Estimator
from labeldist.estimators.bradley_terry import bradley_terry
from labeldist.runs.arrays import RunArrays, answer_probabilities


def _check(run: RunArrays, method: str) -> None:
    if run.method != method or run.answer_logprobs is None:
        raise ValueError(f"run {run.path} is a {run.method} run: the {method} estimator needs a `--method {method}` run")


class Unary(Estimator):
    """Estimator ``unary``: per label, the model's yes/no answer to "is this label reasonable for the text?"."""

    name = "unary"
    needs = frozenset({"unary"})
    exact_only = "scores answers exactly"

    def __init__(self, source: str = "exact", normalize: bool = True):
        self.source = source
        self.normalize = normalize

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """P(yes) / (P(yes) + P(no)) per label; the raw P(yes) when ``normalize`` is off."""
        _check(run, "unary")
        k = len(run.labels)
        positive, mass = answer_probabilities(run.answer_logprobs)
        # the last candidate is "none"
        return positive[:, :k] if self.normalize else np.exp(run.answer_logprobs[:, :k, 0])


class Pairwise(Estimator):
    """Estimator ``pairwise``: per-item Bradley–Terry strengths of the labels and "none" from pairwise answers."""

    name = "pairwise"
    needs = frozenset({"pairwise"})
    exact_only = "scores answers exactly"

    def __init__(self, source: str = "exact", ridge: float = 1e-2, score: str = "vs-none"):
        self.source = source
        self.ridge = ridge
        self.score = score

    def outcomes(self, run: RunArrays) -> np.ndarray:
        """items x m x m soft outcomes: [i, j] = P(i is the better label), both orders averaged."""
        _check(run, "pairwise")
        pairs = np.asarray(run.questions["pairs"], dtype=int)
        m = len(run.labels) + 1
        first_wins, _ = answer_probabilities(run.answer_logprobs)  # items x pairs: P("a")
        asked = np.full((len(run), m, m), np.nan)
        asked[:, pairs[:, 0], pairs[:, 1]] = first_wins  # i named first: P(i wins)
        # (j, i) asked with j first: P(i wins) = 1 - P(a)
        flipped = 1.0 - asked.transpose(0, 2, 1)
        # every pair is asked in both orders; a run whose template asked one order only would
        # leave the other NaN, and then the one asked counts alone
        both = np.stack([asked, flipped])
        seen = ~np.isnan(both)
        outcomes = np.where(seen, both, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
        outcomes[:, np.arange(m), np.arange(m)] = 0.0
        return outcomes

    def strengths(self, run: RunArrays) -> np.ndarray:
        """items x (labels + none): the Bradley–Terry strengths fitted to :meth:`outcomes` with ``ridge``."""
        return bradley_terry(self.outcomes(run), ridge=self.ridge)

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """sigmoid(s_label - s_none) (``score="vs-none"``), or each label's mean soft win rate (``"win-rate"``)."""
        if self.score not in ("vs-none", "win-rate"):
            raise ValueError(f"pairwise score must be vs-none or win-rate, not {self.score!r}")
        k = len(run.labels)
        if self.score == "win-rate":
            outcomes = self.outcomes(run)
            return outcomes[:, :k].sum(axis=2) / k  # mean over the k other candidates
        s = self.strengths(run)
        return expit(s[:, :k] - s[:, k:])
