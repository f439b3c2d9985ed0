"""SemEval-2018 Task 1 E-c, English (Mohammad et al., 2018): tweets with 11 emotion labels.

Files ``2018-E-c-En-{train,dev,test-gold}.txt``: tab-separated with the header
``ID Tweet anger ... trust`` and 0/1 label columns. Aggregate labels only (no votes).

Tweets contain quote characters (also at the start of a tweet), so lines are split on tabs
with no quote processing; because no field can span lines, errors name true file lines.
The official train and dev files end lines with CRLF, the gold test file with LF.
"""

from __future__ import annotations

from pathlib import Path

from labeldist.data.io import not_utf8
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.schema import Dataset, Item
from labeldist.data.splits import canonical_split
from labeldist.errors import DataError

ID_COLUMN = "ID"
TEXT_COLUMN = "Tweet"
LABELS = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "love",
    "optimism",
    "pessimism",
    "sadness",
    "surprise",
    "trust",
)
GOLD_TEST_FILE = "2018-E-c-En-test-gold.txt"
# Per split, the file names to try in order. The official unlabelled test file has the same
# columns filled with NONE; it is accepted only if someone has filled in the labels.
SPLIT_FILES = {
    "train": ("2018-E-c-En-train.txt",),
    "dev": ("2018-E-c-En-dev.txt",),
    "test": (GOLD_TEST_FILE, "2018-E-c-En-test.txt"),
}


def _lines(path: Path):
    """(line number, line without its line ending), splitting on LF only so that a stray
    carriage return inside a tweet cannot split a line."""
    try:
        with path.open(encoding="utf-8-sig", newline="\n") as handle:
            for lineno, line in enumerate(handle, start=1):
                yield lineno, line.removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def read_ec_file(path: Path) -> list[Item]:
    """Items of one E-c file, in file order, with gold labels from the 0/1 columns."""
    lines = _lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise DataError(str(path), None, "file is empty")
    header = header_line[1].split("\t")
    required = (ID_COLUMN, TEXT_COLUMN, *LABELS)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(str(path), 1, f"missing column(s) {', '.join(missing)} (found: {', '.join(header)})")
    id_at, text_at = header.index(ID_COLUMN), header.index(TEXT_COLUMN)
    label_at = [(label, header.index(label)) for label in LABELS]

    items = []
    first_line: dict[str, int] = {}
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(str(path), lineno, f"expected {len(header)} tab-separated fields, found {len(fields)}")
        tweet_id = fields[id_at].strip()
        if tweet_id in first_line:
            raise DataError(str(path), lineno, f"duplicate id {tweet_id} (first on line {first_line[tweet_id]})")
        first_line[tweet_id] = lineno
        gold = []
        for label, at in label_at:
            value = fields[at].strip()
            if value == "1":
                gold.append(label)
            elif value != "0":
                hint = f" (an unlabelled file: the test labels are in {GOLD_TEST_FILE})" if value == "NONE" else ""
                raise DataError(str(path), lineno, f"column {label} must be 0 or 1, found {value!r}{hint}")
        items.append(Item(tweet_id, fields[text_at], {}, frozenset(gold)))
    if not items:
        raise DataError(str(path), None, "no data lines after the header")
    return items


def load_semeval(data_dir: Path, split: str) -> Dataset:
    """One SemEval-2018 E-c split from the first of its file names found; gold labels only, no votes."""
    data_dir = Path(data_dir)
    canonical = canonical_split(split, data_dir)
    candidates = [data_dir / name for name in SPLIT_FILES[canonical]]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DataError(str(data_dir), None, f"no file for split {canonical} (looked for {', '.join(SPLIT_FILES[canonical])})")
    items = read_ec_file(path)
    notes = ["aggregate labels only: vote fractions are gold 0/1"]
    return Dataset("semeval2018", LABELS, canonical, items, notes, {"files": [str(path)]})


register(
    DatasetSpec("semeval2018", load_semeval, "SemEval-2018 Task 1 E-c (English tweets): 11 emotions, aggregate labels only"),
    "semeval",
    "semeval2018-ec",
)
