"""SemEval-2018 E-c loader: made-up tweets in the official format, and the real files when
../shared/data is present (never copied into the repository: the terms forbid it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from labeldist.data import load_dataset
from labeldist.data.semeval import LABELS, load_semeval
from labeldist.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "semeval"
SHARED = Path(os.environ.get("LABELDIST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL = SHARED / "semeval2018_ec"
HEADER = "ID\tTweet\t" + "\t".join(LABELS)


def write_file(directory: Path, name: str, lines: list[str], eol: str = "\r\n") -> Path:
    path = directory / name
    path.write_bytes((eol.join(lines) + eol).encode("utf-8"))
    return path


def test_fixture_files_keep_the_official_line_endings():
    # git or an editor normalising line endings would silently drop the CRLF case
    assert (FIXTURES / "2018-E-c-En-train.txt").read_bytes().count(b"\r\n") == 7
    assert (FIXTURES / "2018-E-c-En-dev.txt").read_bytes().count(b"\r\n") == 4
    test_bytes = (FIXTURES / "2018-E-c-En-test-gold.txt").read_bytes()
    assert b"\r" not in test_bytes and test_bytes.count(b"\n") == 5


def test_train_crlf_with_quotes():
    data = load_semeval(FIXTURES, "train")
    assert data.name == "semeval2018"
    assert data.split == "train"
    assert data.labels == LABELS
    assert data.labels[0] == "anger" and data.labels[-1] == "trust" and len(data.labels) == 11
    assert data.ids == [f"2017-En-9000{i}" for i in range(1, 7)]
    texts = [item.text for item in data]
    # quotes are literal text: at the start, inside, and unbalanced
    assert texts[0] == '"Never stop dreaming" - my gran, every single morning #motivation'
    assert texts[2] == 'He said "trust me" and then left with my umbrella \U0001f602'
    assert texts[4] == '"half a quote and nothing to close it @someone'
    assert not any("\r" in t or "\n" in t for t in texts)
    assert data[0].gold == {"anticipation", "joy", "optimism"}
    assert data[1].gold == {"anger", "disgust", "pessimism"}
    assert data[2].gold == {"anger", "joy", "surprise"}
    assert data[3].gold == frozenset()
    assert data[4].gold == {"fear", "pessimism", "sadness"}
    assert data[5].gold == {"anticipation", "joy", "love", "optimism", "trust"}
    assert all(not item.votes for item in data)
    assert data.vote_source == "gold"
    assert np.array_equal(data.vote_fractions(), data.gold_matrix())
    assert data.notes == ["aggregate labels only: vote fractions are gold 0/1"]
    assert data.info["files"] == [str(FIXTURES / "2018-E-c-En-train.txt")]


def test_dev_accepts_val_and_records_dev():
    for name in ("dev", "val", "validation"):
        data = load_semeval(FIXTURES, name)
        assert data.split == "dev"
        assert data.ids == ["2018-En-90101", "2018-En-90102", "2018-En-90103"]
    assert data[0].text == "So proud of my little sister today \u2764\ufe0f"
    assert data[1].text == '"Why is the wifi down" is my whole personality now'
    assert data[2].gold == {"anticipation", "fear", "pessimism", "sadness"}


def test_test_gold_lf():
    data = load_semeval(FIXTURES, "test")
    assert data.ids == ["2018-En-90201", "2018-En-90202", "2018-En-90203", "2018-En-90204"]
    assert data[1].text == '"Customer service" they call it. Sure.'
    assert data[2].gold == {"joy", "love", "surprise", "trust"}
    assert data[3].gold == frozenset()


def test_registered_names_and_aliases():
    by_name = [load_dataset(name, FIXTURES, "dev") for name in ("semeval2018", "semeval", "SemEval2018-EC")]
    assert {d.name for d in by_name} == {"semeval2018"}
    assert all(d.ids == by_name[0].ids for d in by_name)
    joined = load_dataset("semeval", FIXTURES, "dev+test")
    assert len(joined) == 7 and joined.split == "dev+test"


def test_unlabelled_test_file_is_an_error_naming_the_gold_file(tmp_path):
    write_file(tmp_path, "2018-E-c-En-test.txt", [HEADER, "2018-En-1\tsome tweet\t" + "\t".join(["NONE"] * 11)])
    with pytest.raises(DataError) as err:
        load_semeval(tmp_path, "test")
    message = str(err.value)
    assert "2018-E-c-En-test.txt, line 2" in message
    assert "column anger must be 0 or 1, found 'NONE'" in message
    assert "2018-E-c-En-test-gold.txt" in message


def test_labelled_plain_test_file_is_accepted(tmp_path):
    write_file(tmp_path, "2018-E-c-En-test.txt", [HEADER, "2018-En-1\tsome tweet\t" + "\t".join(["0"] * 10 + ["1"])])
    data = load_semeval(tmp_path, "test")
    assert data[0].gold == {"trust"}
    assert data.info["files"] == [str(tmp_path / "2018-E-c-En-test.txt")]


def test_gold_test_file_wins_over_plain_test_file(tmp_path):
    shutil.copy(FIXTURES / "2018-E-c-En-test-gold.txt", tmp_path)
    write_file(tmp_path, "2018-E-c-En-test.txt", [HEADER, "2018-En-1\tsome tweet\t" + "\t".join(["NONE"] * 11)])
    assert len(load_semeval(tmp_path, "test")) == 4


def test_missing_column(tmp_path):
    header = HEADER.replace("\ttrust", "")
    path = write_file(tmp_path, "2018-E-c-En-train.txt", [header, "x\ty" + "\t0" * 10])
    with pytest.raises(DataError) as err:
        load_semeval(tmp_path, "train")
    assert str(err.value).startswith(f"{path}, line 1: missing column(s) trust (found: ID, Tweet, anger")


def test_label_value_not_binary(tmp_path):
    good = "2017-En-1\tfine tweet" + "\t0" * 11
    bad = "2017-En-2\tbad tweet" + "\t0" * 5 + "\t2" + "\t0" * 5
    path = write_file(tmp_path, "2018-E-c-En-train.txt", [HEADER, good, bad])
    with pytest.raises(DataError) as err:
        load_semeval(tmp_path, "train")
    assert str(err.value) == f"{path}, line 3: column love must be 0 or 1, found '2'"


def test_wrong_number_of_fields(tmp_path):
    good = "2017-En-1\tfine tweet" + "\t0" * 11
    tab_in_tweet = "2017-En-2\ta tweet\twith a tab" + "\t0" * 11
    path = write_file(tmp_path, "2018-E-c-En-train.txt", [HEADER, good, good.replace("-1", "-3"), tab_in_tweet], eol="\n")
    with pytest.raises(DataError) as err:
        load_semeval(tmp_path, "train")
    assert str(err.value) == f"{path}, line 4: expected 13 tab-separated fields, found 14"


def test_duplicate_id(tmp_path):
    row = "2017-En-7\ttweet" + "\t0" * 11
    path = write_file(tmp_path, "2018-E-c-En-dev.txt", [HEADER, row, "2017-En-8\tother" + "\t1" * 11, row])
    with pytest.raises(DataError) as err:
        load_semeval(tmp_path, "dev")
    assert str(err.value) == f"{path}, line 4: duplicate id 2017-En-7 (first on line 2)"


def test_unknown_split_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"unknown split 'holdout'; available: train, dev \(or val, validation, valid\), test"):
        load_semeval(FIXTURES, "holdout")
    with pytest.raises(DataError) as err:
        load_semeval(tmp_path, "test")
    assert str(err.value) == f"{tmp_path}: no file for split test (looked for 2018-E-c-En-test-gold.txt, 2018-E-c-En-test.txt)"


@pytest.mark.shared
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real SemEval 2018 E-c files not present at {REAL}")
def test_real_semeval_counts():
    counts = {}
    for split in ("train", "dev", "test"):
        data = load_dataset("semeval2018", REAL, split)
        counts[split] = len(data)
        assert data.labels == LABELS
        assert len(set(data.ids)) == len(data)
        assert not any("\r" in item.text for item in data)
        if split == "train":
            assert sum(1 for item in data if not item.gold) == 204
        if split == "test":
            assert sum(1 for item in data if not item.gold) == 75
    assert counts == {"train": 6838, "dev": 886, "test": 3259}
