"""P(label in answer): exactly over the trie of answers (``Marginal``), or as practitioners
estimate it, by how often sampled answers name each label (``Sample``).

``labeldist run --samples N [--temperature T]`` records N answers per item drawn from the model
(beside the greedy one). ``Sample`` gives each label the share of those answers that name it, an
unbiased Monte-Carlo estimate of P(label in answer) at that temperature, with standard error
sqrt(p (1 - p) / n). It is the check on exact estimates of the same quantity, and the estimate a
user with only an API can make.
"""

from __future__ import annotations

import numpy as np

from labeldist.estimators.base import Estimator
from labeldist.runs.arrays import RunArrays, in_format


class Sample(Estimator):
    """Share of the run's sampled answers naming each label; ``n``: use the first n draws only."""

    name = "sample"
    needs = frozenset({"generation", "samples"})
    exact_only = "reads whole answers"

    def __init__(self, n: int | float | None = None):
        if n is not None and (int(n) != n or n < 1):
            raise ValueError(f"sample[n=...] must be a whole number of draws, at least 1, not {n}")
        self.n = None if n is None else int(n)

    def _draws(self, run: RunArrays) -> np.ndarray:
        if run.sampled is None:
            raise ValueError(f"run {run.path} has no sampled answers: make it with labeldist run --samples N")
        available = run.sampled.shape[1]
        if self.n is not None and self.n > available:
            raise ValueError(f"sample[n={self.n}]: run {run.path} has {available} sampled answers per item")
        return run.sampled if self.n is None else run.sampled[:, : self.n]

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """Items x labels: the share of the (first ``n``) sampled answers that name each label."""
        return self._draws(run).mean(axis=1)

    def standard_error(self, run: RunArrays) -> np.ndarray:
        """Items x labels Monte-Carlo standard error of :meth:`predict_proba`: sqrt(p (1 - p) / n)."""
        draws = self._draws(run)
        p = draws.mean(axis=1)
        return np.sqrt(p * (1 - p) / draws.shape[1])


READINGS = ("format", "conditional", "mid", "lower", "upper")


class Marginal(Estimator):
    """P(label in answer) over every answer the model could write (``labeldist run --marginal``).

    ``reading``:

    - ``format`` (default): P(the model writes an answer the format reads, and it names L); an
      answer that leaves the format names no label, as it does when a sampled answer is parsed.
      Exact to within the unexpanded mass (below the run's tolerance): the midpoint of
      [lower, lower + unexpanded].
    - ``conditional``: the same given that the answer is in the format (divided by its mass).
    - ``lower``, ``upper``, ``mid``: the bounds on P(L in answer) when an answer outside the
      format could name anything, and their midpoint. With small models the gap is the
      off-format mass (0.2-0.4), and the midpoint overstates what their sampled answers name.
    """

    name = "marginal"
    needs = frozenset({"generation", "marginal"})
    exact_only = "reads whole answers"

    def __init__(self, reading: str = "format"):
        if reading not in READINGS:
            raise ValueError(f"marginal[reading=...] is one of {', '.join(READINGS)}, not {reading!r}")
        self.reading = reading

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """Items x labels: the chosen reading of the run's marginals."""
        if run.marginal_lower is None or run.marginal_upper is None:
            raise ValueError(f"run {run.path} has no marginals: make it with labeldist run --marginal")
        lower, upper = run.marginal_lower, run.marginal_upper
        if self.reading == "lower":
            return lower
        if self.reading == "upper":
            return upper
        if self.reading == "mid":
            return (lower + upper) / 2
        reading = in_format(lower, upper, run.marginal_unexpanded[:, None])
        if self.reading == "format":
            return reading
        # in-format mass: everything but what left the format
        share = 1.0 - run.marginal_off_format[:, None]
        return np.clip(np.divide(reading, share, out=np.zeros_like(reading), where=share > 0), 0.0, 1.0)
