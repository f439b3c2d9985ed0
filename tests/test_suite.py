"""`labeldist suite` on the trained tiny model: the grid runs, the tables hold every estimator
with the reference rows, a finished cell is not recomputed, an interrupted cell resumes from
its recorded items, and bad suite files fail with the file and key named."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_models import RUN_TEMPLATE, get_trained_tiny_llama, synthetic_examples

from labeldist.cli import main
from labeldist.errors import ConfigError
from labeldist.runs import RunStore
from labeldist.workflows.suite import load_suite, sample_ids

ESTIMATORS = ["first", "max", "max@first-token", "output", "platt-shared"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    trained = get_trained_tiny_llama(tmp_path_factory.getbasetemp() / "tiny-model-cache")
    rng = random.Random(0)
    for name in ("alpha", "beta"):
        data = root / name
        data.mkdir()
        for split, seed in (("train", 31), ("dev", 32), ("test", 33)):
            rows = []
            for i, example in enumerate(synthetic_examples(n=14, seed=seed + (name == "beta") * 10)):
                for annotator in ("a1", "a2", "a3"):
                    labels = set(example.labels)
                    if annotator == "a3":
                        labels ^= {rng.choice(trained.labels)}
                    rows.append(
                        {
                            "id": f"{name}-{split}{i:02d}",
                            "text": example.text,
                            "annotator": annotator,
                            "labels": ",".join(sorted(labels)),
                        }
                    )
            pd.DataFrame(rows).to_csv(data / f"{split}.csv", index=False)
    template = root / "template.yaml"
    template.write_text(RUN_TEMPLATE)
    options = {"label_list_column": "labels", "labels": list(trained.labels), "annotator_column": "annotator"}
    config = {
        "name": "tiny",
        "models": [str(trained.path)],
        "methods": ["generate"],
        "estimators": ESTIMATORS,
        "threshold": 0.5,
        "resamples": 50,
        "run": {"shots": 0, "template": str(template), "chat": False, "max_new_tokens": 24, "batch_size": 4},
        "datasets": [
            {
                "id": "alpha",
                "dataset": "table",
                "data_dir": str(root / "alpha"),
                "eval_split": "test",
                "calibration_split": "dev",
                "eval_items": 10,
                "calibration_items": 8,
                "options": options,
            },
            {
                "id": "beta",
                "dataset": "table",
                "data_dir": str(root / "beta"),
                "eval_split": "test",
                "calibration_split": "test",
                "eval_items": 6,
                "calibration_items": 6,
                "options": options,
            },
        ],
    }
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    out = root / "results"
    assert main(["suite", "--config", str(path), "--out", str(out), "--quiet"]) == 0
    return {"root": root, "config": path, "out": out, "trained": trained}


def cell(out, dataset, trained):
    return out / "cells" / dataset / trained.path.name / "generate"


def attempts(run_dir):
    return json.loads((run_dir / "run.json").read_text())["attempts"]


def test_tables_hold_every_estimator_and_reference_rows(setup):
    table = json.loads((setup["out"] / "table.json").read_text())
    assert [c["finished"] for c in table["cells"]] == [True, True]
    rows = {(r["dataset"], r["estimator"]): r for r in table["rows"]}
    for dataset, items in (("alpha", 10), ("beta", 6)):
        for name in [*ESTIMATORS, "oracle", "prior"]:
            row = rows[(dataset, name)]
            assert row["items"] == items
            for metric in ("mamd", "bce", "brier", "macro_f1"):
                assert row[metric]["low"] <= row[metric]["value"] <= row[metric]["high"], (dataset, name, metric)
        assert rows[(dataset, "oracle")]["mamd"]["value"] == 0.0
        assert rows[(dataset, "prior")]["mamd"]["value"] > 0.0
    markdown = (setup["out"] / "table.md").read_text()
    header = "| dataset | model | method | estimator | items | spearman_items | mamd | bce | brier | spearman | macro_f1 |"
    assert header in markdown
    assert markdown.count("| alpha |") == len(ESTIMATORS) + 2
    # the table's numbers are the evaluation's numbers
    evaluation = json.loads((cell(setup["out"], "alpha", setup["trained"]) / "eval" / "evaluation.json").read_text())
    assert evaluation["estimators"]["max"]["mamd"] == rows[("alpha", "max")]["mamd"]
    for name, scores in evaluation["estimators"].items():
        assert rows[("alpha", name)]["spearman_items"] == 10 - scores["spearman_skipped"]
    # the oracle's probabilities are the vote fractions: Spearman is defined where the votes differ
    assert 0 < rows[("alpha", "oracle")]["spearman_items"] <= 10
    # every finished cell has its timing line
    assert markdown.count("/generate | ") == 2 and "Cell time in total:" in markdown
    assert evaluation["calibration_run"].endswith("calibration")


def test_samples_are_capped_seeded_and_disjoint(setup):
    out, trained = setup["out"], setup["trained"]
    ids = {role: (out / "ids" / f"beta-{role}.txt").read_text().split() for role in ("eval", "calibration")}
    assert len(ids["eval"]) == 6 and len(ids["calibration"]) == 6
    assert not set(ids["eval"]) & set(ids["calibration"])  # same split: calibration drawn from the rest
    recorded = RunStore(cell(out, "beta", trained) / "eval").read()["id"].tolist()
    assert recorded == ids["eval"]
    assert sample_ids([str(i) for i in range(20)], 5, "s") == sample_ids([str(i) for i in range(20)], 5, "s")
    assert sample_ids(["a", "b"], 5, "s") == ["a", "b"]


def test_finished_cells_are_not_recomputed_and_interrupted_cells_resume(setup, capsys):
    out, trained = setup["out"], setup["trained"]
    alpha, beta = cell(out, "alpha", trained), cell(out, "beta", trained)
    before = {p: attempts(p) for p in (alpha / "eval", alpha / "calibration", beta / "eval", beta / "calibration")}
    alpha_cell = (alpha / "cell.json").read_text()
    capsys.readouterr()
    assert main(["suite", "--config", str(setup["config"]), "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().err
    assert log.count("finished earlier, skipped") == 2
    for path, recorded in before.items():
        assert attempts(path) == recorded  # not even opened
    assert (alpha / "cell.json").read_text() == alpha_cell

    # interrupt beta's eval run: its last batch part lost, the cell unfinished
    store = RunStore(beta / "eval")
    parts = store.parts()
    lost = len(pd.read_parquet(parts[-1]))
    parts[-1].unlink()
    (beta / "cell.json").unlink()
    assert main(["suite", "--config", str(setup["config"]), "--out", str(out), "--quiet"]) == 0
    log = capsys.readouterr().err
    assert "alpha/" in log and "finished earlier, skipped" in log and "beta/" in log
    assert attempts(alpha / "eval") == before[alpha / "eval"]
    assert attempts(beta / "eval")[-1]["items_labelled"] == lost  # only the lost items again
    assert attempts(beta / "calibration")[-1]["items_labelled"] == 0
    assert len(RunStore(beta / "eval").read()) == 6
    assert (beta / "cell.json").is_file()


def test_only_and_changed_settings(setup, tmp_path, capsys):
    config = yaml.safe_load(setup["config"].read_text())
    config["resamples"] = 60  # a changed evaluation setting: the cell's evaluation is redone
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    alpha = cell(setup["out"], "alpha", setup["trained"])
    before = attempts(alpha / "eval")
    capsys.readouterr()
    assert main(["suite", "--config", str(path), "--out", str(setup["out"]), "--only", "alpha", "--quiet"]) == 0
    log = capsys.readouterr().err
    assert "alpha/" in log and "beta/" not in log and "skipped" not in log
    assert attempts(alpha / "eval")[-1]["items_labelled"] == 0 and len(attempts(alpha / "eval")) == len(before) + 1
    assert json.loads((alpha / "cell.json").read_text())["evaluation"]["bootstrap"]["resamples"] == 60


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "key 'colour': unknown setting"),
        ({"models": []}, "key 'models': must be a non-empty list"),
        ({"methods": ["guess"]}, "key 'methods'"),
        ({"datasets": [{"id": "x"}]}, "datasets[0]: missing dataset, data_dir, eval_split, calibration_split"),
        ({"run": {"shots": 1, "speed": 2}}, "run key 'speed': unknown run setting"),
        ({"models": ["m", {"name": "n", "max_items": 0}]}, "models[1] key 'max_items': must be a positive integer"),
        ({"models": [{"max_items": 5}]}, "models[0]: missing name"),
        ({"models": [{"name": "n", "cap": 5}]}, "models[0] key 'cap': unknown setting"),
        ({"models": ["m", {"name": "m"}]}, "model 'm' is listed twice"),
        ({"models": [["m"]]}, "models[0]: must be a model name or a mapping"),
    ],
)
def test_bad_suite_files(tmp_path, change, message):
    config = {
        "models": ["m"],
        "datasets": [
            {"id": "a", "dataset": "table", "data_dir": "d", "eval_split": "test", "calibration_split": "dev", "eval_items": 3}
        ],
    }
    config.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_only_dataset_is_an_error(setup, capsys):
    assert main(["suite", "--config", str(setup["config"]), "--out", str(setup["out"]), "--only", "gamma"]) == 2
    assert "no dataset with id 'gamma'" in capsys.readouterr().err


def test_max_items_pass_is_extended_by_the_full_pass(setup, tmp_path, capsys):
    out = tmp_path / "quick"
    argv = ["suite", "--config", str(setup["config"]), "--out", str(out), "--only", "alpha", "--quiet"]
    assert main([*argv, "--max-items", "3"]) == 0
    alpha = cell(out, "alpha", setup["trained"])
    quick_ids = (out / "ids" / "alpha-eval.txt").read_text().split()
    assert len(quick_ids) == 3 and len(RunStore(alpha / "eval").read()) == 3
    table = json.loads((out / "table.json").read_text())
    assert {r["items"] for r in table["rows"]} == {3}
    assert main(argv) == 0  # the configured caps: 10 eval, 8 calibration items
    full_ids = (out / "ids" / "alpha-eval.txt").read_text().split()
    assert set(quick_ids) <= set(full_ids) and len(full_ids) == 10
    assert [a["items_labelled"] for a in attempts(alpha / "eval")] == [3, 7]
    assert [a["items_labelled"] for a in attempts(alpha / "calibration")] == [3, 5]
    # the full pass's items equal a fresh full run's: same sample, same records
    assert sorted(RunStore(alpha / "eval").read()["id"].tolist()) == sorted(full_ids)
    first = RunStore(cell(setup["out"], "alpha", setup["trained"]) / "eval").read().set_index("id")
    again = RunStore(alpha / "eval").read().set_index("id")
    assert again["answer"].to_dict() == first["answer"].to_dict()
    # a smaller cap than the recorded items is refused, naming the run folder
    capsys.readouterr()
    assert main([*argv, "--max-items", "2"]) == 2
    assert "items outside the current sample" in capsys.readouterr().err


def test_a_model_with_its_own_cap_labels_the_first_items_of_the_sample(setup, tmp_path):
    """models: [A, {name: B, max_items: 3}]: B's cells run on the first 3 items of the same nested
    samples (their own id files), A's on the configured caps; the table lists both."""
    import shutil

    small = tmp_path / "tiny-copy"
    shutil.copytree(setup["trained"].path, small)
    config = yaml.safe_load(setup["config"].read_text())
    config["models"] = [str(setup["trained"].path), {"name": str(small), "max_items": 3}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    suite = load_suite(path)
    assert suite.models == [str(setup["trained"].path), str(small)] and suite.model_caps == {str(small): 3}
    out = tmp_path / "out"
    assert main(["suite", "--config", str(path), "--out", str(out), "--only", "alpha", "--quiet"]) == 0
    full = (out / "ids" / "alpha-eval.txt").read_text().split()
    capped = (out / "ids" / "alpha-eval-max3.txt").read_text().split()
    assert len(full) == 10 and len(capped) == 3 and set(capped) <= set(full)  # nested samples
    assert RunStore(out / "cells" / "alpha" / small.name / "generate" / "eval").read()["id"].tolist() == capped
    assert len(RunStore(cell(out, "alpha", setup["trained"]) / "eval").read()) == 10
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert {(r["model"].rsplit("/", 1)[-1], r["items"]) for r in rows if r["estimator"] == "max"} == {
        (setup["trained"].path.name, 10),
        (small.name, 3),
    }


def test_suite_trains_one_encoder_per_dataset_on_held_out_pool_items(setup, tmp_path, capsys):
    """The bare `encoder` estimator: the suite trains the real MiniLM on the dataset's pool split
    without any evaluated or calibration item, validates on the calibration sample, reuses it
    on the next call and retrains (re-evaluating, not relabelling) when its settings change."""
    config = yaml.safe_load(setup["config"].read_text())
    config["estimators"] = ["first", "encoder"]
    config["encoder"] = {"train_items": 9, "epochs": 2, "batch_size": 4, "max_length": 32}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "results"
    argv = ["suite", "--config", str(path), "--out", str(out), "--only", "alpha", "--quiet"]
    capsys.readouterr()
    assert main(argv) == 0
    log = capsys.readouterr().err
    assert "alpha: training the encoder on 9 train items (validation: 8)" in log
    manifest = json.loads((out / "encoders" / "alpha" / "encoder.json").read_text())
    eval_ids = (out / "ids" / "alpha-eval.txt").read_text().split()
    cal_ids = (out / "ids" / "alpha-calibration.txt").read_text().split()
    assert len(manifest["training_ids"]) == 9 and all(i.startswith("alpha-train") for i in manifest["training_ids"])
    assert not set(manifest["training_ids"]) & (set(eval_ids) | set(cal_ids))
    assert len(manifest["history"]) == 2 and all("validation_bce" in r for r in manifest["history"])
    table = json.loads((out / "table.json").read_text())
    rows = {r["estimator"]: r for r in table["rows"]}
    assert set(rows) == {"first", "encoder", "oracle", "prior"}
    encoder_bce = rows["encoder"]["bce"]["value"]
    assert 0 < encoder_bce < 2.0 and rows["encoder"]["items"] == 10
    assert "| alpha | " in (out / "table.md").read_text() and "| encoder |" in (out / "table.md").read_text()

    # again: nothing trained, nothing evaluated
    weights = out / "encoders" / "alpha" / "head.pt"
    stamp = weights.stat().st_mtime_ns
    assert main(argv) == 0
    log = capsys.readouterr().err
    assert "training the encoder" not in log and "finished earlier, skipped" in log
    assert weights.stat().st_mtime_ns == stamp

    # another epoch count: retrained, the cell re-evaluated, no item relabelled
    alpha = cell(out, "alpha", setup["trained"])
    before = len(attempts(alpha / "eval"))
    config["encoder"]["epochs"] = 1
    path.write_text(yaml.safe_dump(config))
    assert main(argv) == 0
    log = capsys.readouterr().err
    assert "training the encoder" in log and "skipped" not in log
    assert len(json.loads((out / "encoders" / "alpha" / "encoder.json").read_text())["history"]) == 1
    assert attempts(alpha / "eval")[-1]["items_labelled"] == 0 and len(attempts(alpha / "eval")) == before + 1


def test_bad_encoder_settings(tmp_path):
    dataset = {"id": "a", "dataset": "table", "data_dir": "d", "eval_split": "test", "calibration_split": "dev"}
    config = {"models": ["m"], "encoder": {"epochs": 0}, "datasets": [dataset]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="encoder key 'epochs': must be a positive integer"):
        load_suite(path)
    config["encoder"] = {"epoch": 2}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="encoder key 'epoch': unknown setting"):
        load_suite(path)


def test_shipped_suite_files_load_and_share_their_datasets():
    """suites/real.yaml runs here; suites/real-gpu.yaml is its GPU form (other models, larger
    caps, the unary method): same datasets, splits, prompts and estimators for generation."""
    root = Path(__file__).resolve().parents[1] / "suites"
    cpu, gpu = load_suite(root / "real.yaml"), load_suite(root / "real-gpu.yaml")
    assert cpu.models == ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
    assert cpu.model_caps == {"qwen2.5-coder-0.5b-instruct": 50, "qwen2.5-coder-1.5b-instruct": 20}
    assert cpu.trains_encoder and gpu.trains_encoder
    assert gpu.methods == ["generate", "unary"] and gpu.run["device"] == "cuda"
    assert gpu.estimators["generate"] == cpu.estimators["generate"]
    fields = ("id", "dataset", "data_dir", "eval_split", "calibration_split", "pool_split", "options")
    assert [[getattr(d, f) for f in fields] for d in gpu.datasets] == [[getattr(d, f) for f in fields] for d in cpu.datasets]
    assert all(g.eval_items >= c.eval_items for g, c in zip(gpu.datasets, cpu.datasets))
    # bfloat16 8B models with the precision check the README advises
    assert gpu.run["dtype"] == "bfloat16" and gpu.run["precision_check"] == 8
    assert {k: v for k, v in gpu.run.items() if k not in ("device", "dtype", "batch_size", "precision_check")} == {
        k: v for k, v in cpu.run.items() if k != "batch_size"
    }
    # the CPU suite's caps: 2,104 items, what its time on 2 cores was measured with
    assert sum(d.eval_items + d.calibration_items for d in cpu.datasets) == 2104


def test_marginal_and_samples_are_made_for_the_evaluation_run_only(setup, tmp_path):
    """run: {marginal: true, samples: 8}: the evaluation run records marginals and sampled
    answers, the calibration run neither (no estimator fits on them; they cost many generation
    runs), and the table has marginal and sample rows beside Platt fitted on the calibration run."""
    config = yaml.safe_load(setup["config"].read_text())
    config["run"].update({"marginal": True, "samples": 8, "marginal_tolerance": 0.01, "precision_check": 2})
    config["estimators"] = ["max", "platt-shared", "marginal", "marginal[reading=mid]", "sample"]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["suite", "--config", str(path), "--out", str(out), "--only", "beta", "--quiet"]) == 0
    folder = cell(out, "beta", setup["trained"])
    manifest = {role: json.loads((folder / role / "run.json").read_text())["config"] for role in ("eval", "calibration")}
    assert manifest["eval"]["marginal"] is True and manifest["eval"]["samples"] == 8
    assert not manifest["calibration"]["marginal"] and not manifest["calibration"]["samples"]
    # precision_check reaches the runs (a float32 model: the check says it had nothing to compare)
    precision = json.loads((folder / "eval" / "run.json").read_text())["precision"]
    assert precision["check"]["skipped"], precision
    records = RunStore(folder / "eval").read()
    assert records["marginal_lower"].notna().all() and records["sampled_labels"].map(len).eq(8).all()
    rows = json.loads((out / "table.json").read_text())["rows"]
    found = {r["estimator"] for r in rows if r["dataset"] == "beta"}
    assert {"max", "platt-shared", "marginal", "marginal[reading=mid]", "sample"} <= found


def test_a_suites_run_settings_are_the_run_configs():
    """A suite's `run:` keys are RunConfig's settings that a cell does not decide (the cell gives
    the dataset, split, ids, model and method): a setting added to RunConfig must be added here."""
    import dataclasses

    from labeldist.runs import RunConfig
    from labeldist.workflows.suite.config import RUN_SETTINGS

    decided_by_the_cell = {"dataset", "data_dir", "split", "model", "grouping", "task", "ids", "options", "pool_split", "method"}
    decided_by_the_backend = {"backend", "backend_settings"}
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(RUN_SETTINGS) == fields - decided_by_the_cell - decided_by_the_backend
