"""P(label in answer) over the trie of label sequences (issue 20): real runs of the trained tiny
model. The trie's settled answers equal, sequence by sequence, the product of the slots of the
whole answer scored at once; pruning only widens the bounds; sampled answers agree with the
marginal; and a run with --marginal --samples evaluates marginal, max, first and sample."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labeldist.cli import main
from labeldist.data.schema import Dataset, Item
from labeldist.estimators import make_estimator
from labeldist.models.hf import HFBackend
from labeldist.prompts import JsonFormat, PromptTemplate, build_prompts
from labeldist.runs import RunStore
from labeldist.runs.arrays import RunArrays
from labeldist.runs.marginal import answer_lead, marginals

FMT = JsonFormat()
TEMPLATE = PromptTemplate(
    system="",
    instruction="Labels: {labels}. {answer_format}",
    demonstration="Text: {text}\nLabels: {label}",
    query="Text: {text}\nLabels:",
)
TEXTS = ["the sun was bright and warm", "a storm came and we were scared", "lost my keys again, so annoying"]


@pytest.fixture(scope="module")
def three(tiny):
    """The tiny model with a label set of three (K = 3), its prompts and greedy answers' leads."""
    labels = tuple(tiny.trained.labels[:3])
    items = [Item(f"i{j}", text) for j, text in enumerate(TEXTS)]
    dataset = Dataset("toy", labels, "dev", items)
    prompts = build_prompts(dataset, dataset, TEMPLATE, FMT, "random", 0, seed=0)
    # no pruning: every label's probability is followed to its end, none reads 0
    backend = HFBackend(str(tiny.trained.path), device="cpu", chat=False, max_new_tokens=24, prune_tolerance=0.0)
    leads = [answer_lead(g.answer, p) for g, p in zip(backend.generate(prompts, labels, FMT), prompts)]
    return backend, prompts, labels, leads


def chain(backend, prompt, labels, sequence, lead) -> float:
    """P(sequence, then stop) as the product of the slots of the whole answer, scored at once."""
    generation = backend.generate([prompt], labels, FMT, forced_answers=[lead + FMT.write(sequence)])[0]
    probability = 1.0
    for slot, label in zip(generation.slots, sequence):
        probability *= float(slot.label_probs[labels.index(label)])
    return probability * float(generation.slots[len(sequence)].stop_prob)


def test_the_trie_matches_every_sequence_scored_whole(three):
    backend, prompts, labels, leads = three
    prompt, lead = prompts[1], leads[1]
    found = marginals(backend, [prompt], labels, FMT, tolerance=0.0, max_nodes=1000, max_depth=3, leads=[lead])[0]
    sequences = [s for n in range(4) for s in itertools.product(labels, repeat=n)]
    assert found.nodes == len(sequences) == 40 and set(found.settled) == set(sequences)
    for sequence in sequences:
        assert found.settled[sequence] == pytest.approx(chain(backend, prompt, labels, sequence, lead), rel=1e-5, abs=1e-9)
    # the bounds are sums over the settled answers; what is not settled is their gap
    for i, label in enumerate(labels):
        assert found.lower[i] == pytest.approx(sum(p for s, p in found.settled.items() if label in s))
        assert found.upper[i] == pytest.approx(1 - sum(p for s, p in found.settled.items() if label not in s))
    assert found.unsettled == pytest.approx(1 - sum(found.settled.values()), abs=1e-9)
    assert found.empty == found.settled[()]
    assert (found.upper - found.lower >= found.unsettled - 1e-9).all() and found.unsettled < 0.5


def test_pruning_only_widens_the_bounds(three):
    backend, prompts, labels, leads = three
    for prompt, lead in zip(prompts, leads):
        full = marginals(backend, [prompt], labels, FMT, tolerance=0.0, max_nodes=1000, max_depth=3, leads=[lead])[0]
        pruned = marginals(backend, [prompt], labels, FMT, tolerance=0.05, max_nodes=1000, max_depth=3, leads=[lead])[0]
        assert pruned.nodes < full.nodes
        assert (pruned.lower <= full.lower + 1e-9).all() and (pruned.upper >= full.upper - 1e-9).all()
        assert (full.lower <= full.upper + 1e-12).all()


@pytest.fixture(scope="module")
def marginal_run(tiny):
    data = tiny.tables((("train", 12, 71), ("dev", 8, 72)))
    return tiny.run(data, "dev", "--marginal", "--samples", "64")


def test_a_marginal_run_evaluates_and_shows(marginal_run, capsys):
    arrays = RunArrays.load(marginal_run)
    assert arrays.marginal_lower.shape == arrays.marginal_upper.shape == (8, len(arrays.labels))
    assert (arrays.marginal_lower <= arrays.marginal_upper + 1e-12).all()
    mid = make_estimator("marginal").predict_proba(arrays)
    np.testing.assert_allclose(mid, (arrays.marginal_lower + arrays.marginal_upper) / 2)
    records = RunStore(marginal_run).read()
    assert (records["marginal_nodes"] >= 1).all() and (records["marginal_unsettled"] < 0.2).all()
    capsys.readouterr()
    assert main(["evaluate", str(marginal_run), "--estimators", "marginal,max,first,sample", "--resamples", "50"]) == 0
    table = capsys.readouterr().out
    for row in ("marginal", "max", "first", "sample"):
        assert any(line.startswith(row + " ") for line in table.splitlines()), row
    assert main(["show", str(marginal_run), "--limit", "1"]) == 0
    assert "P(label in answer):" in capsys.readouterr().out


def test_sampled_answers_agree_with_the_marginal(marginal_run):
    """The share of 64 draws naming L lies within 3 Monte-Carlo standard errors of the marginal's
    bounds for >= 95% of (item, label) pairs: two estimates of one quantity."""
    arrays = RunArrays.load(marginal_run)
    share = make_estimator("sample").predict_proba(arrays)
    se = np.sqrt(np.clip(share * (1 - share), 1 / 64, None) / 64)
    inside = (share >= arrays.marginal_lower - 3 * se) & (share <= arrays.marginal_upper + 3 * se)
    assert inside.mean() >= 0.95, (share.round(2), arrays.marginal_lower.round(2), arrays.marginal_upper.round(2))
    assert arrays.marginal_upper.max() > 0.3  # real probabilities, not all zero
