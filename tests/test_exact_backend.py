"""The exact backend's shared code (prompts encoded on this side, slots planned as the hf backend
plans them, continuations scored by the lattice walk over next-token distributions) gives the
hf backend's numbers: checked with a transformers model as the engine (full forward passes, no
cache), in float64, on tiny models of both tokenizer families and every answer format, greedy
and forced answers, the marginal's last-slot scoring, pruning bounds, unary/pairwise answers
and continuation scores. The vLLM engine is checked against the hf backend in
tests/test_vllm_backend.py, in the environment that has vLLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_slots_tokenizers import CASES, LABELS, prompts_for, tiny_data
from tiny_models import byte_level_bpe_tokenizer, sentencepiece_style_tokenizer, synthetic_examples, tiny_gemma3, tiny_llama
from torch_engine import TorchExactBackend, slot_arrays

from labeldist.data import Dataset, Item
from labeldist.models.hf import HFBackend
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format
from labeldist.prompts.judgements import JudgementTemplate, build_judgement_prompts

transformers = pytest.importorskip("transformers")
HAS_GEMMA3 = hasattr(transformers, "Gemma3ForCausalLM") and hasattr(transformers, "Gemma3TextConfig")
TOL = 1e-9  # float64 on both sides; only the order of sums differs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, one_thread):
    """name -> (hf backend, exact backend over the same float64 model)."""
    root = tmp_path_factory.mktemp("exact-backend")
    dirs = {"llama-bpe": root / "llama-bpe", "llama-sp": root / "llama-sp"}
    tiny_llama(dirs["llama-bpe"], byte_level_bpe_tokenizer(root / "tok-bpe"), seed=1)
    sentencepiece = sentencepiece_style_tokenizer(root / "tok-sp")
    tiny_llama(dirs["llama-sp"], sentencepiece, seed=2)
    if HAS_GEMMA3:
        dirs["gemma3-sp"] = root / "gemma3-sp"
        tiny_gemma3(dirs["gemma3-sp"], sentencepiece, seed=3, sliding_window=8)
    out = {}
    for name, path in dirs.items():
        hf = HFBackend(str(path), device="cpu", dtype="float64", chat=False)
        out[name] = (hf, TorchExactBackend(hf))
    return out


@pytest.fixture(scope="module")
def data():
    return tiny_data()


def assert_same(hf_generations, exact_generations, tol=TOL):
    for hf, exact in zip(hf_generations, exact_generations, strict=True):
        assert exact.answer == hf.answer and exact.token_ids == hf.token_ids and exact.finished == hf.finished
        assert exact.prompt_text == hf.prompt_text and exact.generated_tokens == hf.generated_tokens
        assert [s.chosen for s in exact.slots] == [s.chosen for s in hf.slots]
        assert [s.decision_token for s in exact.slots] == [s.decision_token for s in hf.slots]
        assert [s.forms for s in exact.slots] == [s.forms for s in hf.slots]
        for a, b in zip(slot_arrays(hf), slot_arrays(exact), strict=True):
            assert np.abs(a - b).max() < tol, (a, b)


def _names():
    names = ["llama-bpe", "llama-sp"]
    return names + [pytest.param("gemma3-sp", marks=pytest.mark.skipif(not HAS_GEMMA3, reason="no Gemma 3"))]


@pytest.mark.parametrize("name", _names())
def test_forced_answers_in_every_format(pairs, data, name):
    hf, exact = pairs[name]
    for fmt_name in ("json", "comma", "and"):
        cases = [forced for fmt, forced, _ in CASES.values() if fmt == fmt_name]
        prompts = prompts_for(data, fmt_name)
        prompts = [prompts[i % len(prompts)] for i in range(len(cases))]
        fmt = get_answer_format(fmt_name)
        assert_same(
            hf.generate(prompts, LABELS, fmt, forced_answers=cases), exact.generate(prompts, LABELS, fmt, forced_answers=cases)
        )
        # the marginal's reading: the last slot alone, with what it is conditioned on
        last_hf = hf.generate(prompts, LABELS, fmt, forced_answers=cases, last_slot_only=True)
        last_exact = exact.generate(prompts, LABELS, fmt, forced_answers=cases, last_slot_only=True)
        assert all(g.slots[-1].given_logprob is not None for g in last_exact if g.slots)
        assert_same(last_hf, last_exact)


@pytest.mark.parametrize("name", ["llama-bpe", "llama-sp"])
def test_pruning_bounds_are_the_same(pairs, data, name):
    """At a coarse tolerance many prefixes are pruned: the bounds the two record are equal."""
    hf, _ = pairs[name]
    coarse = TorchExactBackend(hf, tolerance=1e-2)
    before = hf.scorer.tolerance
    hf.scorer.tolerance = 1e-2
    try:
        prompts = prompts_for(data, "json")
        forced = [' ["optimism", "admiration", "sex harassment"]', ' ["anger", "angered"]', " []"]
        fmt = get_answer_format("json")
        got_hf = hf.generate(prompts, LABELS, fmt, forced_answers=forced)
        got_exact = coarse.generate(prompts, LABELS, fmt, forced_answers=forced)
    finally:
        hf.scorer.tolerance = before
    widths = [float((s.label_probs_upper - s.label_probs_lower).max()) for g in got_exact for s in g.slots]
    assert max(widths) > 0  # something was pruned
    assert_same(got_hf, got_exact)


@pytest.mark.parametrize("name", ["llama-bpe", "llama-sp"])
def test_pruning_relative_to_the_answer_is_the_same(pairs, data, name):
    """``answer_weights`` (the marginal's node masses): spellings pruned when their probability
    times the answer's weight is below the tolerance, alike in the hf backend's grouped tree
    pass (two answers to one prompt) and in the lattice walk, and more than without weights."""
    hf, exact = pairs[name]
    first, second = prompts_for(data, "json")[:2]
    prompts = [first, second, first]
    forced = [' ["anger", "angered"]', ' ["optimism"]', " []"]
    weights = [1e-3, 1e-2, 0.5]
    fmt = get_answer_format("json")
    options = {"forced_answers": forced, "last_slot_only": True}
    weighted = hf.generate(prompts, LABELS, fmt, answer_weights=weights, **options)
    assert_same(weighted, exact.generate(prompts, LABELS, fmt, answer_weights=weights, **options))
    plain = exact.generate(prompts, LABELS, fmt, **options)

    def width(generations):
        return sum(float((s.label_probs_upper - s.label_probs_lower).sum()) for g in generations for s in g.slots)

    assert width(weighted) > width(plain)


@pytest.mark.parametrize("name", ["llama-bpe", "llama-sp"])
def test_judgements_and_continuations(pairs, data, name):
    hf, exact = pairs[name]
    dev, pool = data
    for method in ("unary", "pairwise"):
        template = JudgementTemplate.default(method)
        prompts = build_judgement_prompts(dev, pool, template, "random", 2, seed=0)
        for a, b in zip(hf.score_answers(prompts), exact.score_answers(prompts), strict=True):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-8
    texts = ["joy", " anger and fear", "\n"]
    assert np.allclose(hf.score("Labels: [", texts), exact.score("Labels: [", texts), atol=1e-8)


def test_greedy_answers_of_the_trained_model(tiny):
    """Greedy decoding on the tiny model trained to answer in the format: the same answers,
    tokens, finished flags and slots (float64), and the same answers in float32 within 1e-5."""
    trained = tiny.trained
    hf = HFBackend(str(trained.path), device="cpu", dtype="float64", chat=False, max_new_tokens=24)
    exact = TorchExactBackend(hf)
    labels = tuple(trained.labels)
    examples = synthetic_examples(n=8, seed=7)
    dev = Dataset("synthetic", labels, "dev", [Item(f"s{i}", e.text, gold=frozenset(e.labels)) for i, e in enumerate(examples)])
    template = PromptTemplate(
        system="",
        instruction="Labels: {labels}. {answer_format}",
        demonstration="Text: {text}\nLabels: {label}",
        query="Text: {text}\nLabels:",
    )
    fmt = get_answer_format("json")
    prompts = build_prompts(dev, dev, template, fmt, "random", 0, seed=0)
    got_hf, got_exact = hf.generate(prompts, labels, fmt), exact.generate(prompts, labels, fmt)
    assert sum(len(g.parsed.labels) > 0 for g in got_hf) >= 4  # it writes labels
    assert_same(got_hf, got_exact)
    assert sum(len(g.slots) for g in got_exact) >= 12
