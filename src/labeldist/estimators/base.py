"""The estimator contract, as scikit-learn's: learn in ``fit``, predict in ``predict_proba``.

``fit(run)`` learns from a calibration or training run (``None`` where nothing is learnt) and
returns the estimator; ``predict_proba(run)`` gives items x labels probabilities in [0, 1] and
changes nothing on the estimator, so one fitted estimator predicts any number of runs.
``fitted()`` says what was learnt (for evaluation.json; None if nothing); ``unscored(run)``
counts the items it can give no probability (an answer without label slots), which evaluation
reports beside the row. As in scikit-learn, a constructor only stores its settings under their
own names (``get_params`` reads them back), what ``fit`` learns ends in ``_``, and
:func:`clone` makes an unfitted copy with the same settings.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from labeldist.runs.arrays import RunArrays

# What an estimator can need of a run beyond its items' votes and gold: per need, how to tell a
# run has it, and the run that does (said in the refusal). Declared on the class (``needs``) and
# checked by evaluate() before anything is fitted, so a missing part is one sentence naming it.
NEEDS: dict[str, tuple[Callable[[RunArrays], bool], str]] = {
    "generation": (lambda run: run.method == "generate", "a generation run (labeldist run, the default --method)"),
    "unary": (lambda run: run.method == "unary" and run.answer_logprobs is not None, "a `labeldist run --method unary` run"),
    "pairwise": (
        lambda run: run.method == "pairwise" and run.answer_logprobs is not None,
        "a `labeldist run --method pairwise` run",
    ),
    "marginal": (lambda run: run.marginal_lower is not None, "a run made with `labeldist run --marginal`"),
    "samples": (lambda run: run.sampled is not None, "a run made with `labeldist run --samples N`"),
    "hidden_states": (lambda run: run.has_hidden_states(), "a run made with `labeldist run --save-hidden`"),
}


class Estimator(ABC):
    """Per-label probabilities from a run; see the module docstring for the contract."""

    name: str = "estimator"
    # what the class can read, declared so that make_estimator needs no list of classes: None, it
    # reads the slot probabilities of either source (its constructor takes ``source``); else why
    # it reads only the exact ones (it has no first-token variant), said in the refusal
    exact_only: ClassVar[str | None] = None
    # fit learns from a run of other items (a calibration or training run): without one it cannot
    # predict (Run.estimate and evaluate read this rather than trying)
    learns: ClassVar[bool] = False
    # what it reads of a run (keys of NEEDS); the slot estimators read generation slots
    needs: ClassVar[frozenset[str]] = frozenset({"generation"})

    def requirements(self) -> frozenset[str]:
        """What this estimator reads of a run (its class's ``needs``; Platt's are its base's)."""
        return self.needs

    def lacking(self, run: RunArrays) -> str | None:
        """Why ``run`` cannot serve this estimator (the first need it lacks, and the run that has
        it), or None when it can."""
        for need in sorted(self.requirements()):
            has, remedy = NEEDS[need]
            if not has(run):
                return f"{self.name} needs {remedy}; {run.path} is a {run.method} run without it"
        return None

    def get_params(self) -> dict:
        """The constructor's settings, read back from the attributes of the same names."""
        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def fit(self, run: RunArrays | None = None) -> Estimator:
        """Learn from ``run`` (nothing by default) and return self."""
        return self

    @abstractmethod
    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """Items x labels probabilities; no state changes."""

    def fitted(self) -> dict | None:
        """What ``fit`` learnt, as JSON-ready values (None: nothing)."""
        return None

    def unscored(self, run: RunArrays) -> int:
        """Items of ``run`` this estimator gives no probability (0 by default)."""
        return 0


def clone(estimator: Estimator) -> Estimator:
    """An unfitted estimator of the same class with the same settings (as scikit-learn's ``clone``)."""
    return type(estimator)(**estimator.get_params())
