"""Label slots, independent of any model library: where labels start in generated answers, the
surface forms scored at each slot (:class:`ScoreRequest`), and token texts. The exact scorers
live beside the backends that run them (``models/hf/scoring.py``); nothing here imports torch."""

from labeldist.slots.locate import STOP, Continuation, SlotPlan, plan_slots
from labeldist.slots.requests import PRUNE_TOLERANCE, ScoreRequest
from labeldist.slots.tokens import TokenTexts, eos_ids

__all__ = [
    "PRUNE_TOLERANCE",
    "STOP",
    "Continuation",
    "ScoreRequest",
    "SlotPlan",
    "TokenTexts",
    "eos_ids",
    "plan_slots",
]
