"""`labeldist evaluate` on real runs of a tiny trained model over data with annotator votes."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labeldist.cli import main
from labeldist.evaluation import evaluate_run
from labeldist.runs.arrays import RunArrays
from labeldist.runs.store import RECORD_SCHEMA

KEYS = ("micro_f1", "macro_f1", "jaccard", "mamd", "bce", "brier", "spearman", "ece")


@pytest.fixture(scope="module")
def runs(tiny):
    data = tiny.tables((("train", 16, 21), ("dev", 16, 22)))
    return {split: tiny.run(data, split) for split in ("train", "dev")}


def test_evaluate_table_json_and_reference_rows(runs, capsys):
    assert main(["evaluate", "--save", str(runs["dev"]), "--calibrate-on", str(runs["train"]), "--resamples", "200"]) == 0
    table = capsys.readouterr().out
    for name in ("first", "max", "mean", "noisy-or", "output", "oracle", "prior"):
        assert name in table
    result = json.loads((runs["dev"] / "evaluation.json").read_text())
    assert result["items"] == 16 and result["items_with_votes"] == 16
    for name, row in result["estimators"].items():
        for key in KEYS:
            cell = row[key]
            assert set(cell) >= {"value", "low", "high"}, (name, key)
            if cell["value"] is not None and not np.isnan(cell["value"]):
                assert cell["low"] <= cell["value"] + 1e-12 and cell["value"] <= cell["high"] + 1e-12
    assert result["estimators"]["oracle"]["mamd"]["value"] == 0.0
    # the prior row is the calibration run's mean vote fractions, a constant
    dev, train = RunArrays.load(runs["dev"]), RunArrays.load(runs["train"])
    prior = train.targets.mean(axis=0)
    expected = np.mean(np.mean(2 * np.abs(prior[None, :] - dev.targets), axis=1))
    assert result["estimators"]["prior"]["mamd"]["value"] == pytest.approx(expected)
    # the model's slots carry information: max aligns better than the constant prior
    assert result["estimators"]["max"]["mamd"]["value"] < result["estimators"]["prior"]["mamd"]["value"]


def test_nothing_fitted_sees_the_evaluated_votes(runs, tmp_path):
    """Rewriting every vote fraction and gold label of the evaluated run changes no fitted number:
    the tuned thresholds and the prior come from the calibration run only."""
    import shutil

    copy = tmp_path / "dev-copy"
    shutil.copytree(runs["dev"], copy)
    for part in (copy / "records").glob("part-*.parquet"):
        table = pq.read_table(part, schema=RECORD_SCHEMA).to_pandas()
        table["vote_fractions"] = [list(np.random.default_rng(1).random(len(v))) for v in table["vote_fractions"]]
        table["gold"] = [[] for _ in range(len(table))]
        pq.write_table(pa.Table.from_pandas(table, schema=RECORD_SCHEMA, preserve_index=False), part)
    kwargs = {"calibrate_on": runs["train"], "threshold": "tuned", "n_resamples": 50}
    original = evaluate_run(runs["dev"], ["max", "platt"], **kwargs)
    changed = evaluate_run(copy, ["max", "platt"], **kwargs)
    assert original["estimators"]["max"]["thresholds"] == changed["estimators"]["max"]["thresholds"]
    # Platt's sigmoids and thresholds are fitted on the calibration run alone
    assert original["estimators"]["platt"]["fitted"] == changed["estimators"]["platt"]["fitted"]
    assert original["estimators"]["platt"]["thresholds"] == changed["estimators"]["platt"]["thresholds"]
    assert original["estimators"]["platt"]["fitted"]["calibration_items"] == 16
    assert original["estimators"]["prior"]["mamd"]["value"] != changed["estimators"]["prior"]["mamd"]["value"]
    prior = RunArrays.load(runs["train"]).targets.mean(axis=0)
    targets = RunArrays.load(copy).targets
    assert changed["estimators"]["prior"]["brier"]["value"] == pytest.approx(np.mean((prior - targets) ** 2))


def test_evaluate_errors(runs, capsys):
    assert main(["evaluate", str(runs["dev"]), "--threshold", "tuned"]) == 2
    assert "needs --calibrate-on" in capsys.readouterr().err
    assert main(["evaluate", str(runs["dev"]), "--calibrate-on", str(runs["dev"])]) == 2
    assert "shares 16 items" in capsys.readouterr().err
    assert main(["evaluate", str(runs["dev"]), "--estimators", "median"]) == 2
    assert "unknown estimator 'median'" in capsys.readouterr().err
    without = evaluate_run(runs["dev"], ["first@first-token"], n_resamples=20)
    assert "prior" not in without["estimators"] and any("constant-prior" in n for n in without["notes"])


def test_platt_rows_and_compare(runs, capsys):
    spec = "platt[base=first,feature=logit,scope=shared]@first-token"
    argv = [
        "evaluate",
        "--save",
        str(runs["dev"]),
        "--calibrate-on",
        str(runs["train"]),
        "--resamples",
        "100",
        "--estimators",
        f"max,platt,platt-shared,{spec}",
    ]
    assert main(argv) == 0
    result = json.loads((runs["dev"] / "evaluation.json").read_text())
    rows = result["estimators"]
    assert list(rows) == ["max", "platt", "platt-shared", spec, "oracle", "prior"]
    assert rows["platt"]["fitted"]["scope"] == "label" and rows["platt"]["fitted"]["feature"] == "stop"
    assert len(set(rows["platt-shared"]["fitted"]["slope"])) == 1
    assert rows[spec]["fitted"]["base"] == "first" and rows[spec]["fitted"]["feature"] == "logit"
    for row in rows.values():
        assert set(row) >= set(KEYS)
    assert main(["evaluate", "--save", str(runs["train"]), "--resamples", "50", "--estimators", "max,first"]) == 0
    capsys.readouterr()

    assert main(["compare", str(runs["dev"]), str(runs["train"]), "--estimators", "max,platt,oracle", "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| model | dataset | estimator | micro_f1")
    body = [line for line in table[2:] if line.startswith("|")]
    assert len(body) == 3 + 2  # dev: max, platt, oracle; train: max, oracle
    assert sum("platt" in line for line in body) == 1
    assert main(["compare", str(runs["dev"]), "--json"]) == 0
    rows_json = json.loads(capsys.readouterr().out)
    assert [r["estimator"] for r in rows_json] == list(rows)
    assert rows_json[1]["mamd"] == rows["platt"]["mamd"]


def test_compare_errors(runs, tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["evaluate", str(runs["dev"]), "--estimators", "platt"]) == 2
    assert "calibration run" in capsys.readouterr().err
    assert main(["compare", str(runs["dev"]), "--metrics", "mamd,auc"]) == 2
    assert "auc" in capsys.readouterr().err


def test_cross_fitting_predicts_each_fold_from_the_others(runs, tmp_path, capsys):
    """--cross-fit K: every item's Platt probability, tuned threshold and prior come from the
    other folds alone. Checked by refitting each fold by hand, and by rewriting one fold's votes
    and gold: that fold's predictions stay put, the others' fits move."""
    import shutil

    from labeldist.estimators import make_estimator, parse_estimator
    from labeldist.estimators.crossfit import fold_split
    from labeldist.metrics.alignment import bce_per_item

    assert (
        main(
            [
                "evaluate",
                "--save",
                str(runs["dev"]),
                "--cross-fit",
                "4",
                "--estimators",
                "max,platt",
                "--threshold",
                "tuned",
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    capsys.readouterr()
    result = json.loads((runs["dev"] / "evaluation.json").read_text())
    assert result["cross_fit"] == {"folds": 4, "seed": 0} and result["calibration_run"] is None
    assert list(result["estimators"]) == ["max", "platt", "oracle", "prior"]
    assert len(result["estimators"]["platt"]["fitted"]) == 4
    assert any("cross-fitted: 4 folds" in note for note in result["notes"])

    name, params, source = parse_estimator("platt")
    platt_spec = (name, source)
    run = RunArrays.load(runs["dev"])
    folds = fold_split(run, 4, 0)
    held = np.concatenate([where for _, _, where in folds])
    assert sorted(held.tolist()) == list(range(len(run)))  # every item in exactly one fold
    by_hand, prior = np.empty(run.targets.shape), np.empty(run.targets.shape)
    for train, test, where in folds:
        assert not set(train.ids) & set(test.ids)
        by_hand[where] = make_estimator(*platt_spec).fit(train).predict_proba(test)
        prior[where] = train.targets.mean(axis=0)
    expected_bce = bce_per_item(by_hand, run.targets).mean()
    platt = evaluate_run(runs["dev"], ["platt"], cross_fit=4, n_resamples=20)
    assert platt["estimators"]["platt"]["bce"]["value"] == pytest.approx(expected_bce, rel=1e-6)
    expected_prior = np.mean(np.mean(2 * np.abs(prior - run.targets), axis=1))
    assert platt["estimators"]["prior"]["mamd"]["value"] == pytest.approx(expected_prior)

    # rewrite the votes and gold of fold 0's items: their own predictions cannot change
    fold0 = set(folds[0][1].ids)
    copy = tmp_path / "dev-copy"
    shutil.copytree(runs["dev"], copy)
    for part in (copy / "records").glob("part-*.parquet"):
        table = pq.read_table(part, schema=RECORD_SCHEMA).to_pandas()
        inside = table["id"].isin(fold0)
        table.loc[inside, "vote_fractions"] = pd_series([[1.0] * len(run.labels)] * int(inside.sum()), table.index[inside])
        table.loc[inside, "gold"] = pd_series([list(run.labels)] * int(inside.sum()), table.index[inside])
        pq.write_table(pa.Table.from_pandas(table, schema=RECORD_SCHEMA, preserve_index=False), part)
    changed = RunArrays.load(copy)
    for i, ((train, test, where), (train2, test2, where2)) in enumerate(zip(folds, fold_split(changed, 4, 0))):
        assert (where == where2).all()
        before = make_estimator(*platt_spec).fit(train).predict_proba(test)
        after = make_estimator(*platt_spec).fit(train2).predict_proba(test2)
        if i == 0:
            np.testing.assert_array_equal(before, after)
        else:
            assert not np.allclose(before, after)


def pd_series(values, index):
    import pandas as pd

    return pd.Series(values, index=index, dtype=object)


def test_cross_fitting_errors(runs, capsys):
    assert main(["evaluate", str(runs["dev"]), "--cross-fit", "3", "--calibrate-on", str(runs["train"])]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["evaluate", str(runs["dev"]), "--cross-fit", "1"]) == 2
    assert "--cross-fit" in capsys.readouterr().err
    assert main(["evaluate", str(runs["dev"]), "--cross-fit", "17"]) == 2
    assert "fewer than the 17" in capsys.readouterr().err


def test_platt_takes_an_estimator_object(runs):
    """Platt's base as an object (as scikit-learn's CalibratedClassifierCV takes its estimator)
    fits and predicts exactly as the same base named, sources included."""
    from labeldist.estimators.platt import Platt
    from labeldist.estimators.slot_heuristics import First, Max

    dev, train = RunArrays.load(runs["dev"]), RunArrays.load(runs["train"])
    for named, given in (
        (Platt(base="first"), Platt(base=First())),
        (Platt(base="max", source="first-token"), Platt(base=Max(source="first-token"))),
    ):
        np.testing.assert_array_equal(named.fit(train).predict_proba(dev), given.fit(train).predict_proba(dev))
        assert named.fitted() == given.fitted()
    assert Platt(base=Max(source="first-token")).fit(train).fitted()["feature"] == "logp"
    with pytest.raises(ValueError, match="needs a slot estimator"):
        Platt(base="output").fit(train)


def test_evaluate_on_arrays_is_the_path_wrapper_without_files(runs):
    """evaluate(arrays) gives what evaluate_run(paths) gives; it reads and writes no file."""
    from labeldist.evaluation import evaluate

    settings = {"threshold": "tuned", "n_resamples": 30}
    by_path = evaluate_run(runs["dev"], ["max", "platt"], calibrate_on=runs["train"], **settings)
    dev, train = RunArrays.load(runs["dev"]), RunArrays.load(runs["train"])
    by_arrays = evaluate(dev, ["max", "platt"], calibration=train, **settings)
    by_path.pop("seconds"), by_arrays.pop("seconds")
    assert json.dumps(by_path, default=float) == json.dumps(by_arrays, default=float)


def test_evaluate_writes_only_with_save_and_fits_100_columns(runs, tmp_path, capsys):
    """A quick look replaces nothing (issue 19): evaluation.json is written with --save only. The
    table wraps its metric columns into blocks of at most 100 columns; --wide keeps one line per row."""
    run = tmp_path / "run"
    shutil.copytree(runs["dev"], run, ignore=shutil.ignore_patterns("evaluation*.json"))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--resamples", "20", "--estimators", "first,max,platt", "--cross-fit", "3"]) == 0
    out, err = capsys.readouterr()
    assert not (run / "evaluation.json").exists() and "written to" not in err
    lines = out.splitlines()[1:]
    assert max(map(len, lines)) <= 100 and lines.count("") == 2  # three blocks of metrics
    assert sum(line.startswith("estimator") for line in lines) == 3
    assert main(["evaluate", str(run), "--resamples", "20", "--estimators", "first,max", "--wide", "--save"]) == 0
    out, err = capsys.readouterr()
    assert "" not in out.splitlines()[1:] and max(map(len, out.splitlines())) > 100
    assert json.loads((run / "evaluation.json").read_text())["items"] == 16 and f"written to {run}" in err
    assert main(["compare", str(run)]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 100


def test_versus_gives_paired_differences_on_the_same_resamples(runs, capsys):
    """--versus: each row minus the reference row, resample by resample (the issue's "A beats B")."""
    from labeldist import api

    plain = evaluate_run(runs["dev"], ["first", "max"], calibrate_on=runs["train"], n_resamples=200)
    paired = evaluate_run(runs["dev"], ["max"], calibrate_on=runs["train"], n_resamples=200, versus="first")
    # the reference is added when not listed; the rows themselves are what they were without --versus
    assert list(paired["estimators"]) == ["max", "first", "oracle", "prior"] and paired["versus"] == "first"
    assert "versus" not in plain and all("difference" not in row for row in plain["estimators"].values())
    for name in ("max", "oracle", "prior"):
        for key in KEYS:
            assert paired["estimators"][name][key] == plain["estimators"][name][key], (name, key)
            difference = paired["estimators"][name]["difference"][key]
            want = plain["estimators"][name][key]["value"] - plain["estimators"]["first"][key]["value"]
            if np.isfinite(want):
                assert difference["value"] == pytest.approx(want)
                assert difference["low"] <= difference["value"] + 1e-12 <= difference["high"] + 2e-12
                assert 0 <= difference["p"] <= 1
    assert "difference" not in paired["estimators"]["first"]
    # the oracle is perfectly aligned: its MAMD is below first's on every resample
    assert paired["estimators"]["oracle"]["difference"]["mamd"]["high"] < 0
    # the API's frame carries the same numbers
    frame = api.evaluate(runs["dev"], ["max"], calibrate_on=runs["train"], resamples=200, versus="first")
    assert frame.loc[("max", "mamd"), "difference"] == pytest.approx(paired["estimators"]["max"]["difference"]["mamd"]["value"])
    assert np.isnan(frame.loc[("first", "mamd"), "difference"])
    # the command line prints a second table, one row per estimator against the reference
    command = ["evaluate", str(runs["dev"]), "--estimators", "max", "--versus", "prior", "--resamples", "50"]
    assert main([*command, "--cross-fit", "4"]) == 0
    out = capsys.readouterr().out
    assert "paired differences from prior" in out and "max - prior" in out and "oracle - prior" in out
    assert main(command) == 2
    assert "no such row" in capsys.readouterr().err


def test_what_an_estimator_reads_is_declared_and_checked_before_fitting(runs):
    """Estimator.needs: a run without what an estimator reads is refused in one sentence naming
    the run that has it, before anything is fitted (issue 31)."""
    from labeldist.estimators import ESTIMATORS, make_estimator
    from labeldist.estimators.base import NEEDS

    for name, cls in ESTIMATORS.items():
        assert set(cls.needs) <= set(NEEDS), name
    run = RunArrays.load(runs["dev"])
    assert make_estimator("max").lacking(run) is None
    for spec, said in (
        ("unary", "--method unary"),
        ("pairwise", "--method pairwise"),
        ("marginal", "--marginal"),
        ("sample", "--samples N"),
        ("probe", "--save-hidden"),
        ("platt[base=unary]", "--method unary"),  # Platt needs what its base needs
    ):
        with pytest.raises(ValueError, match=rf"^{re.escape(spec)}: .* needs .*{re.escape(said)}.* run without it"):
            evaluate_run(runs["dev"], [spec], cross_fit=4, n_resamples=10)
    assert make_estimator("platt", base="unary").requirements() == {"unary"}
