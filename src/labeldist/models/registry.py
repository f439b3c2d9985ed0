"""One way to make a backend from a run's settings, used by ``labeldist run`` and the suite.

``BackendSettings`` holds what is not part of a run's identity (where and how the model runs);
``make_backend(config, settings)`` gives the transformers backend, or the OpenAI-compatible HTTP
backend when ``settings.server`` is set."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from labeldist.models.base import Backend


class ModelChoice(Protocol):
    """What a backend needs of a run's settings (a ``runs.RunConfig`` has it; runs sit above
    models, so it is named here by shape, not imported)."""

    model: str
    chat: bool | None
    max_new_tokens: int


@dataclass(frozen=True)
class BackendSettings:
    """How a model runs: device, dtype, quantization, pruning tolerance of the slot tree (hf),
    or the server settings of ``--backend openai``; ``progress`` shows the server's progress."""

    device: str = "auto"
    dtype: str | None = None
    quantization: str | None = None
    prune_tolerance: float | None = None
    server: Any = None  # labeldist.models.openai.ServerSettings
    progress: bool = True


def make_backend(config: ModelChoice, settings: BackendSettings = BackendSettings()) -> Backend:
    """The backend that labels ``config``'s items with ``config.model``."""
    if settings.server is not None:
        from labeldist.models.openai import OpenAIBackend

        return OpenAIBackend(settings.server, chat=config.chat, max_new_tokens=config.max_new_tokens, progress=settings.progress)
    from labeldist.models.hf import HFBackend

    options = {"quantization": settings.quantization}
    if settings.prune_tolerance is not None:
        options["prune_tolerance"] = settings.prune_tolerance
    with _transformers_bars(settings.progress):  # --quiet also hides transformers' "Loading weights" bar
        return HFBackend(
            config.model,
            device=settings.device,
            dtype=settings.dtype,
            chat=config.chat,
            max_new_tokens=config.max_new_tokens,
            **options,
        )


@contextmanager
def _transformers_bars(shown: bool):
    from transformers.utils import logging as transformers_logging

    before = transformers_logging.is_progress_bar_enabled()
    if not shown:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if before and not shown:
            transformers_logging.enable_progress_bar()
