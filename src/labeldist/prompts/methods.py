"""How a model is asked for labels: the one place the three methods are named."""

from __future__ import annotations

from enum import StrEnum


class RunMethod(StrEnum):
    """``generate``: the model writes its answer and every label slot is read; ``unary``: it
    judges each candidate label yes/no; ``pairwise``: it judges every ordered pair of labels.
    A member equals its string (``RunMethod.GENERATE == "generate"``), so run.json, YAML and the
    command line keep plain strings."""

    GENERATE = "generate"
    UNARY = "unary"
    PAIRWISE = "pairwise"

    @property
    def judges(self) -> bool:
        """True for the methods that score questions instead of reading generation slots."""
        return self is not RunMethod.GENERATE


JUDGEMENT_METHODS = (RunMethod.UNARY, RunMethod.PAIRWISE)


def run_method(value: str | RunMethod) -> RunMethod:
    """``value`` as a :class:`RunMethod`; a ValueError listing the methods otherwise."""
    try:
        return RunMethod(value)
    except ValueError:
        raise ValueError(f"method must be one of {', '.join(RunMethod)}, not {value!r}") from None
