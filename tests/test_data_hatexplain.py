"""HateXplain loader: both layouts on made-up posts, both tasks, target folding, errors, and
the real val/test files when ../shared/data is present."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from labeldist.data import describe, load_dataset
from labeldist.data.hatexplain import TARGET_MENTIONS, TARGETS, load_hatexplain
from labeldist.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "hatexplain"
HF_CSV = FIXTURES / "hf_csv"
OFFICIAL = FIXTURES / "official"
SHARED = Path(os.environ.get("LABELDIST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL = SHARED / "hatexplain"
TEST_IDS = [
    "1000000000000000001_twitter",
    "1000000000000000002_twitter",
    "2000001_gab",
    "2000002_gab",
    "1000000000000000003_twitter",
]


def votes(item) -> dict[str, set[str]]:
    return {annotator: set(labels) for annotator, labels in item.votes.items()}


def test_target_task_on_hf_csv():
    data = load_hatexplain(HF_CSV, "test")
    assert (data.name, data.split) == ("hatexplain", "test")
    assert data.labels == TARGETS and len(TARGETS) == 25 and data.labels[-1] == "Other"
    assert data.ids == TEST_IDS
    # text is post_tokens joined, <user> kept (not the unmasked column's random names)
    assert data[0].text == "<user> the parade downtown was loud but honestly pretty fun"
    assert votes(data[0]) == {"91": set(), "71": set(), "46": set()}
    assert votes(data[1]) == {"202": {"Refugee"}, "193": set(), "213": {"Refugee", "Other"}}
    assert votes(data[2]) == {"4": {"Women"}, "21": {"Women"}, "30": {"Jewish", "Women"}}
    assert votes(data[3]) == {"4": {"Buddhism"}, "7": {"Hindu", "Buddhism"}, "30": {"Asexual"}}
    assert votes(data[4]) == {"91": set(), "121": {"African"}, "46": {"Islam"}}
    assert [set(item.gold) for item in data] == [set(), {"Refugee"}, {"Women"}, {"Buddhism"}, set()]
    fractions = data.vote_fractions()
    index = data.label_index()
    assert fractions[1, index["Refugee"]] == pytest.approx(2 / 3)
    assert fractions[1, index["Other"]] == pytest.approx(1 / 3)
    assert fractions[2, index["Jewish"]] == pytest.approx(1 / 3)
    assert fractions[1].sum() == pytest.approx(1.0)
    assert describe(data)["disagreement_share"] == pytest.approx(4 / 5)
    assert data.notes == [
        "1 votes listed 'None' next to real targets: 'None' was dropped from them",
        "gold = targets chosen by at least half of a post's annotators (2 of 3)",
    ]
    assert data.info["files"] == [str(HF_CSV / "derived_test_annotators.csv"), str(HF_CSV / "post_id_divisions.json")]


def test_label_task():
    data = load_dataset("hatexplain", HF_CSV, "test", task="label")
    assert data.labels == ("hatespeech", "offensive", "normal")
    assert votes(data[1]) == {"202": {"offensive"}, "193": {"normal"}, "213": {"offensive"}}
    assert votes(data[2]) == {"4": {"hatespeech"}, "21": {"offensive"}, "30": {"normal"}}
    assert [set(item.gold) for item in data] == [{"normal"}, {"offensive"}, set(), {"hatespeech"}, {"normal"}]
    assert data.notes[0] == "1 posts have no majority label and so no gold label (HateXplain's 'undecided')"
    assert data.info["task"] == "label"


def test_val_is_dev_and_division_mismatch_is_noted():
    for name in ("val", "dev"):
        data = load_hatexplain(HF_CSV, name)
        assert data.split == "dev"
        assert data.info["source_split"] == "val"
    assert data.ids == ["3000001_gab", "3000002_gab", "3000099_gab"]
    assert "1 of 3 posts in derived_val_annotators.csv are not in the 'val' list of post_id_divisions.json" in data.notes
    # an empty target list is a vote for no target
    assert votes(data[1]) == {"5": set(), "6": set(), "8": set()}
    assert data[2].gold == {"Arab"}


def test_fold_rare_uses_the_fixed_table():
    data = load_hatexplain(HF_CSV, "test", fold_rare=10)
    expected = tuple(t for t in TARGETS if t != "Other" and TARGET_MENTIONS[t] >= 10) + ("Other",)
    assert data.labels == expected
    assert "Buddhism" not in data.labels and "Hindu" not in data.labels and "Indian" in data.labels
    assert votes(data[3]) == {"4": {"Other"}, "7": {"Other"}, "30": {"Other"}}
    assert data[3].gold == {"Other"}
    assert "4 target mentions in 3 votes were folded into Other" in data.notes
    # the label set does not depend on the split
    assert load_hatexplain(HF_CSV, "dev", fold_rare=10).labels == expected
    assert data.info["fold_rare"] == 10
    # as a command line passes it
    assert load_dataset("hatexplain", HF_CSV, "test", fold_rare="10").labels == expected


def test_keep_folds_the_rest_into_other():
    data = load_hatexplain(HF_CSV, "test", keep=["Women", "Refugee"])
    assert data.labels == ("Women", "Refugee", "Other")
    assert votes(data[1]) == {"202": {"Refugee"}, "193": set(), "213": {"Refugee", "Other"}}
    assert votes(data[2]) == {"4": {"Women"}, "21": {"Women"}, "30": {"Women", "Other"}}
    assert votes(data[4]) == {"91": set(), "121": {"Other"}, "46": {"Other"}}
    assert data[4].gold == {"Other"}
    assert "7 target mentions in 6 votes were folded into Other" in data.notes
    assert data.info["kept_targets"] == ["Women", "Refugee"]
    assert load_hatexplain(HF_CSV, "test", keep="Women, Refugee").items == data.items


def test_official_layout_matches_hf_layout():
    official = load_hatexplain(OFFICIAL, "test")
    hf = load_hatexplain(HF_CSV, "test")
    assert official.items == hf.items
    assert official.labels == hf.labels
    assert "1 post ids of the split are missing from dataset.json" in official.notes
    assert official.info["files"] == [str(OFFICIAL / "dataset.json"), str(OFFICIAL / "post_id_divisions.json")]
    label_task = load_hatexplain(OFFICIAL, "test", task="label")
    assert [set(item.gold) for item in label_task] == [{"normal"}, {"offensive"}, set(), {"hatespeech"}, {"normal"}]
    assert load_hatexplain(OFFICIAL, "val").ids == ["3000001_gab"]
    assert load_hatexplain(OFFICIAL, "train").ids == ["3000002_gab"]


def test_jsonl_rows():
    data = load_hatexplain(FIXTURES / "hf_jsonl", "train")
    assert data.ids == ["3000001_gab", "3000002_gab"]
    assert data[0].text == "invented post about some men"
    assert votes(data[0]) == {"5": {"Men"}, "6": {"Men"}, "8": set()}
    assert data.info["files"] == [str(FIXTURES / "hf_jsonl" / "hatexplain_train.jsonl")]


def test_parquet_rows_with_nested_columns(tmp_path):
    frame = pd.read_json(FIXTURES / "hf_jsonl" / "hatexplain_train.jsonl", lines=True)
    frame.to_parquet(tmp_path / "validation.parquet")
    from_parquet = load_hatexplain(tmp_path, "dev")
    assert from_parquet.items == load_hatexplain(FIXTURES / "hf_jsonl", "train").items


def test_dataset_json_needs_divisions(tmp_path):
    shutil.copy(OFFICIAL / "dataset.json", tmp_path)
    with pytest.raises(DataError) as err:
        load_hatexplain(tmp_path, "test")
    assert str(err.value) == f"{tmp_path / 'post_id_divisions.json'}: needed to split dataset.json but does not exist"


def write_rows(directory: Path, rows: list[dict]) -> Path:
    path = directory / "test.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def row(post_id: str, annotators: str, tokens: str = "['a', 'b']") -> dict:
    return {"id": post_id, "annotators": annotators, "post_tokens": tokens}


GOOD = "{'label': [1, 1, 2], 'annotator_id': [1, 2, 3], 'target': [['None'], ['None'], ['Men']]}"


@pytest.mark.parametrize(
    ("annotators", "problem"),
    [
        ("{'label': [1, 1, 2], 'annotator_id': [1, 2, 3], 'target': [['None'], ['None']", "cannot parse nested field"),
        (GOOD.replace("[1, 1, 2]", "[1, 3, 2]"), "unknown label 3"),
        (GOOD.replace("'Men'", "'Martians'"), "unknown target 'Martians'"),
        (GOOD.replace("[1, 2, 3]", "[1, 2]"), "annotators' lists differ in length: label 3, annotator_id 2, target 3"),
        ("{'label': [1], 'annotator_id': [1]}", "annotators must hold lists label, annotator_id, target"),
    ],
)
def test_row_errors_name_file_row_and_item(tmp_path, annotators, problem):
    path = write_rows(tmp_path, [row("p1", GOOD), row("p2", annotators)])
    with pytest.raises(DataError) as err:
        load_hatexplain(tmp_path, "test")
    message = str(err.value)
    assert message.startswith(f"{path}, row 2 (item p2): ")
    assert problem in message


def test_unparseable_tokens_and_duplicate_id(tmp_path):
    path = write_rows(tmp_path, [row("p1", GOOD), row("p2", GOOD, "['a', 'b'")])
    with pytest.raises(DataError, match=r"row 2 \(item p2\): cannot parse nested field"):
        load_hatexplain(tmp_path, "test")
    write_rows(tmp_path, [row("p1", GOOD), row("p2", GOOD), row("p1", GOOD)])
    with pytest.raises(DataError) as err:
        load_hatexplain(tmp_path, "test")
    assert str(err.value) == f"{path}, row 3 (item p1): duplicate id (first in row 1)"


def test_missing_column(tmp_path):
    path = tmp_path / "test.csv"
    pd.DataFrame([{"id": "p1", "annotators": GOOD}]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_hatexplain(tmp_path, "test")
    assert str(err.value) == f"{path}: missing column(s) post_tokens (found: id, annotators)"


def test_no_ids_in_division_is_an_error(tmp_path):
    path = write_rows(tmp_path, [row("p1", GOOD)])
    (tmp_path / "post_id_divisions.json").write_text(json.dumps({"train": [], "val": [], "test": ["other"]}))
    with pytest.raises(DataError) as err:
        load_hatexplain(tmp_path, "test")
    assert str(err.value) == f"{path}: none of its post ids are in the 'test' list of {tmp_path / 'post_id_divisions.json'}"


def test_option_and_split_errors(tmp_path):
    with pytest.raises(DataError, match="unknown task 'spans'; known: label, target"):
        load_hatexplain(HF_CSV, "test", task="spans")
    with pytest.raises(DataError, match="unknown task 'spans'; known: label, target"):
        load_dataset("hatexplain", HF_CSV, "test", task="spans")
    with pytest.raises(DataError, match=r"keep names unknown targets \['Martians'\]"):
        load_hatexplain(HF_CSV, "test", keep=["Women", "Martians"])
    with pytest.raises(DataError, match="give keep or fold_rare, not both"):
        load_hatexplain(HF_CSV, "test", keep=["Women"], fold_rare=5)
    with pytest.raises(DataError, match="fold_rare must be a positive integer"):
        load_hatexplain(HF_CSV, "test", fold_rare=0)
    with pytest.raises(DataError, match="keep and fold_rare apply to the target task only"):
        load_hatexplain(HF_CSV, "test", task="label", keep=["Women"])
    with pytest.raises(DataError, match=r"unknown split 'holdout'; available: train, dev \(or val"):
        load_hatexplain(HF_CSV, "holdout")
    with pytest.raises(DataError) as err:
        load_hatexplain(HF_CSV, "train")
    message = str(err.value)
    assert message.startswith(f"{HF_CSV}: no HateXplain file for split train: no dataset.json, nor any of train.csv,")
    assert "derived_train_annotators.csv" in message


@pytest.mark.shared
@pytest.mark.skipif(not (REAL / "derived_test_annotators.csv").is_file(), reason=f"real HateXplain files not present at {REAL}")
def test_real_hatexplain_val_and_test():
    test = load_dataset("hatexplain", REAL, "test", task="target")
    summary = describe(test)
    assert summary["items"] == 1924
    assert summary["votes_per_item_distribution"] == {"3": 1924}
    assert summary["disagreement_share"] == pytest.approx(0.578, abs=0.001)
    assert test.labels == TARGETS
    assert not any("not in the" in note for note in test.notes)  # every id is in the test division
    assert "14 votes listed 'None' next to real targets: 'None' was dropped from them" in test.notes
    assert "Quentin" not in test[0].text and test[0].text.startswith("<user> men can not")

    val = load_dataset("hatexplain", REAL, "val", task="target", fold_rare=20)
    assert len(val) == 1922 and val.split == "dev"
    assert val.labels == load_dataset("hatexplain", REAL, "test", fold_rare=20).labels
    assert val.labels[-1] == "Other" and "Heterosexual" in val.labels and "Indian" not in val.labels

    labels = load_dataset("hatexplain", REAL, "test", task="label")
    # the official splits hold only posts with a majority label
    assert all(len(item.gold) == 1 for item in labels)
