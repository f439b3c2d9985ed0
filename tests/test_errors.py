"""One error family: every error labeldist raises on purpose is caught by one clause, keeps the
built-in base a caller would expect, and reaches the command line as one line with exit 2."""

from __future__ import annotations

import pytest
import yaml

from labeldist.cli import main
from labeldist.errors import ConfigError, DataError, LabeldistError, ModelError, TemplateError


@pytest.mark.parametrize(
    ("error", "builtin"),
    [(DataError, ValueError), (ConfigError, ValueError), (TemplateError, ValueError), (ModelError, RuntimeError)],
)
def test_family_and_builtin_bases(error, builtin):
    assert issubclass(error, LabeldistError) and issubclass(error, builtin)


def test_located_message():
    assert str(DataError("a.tsv", 3, "bad")) == "a.tsv, line 3: bad"
    assert str(ConfigError("s.yaml", "key 'x'", "unknown")) == "s.yaml, key 'x': unknown"
    assert str(DataError("a.tsv", None, "missing")) == "a.tsv: missing"
    err = ConfigError("s.yaml", "key 'x'", "unknown")
    assert (err.source, err.where, err.problem) == ("s.yaml", "key 'x'", "unknown")
    assert not isinstance(err, DataError)  # a settings mistake is not a data problem


def test_suite_mistake_is_a_config_error_on_one_line(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"models": ["m"], "datasets": [], "speed": 2}))
    assert main(["suite", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}, key 'speed': unknown setting")
