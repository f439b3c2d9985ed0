"""Every file labeldist writes appears whole or not at all (issue 18, case 2): a write that fails
half-way (here: a real file-size limit, as a full disk would) leaves the previous file intact."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from labeldist import atomic


def test_strict_json_without_nan(tmp_path):
    path = atomic.write_json(
        tmp_path / "a.json", {"x": float("nan"), "y": [1.0, math.inf], "z": np.float32(0.5), "w": np.arange(2)}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"x": None, "y": [1.0, None], "z": 0.5, "w": [0, 1]}
    assert text.endswith("\n")


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.md"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


@pytest.mark.parametrize("writer", ["write_json", "evaluation"])
def test_a_full_disk_keeps_the_previous_file(tmp_path, writer):
    """In a child process whose file-size limit (RLIMIT_FSIZE) stops writes at 4 KB, writing a
    40 KB file fails with an OSError; the previous 1 KB file is still there, whole."""
    target = tmp_path / "evaluation.json"
    atomic.write_json(target, {"previous": list(range(100))})
    before = target.read_bytes()
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        big = {{"rows": list(range(10000))}}
        try:
            if {writer!r} == "write_json":
                from labeldist import atomic
                atomic.write_json(Path({str(target)!r}), big)
            else:
                from labeldist.evaluation import write_evaluation
                write_evaluation(big, Path({str(target)!r}).parent)
        except OSError as err:
            print("OSError", err.errno)
            sys.exit(3)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json"]  # no temporary left
