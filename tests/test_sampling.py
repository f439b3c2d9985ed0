"""Sampled answers and the estimator `sample` (issue 20, the practitioners' estimate): real runs of
the trained tiny model. Sampling at a vanishing temperature is greedy decoding; draws are seeded
per (seed, item, draw), so batching and resuming do not change them; and the share of sampled
answers whose first label is L agrees with the exact slot-1 probability of L."""

from __future__ import annotations

import numpy as np
import pytest

from labeldist.cli import main
from labeldist.estimators import make_estimator
from labeldist.evaluation import evaluate_run
from labeldist.models.hf import HFBackend
from labeldist.prompts import JsonFormat, PromptTemplate, build_prompts
from labeldist.runs import RunStore
from labeldist.runs.arrays import RunArrays

DRAWS = 64


@pytest.fixture(scope="module")
def data(tiny):
    return tiny.tables((("train", 12, 61), ("dev", 8, 62)))


@pytest.fixture(scope="module")
def sampled_run(tiny, data):
    return tiny.run(data, "dev", "--samples", str(DRAWS))


@pytest.fixture(scope="module")
def backend_and_prompts(tiny, data):
    from labeldist.data import load_dataset

    dev = load_dataset(
        "table", data, "dev", label_list_column="labels", annotator_column="annotator", labels=list(tiny.trained.labels)
    )
    backend = HFBackend(str(tiny.trained.path), device="cpu", chat=False, max_new_tokens=24)
    template = PromptTemplate(
        system="",
        instruction="Labels: {labels}. {answer_format}",
        demonstration="Text: {text}\nLabels: {label}",
        query="Text: {text}\nLabels:",
    )
    return backend, build_prompts(dev, dev, template, JsonFormat(), "random", 0, seed=0), dev.labels


def test_a_vanishing_temperature_samples_the_greedy_answer(backend_and_prompts):
    backend, prompts, labels = backend_and_prompts
    greedy = [g.answer for g in backend.generate(prompts[:4], labels, JsonFormat())]
    drawn = backend.sample_answers(prompts[:4], JsonFormat(), 2, temperature=1e-4, seed=3)
    assert [answers[0] for answers in drawn] == greedy and [answers[1] for answers in drawn] == greedy


def test_draws_do_not_depend_on_the_batch(backend_and_prompts):
    backend, prompts, _ = backend_and_prompts
    together = backend.sample_answers(prompts[:3], JsonFormat(), 40, seed=7)  # 120 rows: chunks of 40
    alone = [backend.sample_answers([p], JsonFormat(), 40, seed=7)[0] for p in prompts[:3]]
    assert together == alone
    assert len({a for answers in together for a in answers}) > 3  # it does sample
    assert backend.sample_answers(prompts[:1], JsonFormat(), 40, seed=8)[0] != alone[0]  # the seed matters
    with pytest.raises(ValueError, match="temperature"):
        backend.sample_answers(prompts[:1], JsonFormat(), 2, temperature=0.0)


def test_a_sampled_run_records_draws_and_resumes_to_the_same(tiny, data, sampled_run, tmp_path):
    records = RunStore(sampled_run).read().set_index("id").sort_index()
    assert records["sampled_answers"].map(len).eq(DRAWS).all()
    assert records["sampled_labels"].map(len).eq(DRAWS).all()
    arrays = RunArrays.load(sampled_run)
    assert arrays.sampled.shape == (8, DRAWS, len(arrays.labels))
    # killed after 3 items and resumed: the same draws as the uninterrupted run
    out = tmp_path / "resumed"
    argv = [*tiny.argv(data, "dev"), "--samples", str(DRAWS), "--out", str(out)]
    assert main([*argv, "--limit", "3"]) == 0
    assert main(argv) == 0
    resumed = RunStore(out).read().set_index("id").sort_index()
    assert resumed["sampled_answers"].map(list).tolist() == records["sampled_answers"].map(list).tolist()
    # another sample count is another run
    assert main([*tiny.argv(data, "dev"), "--samples", "3", "--out", str(out)]) == 2


def test_sample_frequencies_agree_with_the_exact_first_slot(sampled_run):
    """The share of draws whose first written label is L estimates slot 1's exact probability of
    L (and of stopping); within 3 Monte-Carlo standard errors for >= 90% of (item, event) pairs."""
    records = RunStore(sampled_run).read().set_index("id").sort_index()
    arrays = RunArrays.load(sampled_run)
    order = np.argsort(arrays.ids)
    exact = np.concatenate([arrays.slot_probs[order, 0], arrays.stop[order, 0][:, None]], axis=1)  # items x (labels, stop)
    labels = list(arrays.labels)
    counts = np.zeros_like(exact)
    for row, draws in enumerate(records["sampled_labels"]):
        for written in draws:
            counts[row, labels.index(written[0]) if len(written) else len(labels)] += 1
    frequency = counts / DRAWS
    # exact probabilities leave out off-format text; the draws' share of it is small here
    se = np.sqrt(np.clip(exact * (1 - exact), 1 / DRAWS, None) / DRAWS)
    within = np.abs(frequency - exact) <= 3 * se
    assert within.mean() >= 0.9, (frequency.round(3), exact.round(3))
    assert exact[:, : len(labels)].max() > 0.2  # the test compares real probabilities, not zeros


def test_the_sample_estimator(sampled_run):
    arrays = RunArrays.load(sampled_run)
    estimate = make_estimator("sample").predict_proba(arrays)
    np.testing.assert_allclose(estimate, arrays.sampled.mean(axis=1))
    first8 = make_estimator("sample", n=8.0)
    np.testing.assert_allclose(first8.predict_proba(arrays), arrays.sampled[:, :8].mean(axis=1))
    se = first8.standard_error(arrays)
    assert se.shape == estimate.shape and (se <= 0.5 / np.sqrt(8) + 1e-12).all()
    with pytest.raises(ValueError, match="has 64 sampled answers"):
        make_estimator("sample", n=65).predict_proba(arrays)
    with pytest.raises(ValueError, match="first-token"):
        make_estimator("sample", "first-token")
    # evaluate lists sample by default when the run has draws
    result = evaluate_run(sampled_run, None, n_resamples=20)
    assert "sample" in result["estimators"] and result["estimators"]["sample"]["mamd"]["value"] >= 0


def test_show_prints_the_sampled_shares(sampled_run, capsys):
    assert main(["show", str(sampled_run), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "sampled answers" in line)
    assert f"({DRAWS} at temperature 1)" in line and "±" in line and "empty" in line
