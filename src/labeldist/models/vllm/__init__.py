"""The vLLM backend (``--backend vllm``): the model in a vLLM engine in this process (paged
attention, continuous batching, prefix caching), every slot exact under the hf backend's
definition (``models/exact.py`` over ``engine.py``'s next-token distributions). Install vLLM
beside labeldist (``pip install 'labeldist[vllm]'`` and the vLLM build for your hardware;
``make vllm`` builds the CPU one here). Its names import vLLM only when first used."""

from __future__ import annotations

import importlib

from labeldist.models.vllm.settings import VLLMSettings

_LAZY = {"VLLMBackend": "backend", "VLLMNextTokenModel": "engine"}

__all__ = ["VLLMBackend", "VLLMNextTokenModel", "VLLMSettings"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"labeldist.models.vllm.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
