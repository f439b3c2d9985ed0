"""labeldist.metrics: against scikit-learn / scipy, hand-computed cases, properties, bootstrap."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, jaccard_score, log_loss

from labeldist.metrics import (
    THRESHOLD_GRID,
    bce,
    bce_per_item,
    binarize,
    bootstrap_interval,
    bootstrap_metric,
    brier,
    brier_per_item,
    ece,
    evaluate_many,
    evaluate_probs,
    exact_match,
    jaccard,
    jaccard_per_item,
    macro_f1,
    mamd,
    mamd_per_item,
    micro_f1,
    per_label_f1,
    resample_indices,
    spearman,
    spearman_per_item,
    tune_thresholds,
)

METRICS = ("micro_f1", "macro_f1", "jaccard", "exact_match", "mamd", "bce", "brier", "spearman", "ece")


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    n, labels = 300, 6
    probs = rng.random((n, labels))
    targets = rng.integers(0, 6, (n, labels)) / 5  # five annotators' vote fractions
    gold = (targets >= 0.5).astype(float)
    gold[:, 5] = 0  # a label nobody has ...
    probs[:, 5] = np.minimum(probs[:, 5], 0.4)  # ... and nobody predicts at 0.5
    gold[:10], probs[:10] = 0, 0.1  # items with neither gold nor predicted labels
    return probs, targets, gold, binarize(probs, 0.5)


# ---------------------------------------------------------------- against scikit-learn and scipy


def test_f1_matches_sklearn_default(data):
    """F1 as scikit-learn's default (zero_division 0): a label never gold and never predicted
    scores 0, as everyone else's macro-F1 counts it (issue 19)."""
    _, _, gold, pred = data
    assert micro_f1(gold, pred) == pytest.approx(f1_score(gold, pred, average="micro", zero_division=0))
    assert macro_f1(gold, pred) == pytest.approx(f1_score(gold, pred, average="macro", zero_division=0))
    np.testing.assert_allclose(per_label_f1(gold, pred), f1_score(gold, pred, average=None, zero_division=0))
    assert per_label_f1(gold, pred)[5] == 0.0  # the fixture's label 5: no gold, no prediction
    empty = np.zeros((4, 3))
    assert micro_f1(empty, empty) == f1_score(empty, empty, average="micro", zero_division=0) == 0.0
    assert macro_f1(empty, empty) == f1_score(empty, empty, average="macro", zero_division=0) == 0.0


def test_jaccard_and_exact_match_match_sklearn(data):
    _, _, gold, pred = data
    assert jaccard(gold, pred) == pytest.approx(jaccard_score(gold, pred, average="samples", zero_division=1))
    assert (jaccard_per_item(gold, pred)[:10] == 1).all()
    assert exact_match(gold, pred) == pytest.approx(accuracy_score(gold, pred))


def test_brier_and_bce_match_sklearn_per_label_on_hard_targets(data):
    probs, _, gold, _ = data
    probs = np.clip(probs, 0.01, 0.99)
    for label in range(probs.shape[1]):
        p, t = probs[:, [label]], gold[:, [label]]
        assert brier(p, t) == pytest.approx(brier_score_loss(t[:, 0], p[:, 0]))
        assert bce(p, t) == pytest.approx(log_loss(t[:, 0], p[:, 0], labels=[0, 1]))
    # the multi-label values are the mean over labels of the per-label ones
    per_label = [brier_score_loss(gold[:, j], probs[:, j]) for j in range(probs.shape[1])]
    assert brier(probs, gold) == pytest.approx(np.mean(per_label))


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_spearman_matches_scipy_including_ties(data):
    probs, targets, _, _ = data
    probs = np.round(probs, 1)  # ties in p as well as in the vote fractions
    expected = np.array([spearmanr(p, t).statistic for p, t in zip(probs, targets)])
    got = spearman_per_item(probs, targets)
    np.testing.assert_allclose(got, expected)  # NaN where scipy gives NaN (constant vectors)
    assert np.isnan(got[:10]).all()  # constant probs on the first ten items
    value, skipped = spearman(probs, targets, return_skipped=True)
    assert skipped == np.isnan(expected).sum() >= 10
    assert value == pytest.approx(np.nanmean(expected))


# ---------------------------------------------------------------- by hand


def test_hand_computed_two_items_three_labels():
    probs = np.array([[0.9, 0.2, 0.4], [0.1, 0.6, 0.5]])
    targets = np.array([[1.0, 0.0, 0.5], [0.0, 0.5, 0.5]])
    gold = np.array([[1, 0, 1], [0, 1, 0]], dtype=float)
    pred = binarize(probs, 0.5)
    np.testing.assert_array_equal(pred, [[1, 0, 0], [0, 1, 1]])  # 0.5 >= 0.5 is predicted
    # label 0: tp 1; label 1: tp 1; label 2: fp 1 (item 2), fn 1 (item 1)
    np.testing.assert_allclose(per_label_f1(gold, pred), [1.0, 1.0, 0.0])
    assert macro_f1(gold, pred) == pytest.approx(2 / 3)
    assert micro_f1(gold, pred) == pytest.approx(4 / 6)  # tp 2, fp 1, fn 1
    np.testing.assert_allclose(jaccard_per_item(gold, pred), [1 / 2, 1 / 2])
    assert exact_match(gold, pred) == 0.0
    np.testing.assert_allclose(mamd_per_item(probs, targets), [2 * 0.4 / 3, 2 * 0.2 / 3])
    np.testing.assert_allclose(brier_per_item(probs, targets), [0.06 / 3, 0.02 / 3])
    bce1 = -(np.log(0.9) + np.log(0.8) + 0.5 * np.log(0.4) + 0.5 * np.log(0.6)) / 3
    bce2 = -(np.log(0.9) + 0.5 * np.log(0.6) + 0.5 * np.log(0.4) + np.log(0.5)) / 3
    np.testing.assert_allclose(bce_per_item(probs, targets), [bce1, bce2])
    # item 1 ranks agree; item 2: ranks p (1, 3, 2), t (1, 2.5, 2.5) -> 1.5 / sqrt(2 * 1.5)
    np.testing.assert_allclose(spearman_per_item(probs, targets), [1.0, np.sqrt(3) / 2])
    # every p in its own bin: ECE = mean |p - t| = (0.1 + 0.2 + 0.1 + 0.1 + 0.1 + 0) / 6
    assert ece(probs, targets) == pytest.approx(0.1)


def test_ece_pools_a_bin_and_accepts_one():
    # both in bin [0.8, 0.9): |0.85 - 0.5| = 0.35, though each pair is off by more
    assert ece(np.array([[0.82, 0.88]]), np.array([[1.0, 0.0]])) == pytest.approx(0.35)
    assert ece(np.array([[1.0, 0.95]]), np.array([[1.0, 1.0]])) == pytest.approx(0.025)  # p = 1: last bin


def test_binarize_per_label_thresholds():
    probs = np.array([[0.3, 0.3], [0.7, 0.2]])
    np.testing.assert_array_equal(binarize(probs, [0.3, 0.25]), [[1, 1], [1, 0]])
    with pytest.raises(ValueError):
        binarize(probs, [0.5, 0.5, 0.5])
    # one threshold per item and label (cross-fitted: each fold's own)
    np.testing.assert_array_equal(binarize(probs, [[0.4, 0.3], [0.7, 0.1]]), [[0, 1], [1, 1]])
    with pytest.raises(ValueError):
        binarize(probs, [[0.5, 0.5]] * 3)


def test_tune_thresholds_by_hand_and_against_brute_force():
    probs = np.array([[0.9, 0.3], [0.8, 0.25], [0.2, 0.1], [0.1, 0.05]])
    gold = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=float)
    # label 1: F1 = 1 for every grid point in (0.2, 0.8] -> 0.5; label 2: (0.1, 0.25] -> 0.25
    np.testing.assert_allclose(tune_thresholds(probs, gold), [0.5, 0.25])
    rng = np.random.default_rng(1)
    probs, gold = rng.random((80, 5)), (rng.random((80, 5)) < 0.3).astype(float)
    chosen = tune_thresholds(probs, gold)
    for j in range(5):
        scores = [per_label_f1(gold[:, [j]], binarize(probs[:, [j]], g))[0] for g in THRESHOLD_GRID]
        assert per_label_f1(gold[:, [j]], binarize(probs[:, [j]], chosen[j]))[0] == pytest.approx(max(scores))
        best = [g for g, s in zip(THRESHOLD_GRID, scores) if s == max(scores)]
        assert abs(chosen[j] - 0.5) == pytest.approx(min(abs(g - 0.5) for g in best))
    # nothing to find, nothing claimed at either cut: F1 1 at both, equally far from 0.5 -> the lower
    np.testing.assert_allclose(tune_thresholds(np.array([[0.3]]), np.zeros((1, 1)), grid=[0.6, 0.4]), [0.4])


# ---------------------------------------------------------------- properties

shapes = st.tuples(st.integers(1, 15), st.integers(1, 6))


@st.composite
def problems(draw):
    shape = draw(shapes)
    unit = st.floats(0, 1)
    probs = draw(arrays(np.float64, shape, elements=unit))
    targets = draw(arrays(np.float64, shape, elements=unit))
    return probs, targets, (targets >= 0.5).astype(float)


@settings(max_examples=80, deadline=None)
@given(problems())
def test_ranges(problem):
    probs, targets, _ = problem
    m = mamd_per_item(probs, targets)
    b = brier_per_item(probs, targets)
    assert ((0 <= m) & (m <= 2)).all()
    assert ((0 <= b) & (b <= 1)).all()
    assert (bce_per_item(probs, targets) >= 0).all()
    assert 0 <= ece(probs, targets) <= 1 + 1e-12
    assert (mamd_per_item(targets, targets) == 0).all()
    rho = spearman_per_item(probs, targets)
    assert ((np.abs(rho) <= 1) | np.isnan(rho)).all()


@settings(max_examples=40, deadline=None)
@given(problems(), st.data())
def test_permutation_invariance(problem, data):
    probs, targets, gold = problem
    items = np.array(data.draw(st.permutations(range(len(probs)))))
    labels = np.array(data.draw(st.permutations(range(probs.shape[1]))))
    base = evaluate_probs(probs, targets, gold, n_resamples=20, seed=3)
    by_item = evaluate_probs(probs[items], targets[items], gold[items], n_resamples=20, seed=3)
    for key in METRICS:
        assert by_item[key]["value"] == pytest.approx(base[key]["value"], nan_ok=True), key
    values = mamd_per_item(probs, targets)
    assert bootstrap_interval(values[items], n_resamples=20)[0] == pytest.approx(bootstrap_interval(values, n_resamples=20)[0])
    pred = binarize(probs, 0.5)
    p, t, g, q = probs[:, labels], targets[:, labels], gold[:, labels], pred[:, labels]
    assert micro_f1(g, q) == pytest.approx(micro_f1(gold, pred))
    assert jaccard(g, q) == pytest.approx(jaccard(gold, pred))
    assert mamd(p, t) == pytest.approx(mamd(probs, targets))
    assert brier(p, t) == pytest.approx(brier(probs, targets))


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_and_brackets_the_value(data):
    probs, targets, gold, _ = data
    one = evaluate_probs(probs, targets, gold, n_resamples=400, seed=5)
    assert one == evaluate_probs(probs, targets, gold, n_resamples=400, seed=5)
    assert one != evaluate_probs(probs, targets, gold, n_resamples=400, seed=6)
    for key in METRICS:
        if key == "exact_match":
            continue  # random probs: nothing matches exactly except the ten empty items
        assert one[key]["low"] < one[key]["value"] < one[key]["high"], key
    assert one["spearman_skipped"] == 10
    assert len(one["per_label_f1"]) == 6
    np.testing.assert_array_equal(resample_indices(50, 30, seed=2), resample_indices(50, 30, seed=2))


def test_every_metric_sees_the_same_resamples(data):
    probs, targets, gold, pred = data
    result = evaluate_probs(probs, targets, gold, n_resamples=200, seed=9)
    # means of per-item values: bootstrapping the per-item vector with the same seed (to rounding)
    expected = bootstrap_interval(mamd_per_item(probs, targets), 200, seed=9)
    np.testing.assert_allclose([result["mamd"][k] for k in ("value", "low", "high")], expected, rtol=1e-12)
    # count metrics, vectorised over resamples, agree with the generic row-resampling loop
    for key, fn, arrays_ in (
        ("micro_f1", micro_f1, [gold, pred]),
        ("macro_f1", macro_f1, [gold, pred]),
        ("ece", ece, [probs, targets]),
    ):
        expected = bootstrap_metric(fn, arrays_, n_resamples=200, seed=9)
        np.testing.assert_allclose([result[key][k] for k in ("value", "low", "high")], expected, rtol=1e-9, err_msg=key)


def test_a_table_of_predictors_equals_each_predictor_alone(data):
    probs, targets, gold, pred = data
    others = [np.clip(probs[::-1], 0, 1), np.full_like(probs, 0.3), targets]
    thresholds = [0.5, np.linspace(0.2, 0.7, probs.shape[1]), 0.5, 0.5]
    together = evaluate_many([probs, *others], targets, gold, thresholds, n_resamples=150, seed=4)
    for p, cut, row in zip([probs, *others], thresholds, together):
        alone = evaluate_probs(p, targets, gold, threshold=cut, n_resamples=150, seed=4)
        assert row.keys() == alone.keys()
        for key, value in alone.items():
            got = list(row[key].values()) if isinstance(value, dict) else row[key]
            want = list(value.values()) if isinstance(value, dict) else value
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=key)


def test_interval_shrinks_with_more_items():
    rng = np.random.default_rng(0)
    width = lambda v: np.subtract(*bootstrap_interval(v, n_resamples=500)[2:0:-1])  # noqa: E731
    small, large = width(rng.normal(size=100)), width(rng.normal(size=10_000))
    assert large < small / 4  # expected ratio 10; sd of each width is a few percent


def test_constant_values_give_a_zero_width_interval():
    assert bootstrap_interval(np.full(37, 0.1), n_resamples=100) == (0.1, 0.1, 0.1)
    result = evaluate_probs(np.full((20, 3), 0.3), np.full((20, 3), 0.3), np.zeros((20, 3)), n_resamples=50)
    assert result["mamd"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert result["micro_f1"] == {"value": 0.0, "low": 0.0, "high": 0.0}  # nothing gold, nothing predicted


def test_bootstrap_interval_skips_nan():
    values = np.array([0.2, np.nan, 0.4, 0.9, np.nan, 0.5])
    value, low, high = bootstrap_interval(values, n_resamples=300)
    assert value == pytest.approx(np.nanmean(values))
    assert 0.2 <= low <= value <= high <= 0.9
    assert all(np.isnan(bootstrap_interval(np.full(4, np.nan), n_resamples=10)))


def test_shape_errors():
    with pytest.raises(ValueError):
        evaluate_probs(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        micro_f1(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        bootstrap_metric(micro_f1, [np.zeros((3, 2)), np.zeros((4, 2))])


def test_paired_differences_match_a_brute_force_loop_over_the_resamples(data):
    probs, targets, gold, _ = data
    rng = np.random.default_rng(3)
    better = np.clip(0.7 * targets + 0.3 * probs + rng.normal(0, 0.02, probs.shape), 0, 1)
    rows = evaluate_many([probs, better, probs], targets, gold, [0.5, 0.5, 0.5], n_resamples=300, seed=2, versus=0)
    assert "difference" not in rows[0]
    # brute force: every resample of the plan, both predictors scored on the same items
    idx = resample_indices(len(probs), 300, seed=2)
    for key, fn in (
        ("mamd", lambda p, r: mamd(p[r], targets[r])),
        ("micro_f1", lambda p, r: micro_f1(gold[r], binarize(p[r], 0.5))),
        ("ece", lambda p, r: ece(p[r], targets[r])),
    ):
        differences = np.array([fn(better, r) - fn(probs, r) for r in idx])
        paired = rows[1]["difference"][key]
        everything = np.arange(len(probs))
        np.testing.assert_allclose(paired["value"], fn(better, everything) - fn(probs, everything), rtol=1e-9)
        interval = np.percentile(differences, [2.5, 97.5])
        np.testing.assert_allclose([paired["low"], paired["high"]], interval, rtol=1e-9, atol=1e-12)
        want_p = min(1.0, 2 * min((differences <= 0).mean(), (differences >= 0).mean()))
        assert paired["p"] == pytest.approx(want_p), key
    # the better predictor is better beyond doubt on the resamples, though its own interval is wide
    assert rows[1]["difference"]["mamd"]["high"] < 0 and rows[1]["difference"]["mamd"]["p"] == 0.0
    # the same predictor against itself: zero difference on every resample, p = 1
    for key in METRICS:
        same = rows[2]["difference"][key]
        assert same["value"] == pytest.approx(0, abs=1e-12) and same["low"] == pytest.approx(0, abs=1e-12), key
        assert same["p"] == 1.0, key
    with pytest.raises(ValueError, match="versus must index"):
        evaluate_many([probs], targets, gold, [0.5], n_resamples=10, versus=3)
