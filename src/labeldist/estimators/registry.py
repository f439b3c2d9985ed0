"""Estimator specs: how a name on the command line becomes an estimator.

A spec is ``NAME[key=value,...]@SOURCE``, every part but the name optional:

- ``max``                         the exact per-slot probabilities, maximum over slots
- ``max@first-token``             the same from the original first-token approximation
- ``platt``                       Platt scaling of ``max``, per label, on log p - log p_stop
- ``platt-shared``                the same with one sigmoid for all labels
- ``platt[base=first,feature=logit]@first-token``   any of Platt's settings
- ``unary``, ``pairwise``             runs made with ``--method unary|pairwise``
- ``pairwise[score=win-rate]``        mean soft win rate instead of Bradley–Terry vs none
- ``probe[layer=-1,target=votes]``    logistic regression on first-slot hidden states, fitted
                                      on the --calibrate-on run (both made with --save-hidden)
- ``encoder[model=models/NAME]``      a fine-tuned encoder (labeldist encoder train)
- ``marginal``, ``marginal[reading=conditional|mid|lower|upper]``  P(label in answer) over
                                      the trie of answers (``labeldist run --marginal``):
                                      P(an answer the format reads names L), or given the
                                      answer is in the format, or the bounds that let an
                                      answer outside the format name anything
- ``sample``, ``sample[n=8]``         share of the answers sampled with ``labeldist run --samples N``
                                      (all of them, or the first 8) that name each label
"""

from __future__ import annotations

import inspect
import re

from labeldist.estimators.encoder import Encoder
from labeldist.estimators.label_in_answer import Marginal, Sample
from labeldist.estimators.platt import Platt
from labeldist.estimators.probe import Probe
from labeldist.estimators.slot_heuristics import SLOT_ESTIMATORS, SOURCES, Output
from labeldist.estimators.unary_pairwise import Pairwise, Unary
from labeldist.prompts.methods import RunMethod

ESTIMATORS = {
    **{name: cls for name, cls in SLOT_ESTIMATORS.items()},
    "output": Output,
    "unary": Unary,
    "pairwise": Pairwise,
    "platt": Platt,
    "platt-shared": Platt,
    "probe": Probe,
    "encoder": Encoder,
    "sample": Sample,
    "marginal": Marginal,
}
# what `labeldist evaluate` reports when no estimators are named, by the run's method
DEFAULT_ESTIMATORS = {
    RunMethod.GENERATE: ("first", "max", "mean", "noisy-or", "output"),
    RunMethod.UNARY: ("unary", "platt[base=unary]"),
    RunMethod.PAIRWISE: ("pairwise", "platt[base=pairwise]"),
}
# what the suite evaluates when its file names no estimators (it always has a calibration run)
SUITE_ESTIMATORS = {
    RunMethod.GENERATE: ("first", "max", "max@first-token", "mean", "noisy-or", "output", "platt", "platt-shared"),
    RunMethod.UNARY: ("unary", "platt[base=unary]"),
    RunMethod.PAIRWISE: ("pairwise", "platt[base=pairwise]"),
}
SPEC = re.compile(r"^\s*(?P<name>[\w-]+)\s*(?:\[(?P<params>[^\]]*)\])?\s*(?:@\s*(?P<source>[\w-]+))?\s*$")


def parse_estimator(spec: str) -> tuple[str, dict[str, object], str]:
    """``platt[base=first]@first-token`` -> ("platt", {"base": "first"}, "first-token")."""
    match = SPEC.match(spec)
    if not match:
        raise ValueError(f"estimator {spec!r} is not NAME[key=value,...]@SOURCE")
    params: dict[str, object] = {}
    for pair in filter(None, (p.strip() for p in (match["params"] or "").split(","))):
        key, eq, value = pair.partition("=")
        if not eq:
            raise ValueError(f"estimator {spec!r}: setting {pair!r} is not key=value")
        params[key.strip()] = _number_or_text(value.strip())
    source = match["source"] or "exact"
    if source not in SOURCES:
        raise ValueError(f"estimator {spec!r}: source must be one of {', '.join(SOURCES)}, not {source!r}")
    return match["name"], params, source


def split_specs(text: str) -> list[str]:
    """A comma-separated list of specs; commas inside [...] belong to a spec."""
    return [s.strip() for s in re.split(r",(?![^\[]*\])", text) if s.strip()]


def make_estimator(name: str, source: str = "exact", **params):
    """The estimator ``name`` with ``params`` and ``source``; a ValueError for an unknown name or a source it lacks."""
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}") from None
    if name == "platt-shared":
        params.setdefault("scope", "shared")
    # what the class declares it reads (Estimator.exact_only), not a list of classes here
    if cls.exact_only and source != "exact":
        raise ValueError(f"{name} {cls.exact_only}; it has no first-token variant")
    if "source" in inspect.signature(cls.__init__).parameters:
        params = {"source": source, **params}
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"estimator {name!r}: {err}") from None


def _number_or_text(value: str):
    try:
        return float(value)
    except ValueError:
        return value
