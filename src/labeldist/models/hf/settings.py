"""The settings of the transformers backend (``--backend hf``): where and how the model runs.
None of them decides records: float32 and other dtypes are told apart in run.json's precision
record, and the pruning tolerance may change between attempts (each slot records its bounds)."""

from __future__ import annotations

from dataclasses import dataclass

from labeldist.slots.requests import PRUNE_TOLERANCE


@dataclass(frozen=True)
class HFSettings:
    """``device`` (cpu, cuda, cuda:1, auto), ``dtype`` (float32 on CPU by default),
    ``quantization`` (4bit / 8bit through bitsandbytes, CUDA only) and ``prune_tolerance``
    (tokenisation prefixes less likely than this are not extended; see slots/requests.py)."""

    device: str = "auto"
    dtype: str | None = None
    quantization: str | None = None
    prune_tolerance: float = PRUNE_TOLERANCE

    def identity(self) -> None:
        """Nothing here decides records (see the module's docstring)."""
        return None
