"""GoEmotions (Demszky et al., 2020).

Gold labels and splits come from the official split files ``{train,dev,test}.tsv`` (no header;
text, comma-separated indices into ``emotions.txt``, comment id). Per-annotator votes come from
the raw ratings ``goemotions_{1,2,3}.csv`` (one row per (comment, rater)), joined on comment id.
``neutral`` means "no label": it is not in the label set.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from labeldist.data.io import read_table, require_columns, row_label, utf8_errors
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.schema import Dataset, Item
from labeldist.data.splits import canonical_split
from labeldist.errors import DataError

log = logging.getLogger("labeldist")

NEUTRAL = "neutral"
# The official emotions.txt, in order (index 27 is neutral); used only if the file is absent.
EMOTIONS = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire disappointment "
    "disapproval disgust embarrassment excitement fear gratitude grief joy love nervousness optimism "
    "pride realization relief remorse sadness surprise neutral"
).split()

RAW_NAMES = ("goemotions_1.csv", "goemotions_2.csv", "goemotions_3.csv")
RAW_SUBDIRS = (".", "full_dataset", "raw")


def read_emotions(data_dir: Path, notes: list[str]) -> list[str]:
    """The emotion names of ``emotions.txt`` in file order; the official 28 (with a note) when the file is absent."""
    path = data_dir / "emotions.txt"
    if not path.is_file():
        notes.append(f"{path} not found: using the official 28 emotion names")
        return list(EMOTIONS)
    with utf8_errors(path):
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise DataError(str(path), None, "repeated emotion names")
    if NEUTRAL not in names:
        raise DataError(str(path), None, f"no {NEUTRAL!r} line: this is not GoEmotions' emotions.txt")
    return names


def read_split_file(path: Path, emotions: list[str]) -> list[tuple[str, str, frozenset[str]]]:
    """Rows (id, text, gold) of an official split file; quotes are literal text here."""
    rows = []
    seen: dict[str, int] = {}
    with utf8_errors(path), path.open(encoding="utf-8", newline="") as handle:
        for lineno, raw_line in enumerate(handle, start=1):
            line = raw_line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise DataError(str(path), lineno, f"expected 3 tab-separated fields (text, labels, id), found {len(fields)}")
            text, label_field, comment_id = fields
            try:
                indices = [int(x) for x in label_field.split(",")]
            except ValueError:
                raise DataError(str(path), lineno, f"labels must be comma-separated integers, found {label_field!r}") from None
            bad = [i for i in indices if not 0 <= i < len(emotions)]
            if bad:
                raise DataError(str(path), lineno, f"label index {bad[0]} not in 0..{len(emotions) - 1} (emotions.txt)")
            if comment_id in seen:
                raise DataError(str(path), lineno, f"comment id {comment_id} repeats line {seen[comment_id]}")
            seen[comment_id] = lineno
            gold = frozenset(emotions[i] for i in indices) - {NEUTRAL}
            rows.append((comment_id, text, gold))
    if not rows:
        raise DataError(str(path), None, "no rows")
    return rows


def find_raw_files(data_dir: Path, raw_dir: Path | None) -> list[Path]:
    """The raw ratings files in ``raw_dir``, or in the first usual subfolder of ``data_dir`` holding any; [] if none."""
    roots = [raw_dir] if raw_dir is not None else [data_dir / sub for sub in RAW_SUBDIRS]
    for root in roots:
        found = [root / name for name in RAW_NAMES if (root / name).is_file()]
        if found:
            return found
    return []


def read_raw_votes(paths: list[Path], emotions: list[str], notes: list[str]) -> dict[str, dict[str, frozenset[str]]]:
    """comment id -> rater id -> chosen emotions (neutral removed) from the raw rating files.

    Ratings marked ``example_very_unclear`` carry no labels (the rater skipped the comment) and
    are left out, counted in the notes.
    """
    votes: dict[str, dict[str, frozenset[str]]] = {}
    unclear = repeated = 0
    for path in paths:
        frame = read_table(path)
        require_columns(frame, ["id", "rater_id", "example_very_unclear", *emotions], path)
        values = frame[emotions]
        ok = values.isin(["0", "1"])
        if not ok.all().all():
            row, col = np.argwhere(~ok.to_numpy())[0]
            raise DataError(str(path), row_label(row), f"column {emotions[col]} must be 0 or 1, found {values.iat[row, col]!r}")
        flags = frame["example_very_unclear"].str.lower()
        bad_flag = ~flags.isin(["true", "false"])
        if bad_flag.any():
            row = int(np.flatnonzero(bad_flag.to_numpy())[0])
            found = frame["example_very_unclear"].iat[row]
            raise DataError(str(path), row_label(row), f"example_very_unclear must be True or False, found {found!r}")
        chosen = values.to_numpy() == "1"
        label_names = np.array(emotions, dtype=object)
        for row, (comment_id, rater, is_unclear) in enumerate(
            zip(frame["id"].to_numpy(), frame["rater_id"].to_numpy(), (flags == "true").to_numpy())
        ):
            if is_unclear:
                unclear += 1
                continue
            per_item = votes.setdefault(comment_id, {})
            if rater in per_item:
                repeated += 1
                continue
            per_item[rater] = frozenset(label_names[chosen[row]]) - {NEUTRAL}
    notes.append(f"raw ratings: {', '.join(str(p) for p in paths)}")
    if unclear:
        notes.append(f"{unclear} ratings marked example_very_unclear were left out (no labels given)")
    if repeated:
        notes.append(f"{repeated} repeated (comment, rater) ratings: kept the first")
    return votes


def load_goemotions(
    data_dir: Path, split: str, *, raw_dir: str | Path | None = None, raw_files: list[str | Path] | None = None
) -> Dataset:
    """One GoEmotions split: gold from the split file, votes from the raw ratings where found (``neutral`` not a label)."""
    data_dir = Path(data_dir)
    split = canonical_split(split, data_dir)
    notes: list[str] = []
    emotions = read_emotions(data_dir, notes)
    split_path = data_dir / f"{split}.tsv"
    if not split_path.is_file():
        raise DataError(str(split_path), None, "split file does not exist")
    rows = read_split_file(split_path, emotions)

    if raw_files:
        paths = [Path(p) for p in raw_files]
        for p in paths:
            if not p.is_file():
                raise DataError(str(p), None, "raw ratings file does not exist")
    else:
        paths = find_raw_files(data_dir, Path(raw_dir) if raw_dir else None)
    if paths:
        votes = read_raw_votes(paths, emotions, notes)
        with_votes = sum(1 for comment_id, _, _ in rows if comment_id in votes)
        notes.append(f"votes found for {with_votes} of {len(rows)} items; the rest fall back to gold")
    else:
        votes = {}
        where = raw_dir or data_dir
        message = f"no raw ratings ({', '.join(RAW_NAMES)}) in {where}: votes absent, vote fractions are gold 0/1"
        log.info(message)
        notes.append(message)

    labels = tuple(e for e in emotions if e != NEUTRAL)
    items = [Item(cid, text, votes.get(cid, {}), gold) for cid, text, gold in rows]
    info = {"files": [str(split_path), *map(str, paths)]}
    return Dataset("goemotions", labels, split, items, notes, info)


register(
    DatasetSpec(
        "goemotions",
        load_goemotions,
        "GoEmotions: Reddit comments, 27 emotions (+neutral = none); votes from raw ratings when present",
        groupings=("paper-7", "ekman", "sentiment"),
    ),
    "go_emotions",
)
