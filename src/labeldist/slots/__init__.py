"""Label slots: where labels start in generated answers, and exact label probabilities."""

from labeldist.slots.locate import STOP, Continuation, SlotPlan, plan_slots
from labeldist.slots.scoring import ContinuationScorer, ScoreRequest
from labeldist.slots.tokens import TokenTexts, eos_ids

__all__ = [
    "STOP",
    "Continuation",
    "ContinuationScorer",
    "ScoreRequest",
    "SlotPlan",
    "TokenTexts",
    "eos_ids",
    "plan_slots",
]
