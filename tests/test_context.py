"""A prompt the model's context cannot hold is refused before anything is written: SmolLM2
(8,192 positions) and a GoEmotions item of about 12,000 tokens, as a new user met it (the run
used to label it silently and record a garbage answer). The check counts the tokens the model
would read, the answer's --max-new-tokens included, and names the item; the same command
without that item runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labeldist.cli import main

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "src" / "labeldist" / "resources" / "goemotions_subset"


@pytest.fixture()
def data(tmp_path) -> Path:
    folder = tmp_path / "goemotions"
    shutil.copytree(SUBSET, folder, ignore=shutil.ignore_patterns("ATTRIBUTION.md"))
    lines = (folder / "dev.tsv").read_text().splitlines()[:3]
    # about 12,000 SmolLM2 tokens (" word" is one), in the official three-column format
    long_text = "This is a very long post about nothing in particular" + " word" * 12_000
    (folder / "dev.tsv").write_text("\n".join([*lines, f"{long_text}\t27\tlongpost01"]) + "\n")
    return folder


def argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--dataset",
        "goemotions",
        "--data-dir",
        str(data),
        "--split",
        "dev",
        "--grouping",
        "paper-7",
        "--model",
        "smollm2-135m-instruct",
        "--shots",
        "2",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def test_a_prompt_past_the_context_is_refused_before_anything_is_written(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(argv(data, out)) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "item longpost01: its prompt is" in message and "tokens" in message
    assert "the context of smollm2-135m-instruct (8192 tokens)" in message and str(data) in message
    tokens = int(message.split("its prompt is ")[1].split(" ")[0])
    assert 12_000 < tokens < 12_400
    assert not (out / "run.json").exists() and not (out / "records").exists()

    # the answer's tokens count too: a prompt that fits only without them is refused as well
    lines = (data / "dev.tsv").read_text().splitlines()
    # the same prompt with a text about 8,160 tokens long: under 8,192, but not with 64 more
    overhead = tokens - 12_010  # the template and demonstrations around the text
    fits = "A short one" + " word" * (8_160 - 3 - overhead)
    (data / "dev.tsv").write_text("\n".join([*lines[:3], f"{fits}\t27\tlongpost01"]) + "\n")
    assert main(argv(data, out, "--max-new-tokens", "64")) == 2
    assert "item longpost01" in capsys.readouterr().err
    assert not (out / "run.json").exists()

    # without the item the run goes ahead
    (data / "dev.tsv").write_text("\n".join(lines[:3]) + "\n")
    assert main(argv(data, out, "--limit", "1")) == 0
    assert json.loads((out / "run.json").read_text())["counts"]["items_recorded"] == 1


@pytest.mark.parametrize("method", ["unary", "pairwise"])
def test_a_question_past_the_context_is_refused_too(data, tmp_path, capsys, method):
    """Unary and pairwise prompts are measured by their longest question and answer (issue 31:
    the check covered generation only)."""
    out = tmp_path / method
    assert main(argv(data, out, "--method", method)) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "item longpost01: its longest question and answer are" in message
    assert "past the context of smollm2-135m-instruct (8192 tokens)" in message
    assert 12_000 < int(message.split(" are ")[1].split(" ")[0]) < 12_500
    assert not (out / "run.json").exists() and not (out / "records").exists()
