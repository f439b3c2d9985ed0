"""The vLLM backend gives the hf backend's numbers: on SmolLM2 in float32, the same greedy
answers and every slot's label and stop probabilities, bounds and first-token values within
1e-4, on GoEmotions (paper-7) and HateXplain targets (10 shared demonstrations, as a run makes
them), with two-label answers scored as given answers, the marginal's last-slot reading,
unary answers and sampled answers; and a `labeldist run --backend vllm` that resumes writes an
hf run's records, as does a run over two Ray workers with a vLLM engine each; a bfloat16
engine's --precision-check compares with the hf backend in float32. These run in .venv-vllm
(make test-vllm), where vLLM's CPU build is installed; the main run leaves them out (marker
``vllm``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA

pytestmark = pytest.mark.vllm

if os.environ.get("LABELDIST_REQUIRE_VLLM"):
    import vllm  # noqa: F401  (fails the module, not skips it, where vLLM is required)
else:
    pytest.importorskip("vllm", reason="vLLM is not installed here (make test-vllm runs these in .venv-vllm)")

from labeldist.data import load_dataset  # noqa: E402
from labeldist.models.hf import HFBackend  # noqa: E402
from labeldist.models.vllm import VLLMBackend, VLLMSettings  # noqa: E402
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format  # noqa: E402
from labeldist.prompts.judgements import JudgementTemplate, build_judgement_prompts  # noqa: E402

MODEL = "smollm2-135m-instruct"
TOL = 1e-4  # float32 on both sides, different kernels and orders of summation
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"


@pytest.fixture(scope="module")
def backends():
    hf = HFBackend(MODEL, device="cpu")
    vl = VLLMBackend(MODEL, VLLMSettings(), chat=None, max_new_tokens=64, progress=False)
    assert vl.dtype == "float32" and str(hf.model.dtype) == "torch.float32"
    return hf, vl


def _goemotions():
    folder = SHARED_DATA / "goemotions" if (SHARED_DATA / "goemotions" / "dev.tsv").exists() else BUNDLED
    dev = load_dataset("goemotions", folder, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", folder, "train", grouping="paper-7")
    return dev, pool


def _hatexplain():
    folder = SHARED_DATA / "hatexplain"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present: the HateXplain comparison reads the real files")
    return load_dataset("hatexplain", folder, "test", task="target"), load_dataset("hatexplain", folder, "dev", task="target")


def _prompts(dev, pool, n):
    subset = dev.restrict([item.id for item in dev.items[:n]])
    fmt = get_answer_format("json")
    return subset, fmt, build_prompts(subset, pool, PromptTemplate(), fmt, "random", 10, seed=0, shared_demonstrations=True)


def _largest_difference(got_hf, got_vllm) -> float:
    worst = 0.0
    for a, b in zip(got_hf, got_vllm, strict=True):
        assert a.answer == b.answer and a.token_ids == b.token_ids and a.finished == b.finished
        assert [s.chosen for s in a.slots] == [s.chosen for s in b.slots]
        assert [s.decision_token for s in a.slots] == [s.decision_token for s in b.slots]
        for x, y in zip(a.slots, b.slots, strict=True):
            pairs = [
                (x.label_probs, y.label_probs),
                ([x.stop_prob], [y.stop_prob]),
                (x.label_probs_upper, y.label_probs_upper),
                (np.nan_to_num(x.first_token_probs, nan=-1), np.nan_to_num(y.first_token_probs, nan=-1)),
            ]
            if x.given_logprob is not None:
                pairs.append(([np.exp(x.given_logprob)], [np.exp(y.given_logprob)]))
            for u, v in pairs:
                worst = max(worst, float(np.abs(np.asarray(u, dtype=float) - np.asarray(v, dtype=float)).max()))
    return worst


@pytest.mark.parametrize("dataset", ["goemotions", "hatexplain"])
def test_greedy_and_two_label_slots_equal_the_hf_backend(backends, dataset):
    hf, vl = backends
    dev, pool = _goemotions() if dataset == "goemotions" else _hatexplain()
    subset, fmt, prompts = _prompts(dev, pool, 4)
    labels = tuple(subset.labels)
    worst = _largest_difference(hf.generate(prompts, labels, fmt), vl.generate(prompts, labels, fmt))
    # two-label answers (and a three-label one), as given answers: slots 1-3 of each
    forced = [
        f' ["{labels[0]}", "{labels[1]}"]',
        f' ["{labels[2]}", "{labels[-1]}"]',
        f' ["{labels[1]}", "{labels[3]}", "{labels[0]}"]',
        " []",
    ]
    got_hf = hf.generate(prompts, labels, fmt, forced_answers=forced)
    got_vl = vl.generate(prompts, labels, fmt, forced_answers=forced)
    assert [len(g.slots) for g in got_vl] == [3, 3, 4, 1]
    worst = max(worst, _largest_difference(got_hf, got_vl))
    last = _largest_difference(
        hf.generate(prompts, labels, fmt, forced_answers=forced, last_slot_only=True),
        vl.generate(prompts, labels, fmt, forced_answers=forced, last_slot_only=True),
    )
    print(f"\n[vllm vs hf] {dataset}: largest difference {worst:.2e} (last slots {last:.2e})")
    assert worst < TOL and last < TOL


def test_unary_answers_and_samples(backends):
    hf, vl = backends
    dev, pool = _goemotions()
    subset = dev.restrict([item.id for item in dev.items[:2]])
    prompts = build_judgement_prompts(subset, pool, JudgementTemplate.default("unary"), "random", 4, seed=0)
    for a, b in zip(hf.score_answers(prompts), vl.score_answers(prompts), strict=True):
        assert a.shape == b.shape and np.abs(np.exp(a) - np.exp(b)).max() < TOL
    _, fmt, answer_prompts = _prompts(dev, pool, 2)
    first = vl.sample_answers(answer_prompts, fmt, 4, temperature=1.0, seed=3)
    again = vl.sample_answers(answer_prompts[::-1], fmt, 4, temperature=1.0, seed=3)[::-1]
    assert first == again  # seeded per (seed, item, draw): not by the batch
    assert all(len(draws) == 4 and all(d.startswith(p.answer_prefix) for d in draws) for p, draws in zip(answer_prompts, first))


def _run(tmp_path: Path, out: str, backend: str, limit: int, *extra: str) -> Path:
    dev_dir = SHARED_DATA / "goemotions" if (SHARED_DATA / "goemotions" / "dev.tsv").exists() else BUNDLED
    command = [
        str(Path(sys.executable).parent / "labeldist"),
        "run",
        "--backend",
        backend,
        "--dataset",
        "goemotions",
        "--data-dir",
        str(dev_dir),
        "--split",
        "dev",
        "--grouping",
        "paper-7",
        "--model",
        MODEL,
        "--shots",
        "10",
        "--limit",
        str(limit),
        "--batch-size",
        "2",
        "--quiet",
        "--out",
        str(tmp_path / out),
        *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / out


def _records_difference(run_a: Path, run_b: Path) -> float:
    """The largest slot difference of two runs' records, which must hold the same items, answers,
    tokens and decision points."""
    from labeldist.runs import RunStore

    a = RunStore(run_a).read().set_index("id").sort_index()
    b = RunStore(run_b).read().set_index("id").sort_index()
    assert list(a.index) == list(b.index) and len(a) == 4
    worst = 0.0
    for item_id in a.index:
        x, y = a.loc[item_id], b.loc[item_id]
        assert x["answer"] == y["answer"] and list(x["token_ids"]) == list(y["token_ids"])
        assert list(x["slot_decisions"]) == list(y["slot_decisions"])
        for s, t in zip(x["slots"], y["slots"], strict=True):
            values = [*s["label_probs"], s["stop_prob"]], [*t["label_probs"], t["stop_prob"]]
            worst = max(worst, float(np.abs(np.subtract(*values)).max()))
    return worst


def test_a_vllm_run_resumes_into_the_records_of_an_hf_run(tmp_path):
    _run(tmp_path, "vllm", "vllm", 2)
    vllm_run = _run(tmp_path, "vllm", "vllm", 4)  # resumes: labels items 3 and 4 only
    hf_run = _run(tmp_path, "hf", "hf", 4)
    manifest = json.loads((vllm_run / "run.json").read_text())
    assert manifest["config"]["backend"] == "vllm" and manifest["model"]["backend"] == "vllm"
    assert [a["items_labelled"] for a in manifest["attempts"]] == [2, 2]
    assert manifest["precision"]["dtypes"] == ["float32"] and manifest["precision"]["exact_dtype"]
    assert _records_difference(vllm_run, hf_run) < TOL
    # --engine ray: two workers, each with a vLLM engine of its own, write the same records
    ray_run = _run(tmp_path, "ray", "vllm", 4, "--engine", "ray", "--workers", "2")
    engine = json.loads((ray_run / "run.json").read_text())["attempts"][-1]["engine"]
    assert engine["name"] == "ray" and engine["workers"] == 2 and engine["lost_batches"] == 0
    assert _records_difference(ray_run, hf_run) < TOL


def test_a_bfloat16_engine_is_checked_against_float32(tmp_path):
    """--precision-check with vLLM: the recorded answers scored again by the hf backend in float32."""
    run = _run(tmp_path, "bf16", "vllm", 2, "--dtype", "bfloat16", "--precision-check", "2")
    precision = json.loads((run / "run.json").read_text())["precision"]
    assert precision["dtypes"] == ["bfloat16"] and not precision["exact_dtype"]
    check = precision["check"]
    assert check["items"] == 2 and check["dtype"] == "bfloat16" and check["reference"] == "hf backend, float32, cpu"
    # bfloat16 moves the numbers (measured: up to 0.014 on these items), but not wildly
    assert 0 < check["max_abs_label_prob_diff"] < 0.2 and check["slots"] >= 2


def test_the_benchmark_runs_in_smoke_mode(tmp_path):
    """benchmarks/bench_vllm.py runs (2 items of the bundled subset) and its vLLM and hf slots agree."""
    out = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_vllm.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(out.read_text())
    assert numbers["items"] == 2 and numbers["labeldist_vllm_ratio"] > 0 and numbers["largest_difference_vllm_hf"] < TOL
