"""Slot estimators on hand-made run arrays, and on a real run of a tiny model."""

import sys
from pathlib import Path

import numpy as np
import pytest

from labeldist.estimators import (
    ESTIMATORS,
    First,
    Max,
    Mean,
    NoisyOr,
    Output,
    Platt,
    make_estimator,
    parse_estimator,
    split_specs,
)
from labeldist.runs.arrays import RunArrays

NAN = np.nan


def run_arrays() -> RunArrays:
    # item a: answered ["x", "y"]: slots 1, 2 and the closing slot 3
    # item b: answered []: only the closing slot
    # item c: unparseable: no slots
    exact = np.array(
        [
            [[0.6, 0.2, 0.1], [0.1, 0.5, 0.2], [0.05, 0.1, 0.3]],
            [[0.1, 0.2, 0.0], [NAN, NAN, NAN], [NAN, NAN, NAN]],
            [[NAN, NAN, NAN], [NAN, NAN, NAN], [NAN, NAN, NAN]],
        ]
    )
    first_token = np.array(
        [
            [[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [NAN, NAN, NAN]],
            [[NAN, NAN, NAN], [NAN, NAN, NAN], [NAN, NAN, NAN]],
            [[NAN, NAN, NAN], [NAN, NAN, NAN], [NAN, NAN, NAN]],
        ]
    )
    return RunArrays(
        path="mem",
        ids=["a", "b", "c"],
        labels=("x", "y", "z"),
        slot_probs=exact,
        first_token=first_token,
        stop=np.array([[0.1, 0.2, 0.55], [0.7, NAN, NAN], [NAN, NAN, NAN]]),
        n_slots=np.array([3, 1, 0]),
        generated=np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=float),
        gold=np.zeros((3, 3)),
        targets=np.zeros((3, 3)),
        votes_available=np.zeros(3, bool),
        parsed=np.array([True, True, False]),
    )


def test_exact_estimators_hand_computed():
    run = run_arrays()
    np.testing.assert_allclose(First().predict_proba(run), [[0.6, 0.2, 0.1], [0.1, 0.2, 0.0], [0, 0, 0]])
    np.testing.assert_allclose(Max().predict_proba(run), [[0.6, 0.5, 0.3], [0.1, 0.2, 0.0], [0, 0, 0]])
    np.testing.assert_allclose(Mean().predict_proba(run), [[0.25, 0.8 / 3, 0.2], [0.1, 0.2, 0.0], [0, 0, 0]])
    expected_or = [1 - 0.4 * 0.9 * 0.95, 1 - 0.8 * 0.5 * 0.9, 1 - 0.9 * 0.8 * 0.7]
    np.testing.assert_allclose(NoisyOr().predict_proba(run)[0], expected_or)
    assert Max().unscored(run) == 1


def test_first_token_source_skips_closing_slots():
    run = run_arrays()
    np.testing.assert_allclose(Max(source="first-token").predict_proba(run)[0], [0.7, 0.6, 0.2])
    np.testing.assert_allclose(First(source="first-token").predict_proba(run)[0], [0.7, 0.2, 0.1])
    # an empty answer has no first-token numbers at all: scored as no label
    estimator = First(source="first-token")
    np.testing.assert_allclose(estimator.predict_proba(run)[1], [0, 0, 0])
    assert estimator.unscored(run) == 2


def test_output_and_orderings():
    run = run_arrays()
    np.testing.assert_allclose(Output(epsilon=0.01).predict_proba(run), [[1, 1, 0.01], [0.01] * 3, [0.01] * 3])
    first, top, noisy = (make_estimator(n).predict_proba(run) for n in ("first", "max", "noisy-or"))
    assert (top >= first - 1e-12).all() and (noisy >= top - 1e-12).all()
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("median")
    with pytest.raises(ValueError, match="source must be"):
        Max(source="logits").predict_proba(run)


def synthetic_calibration(n=4000, k=3, slope=1.7, intercept=-0.4, seed=0, hard=False) -> RunArrays:
    """One-slot runs whose vote fractions follow sigmoid(slope * (log p - log p_stop) + intercept)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k + 1), size=n)
    labels_p, stop = probs[:, :k] * 0.9, probs[:, k] * 0.9 + 0.1
    x = np.log(labels_p) - np.log(stop)[:, None]
    fractions = 1 / (1 + np.exp(-(slope * x + intercept)))
    targets = (rng.random((n, k)) < fractions).astype(float) if hard else fractions
    return RunArrays(
        path=f"synthetic{seed}",
        ids=[f"s{seed}-{i}" for i in range(n)],
        labels=tuple("xyz"[:k]),
        slot_probs=labels_p[:, None, :],
        first_token=labels_p[:, None, :],
        stop=stop[:, None],
        n_slots=np.ones(n, int),
        generated=np.zeros((n, k)),
        gold=(targets >= 0.5).astype(float),
        targets=targets,
        votes_available=np.ones(n, bool),
        parsed=np.ones(n, bool),
    )


def test_platt_recovers_a_known_sigmoid_from_soft_targets():
    run = synthetic_calibration()
    shared = Platt(scope="shared").fit(run)
    np.testing.assert_allclose(shared.slope_, 1.7, atol=1e-4)
    np.testing.assert_allclose(shared.intercept_, -0.4, atol=1e-4)
    per_label = Platt().fit(run)
    np.testing.assert_allclose(per_label.slope_, 1.7, atol=1e-3)
    # predictions on other items follow the same sigmoid
    other = synthetic_calibration(n=50, seed=3)
    np.testing.assert_allclose(per_label.predict_proba(other), other.targets, atol=1e-3)


def test_platt_matches_scikit_learn_logistic_regression_on_hard_targets():
    from sklearn.linear_model import LogisticRegression

    run = synthetic_calibration(n=3000, k=1, hard=True, seed=5)
    ours = Platt(scope="shared").fit(run)
    x = Platt().features(run).ravel()[:, None]
    reference = LogisticRegression(C=1e6, tol=1e-10, max_iter=10_000).fit(x, run.targets.ravel())
    assert ours.slope_[0] == pytest.approx(reference.coef_[0, 0], rel=2e-3)
    assert ours.intercept_[0] == pytest.approx(reference.intercept_[0], abs=2e-3)


def test_platt_per_label_falls_back_on_the_shared_fit_for_a_rare_label():
    run = synthetic_calibration(n=2000, k=3, seed=2)
    run.targets[:, 2] = 0.0
    run.targets[:3, 2] = 1.0  # three positives only
    fitted = Platt(ridge=200.0).fit(run)
    loose = Platt(ridge=0.0).fit(run)
    shared = Platt(scope="shared").fit(run)
    # with the ridge the rare label stays nearer the shared slope than without it
    assert abs(fitted.slope_[2] - shared.slope_[0]) < abs(loose.slope_[2] - shared.slope_[0])
    assert np.isfinite(loose.slope_).all()


def test_platt_features_and_errors():
    run = run_arrays()
    # item a: max = [0.6, 0.5, 0.3], stop at slot 1 = 0.1
    x = Platt().features(run)
    np.testing.assert_allclose(x[0], np.log([0.6, 0.5, 0.3]) - np.log(0.1))
    np.testing.assert_allclose(Platt(feature="logit").features(run)[0], np.log([0.6 / 0.4, 1.0, 0.3 / 0.7]))
    # the unparsed item (no slots) has p = 0 and stop taken as 1: a very negative feature, finite
    assert np.isfinite(x[2]).all() and (x[2] < -20).all()
    with pytest.raises(ValueError, match="calibration run"):
        Platt().fit(None)
    with pytest.raises(ValueError, match="not fitted"):
        Platt().predict_proba(run)
    # the original's baseline feature: first-token shares against the (exact) stop at slot 1
    first = First("first-token").predict_proba(run)
    paper = Platt(base="first", feature="stop", source="first-token").features(run)[0]
    np.testing.assert_allclose(paper, np.log(np.clip(first[0], 1e-12, 1)) - np.log(0.1))
    with pytest.raises(ValueError, match="feature must be"):
        Platt(feature="rank").features(run)
    with pytest.raises(ValueError, match="base"):
        Platt(base="output").features(run)


def test_estimator_specs():
    assert parse_estimator("max") == ("max", {}, "exact")
    assert parse_estimator("max@first-token") == ("max", {}, "first-token")
    assert parse_estimator("platt[base=first, ridge=3]@first-token") == ("platt", {"base": "first", "ridge": 3.0}, "first-token")
    assert split_specs("first,platt[base=first,scope=shared]@first-token, max") == [
        "first",
        "platt[base=first,scope=shared]@first-token",
        "max",
    ]
    assert make_estimator("platt-shared").scope == "shared"
    assert make_estimator("platt", "first-token", base="mean").base == "mean"
    for bad, message in (("max@logits", "source must be"), ("platt[base]", "key=value"), ("max[", "NAME")):
        with pytest.raises(ValueError, match=message):
            parse_estimator(bad)
    with pytest.raises(ValueError, match="'max'"):
        make_estimator("max", colour="red")
    with pytest.raises(ValueError, match="no first-token"):
        make_estimator("output", "first-token")


def test_predict_proba_changes_no_state():
    """scikit-learn's contract: predicting leaves a (fitted) estimator exactly as it was."""
    import copy
    import pickle

    from labeldist.estimators.base import Estimator

    run = run_arrays()
    run.targets = np.array([[0.7, 0.3, 0.0], [0.0, 0.6, 0.1], [0.2, 0.0, 0.0]])
    for estimator in (First(), Max(), Mean(), NoisyOr(), Output(), Max(source="first-token"), Platt(base="first").fit(run)):
        assert isinstance(estimator, Estimator)
        before = pickle.dumps(copy.deepcopy(vars(estimator)))
        estimator.predict_proba(run)
        estimator.unscored(run)
        assert pickle.dumps(vars(estimator)) == before, estimator.name


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_estimator_keeps_the_scikit_learn_contract(name):
    """A constructor stores its settings under their own names and nothing else (get_params reads
    them back), and clone makes an unfitted copy with the same settings; what fit learns ends in _."""
    from labeldist.estimators import clone

    estimator = make_estimator(name)
    params = estimator.get_params()
    assert set(vars(estimator)) == set(params), f"{name} sets more than its settings in __init__"
    copy = clone(estimator)
    assert type(copy) is type(estimator) and copy is not estimator and copy.get_params() == params
    estimator.fitted_thing_ = 1  # as fit would
    assert not any(key.endswith("_") for key in vars(clone(estimator)))


def test_cross_fitting_is_a_meta_estimator_of_out_of_fold_predictions(tmp_path):
    """CrossFit(estimator, k): k clones, each fitted without one fold and predicting only it; it
    predicts only the run it was fitted on."""
    from labeldist.estimators.crossfit import CrossFit, fold_split
    from labeldist.runs.arrays import RunArrays

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_evaluate import write_synthetic_run

    write_synthetic_run(tmp_path / "run", 60, 5, seed=2)
    run = RunArrays.load(tmp_path / "run")
    crossed = CrossFit(make_estimator("platt"), k=3, seed=1).fit(run)
    probs = crossed.predict_proba(run)
    assert probs.shape == (60, 5) and np.isfinite(probs).all() and len(crossed.fitted()) == 3
    for one, (train, test, where) in zip(crossed.estimators_, fold_split(run, 3, 1)):
        # each fold: the clone fitted on the other folds' items, as a plain fit on them gives
        assert not set(train.ids) & set(test.ids)
        np.testing.assert_allclose(probs[where], make_estimator("platt").fit(train).predict_proba(test))
        assert one.get_params() == make_estimator("platt").get_params()
    with pytest.raises(ValueError, match="only the run it was fitted on"):
        crossed.predict_proba(run.take(np.arange(10)))
    with pytest.raises(ValueError, match="at least 2 folds"):
        CrossFit(make_estimator("max"), k=1).fit(run)
