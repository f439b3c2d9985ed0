"""The transformers backend (``--backend hf``): greedy generation over a key/value cache and
every slot's exact probabilities in tree passes over it (``scoring.py``); its settings
(``settings.py``). The backend's names load torch when first used, so that its settings
(and the registry that reads them) can be imported without it."""

from __future__ import annotations

import importlib

from labeldist.models.hf.settings import HFSettings

_LAZY = {"HFBackend": "backend", "pick_device": "backend", "special_token_strings": "backend"}

__all__ = ["HFBackend", "HFSettings", "pick_device", "special_token_strings"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"labeldist.models.hf.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
