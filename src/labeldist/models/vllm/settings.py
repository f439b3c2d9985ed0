"""The settings of the vLLM backend (``--backend vllm``), importable without vLLM. None of them
decides records: the numbers are the exact definition whatever the engine's layout, the dtype
is told apart in run.json's precision record, and the pruning tolerance may change between
attempts (each slot records its bounds)."""

from __future__ import annotations

from dataclasses import dataclass, field

from labeldist.slots.requests import PRUNE_TOLERANCE


@dataclass(frozen=True)
class VLLMSettings:
    """``dtype``: float32 on CPU by default (exact), else the model's own (``auto``);
    ``prune_tolerance`` as for hf; ``gpu_memory_utilization``: the share of GPU memory vLLM
    takes (on a CPU build, of CPU memory for its cache: 0.2 by default there, vLLM's 0.92 would
    not start beside other work); ``tensor_parallel_size``: GPUs one model spans;
    ``enforce_eager``: no graph compilation (default on CPU: starts in about 30 s instead of
    140 s); ``max_model_len``: the context to plan for (default: the model's);
    ``block_size``: tokens per cache block (default 32 on CPU, where vLLM's 128 would recompute up
    to 127 prompt tokens in every one-token request: measured 17x slower on SmolLM2; vLLM's
    default elsewhere); ``engine_args``: any other ``vllm.LLM`` argument, as given; ``precision_device``: where
    ``--precision-check`` loads its float32 reference (the hf backend; CPU by default, as vLLM
    holds the GPU's memory)."""

    dtype: str | None = None
    prune_tolerance: float = PRUNE_TOLERANCE
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int = 1
    enforce_eager: bool | None = None
    max_model_len: int | None = None
    block_size: int | None = None
    engine_args: dict = field(default_factory=dict)
    precision_device: str = "cpu"

    def identity(self) -> None:
        """Nothing here decides records (see the module's docstring)."""
        return None
