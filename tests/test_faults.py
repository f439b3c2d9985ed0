"""Fault injection for the loaders (issue 18): data files damaged in generated ways (a row cut
short, a field dropped, a byte that is not UTF-8, a duplicated row, a JSON file truncated) load
either as a one-line DataError naming the damaged file, or as a dataset equal to the undamaged
one: never as a silently different dataset. Damage is drawn by hypothesis (derandomized, so CI
sees the same cases) over the hand-written fixtures in each official layout."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeldist.data import load_dataset
from labeldist.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Case:
    name: str
    folder: str  # under tests/fixtures
    file: str  # the file damaged, inside the folder
    kind: str  # csv | tsv | json
    header: bool
    load: object  # (folder copy) -> Dataset

    def __repr__(self) -> str:
        return self.name


CASES = [
    Case(
        "table-ratings",
        "tables",
        "ratings.csv",
        "csv",
        True,
        lambda d: load_dataset(
            "table", d / "ratings.csv", "test", id_column="item", annotator_column="rater", label_columns=["joy", "anger"]
        ),
    ),
    Case(
        "convabuse", "convabuse_original", "ConvAbuseEMNLPtest.csv", "csv", True, lambda d: load_dataset("convabuse", d, "test")
    ),
    Case(
        "tweet-sensitivity",
        "tweet_annotation_sensitivity",
        "full_test_s.csv",
        "csv",
        True,
        lambda d: load_dataset("tweet_sensitivity", d, "test"),
    ),
    Case("goemotions", "goemotions", "dev.tsv", "tsv", False, lambda d: load_dataset("goemotions", d, "dev")),
    Case("hatexplain", "hatexplain/official", "dataset.json", "json", False, lambda d: load_dataset("hatexplain", d, "test")),
    Case(
        "lewidi2023",
        "lewidi2023/HS-Brexit_dataset",
        "HS-Brexit_dev.json",
        "json",
        False,
        lambda d: load_dataset("lewidi2023", d, "dev"),
    ),
    Case("mfrc", "mfrc", "final_mfrc_data.csv", "csv", True, lambda d: load_dataset("mfrc", d, "train+dev+test")),
    Case("semeval", "semeval", "2018-E-c-En-dev.txt", "tsv", True, lambda d: load_dataset("semeval", d, "dev")),
    Case("told-br", "told_br", "ToLD-BR.csv", "csv", True, lambda d: load_dataset("told_br", d, "all")),
    Case("varierr-nli", "varierr_nli", "varierr.json", "jsonl", False, lambda d: load_dataset("varierr_nli", d, "all")),
    Case("lewidi2025", "lewidi2025", "MP/MP_dev.json", "json", False, lambda d: load_dataset("lewidi2025", d, "dev", set="MP")),
]
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _snapshot(dataset) -> list[tuple]:
    return [
        (i.id, i.text, tuple(sorted((a, tuple(sorted(v))) for a, v in i.votes.items())), tuple(sorted(i.gold))) for i in dataset
    ]


def _load_damaged(case: Case, tmp: Path, data: bytes):
    """(error or None, snapshot or None) of the case's folder with its file replaced by ``data``."""
    folder = tmp / "copy"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(FIXTURES / case.folder, folder)
    (folder / case.file).write_bytes(data)
    try:
        return None, _snapshot(case.load(folder))
    except DataError as err:
        return err, None


def _assert_clean_error(case: Case, err: DataError | None, tmp: Path) -> None:
    assert err is not None, f"{case.name}: damaged data loaded without an error"
    message = str(err)
    assert "\n" not in message, message
    assert str(tmp / "copy" / case.file) in message or str(tmp / "copy") in message, message


def _lines(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte spans of the non-empty lines, newline excluded."""
    spans, start = [], 0
    for line in data.split(b"\n"):
        if line.strip():
            spans.append((start, start + len(line)))
        start += len(line) + 1
    return spans


def _data_lines(case: Case, data: bytes) -> list[tuple[int, int]]:
    spans = _lines(data)
    return spans[1:] if case.header else spans


@pytest.fixture(scope="module")
def originals():
    return {case.name: _snapshot(case.load(FIXTURES / case.folder)) for case in CASES}


TABULAR = [c for c in CASES if c.kind in ("csv", "tsv")]


@pytest.mark.parametrize("case", TABULAR, ids=lambda c: c.name)
@SETTINGS
@given(pick=st.integers(min_value=0, max_value=10_000), where=st.floats(min_value=0.0, max_value=0.999))
def test_a_row_cut_short_is_an_error(case, pick, where, tmp_path_factory):
    """The file ends inside a row, before that row's last separator (a truncated download)."""
    tmp = tmp_path_factory.mktemp("cut")
    data = (FIXTURES / case.folder / case.file).read_bytes()
    sep = b"\t" if case.kind == "tsv" else b","
    start, end = _data_lines(case, data)[pick % len(_data_lines(case, data))]
    last_sep = data.rfind(sep, start, end)
    cut = start + 1 + int(where * (last_sep - start - 1))  # at least one byte of the row, before its last separator
    err, _ = _load_damaged(case, tmp, data[:cut])
    _assert_clean_error(case, err, tmp)


@pytest.mark.parametrize("case", TABULAR, ids=lambda c: c.name)
@SETTINGS
@given(pick=st.integers(min_value=0, max_value=10_000), field=st.integers(min_value=0, max_value=10_000))
def test_a_dropped_field_is_an_error(case, pick, field, tmp_path_factory):
    """One field of one record removed (with its separator): the record has one field too few.
    Records are read and written back with the csv module, so quoted fields (with commas or
    line breaks inside) are damaged as whole fields."""
    tmp = tmp_path_factory.mktemp("drop")
    sep = "\t" if case.kind == "tsv" else ","
    text = (FIXTURES / case.folder / case.file).read_text(encoding="utf-8")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    rows = range(1 if case.header else 0, len(records))
    row = records[rows[pick % len(rows)]]
    del row[field % len(row)]
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=sep, lineterminator="\n").writerows(records)
    err, _ = _load_damaged(case, tmp, out.getvalue().encode("utf-8"))
    _assert_clean_error(case, err, tmp)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@SETTINGS
@given(offset=st.integers(min_value=0, max_value=10**9))
def test_a_byte_that_is_not_utf8_is_an_error_naming_the_line(case, offset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("byte")
    data = (FIXTURES / case.folder / case.file).read_bytes()
    at = offset % (len(data) + 1)
    damaged = data[:at] + b"\xff" + data[at:]
    err, _ = _load_damaged(case, tmp, damaged)
    _assert_clean_error(case, err, tmp)
    line = damaged[:at].count(b"\n") + 1
    assert f"line {line}: not UTF-8 text" in str(err), str(err)


@pytest.mark.parametrize("case", TABULAR, ids=lambda c: c.name)
@SETTINGS
@given(pick=st.integers(min_value=0, max_value=10_000))
def test_a_duplicated_row_changes_nothing_or_is_an_error(case, pick, originals, tmp_path_factory):
    """A row repeated (a copy-paste, a resumed export): the same dataset (the repeat dropped and
    counted) or an error, never an annotator counted twice or an item twice."""
    tmp = tmp_path_factory.mktemp("dup")
    data = (FIXTURES / case.folder / case.file).read_bytes()
    start, end = _data_lines(case, data)[pick % len(_data_lines(case, data))]
    damaged = data[:end] + b"\n" + data[start:end] + data[end:]
    err, loaded = _load_damaged(case, tmp, damaged)
    if err is not None:
        _assert_clean_error(case, err, tmp)
    else:
        assert loaded == originals[case.name]


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "json"], ids=lambda c: c.name)
@SETTINGS
@given(where=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_a_truncated_json_file_is_an_error(case, where, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("json")
    data = (FIXTURES / case.folder / case.file).read_bytes()
    body = data.rstrip()
    cut = int(where * (len(body) - 1))
    err, _ = _load_damaged(case, tmp, body[:cut])
    _assert_clean_error(case, err, tmp)


JSON_LINES = [c for c in CASES if c.kind == "jsonl"]


@pytest.mark.parametrize("case", JSON_LINES, ids=lambda c: c.name)
@SETTINGS
@given(pick=st.integers(min_value=0, max_value=10_000), where=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_a_json_line_cut_short_is_an_error(case, pick, where, tmp_path_factory):
    """A JSON Lines file that ends inside a line (a cut at a line end is a shorter file no reader
    can tell from a whole one; the run's data digest is what notices that)."""
    tmp = tmp_path_factory.mktemp("jsonl")
    data = (FIXTURES / case.folder / case.file).read_bytes()
    start, end = _lines(data)[pick % len(_lines(data))]
    cut = start + 1 + int(where * (end - start - 2))  # at least one byte of the line, not all of it
    err, _ = _load_damaged(case, tmp, data[:cut])
    _assert_clean_error(case, err, tmp)


@pytest.mark.parametrize("case", JSON_LINES, ids=lambda c: c.name)
@SETTINGS
@given(pick=st.integers(min_value=0, max_value=10_000))
def test_a_duplicated_json_line_changes_nothing_or_is_an_error(case, pick, originals, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jsonl-dup")
    data = (FIXTURES / case.folder / case.file).read_bytes()
    start, end = _lines(data)[pick % len(_lines(data))]
    err, loaded = _load_damaged(case, tmp, data[:end] + b"\n" + data[start:end] + data[end:])
    if err is not None:
        _assert_clean_error(case, err, tmp)
    else:
        assert loaded == originals[case.name]
