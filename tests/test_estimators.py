"""Slot estimators on hand-made run arrays, and on a real run of a tiny model."""

import numpy as np
import pytest

from labeldist.estimators import First, Max, Mean, NoisyOr, Output, make_estimator
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
        path="mem", ids=["a", "b", "c"], labels=("x", "y", "z"), slot_probs=exact, first_token=first_token,
        stop=np.array([[0.1, 0.2, 0.55], [0.7, NAN, NAN], [NAN, NAN, NAN]]), n_slots=np.array([3, 1, 0]),
        generated=np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=float), gold=np.zeros((3, 3)),
        targets=np.zeros((3, 3)), votes_available=np.zeros(3, bool), parsed=np.array([True, True, False]),
    )  # fmt: skip


def test_exact_estimators_hand_computed():
    run = run_arrays()
    np.testing.assert_allclose(First().predict_proba(run), [[0.6, 0.2, 0.1], [0.1, 0.2, 0.0], [0, 0, 0]])
    np.testing.assert_allclose(Max().predict_proba(run), [[0.6, 0.5, 0.3], [0.1, 0.2, 0.0], [0, 0, 0]])
    np.testing.assert_allclose(Mean().predict_proba(run), [[0.25, 0.8 / 3, 0.2], [0.1, 0.2, 0.0], [0, 0, 0]])
    expected_or = [1 - 0.4 * 0.9 * 0.95, 1 - 0.8 * 0.5 * 0.9, 1 - 0.9 * 0.8 * 0.7]
    np.testing.assert_allclose(NoisyOr().predict_proba(run)[0], expected_or)
    estimator = Max()
    estimator.predict_proba(run)
    assert estimator.unscored_ == 1


def test_first_token_source_skips_closing_slots():
    run = run_arrays()
    np.testing.assert_allclose(Max(source="first-token").predict_proba(run)[0], [0.7, 0.6, 0.2])
    np.testing.assert_allclose(First(source="first-token").predict_proba(run)[0], [0.7, 0.2, 0.1])
    # an empty answer has no first-token numbers at all: scored as no label
    estimator = First(source="first-token")
    np.testing.assert_allclose(estimator.predict_proba(run)[1], [0, 0, 0])
    assert estimator.unscored_ == 2


def test_output_and_orderings():
    run = run_arrays()
    np.testing.assert_allclose(Output(epsilon=0.01).predict_proba(run), [[1, 1, 0.01], [0.01] * 3, [0.01] * 3])
    first, top, noisy = (make_estimator(n).predict_proba(run) for n in ("first", "max", "noisy-or"))
    assert (top >= first - 1e-12).all() and (noisy >= top - 1e-12).all()
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("median")
    with pytest.raises(ValueError, match="source must be"):
        Max(source="logits").predict_proba(run)
