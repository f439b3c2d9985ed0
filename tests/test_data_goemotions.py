import json

import numpy as np
import pytest

from conftest import FIXTURES, shared
from labeldist.cli import main
from labeldist.data import describe, load_dataset
from labeldist.data.groupings import GOEMOTIONS_EKMAN, GOEMOTIONS_SENTIMENT
from labeldist.errors import DataError

GO = FIXTURES / "goemotions"


def test_split_gold_and_labels():
    ds = load_dataset("goemotions", GO, "dev")
    assert ds.name == "goemotions" and ds.split == "dev"
    assert len(ds.labels) == 27 and "neutral" not in ds.labels
    assert ds.ids == ["dv0001", "dv0002", "dv0003", "dv0004", "dv0005", "dv0006"]
    by_id = {item.id: item for item in ds}
    assert by_id["dv0001"].gold == {"gratitude", "joy"}
    assert by_id["dv0003"].gold == frozenset()  # neutral = no label
    # quotes in the split files are literal text
    assert by_id["dv0002"].text == 'Why would anyone "fix" what isn\'t broken?'
    assert by_id["dv0005"].text.startswith('"Quoted" start')


def test_raw_votes_joined_on_comment_id():
    ds = load_dataset("goemotions", GO, "dev")
    by_id = {item.id: item for item in ds}
    # dv0001: raters 4, 12 (file 1), 30 (file 2), 31 (file 3)
    assert by_id["dv0001"].votes == {
        "4": {"gratitude"},
        "12": {"gratitude", "joy"},
        "30": {"joy", "excitement"},
        "31": {"gratitude"},
    }
    # the example_very_unclear rating of rater 7 is left out
    assert set(by_id["dv0002"].votes) == {"4", "30"}
    # neutral votes are empty votes, still counted as annotators
    assert by_id["dv0003"].votes == {"12": frozenset(), "4": frozenset()}
    assert not by_id["dv0004"].has_votes
    assert ds.vote_source == "mixed"
    fractions = ds.vote_fractions()
    row = ds.ids.index("dv0001")
    index = ds.label_index()
    assert fractions[row, index["gratitude"]] == pytest.approx(3 / 4)
    assert fractions[row, index["joy"]] == pytest.approx(2 / 4)
    assert fractions[row, index["excitement"]] == pytest.approx(1 / 4)
    assert fractions[row].sum() == pytest.approx(6 / 4)
    # no votes: gold as 0/1
    row4 = ds.ids.index("dv0004")
    assert fractions[row4, index["sadness"]] == 1.0 and fractions[row4, index["grief"]] == 1.0
    assert list(ds.votes_available()) == [True, True, True, False, True, False]
    assert any("example_very_unclear" in note for note in ds.notes)


def test_missing_raw_files_are_a_note_not_an_error(tmp_path):
    for name in ("dev.tsv", "emotions.txt"):
        (tmp_path / name).write_bytes((GO / name).read_bytes())
    ds = load_dataset("goemotions", tmp_path, "dev")
    assert ds.vote_source == "gold"
    assert sum("no raw ratings" in note for note in ds.notes) == 1
    np.testing.assert_array_equal(ds.vote_fractions(), ds.gold_matrix())


def test_paper7_grouping_unions_members_and_clamps():
    ds = load_dataset("goemotions", GO, "dev", grouping="paper-7")
    assert ds.labels == ("joy", "optimism", "admiration", "surprise", "fear", "sadness", "anger")
    by_id = {item.id: item for item in ds}
    # gratitude -> admiration, joy -> joy
    assert by_id["dv0001"].gold == {"admiration", "joy"}
    # fear + nervousness both -> fear: one group, clamped to 1
    assert by_id["dv0005"].gold == {"fear"}
    assert by_id["dv0001"].votes["30"] == {"joy"}  # joy + excitement -> joy
    fractions = ds.vote_fractions()
    row = ds.ids.index("dv0005")
    # raters 4 {fear}, 30 {nervousness}, 12 {fear, nervousness}: all three -> fear, fraction 1 not 4/3
    assert fractions[row, ds.labels.index("fear")] == 1.0
    assert fractions.max() <= 1.0


@pytest.mark.parametrize("grouping,groups", [("ekman", GOEMOTIONS_EKMAN), ("sentiment", GOEMOTIONS_SENTIMENT)])
def test_other_groupings_cover_all_27(grouping, groups):
    ds = load_dataset("goemotions", GO, "train", grouping=grouping)
    assert ds.labels == tuple(groups)
    assert sum(len(v) for v in groups.values()) == 27


def test_grouping_from_json_file(tmp_path):
    path = tmp_path / "two.json"
    emotions = load_dataset("goemotions", GO, "dev").labels
    path.write_text(json.dumps({"pos": list(emotions[:13]), "neg": list(emotions[13:])}))
    ds = load_dataset("goemotions", GO, "dev", grouping=str(path))
    assert ds.labels == ("pos", "neg")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pos": list(emotions[:13])}))
    with pytest.raises(ValueError, match="in no group"):
        load_dataset("goemotions", GO, "dev", grouping=str(bad))


def test_id_list_restricts_in_list_order(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("dv0004\ndv0001\n\n")
    ds = load_dataset("goemotions", GO, "dev", ids=ids)
    assert ds.ids == ["dv0004", "dv0001"]
    ids.write_text("dv0004\nnot-an-id\n")
    with pytest.raises(DataError, match=r"ids.txt: 1 of 2 ids are not in goemotions split dev: not-an-id"):
        load_dataset("goemotions", GO, "dev", ids=ids)


def test_joined_splits(tmp_path):
    ds = load_dataset("goemotions", GO, "dev+test")
    assert len(ds) == 9 and ds.split == "dev+test"


def _copy(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_bytes((GO / name).read_bytes())


def test_error_bad_label_index_names_file_and_line(tmp_path):
    _copy(tmp_path, "emotions.txt")
    (tmp_path / "dev.tsv").write_text("fine\t1\ta1\nbad one\t3,28\ta2\n")
    with pytest.raises(DataError) as err:
        load_dataset("goemotions", tmp_path, "dev")
    assert str(err.value) == f"{tmp_path / 'dev.tsv'}, line 2: label index 28 not in 0..27 (emotions.txt)"


def test_error_malformed_row(tmp_path):
    _copy(tmp_path, "emotions.txt")
    (tmp_path / "dev.tsv").write_text("fine\t1\ta1\nno id here\t3\n")
    with pytest.raises(DataError, match=r"dev.tsv, line 2: expected 3 tab-separated fields"):
        load_dataset("goemotions", tmp_path, "dev")
    (tmp_path / "dev.tsv").write_text("fine\tjoy\ta1\n")
    with pytest.raises(DataError, match=r"line 1: labels must be comma-separated integers, found 'joy'"):
        load_dataset("goemotions", tmp_path, "dev")
    (tmp_path / "dev.tsv").write_text("one\t1\ta1\ntwo\t2\ta1\n")
    with pytest.raises(DataError, match=r"line 2: comment id a1 repeats line 1"):
        load_dataset("goemotions", tmp_path, "dev")


def test_error_raw_missing_column_and_bad_value(tmp_path):
    _copy(tmp_path, "emotions.txt", "dev.tsv")
    lines = (GO / "goemotions_1.csv").read_text().splitlines()
    header = lines[0].replace(",rater_id,", ",rater,")
    (tmp_path / "goemotions_1.csv").write_text("\n".join([header, *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"goemotions_1.csv: missing column\(s\) rater_id"):
        load_dataset("goemotions", tmp_path, "dev")
    bad_row = lines[2][: -len("0,0")] + "2,0"
    (tmp_path / "goemotions_1.csv").write_text("\n".join([lines[0], lines[1], bad_row]) + "\n")
    with pytest.raises(DataError, match=r"goemotions_1.csv, row 2: column surprise must be 0 or 1, found '2'"):
        load_dataset("goemotions", tmp_path, "dev")


def test_error_unknown_split_and_missing_dir(tmp_path):
    with pytest.raises(DataError, match="unknown split .validation2."):
        load_dataset("goemotions", GO, "validation2")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("goemotions", tmp_path / "nope", "dev")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("goemotionz", GO, "dev")
    with pytest.raises(DataError, match="unknown grouping 'paper-8'"):
        load_dataset("goemotions", GO, "dev", grouping="paper-8")


def test_describe_counts_on_fixture():
    summary = describe(load_dataset("goemotions", GO, "dev"))
    assert summary["items"] == 6
    assert summary["annotators"] == 4  # raters 4, 12, 30, 31; rater 7 gave only an unclear rating
    assert summary["votes_per_item"] == pytest.approx(11 / 6)
    assert summary["multilabel_share"] == pytest.approx(4 / 6)
    # items with 2+ votes: dv0001, dv0002, dv0005 disagree; dv0003 (both neutral) agrees
    assert summary["disagreement_share"] == pytest.approx(3 / 4)
    assert summary["label_frequency"]["gratitude"] == 1 and summary["label_frequency"]["fear"] == 1


def test_shared_goemotions_dev_counts(capsys):
    data_dir = shared("goemotions")
    assert (
        main(["data", "describe", "goemotions", "--data-dir", str(data_dir), "--split", "dev", "--grouping", "paper-7", "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 5426 and len(summary["labels"]) == 7
    assert main(["data", "describe", "goemotions", "--data-dir", str(data_dir), "--split", "dev", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 5426 and len(summary["labels"]) == 27
    # 878 dev rows carry 2+ labels, but some pair an emotion with neutral
    assert summary["multilabel_share"] == pytest.approx(
        sum(
            1
            for line in (data_dir / "dev.tsv").read_text().splitlines()
            if len(set(line.split("\t")[1].split(",")) - {"27"}) >= 2
        )
        / 5426
    )
    assert {
        "dataset",
        "split",
        "items",
        "labels",
        "annotators",
        "votes_per_item",
        "multilabel_share",
        "disagreement_share",
        "label_frequency",
    } <= set(summary)


def test_shared_goemotions_raw_sample_votes():
    sample = shared("goemotions", "raw_sample", "goemotions_1.first_rows.csv")
    ds = load_dataset("goemotions", sample.parents[1], "train", raw_files=[str(sample)])
    summary = describe(ds)
    assert summary["annotators"] <= 79
    assert ds.votes_available().sum() > 3000
    assert any("58 ratings marked example_very_unclear" in note for note in ds.notes)
