"""The command line: help everywhere, one clear line on bad input, exact prompts."""

import json
import subprocess
import sys

import click
import pytest

from conftest import FIXTURES
from labeldist.cli import cli, main

GO = str(FIXTURES / "goemotions")


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(all_commands(cli)), ids=" ".join)
def test_every_command_has_help(path, capsys):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: labeldist " + " ".join(path))


def test_bad_inputs_give_one_line(tmp_path, capsys):
    cases = [
        (["data", "describe", "goemotions", "--data-dir", str(tmp_path / "nowhere")], "does not exist"),
        (["data", "describe", "nosuchset", "--data-dir", GO], "unknown dataset"),
        (["data", "describe", "goemotions", "--data-dir", GO, "--split", "holdout"], "unknown split 'holdout'"),
        (["data", "describe", "goemotions", "--data-dir", GO, "--grouping", "nope"], "unknown grouping 'nope'"),
        (["data", "describe", "goemotions", "--data-dir", GO, "--task", "target"], "has no tasks"),
        (["data", "describe", "goemotions", "--data-dir", GO, "--option", "rawdir"], "expected key=value"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err
        assert "Traceback" not in err
        if "expected key=value" in message:  # click's usage errors: usage, hint, then the error line
            assert err.splitlines()[-1].startswith("Error:")
        else:
            assert len(err.splitlines()) == 1 and err.startswith("error: ")


def test_impossible_prompt_settings_give_one_line(capsys):
    # 2 demonstrations cannot cover 7 labels
    argv = [
        "prompt",
        "show",
        "goemotions",
        "--data-dir",
        GO,
        "--grouping",
        "paper-7",
        "--sampler",
        "covering",
        "--shots",
        "2",
        "--demonstrations",
        "per-item",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err


def test_describe_json_keys(capsys):
    assert main(["data", "describe", "goemotions", "--data-dir", GO, "--split", "dev", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 6 and summary["annotators"] == 4
    for key in (
        "dataset",
        "split",
        "items",
        "labels",
        "annotators",
        "votes_per_item",
        "multilabel_share",
        "disagreement_share",
        "label_frequency",
    ):
        assert key in summary


def test_prompt_show_prints_exact_prompt(capsys):
    def argv(seed):
        return [
            "prompt",
            "show",
            "goemotions",
            "--data-dir",
            GO,
            "--split",
            "dev",
            "--grouping",
            "paper-7",
            "--shots",
            "3",
            "--seed",
            str(seed),
            "--limit",
            "1",
            "--form",
            "plain",
        ]

    assert main(argv(0)) == 0
    first = capsys.readouterr().out
    assert "=== item dv0001" in first
    assert first.count("Text: ") == 4  # 3 demonstrations + the query
    assert first.rstrip().endswith("Labels:")
    assert "Thank you so much, this made my day!" in first
    assert main(argv(0)) == 0
    assert capsys.readouterr().out == first  # same seed, same prompt
    assert main(argv(1)) == 0
    assert capsys.readouterr().out != first


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "labeldist", "data", "list"], capture_output=True, text=True, check=True)
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"goemotions", "hatexplain", "mfrc", "semeval2018", "table"} <= set(names)
