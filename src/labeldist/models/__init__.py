"""Model backends behind one small interface (generate with per-slot label distributions;
score continuations of a shared prefix)."""

from labeldist.errors import ModelError
from labeldist.models.base import Backend, Generation, SlotDistribution
from labeldist.models.resolve import ALIASES, ResolvedModel, resolve_model

__all__ = ["ALIASES", "Backend", "Generation", "ModelError", "ResolvedModel", "SlotDistribution", "resolve_model"]
