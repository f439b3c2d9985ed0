"""Generic table loader: both layouts in CSV, TSV, JSON Lines and Parquet, its errors, the
shared helpers, and a real per-annotator file when ../shared/data is present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labeldist.data import describe, load_dataset
from labeldist.data.cells import parse_label_list
from labeldist.data.schema import gold_by_share
from labeldist.data.splits import canonical_split
from labeldist.data.tables import load_table
from labeldist.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "tables"
SHARED = Path(os.environ.get("LABELDIST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL_SENSITIVITY = SHARED / "tweet_annotation_sensitivity" / "full_test_s.csv"
LABEL_COLUMNS = ["joy", "anger", "fear"]


def votes(item) -> dict[str, set[str]]:
    return {annotator: set(labels) for annotator, labels in item.votes.items()}


def test_items_with_label_columns():
    data = load_table(FIXTURES / "items.csv", "test", label_columns=LABEL_COLUMNS)
    assert (data.name, data.split) == ("table", "test")
    assert data.labels == ("joy", "anger", "fear")
    assert data.ids == ["a1", "a2", "a3", "a4"]
    assert data[0].text == 'Great, "fine" day, really.'
    assert data[1].text == "I lost my keys\nagain"
    assert [set(item.gold) for item in data] == [{"joy", "anger"}, {"anger"}, {"fear"}, set()]
    assert data.vote_source == "gold"
    assert np.array_equal(data.vote_fractions(), data.gold_matrix())
    assert data.notes == ["aggregate labels only: vote fractions are gold 0/1"]
    assert data.info["layout"] == "items"


def test_label_column_renaming_and_order():
    data = load_table(
        FIXTURES / "items.csv",
        "dev",
        label_columns={"joy": "happy", "anger": "angry", "fear": "scared"},
        labels=["scared", "happy", "angry"],
        dataset_name="toy",
    )
    assert data.name == "toy"
    assert data.labels == ("scared", "happy", "angry")
    assert data[0].gold == {"happy", "angry"}
    with pytest.raises(DataError, match=r"labels \['joy'\] differ from the label columns' labels"):
        load_table(FIXTURES / "items.csv", "dev", label_columns=LABEL_COLUMNS, labels=["joy"])


def test_label_list_jsonl_with_split_column():
    path = FIXTURES / "items_lists.jsonl"
    train = load_table(path, "train", label_list_column="labels", split_column="split")
    assert train.ids == ["1", "2"]
    assert train.labels == ("anger", "fear", "joy")  # derived from the split's rows, sorted
    assert train[0].gold == {"joy", "anger"}
    dev = load_table(path, "dev", label_list_column="labels", split_column="split")
    assert dev.split == "dev"  # the file says "validation"
    assert dev.ids == ["3", "4"] and dev[0].gold == frozenset()
    fixed = load_table(path, "test", label_list_column="labels", split_column="split", labels=["joy", "surprise", "anger"])
    assert fixed.labels == ("joy", "surprise", "anger")
    assert fixed[0].gold == {"surprise", "joy"}
    with pytest.raises(DataError) as err:
        load_table(path, "holdout", label_list_column="labels", split_column="split")
    assert str(err.value) == f"{path}: no rows with split = 'holdout'; values found: test, train, validation"


def test_ratings_layout():
    data = load_dataset(
        "table", FIXTURES / "ratings.csv", "test", id_column="item", annotator_column="rater", label_columns=["joy", "anger"]
    )
    assert data.ids == ["t1", "t2", "t3"]
    assert votes(data[0]) == {"r1": {"joy"}, "r2": {"joy", "anger"}, "r3": set()}
    assert votes(data[1]) == {"r1": {"anger"}, "r2": set()}  # r2's second rating ignored
    assert votes(data[2]) == {"r4": set()}
    assert [set(item.gold) for item in data] == [{"joy"}, {"anger"}, set()]  # 1 of 2 is at least half
    assert data.vote_fractions().tolist() == [[2 / 3, 1 / 3], [0.0, 0.5], [0.0, 0.0]]
    assert data.notes == [
        "1 repeated (item, annotator) rows: kept the first",
        "gold = labels chosen by at least 0.5 of an item's annotators",
    ]
    stricter = load_table(
        FIXTURES / "ratings.csv",
        "test",
        id_column="item",
        annotator_column="rater",
        label_columns=["joy", "anger"],
        gold_threshold=0.6,
    )
    assert [set(item.gold) for item in stricter] == [{"joy"}, set(), set()]
    # options as a command line passes them
    from_strings = load_table(
        FIXTURES / "ratings.csv",
        "test",
        id_column="item",
        annotator_column="rater",
        label_columns="joy,anger",
        gold_threshold="0.6",
    )
    assert from_strings.items == stricter.items and from_strings.labels == ("joy", "anger")
    assert (
        load_dataset(
            "generic", FIXTURES / "ratings.csv", "x", id_column="item", annotator_column="rater", label_columns=["joy", "anger"]
        ).split
        == "x"
    )


def test_directory_of_split_files_with_separator():
    options = {"annotator_column": "annotator", "label_list_column": "labels", "label_separator": "|"}
    train = load_table(FIXTURES / "splits", "train", **options)
    assert train.ids == ["s1", "s2"]
    assert votes(train[0]) == {"u1": {"joy", "fear"}, "u2": {"joy"}}
    assert votes(train[1]) == {"u1": set()}  # an empty cell is a vote for no label
    assert train[0].gold == {"joy", "fear"}
    dev = load_table(FIXTURES / "splits", "dev", **options)  # found as val.tsv
    assert dev.split == "dev" and dev.info["files"] == [str(FIXTURES / "splits" / "val.tsv")]
    assert dev[0].gold == {"anger", "joy"}
    with pytest.raises(DataError) as err:
        load_table(FIXTURES / "splits", "test", **options)
    assert str(err.value).startswith(f"{FIXTURES / 'splits'}: no file for split 'test' (looked for test{{.csv,")
    assert str(err.value).endswith("splits found: train, val")


def test_parquet_ratings_with_native_lists_and_bools(tmp_path):
    frame = pd.DataFrame(
        {
            "id": [7, 7, 8],
            "text": ["seven", "seven", "eight"],
            "annotator": [1, 2, 1],
            "labels": [["joy"], ["joy", "fear"], []],
            "joy": [True, True, False],
            "fear": [False, True, False],
        }
    )
    frame.to_parquet(tmp_path / "test.parquet")
    from_lists = load_table(tmp_path, "test", annotator_column="annotator", label_list_column="labels")
    assert from_lists.ids == ["7", "8"]
    assert votes(from_lists[0]) == {"1": {"joy"}, "2": {"joy", "fear"}}
    assert from_lists[0].gold == {"joy", "fear"}
    from_columns = load_table(tmp_path, "test", annotator_column="annotator", label_columns=["joy", "fear"])
    assert [votes(item) for item in from_columns] == [votes(item) for item in from_lists]


def test_label_list_cells_in_every_spelling(tmp_path):
    path = tmp_path / "x.csv"
    assert parse_label_list("['a', 'b']", ",", path, "row 1") == ["a", "b"]
    assert parse_label_list('["a"]', ",", path, "row 1") == ["a"]
    assert parse_label_list(" a ; b ", ";", path, "row 1") == ["a", "b"]
    assert parse_label_list(np.array(["a", "b"], dtype=object), ",", path, "row 1") == ["a", "b"]
    assert parse_label_list("", ",", path, "row 1") == []
    with pytest.raises(DataError, match=r"x.csv, row 3: expected a list of label names, found \[1, 2\]"):
        parse_label_list("[1, 2]", ",", path, "row 3")


def test_shared_helpers():
    assert canonical_split("VAL", "src") == "dev"
    assert canonical_split("validation", "src", available=("dev", "test")) == "dev"
    votes_ = {"a": frozenset({"x"}), "b": frozenset({"x", "y"}), "c": frozenset()}
    assert gold_by_share(votes_, 0.5) == {"x"}
    assert gold_by_share(votes_, 1 / 3) == {"x", "y"}
    ten = {str(i): frozenset({"x"} if i < 3 else set()) for i in range(10)}
    assert gold_by_share(ten, 0.3) == {"x"}  # 3/10 >= 0.3 despite floating point
    assert gold_by_share({}, 0.5) == frozenset()


def write_csv(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "data.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_missing_column_lists_found_columns(tmp_path):
    path = write_csv(tmp_path, [{"id": "1", "text": "t", "joy": 1}])
    with pytest.raises(DataError) as err:
        load_table(path, "test", label_columns=["joy", "anger"])
    assert str(err.value) == f"{path}: missing column(s) anger (found: id, text, joy)"


def test_label_value_not_binary(tmp_path):
    path = write_csv(tmp_path, [{"id": "1", "text": "t", "joy": 1}, {"id": "2", "text": "u", "joy": 2}])
    with pytest.raises(DataError) as err:
        load_table(path, "test", label_columns=["joy"])
    assert str(err.value) == f"{path}, row 2: column joy must be 0 or 1, found '2'"


def test_label_not_in_the_given_set(tmp_path):
    path = write_csv(tmp_path, [{"id": "1", "text": "t", "labels": "joy"}, {"id": "2", "text": "u", "labels": "joy,rage"}])
    with pytest.raises(DataError) as err:
        load_table(path, "test", label_list_column="labels", labels=["joy", "fear"])
    assert str(err.value) == f"{path}, row 2: label 'rage' is not in the label set ['joy', 'fear']"


def test_empty_text(tmp_path):
    path = write_csv(tmp_path, [{"id": "1", "text": "t", "joy": 1}, {"id": "2", "text": "  ", "joy": 0}])
    with pytest.raises(DataError) as err:
        load_table(path, "test", label_columns=["joy"])
    assert str(err.value) == f"{path}, row 2: empty text in column text (item 2)"


def test_duplicate_item_id(tmp_path):
    rows = [{"id": "1", "text": "t", "joy": 1}, {"id": "2", "text": "u", "joy": 0}, {"id": "1", "text": "v", "joy": 0}]
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_table(path, "test", label_columns=["joy"])
    assert str(err.value) == f"{path}, row 3: duplicate item id 1 (first in row 1)"


def test_ratings_text_must_agree(tmp_path):
    rows = [
        {"id": "1", "text": "t", "rater": "a", "joy": 1},
        {"id": "2", "text": "u", "rater": "a", "joy": 1},
        {"id": "1", "text": "t ", "rater": "b", "joy": 0},
    ]
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_table(path, "test", annotator_column="rater", label_columns=["joy"])
    assert str(err.value) == f"{path}, row 3: item 1 has a different text than in row 1"


def test_missing_label_values_error_or_drop(tmp_path):
    rows = [
        {"id": "1", "text": "t", "rater": "a", "joy": "1"},
        {"id": "1", "text": "t", "rater": "b", "joy": "NA"},
        {"id": "1", "text": "t", "rater": "c", "joy": "0"},
        {"id": "2", "text": "u", "rater": "a", "joy": ""},
        {"id": "3", "text": "w", "rater": "a", "joy": "1"},
    ]
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_table(path, "test", annotator_column="rater", label_columns=["joy"])
    assert str(err.value) == f"{path}, row 2: column joy must be 0 or 1, found 'NA'"
    data = load_table(path, "test", annotator_column="rater", label_columns=["joy"], missing_labels="drop")
    assert data.ids == ["1", "3"]
    assert votes(data[0]) == {"a": {"joy"}, "c": set()}
    assert data.notes[0] == "2 rows with a missing label value were dropped (missing_labels='drop')"


def test_option_errors(tmp_path):
    path = FIXTURES / "items.csv"
    with pytest.raises(DataError, match="give exactly one of label_columns and label_list_column"):
        load_table(path, "test")
    with pytest.raises(DataError, match="give exactly one of label_columns and label_list_column"):
        load_table(path, "test", label_columns=["joy"], label_list_column="labels")
    with pytest.raises(DataError, match="missing_labels must be 'error' or 'drop'"):
        load_table(path, "test", label_columns=["joy"], missing_labels="zero")
    with pytest.raises(DataError, match=r"gold_threshold must be in \(0, 1\]"):
        load_table(path, "test", label_columns=["joy"], gold_threshold=0)
    with pytest.raises(DataError, match="gold_threshold must be a number, not 'half'"):
        load_table(path, "test", label_columns=["joy"], gold_threshold="half")


@pytest.mark.shared
@pytest.mark.skipif(not REAL_SENSITIVITY.is_file(), reason=f"real annotation sensitivity file not at {REAL_SENSITIVITY}")
def test_real_per_annotator_table():
    data = load_dataset(
        "table",
        REAL_SENSITIVITY,
        "test",
        id_column="tweet.id",
        text_column="tweet_hashed",
        annotator_column="id",
        label_columns={"hate.speech": "hate speech", "offensive.language": "offensive language"},
        missing_labels="drop",
        dataset_name="tweet_annotation_sensitivity",
    )
    summary = describe(data)
    assert summary["items"] == 750
    assert summary["votes_per_item_distribution"] == {"14": 119, "15": 631}
    assert data.labels == ("hate speech", "offensive language")
    # 80 ratings lack hate.speech and 6 lack offensive.language (SOURCES.md)
    assert data.notes[0] == "86 rows with a missing label value were dropped (missing_labels='drop')"
    assert data.vote_source == "annotators"
