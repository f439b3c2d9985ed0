"""Metrics against scikit-learn / scipy, hand-computed cases, and properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score, jaccard_score

from labeldist.metrics import (
    bce_per_item,
    binarize,
    brier_per_item,
    ece,
    evaluate_probs,
    jaccard_per_item,
    macro_f1,
    mamd_per_item,
    micro_f1,
    per_label_f1,
    spearman_per_item,
    tune_thresholds,
)


@pytest.fixture
def random_data():
    rng = np.random.default_rng(3)
    gold = (rng.random((200, 6)) < 0.3).astype(float)
    pred = (rng.random((200, 6)) < 0.3).astype(float)
    probs, targets = rng.random((200, 6)), rng.random((200, 6))
    return gold, pred, probs, targets


def test_classification_matches_sklearn(random_data):
    gold, pred, _, _ = random_data
    assert micro_f1(gold, pred) == pytest.approx(f1_score(gold, pred, average="micro", zero_division=0))
    assert macro_f1(gold, pred) == pytest.approx(f1_score(gold, pred, average="macro", zero_division=0))
    np.testing.assert_allclose(per_label_f1(gold, pred), f1_score(gold, pred, average=None, zero_division=0))
    assert jaccard_per_item(gold, pred).mean() == pytest.approx(jaccard_score(gold, pred, average="samples", zero_division=1))
    result = evaluate_probs(pred, pred, gold, n_resamples=20)
    assert result["exact_match"]["value"] == pytest.approx(accuracy_score(gold, pred))


def test_spearman_matches_scipy(random_data):
    _, _, probs, targets = random_data
    expected = [spearmanr(p, t).statistic for p, t in zip(probs, targets)]
    np.testing.assert_allclose(spearman_per_item(probs, targets), expected)
    constant = spearman_per_item(np.ones((1, 4)), np.array([[0.1, 0.2, 0.3, 0.4]]))
    assert np.isnan(constant[0])


def test_hand_computed_small_case():
    probs = np.array([[0.9, 0.2, 0.4], [0.1, 0.6, 0.5]])
    targets = np.array([[1.0, 0.0, 2 / 3], [0.0, 1 / 3, 1 / 3]])
    gold = np.array([[1, 0, 1], [0, 0, 0]], dtype=float)
    # MAMD: item 1: 2*(0.1 + 0.2 + 0.2667)/3; item 2: 2*(0.1 + 0.2667 + 0.1667)/3
    np.testing.assert_allclose(mamd_per_item(probs, targets), [2 * (0.1 + 0.2 + 4 / 15) / 3, 2 * (0.1 + 4 / 15 + 1 / 6) / 3])
    np.testing.assert_allclose(
        brier_per_item(probs, targets), [(0.01 + 0.04 + (4 / 15) ** 2) / 3, (0.01 + (4 / 15) ** 2 + (1 / 6) ** 2) / 3]
    )
    expected_bce = -(np.log(0.9) + np.log(0.8) + (2 / 3) * np.log(0.4) + (1 / 3) * np.log(0.6)) / 3
    assert bce_per_item(probs, targets)[0] == pytest.approx(expected_bce)
    pred = binarize(probs, 0.5)  # [[1,0,0],[0,1,1]]
    assert micro_f1(gold, pred) == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))  # tp 1, fp 2, fn 1
    np.testing.assert_allclose(jaccard_per_item(gold, pred), [0.5, 0.0])
    # ECE, 10 bins: 0.9 | 0.2 | 0.4 | 0.1 | 0.6 | 0.5 each alone except none share -> mean |p - t|
    assert ece(probs, targets) == pytest.approx(np.abs(probs - targets).mean())


def test_tuned_thresholds_pick_the_separating_cut():
    probs = np.array([[0.9, 0.3], [0.8, 0.25], [0.2, 0.1], [0.1, 0.05]])
    gold = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=float)
    thresholds = tune_thresholds(probs, gold)
    assert 0.2 < thresholds[0] <= 0.8 and 0.1 < thresholds[1] <= 0.25
    assert abs(thresholds[0] - 0.5) <= abs(0.25 - 0.5)  # ties go to the cut nearest 0.5


unit = arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 5)), elements=st.floats(0, 1))


@settings(max_examples=60, deadline=None)
@given(unit, st.data())
def test_ranges_and_invariances(probs, data):
    targets = data.draw(arrays(np.float64, probs.shape, elements=st.floats(0, 1)))
    gold = (targets >= 0.5).astype(float)
    mamd = mamd_per_item(probs, targets)
    assert ((0 <= mamd) & (mamd <= 2)).all()
    assert (mamd_per_item(targets, targets) == 0).all()
    assert ((0 <= brier_per_item(probs, targets)) & (brier_per_item(probs, targets) <= 1)).all()
    assert (bce_per_item(probs, targets) >= 0).all()
    assert 0 <= ece(probs, targets) <= 1
    order = data.draw(st.permutations(list(range(len(probs)))))
    a = evaluate_probs(probs, targets, gold, n_resamples=30, seed=1)
    b = evaluate_probs(probs[order], targets[order], gold[order], n_resamples=30, seed=1)
    for key in ("mamd", "brier", "bce", "jaccard", "micro_f1", "macro_f1", "ece"):
        assert a[key]["value"] == pytest.approx(b[key]["value"])
    labels = data.draw(st.permutations(list(range(probs.shape[1]))))
    c = evaluate_probs(probs[:, labels], targets[:, labels], gold[:, labels], n_resamples=30, seed=1)
    for key in ("mamd", "brier", "micro_f1", "jaccard"):
        assert a[key]["value"] == pytest.approx(c[key]["value"])


def test_bootstrap_intervals(random_data):
    gold, _, probs, targets = random_data
    one = evaluate_probs(probs, targets, gold, n_resamples=300, seed=5)
    assert one == evaluate_probs(probs, targets, gold, n_resamples=300, seed=5)
    for key in ("micro_f1", "macro_f1", "jaccard", "mamd", "bce", "brier", "spearman", "ece"):
        assert one[key]["low"] <= one[key]["value"] <= one[key]["high"], key
    small = evaluate_probs(probs[:40], targets[:40], gold[:40], n_resamples=300, seed=5)
    width = lambda r: r["mamd"]["high"] - r["mamd"]["low"]  # noqa: E731
    assert width(one) < width(small)
    constant = evaluate_probs(np.full((20, 3), 0.5), np.full((20, 3), 0.5), np.zeros((20, 3)), n_resamples=50)
    assert constant["mamd"] == {"value": 0.0, "low": 0.0, "high": 0.0}


def test_f1_of_a_label_nobody_has_is_zero_as_in_scikit_learn():
    gold = np.array([[1, 0], [0, 0]], dtype=float)
    assert macro_f1(gold, gold) == 0.5  # label 2: no gold, nothing predicted: 0, not 1
    assert macro_f1(gold, np.array([[1, 1], [0, 0]], dtype=float)) == pytest.approx(0.5)
    # threshold tuning keeps zero_division=1: a label with no gold gets a threshold predicting nothing
    probs = np.array([[0.9, 0.3], [0.1, 0.2]])
    assert tune_thresholds(probs, gold)[1] > 0.3
