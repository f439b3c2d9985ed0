"""The Python API (issue 19): datasets from pandas, run / Run / evaluate as pandas objects, and
one code path with the command line. Real runs of the trained tiny model."""

from __future__ import annotations

import doctest
import inspect
import json

import numpy as np
import pandas as pd
import pytest

import labeldist as ld
from labeldist.cli import main
from labeldist.data import load_dataset
from labeldist.data import schema as schema_module
from labeldist.estimators import make_estimator
from labeldist.runs.arrays import RunArrays

# -- datasets from pandas ---------------------------------------------------------------------


def ratings_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": ["a", "a", "a", "b", "b", "c"],
            "text": ["so happy", "so happy", "so happy", "how dare you", "how dare you", "meh"],
            "rater": ["r1", "r2", "r3", "r1", "r2", "r3"],
            "labels": [["joy"], ["joy", "anger"], [], ["anger"], ["anger", "fear"], []],
        }
    )


def snapshot(dataset) -> list[tuple]:
    return [(i.id, i.text, dict(i.votes), i.gold) for i in dataset]


def test_from_pandas_ratings_match_the_table_loader(tmp_path):
    frame = ratings_frame()
    data = ld.Dataset.from_pandas(frame, id="item", labels="labels", annotator="rater", label_set=["joy", "anger", "fear"])
    frame.assign(labels=[",".join(x) for x in frame["labels"]]).to_csv(tmp_path / "test.csv", index=False)
    loaded = load_dataset(
        "table",
        tmp_path,
        "test",
        id_column="item",
        label_list_column="labels",
        annotator_column="rater",
        labels=["joy", "anger", "fear"],
    )
    assert snapshot(data) == snapshot(loaded) and data.labels == loaded.labels
    assert data.vote_fractions().tolist()[0] == pytest.approx([2 / 3, 1 / 3, 0])
    assert set(data[1].gold) == {"anger", "fear"}  # fear: 1 of 2 annotators, and a tie counts as chosen


def test_from_pandas_label_columns_index_ids_and_votes_round_trip():
    frame = pd.DataFrame({"text": ["so happy", "how dare you"], "joy": [1, 0], "anger": [0, 1]}, index=[10, 11])
    data = ld.Dataset.from_pandas(frame, labels=["joy", "anger"], name="toy", split="dev")
    assert data.ids == ["10", "11"] and data.labels == ("joy", "anger") and data.split == "dev"
    assert [set(i.gold) for i in data] == [{"joy"}, {"anger"}] and data.vote_source == "gold"
    votes = ld.Dataset.from_pandas(ratings_frame(), id="item", labels="labels", annotator="rater")
    table = votes.to_pandas()
    assert list(table.columns) == ["text", "gold", "votes"] and table.index.name == "id"
    back = ld.Dataset.from_pandas(table.reset_index(), id="id", votes="votes", gold="gold", label_set=votes.labels)
    assert snapshot(back) == snapshot(votes)
    listed = ld.Dataset.from_pandas(
        pd.DataFrame({"text": ["x"], "votes": [[["joy"], []]]}), votes="votes", label_set=("joy", "anger")
    )
    assert dict(listed[0].votes) == {"0": frozenset({"joy"}), "1": frozenset()}


def test_from_pandas_errors_name_the_row():
    frame = ratings_frame()
    frame.loc[4, "labels"] = ["anger", "boredom"]
    with pytest.raises(ld.DataError, match=r"row 5: label 'boredom' is not in the label set"):
        ld.Dataset.from_pandas(frame, id="item", labels="labels", annotator="rater", label_set=["joy", "anger", "fear"])
    with pytest.raises(ld.DataError, match="give the item id column"):
        ld.Dataset.from_pandas(ratings_frame(), labels="labels", annotator="rater")
    with pytest.raises(ld.DataError, match="missing column"):
        ld.Dataset.from_pandas(ratings_frame(), id="item", text="body", labels="labels")
    with pytest.raises(ld.DataError, match="give labels="):
        ld.Dataset.from_pandas(ratings_frame(), id="item")


def test_docstrings_everywhere_and_the_examples_run():
    assert len(inspect.getdoc(ld.run)) > 400 and "resumes" in inspect.getdoc(ld.run)
    for name in ld.__all__:
        if name != "__version__" and name != "DEFAULT_MODEL":
            assert inspect.getdoc(getattr(ld, name)), name
    for name, member in inspect.getmembers(ld.Run):
        if not name.startswith("_"):
            assert inspect.getdoc(member), name
    failures, tried = doctest.testmod(schema_module, optionflags=doctest.ELLIPSIS)
    assert tried >= 2 and failures == 0


# -- runs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_runs(tiny, tmp_path_factory):
    """A CLI run and an API run of the same table split, and an API run of a DataFrame."""
    data = tiny.tables((("train", 24, 51), ("dev", 12, 52)))
    argv = tiny.argv(data, "dev")
    template = argv[argv.index("--template") + 1]
    root = tmp_path_factory.mktemp("api")
    common = {"shots": 0, "template": template, "chat": False, "max_new_tokens": 24, "progress": False}
    options = {"label_list_column": "labels", "labels": list(tiny.trained.labels), "annotator_column": "annotator"}
    by_name = ld.run("table", str(tiny.trained.path), root / "by-name", data_dir=data, split="dev", options=options, **common)
    frame = pd.read_csv(data / "dev.csv", keep_default_na=False)
    frame["labels"] = [[x for x in cell.split(",") if x] for cell in frame["labels"]]
    dataset = ld.Dataset.from_pandas(
        frame, id="id", labels="labels", annotator="annotator", label_set=tiny.trained.labels, split="dev"
    )
    in_memory = ld.run(dataset, str(tiny.trained.path), root / "in-memory", **common)
    train = ld.run("table", str(tiny.trained.path), root / "train", data_dir=data, split="train", options=options, **common)
    return {"cli": tiny.run(data, "dev"), "by_name": by_name, "in_memory": in_memory, "train": train, "dataset": dataset}


def test_the_api_and_the_command_line_make_the_same_records(api_runs):
    cli = RunArrays.load(api_runs["cli"])
    for key in ("by_name", "in_memory"):
        run = api_runs[key]
        assert isinstance(run, ld.Run) and len(run) == 12
        arrays = run.arrays
        assert arrays.ids == cli.ids
        np.testing.assert_allclose(arrays.slot_probs, cli.slot_probs, atol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(arrays.targets, cli.targets)
    manifest = api_runs["in_memory"].manifest
    assert manifest["config"]["data_dir"] is None and manifest["config"]["data_sha256"]
    # a Dataset object's own name and split, not run()'s defaults for a dataset read by name
    assert manifest["config"]["split"] == "dev" and manifest["config"]["dataset"] == api_runs["dataset"].name
    assert json.loads((api_runs["cli"] / "run.json").read_text())["config"]["data_sha256"] == manifest["config"]["data_sha256"]


def test_an_api_run_resumes_and_refuses_other_settings(api_runs, tiny, tmp_path):
    dataset, model = api_runs["dataset"], str(tiny.trained.path)
    argv = tiny.argv(tiny.tables((("train", 24, 51), ("dev", 12, 52))), "dev")
    common = {"shots": 0, "template": argv[argv.index("--template") + 1], "chat": False, "max_new_tokens": 24}
    part = ld.run(dataset, model, tmp_path / "run", limit=5, progress=False, **common)
    assert len(part) == 5
    whole = ld.run(dataset, model, tmp_path / "run", progress=False, **common)
    assert len(whole) == 12 and whole.manifest["attempts"][-1]["items_labelled"] == 7
    with pytest.raises(ld.DataError, match="different config"):
        ld.run(dataset, model, tmp_path / "run", progress=False, **{**common, "max_new_tokens": 20})
    with pytest.raises(ld.ConfigError, match="pool=DATASET"):
        ld.run(dataset, model, tmp_path / "other", shots=2)
    with pytest.raises(ld.ConfigError, match="out=FOLDER"):
        ld.run(dataset, model)


def test_run_tables_are_the_arrays(api_runs):
    run = ld.Run.open(api_runs["in_memory"].path)
    assert "12 items" in repr(run) and run.labels == tuple(api_runs["dataset"].labels)
    records = run.records
    assert records.index.name == "id" and len(records) == 12 and "answer" in records
    slots = run.slots
    arrays = run.arrays
    assert list(slots.columns) == [
        "id",
        "slot",
        "label",
        "probability",
        "first_token_probability",
        "stop_probability",
        "chosen",
    ]
    assert len(slots) == int(arrays.n_slots.sum()) * len(run.labels)
    first = arrays.ids[0]
    mine = slots[slots["id"] == first].pivot(index="slot", columns="label", values="probability")[list(run.labels)]
    np.testing.assert_allclose(mine.to_numpy(), arrays.slot_probs[0, : arrays.n_slots[0]], atol=1e-12)
    # a written label is the slot's chosen one, once per slot at most
    assert slots.groupby(["id", "slot"])["chosen"].sum().max() <= 1
    estimate = run.estimate("max")
    expected = make_estimator("max").fit(None).predict_proba(arrays)
    assert estimate.shape == (12, len(run.labels)) and list(estimate.columns) == list(run.labels)
    np.testing.assert_allclose(estimate.to_numpy(), expected)
    np.testing.assert_array_equal(run.votes.to_numpy(), arrays.targets)
    platt = run.estimate("platt", calibrate_on=api_runs["train"])
    assert ((platt.to_numpy() > 0) & (platt.to_numpy() < 1)).all()
    with pytest.raises(ld.ConfigError, match="calibrate_on"):
        run.estimate("platt")
    with pytest.raises(ld.ConfigError, match="'probe\\[layer=-1\\]' learns from other items"):
        run.estimate("probe[layer=-1]")  # declared by the class (Estimator.learns), asked before fitting


def test_evaluate_is_a_table_of_values_and_intervals(api_runs):
    run = api_runs["in_memory"]
    table = ld.evaluate(run, ["max", "platt"], calibrate_on=api_runs["train"], resamples=50)
    assert table.index.names == ["estimator", "metric"] and list(table.columns) == ["value", "low", "high"]
    assert {"max", "platt", "oracle", "prior"} == set(table.index.get_level_values(0))
    finite = table.dropna()
    assert (finite["low"] <= finite["value"] + 1e-12).all() and (finite["value"] <= finite["high"] + 1e-12).all()
    assert table.loc[("oracle", "mamd"), "value"] == 0.0
    assert not (run.path / "evaluation.json").exists()  # nothing written
    crossed = run.evaluate(["max"], cross_fit=3, resamples=20)
    assert any("cross-fitted" in note for note in crossed.attrs["notes"])
    # the CLI's evaluation of the same run says the same numbers
    argv = ["evaluate", "--save", str(run.path), "--estimators", "max,platt", "--calibrate-on", str(api_runs["train"].path)]
    assert main([*argv, "--resamples", "50"]) == 0
    saved = json.loads((run.path / "evaluation.json").read_text())
    assert saved["estimators"]["platt"]["mamd"]["value"] == pytest.approx(table.loc[("platt", "mamd"), "value"])
    compared = ld.compare([run])
    assert set(compared["estimator"]) == {"max", "platt", "oracle", "prior"}
    assert compared.set_index("estimator").loc["max", "mamd"] == pytest.approx(table.loc[("max", "mamd"), "value"])


def test_run_takes_every_run_setting_with_the_run_configs_defaults():
    """labeldist.run spells its settings out (its documented signature); this keeps them from
    drifting from RunConfig: every setting is a parameter, with RunConfig's default, except the
    ones the call resolves (the backend from the model, options None -> {}, the required ones)."""
    import dataclasses

    from labeldist.runs import RunConfig

    params = inspect.signature(ld.run).parameters
    resolved = {"backend": None, "options": None, "data_dir": None, "split": "test", "model": ld.DEFAULT_MODEL}
    for field in dataclasses.fields(RunConfig):
        if field.name == "backend_settings":  # built from device, dtype, quantization, prune_tolerance, ...
            assert {"device", "dtype", "quantization", "prune_tolerance", "backend_options"} <= set(params)
            continue
        assert field.name in params, field.name
        if field.name == "dataset":
            continue
        if field.name in resolved:
            assert params[field.name].default == resolved[field.name], field.name
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert params[field.name].default == default, field.name
