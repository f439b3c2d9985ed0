"""MFRC loader: a made-up final_mfrc_data.csv and splits.yaml in the official formats, and the
paper's real splits.yaml when ../shared/data is present (the CSV is built at test time)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from labeldist.data import load_dataset
from labeldist.data.mfrc import FOUNDATIONS, load_mfrc, read_split_map
from labeldist.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "mfrc"
CSV = FIXTURES / "final_mfrc_data.csv"
SHARED = Path(os.environ.get("LABELDIST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL_SPLITS = SHARED / "paper_eval_ids" / "MFRC" / "splits.yaml"
COLUMNS = ["text", "subreddit", "bucket", "annotator", "annotation", "confidence"]


def votes(item) -> dict[str, set[str]]:
    return {annotator: set(labels) for annotator, labels in item.votes.items()}


def test_dev_split():
    data = load_mfrc(FIXTURES, "dev")
    assert (data.name, data.split) == ("mfrc", "dev")
    assert data.labels == FOUNDATIONS == ("Care", "Equality", "Proportionality", "Loyalty", "Authority", "Purity")
    # items come in the split map's order; ids are the map's integer ids as strings
    assert data.ids == ["103", "102", "101"]
    by_id = {item.id: item for item in data}
    assert by_id["102"].text == "Honestly the mods here are doing a great job.\n\nKeep it up, folks!"
    assert by_id["103"].text == 'He sold out his own team, and for what? A "promotion".'
    assert votes(by_id["101"]) == {
        "annotator00": {"Equality", "Care"},
        "annotator01": {"Equality"},
        "annotator02": set(),
        "annotator03": {"Proportionality"},
    }
    # Non-Moral and Thin Morality alone are empty votes; the repeated annotator02 row is ignored
    assert votes(by_id["102"]) == {"annotator00": set(), "annotator01": set(), "annotator02": {"Care"}}
    # "Loyalty,Thin Morality" is contradictory: that row is dropped
    assert votes(by_id["103"]) == {"annotator00": {"Loyalty"}, "annotator03": {"Loyalty", "Authority"}}
    assert by_id["101"].gold == {"Equality"}  # 2 of 4 is at least half
    assert by_id["102"].gold == frozenset()  # 1 of 3 is not
    assert by_id["103"].gold == {"Loyalty", "Authority"}
    fractions = data.vote_fractions()
    index = data.label_index()
    row = data.ids.index("101")
    assert fractions[row].tolist() == [
        0.25 if label in ("Care", "Proportionality") else 0.5 if label == "Equality" else 0.0 for label in data.labels
    ]
    assert data.notes == [
        "1 rows combining Non-Moral or Thin Morality with a foundation were dropped",
        "1 repeated (text, annotator) rows: kept the first",
        "1 texts of final_mfrc_data.csv are in no split of splits.yaml",
        "gold = foundations chosen by at least half of a text's annotators",
    ]
    assert data.info["files"] == [str(CSV), str(FIXTURES / "splits.yaml")]
    assert index["Care"] == 0


def test_test_and_train_splits():
    test = load_dataset("mfrc", FIXTURES, "test")
    assert test.ids == ["201", "202"]
    assert votes(test[0]) == {"annotator00": set(), "annotator01": set()}
    assert test[1].text == "Respect your elders, and keep your body and mind clean.\n"
    assert votes(test[1]) == {"annotator02": {"Purity", "Authority"}, "annotator03": {"Purity"}}
    assert test[1].gold == {"Purity", "Authority"}
    assert "1 of 3 test texts in splits.yaml have no usable annotation rows" in test.notes
    assert "1 rows combining Non-Moral or Thin Morality with a foundation were dropped" in test.notes
    train = load_mfrc(FIXTURES, "train")
    assert [(item.id, item.text, set(item.gold)) for item in train] == [("301", "Training text, with a comma.", {"Authority"})]
    assert load_mfrc(FIXTURES, "val").split == "dev"
    assert len(load_dataset("mfrc", FIXTURES, "dev+test")) == 5


def test_splits_file_option(tmp_path):
    elsewhere = tmp_path / "maps" / "my_splits.yaml"
    elsewhere.parent.mkdir()
    shutil.copy(FIXTURES / "splits.yaml", elsewhere)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(CSV, data_dir)
    data = load_mfrc(data_dir, "dev", splits_file=elsewhere)
    assert data.ids == ["103", "102", "101"]
    with pytest.raises(DataError) as err:
        load_mfrc(data_dir, "dev")
    assert str(err.value) == f"{data_dir / 'splits.yaml'}: MFRC split map does not exist"


def copy_with_rows(tmp_path: Path, frame: pd.DataFrame) -> Path:
    shutil.copy(FIXTURES / "splits.yaml", tmp_path)
    path = tmp_path / "final_mfrc_data.csv"
    frame.to_csv(path, index=False)
    return path


def test_unknown_annotation_names_the_row(tmp_path):
    frame = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    frame.loc[4, "annotation"] = "Care,Fairness"
    path = copy_with_rows(tmp_path, frame)
    with pytest.raises(DataError) as err:
        load_mfrc(tmp_path, "dev")
    message = str(err.value)
    assert message.startswith(f"{path}, row 5: unknown annotation 'Fairness'; known: Authority, Care,")


def test_empty_annotation_and_annotator(tmp_path):
    frame = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    frame.loc[2, "annotation"] = ""
    path = copy_with_rows(tmp_path, frame)
    with pytest.raises(DataError) as err:
        load_mfrc(tmp_path, "dev")
    assert str(err.value) == f"{path}, row 3: empty annotation"
    frame = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    frame.loc[6, "annotator"] = ""
    copy_with_rows(tmp_path, frame)
    with pytest.raises(DataError, match="row 7: empty annotator"):
        load_mfrc(tmp_path, "dev")


def test_missing_column(tmp_path):
    frame = pd.read_csv(CSV, dtype=str, keep_default_na=False).drop(columns=["annotation"])
    path = copy_with_rows(tmp_path, frame)
    with pytest.raises(DataError) as err:
        load_mfrc(tmp_path, "dev")
    assert str(err.value) == f"{path}: missing column(s) annotation (found: text, subreddit, bucket, annotator, confidence)"


def test_split_map_errors(tmp_path):
    with pytest.raises(DataError, match=r"unknown split 'holdout'; available: dev \(or val, validation, valid\), test, train"):
        load_mfrc(FIXTURES, "holdout")
    bad = tmp_path / "splits.yaml"
    bad.write_text("dev:\n  some text: '1'\n  other text: [unclosed\n")
    with pytest.raises(DataError) as err:
        read_split_map(bad)
    assert str(err.value).startswith(f"{bad}, line 4: invalid YAML")
    bad.write_text("dev: [a, b]\n")
    with pytest.raises(DataError) as err:
        read_split_map(bad)
    assert str(err.value) == f"{bad}, split dev: expected a mapping from texts to ids"


def test_no_matching_text_is_an_error(tmp_path):
    frame = pd.DataFrame([["unrelated text", "r", "b", "annotator00", "Care", "Confident"]], columns=COLUMNS)
    path = copy_with_rows(tmp_path, frame)
    with pytest.raises(DataError) as err:
        load_mfrc(tmp_path, "dev")
    assert str(err.value) == f"{path}: no rows match a text of split dev in {tmp_path / 'splits.yaml'}"


@pytest.mark.shared
@pytest.mark.skipif(not REAL_SPLITS.is_file(), reason=f"the paper's MFRC splits.yaml not present at {REAL_SPLITS}")
def test_real_split_map_joins_on_exact_text(tmp_path):
    split_map = read_split_map(REAL_SPLITS)
    assert {split: len(texts) for split, texts in split_map.items()} == {"dev": 800, "test": 1600, "train": 15486}
    ids = [item_id for texts in split_map.values() for item_id in texts.values()]
    assert len(set(ids)) == 17886 and all(item_id.isdigit() for item_id in ids)

    # a CSV built here from a few real texts (nothing from shared/ is written into the repo)
    dev_texts = list(split_map["dev"])[:3]
    with_newline = next(text for text in split_map["dev"] if "\n" in text)
    chosen = [*dev_texts, with_newline] if with_newline not in dev_texts else dev_texts
    test_texts = list(split_map["test"])[:2]
    rows = []
    for text in [*chosen, *test_texts]:
        rows.append([text, "sub", "bucket", "annotator00", "Care,Purity", "Confident"])
        rows.append([text, "sub", "bucket", "annotator01", "Care", "Confident"])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.to_csv(tmp_path / "final_mfrc_data.csv", index=False)

    dev = load_dataset("mfrc", tmp_path, "dev", splits_file=REAL_SPLITS)
    assert [item.id for item in dev] == [split_map["dev"][text] for text in chosen]
    assert [item.text for item in dev] == chosen
    assert all(item.gold == {"Care", "Purity"} for item in dev)
    assert f"{800 - len(chosen)} of 800 dev texts in splits.yaml have no usable annotation rows" in dev.notes
    test = load_dataset("mfrc", tmp_path, "test", splits_file=REAL_SPLITS)
    assert test.ids == [split_map["test"][text] for text in test_texts]
