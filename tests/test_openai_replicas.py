"""Replicas of one served model (issue 22): `--base-url` given once per replica. Requests spread
over the replicas by load; a replica that stops mid-run has its requests retried on the others,
is reported, and the run goes on with the same records. Real HTTP servers on loopback over the
toy model of tests/openai_fake.py."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
from openai_fake import LABELS, FakeServer, ToyLM

from labeldist.cli import main
from labeldist.runs import RunStore

TEXTS = [f"text number {i}: {word}" for i, word in enumerate("happy storm why nothing keys rain sun cake loss fight".split() * 2)]


@pytest.fixture
def table(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame([{"id": f"d{i:02d}", "text": t, "labels": "joy"} for i, t in enumerate(TEXTS)]).to_csv(
        data / "dev.csv", index=False
    )
    template = tmp_path / "template.yaml"
    template.write_text(
        'system: ""\ninstruction: "Labels: {labels}. {answer_format}"\n'
        'demonstration: "Text: {text}\\nLabels: {label}"\nquery: "Text: {text}\\nLabels:"\n'
    )
    argv = ["run", "--dataset", "table", "--data-dir", str(data), "--split", "dev", "--option", "label_list_column=labels"]
    argv += ["--option", f"labels=[{', '.join(LABELS)}]", "--shots", "0", "--template", str(template), "--no-chat", "--quiet"]
    argv += ["--backend", "openai", "--model", "toy", "--retries", "2", "--top-logprobs", "4", "--batch-size", "4"]
    return argv


def _records(out):
    return RunStore(out).read().sort_values("id").reset_index(drop=True)


def _same(got, expected):
    assert got["id"].tolist() == expected["id"].tolist() and got["id"].is_unique
    assert got["answer"].tolist() == expected["answer"].tolist()
    for a, b in zip(got["slots"], expected["slots"]):
        assert [s["chosen"] for s in a] == [s["chosen"] for s in b]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x["label_probs"], y["label_probs"])
            assert x["stop_prob"] == y["stop_prob"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_replica_stopped_mid_run_and_the_run_goes_on(table, tmp_path, capsys, caplog):
    lm = ToyLM()
    with FakeServer(lm) as alone:
        assert main([*table, "--base-url", alone.url, "--out", str(tmp_path / "alone")]) == 0
    capsys.readouterr()
    with FakeServer(lm) as first, FakeServer(lm) as second:
        stopped = threading.Event()

        def stop_second_after_some_requests():
            while len(second.requests) < 6:
                time.sleep(0.005)
            second.httpd.shutdown()
            second.httpd.server_close()
            stopped.set()

        watcher = threading.Thread(target=stop_second_after_some_requests, daemon=True)
        watcher.start()
        out = tmp_path / "replicas"
        with caplog.at_level("WARNING", logger="labeldist"):
            assert main([*table, "--base-url", first.url, "--base-url", second.url, "--out", str(out)]) == 0
        assert stopped.is_set(), f"the second replica was not stopped mid-run: {len(first.requests)} {len(second.requests)}"
        served_first, served_second = len(first.requests), len(second.requests)
    _same(_records(out), _records(tmp_path / "alone"))
    replicas = json.loads((out / "run.json").read_text())["model"]["requests"]["replicas"]
    assert replicas[second.url]["down"] is True and replicas[second.url]["failed_attempts"] >= 1
    assert replicas[first.url]["down"] is False and replicas[first.url]["failed_attempts"] == 0
    # both took a share while both were up; the first carried the rest
    assert 6 <= served_second < served_first
    assert replicas[first.url]["requests"] == served_first and replicas[second.url]["requests"] <= served_second
    assert any(f"replica {second.url} failed" in r.getMessage() for r in caplog.records)


def test_a_replica_down_from_the_start_is_reported_and_skipped(table, tmp_path, caplog):
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    with FakeServer() as server, caplog.at_level("WARNING", logger="labeldist"):
        out = tmp_path / "run"
        assert main([*table, "--base-url", dead, "--base-url", server.url, "--out", str(out)]) == 0
    assert len(RunStore(out).read()) == len(TEXTS)
    replicas = json.loads((out / "run.json").read_text())["model"]["requests"]["replicas"]
    assert replicas[dead]["requests"] == 0 and replicas[dead]["down"] is True
    assert any(f"replica {dead} failed" in r.getMessage() for r in caplog.records)


def test_every_replica_down_stops_the_run_in_one_line(table, tmp_path, capsys):
    dead = [f"http://127.0.0.1:{_closed_port()}/v1" for _ in range(2)]
    argv = [*table, "--retries", "0", "--base-url", dead[0], "--base-url", dead[1], "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect" in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_replica_serving_another_model_is_refused_naming_it(table, tmp_path, capsys):
    with FakeServer() as right, FakeServer(model="other") as wrong:
        assert main([*table, "--base-url", right.url, "--base-url", wrong.url, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{wrong.url}/models does not serve model 'toy'" in err or f"{wrong.url} does not serve model 'toy'" in err


def test_a_replica_given_twice_is_refused(table, tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    assert main([*table, "--base-url", url, "--base-url", url, "--out", str(tmp_path / "run")]) == 2
    assert "given twice" in capsys.readouterr().err
