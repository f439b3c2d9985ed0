"""MFRC, the Moral Foundations Reddit Corpus (Trager et al., 2022).

``final_mfrc_data.csv`` has one row per (text, annotator) with columns text, subreddit, bucket,
annotator, annotation, confidence; ``annotation`` is a comma list of Care, Equality,
Proportionality, Loyalty, Authority, Purity, Thin Morality, Non-Moral.

The release has no splits: the split map ``splits.yaml`` of "Large Language Models Do
Multi-Label Classification Differently" (``{split: {text: id}}``, splits dev/test/train) gives
them, joined on the exact text; the item id is that map's integer id.

Labels are the six foundations. "Non-Moral" and "Thin Morality" alone (or together) are a
vote for no foundation. The annotation guide makes them exclusive of the foundations (MFRC
paper, appendix A.2.1), so a row that combines either with a foundation is contradictory and
is dropped (counted in the notes), as the paper's code does. Gold = foundations chosen by at
least half of the item's annotators.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from labeldist.data.cells import split_label_string
from labeldist.data.io import read_table, require_columns, require_file, row_label, utf8_errors
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.data.splits import canonical_split
from labeldist.errors import DataError

FOUNDATIONS = ("Care", "Equality", "Proportionality", "Loyalty", "Authority", "Purity")
NO_FOUNDATION = frozenset({"Non-Moral", "Thin Morality"})
ANNOTATION_NAMES = frozenset(FOUNDATIONS) | NO_FOUNDATION
CSV_NAME = "final_mfrc_data.csv"
SPLITS_NAME = "splits.yaml"
GOLD_SHARE = 0.5


def read_split_map(path: Path) -> dict[str, dict[str, str]]:
    """split -> text -> item id, from the paper's ``splits.yaml``."""
    require_file(path, "MFRC split map")
    # the map is 4 MB: the C loader reads it in a fraction of the pure-Python loader's time
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with utf8_errors(path), path.open(encoding="utf-8") as handle:
            raw = yaml.load(handle, Loader=loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DataError(str(path), mark.line + 1 if mark else None, f"invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise DataError(str(path), None, "expected a mapping from split names to {text: id} mappings")
    splits: dict[str, dict[str, str]] = {}
    for split, mapping in raw.items():
        if not isinstance(mapping, dict):
            raise DataError(str(path), f"split {split}", "expected a mapping from texts to ids")
        for text, item_id in mapping.items():
            if not isinstance(text, str) or isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
                raise DataError(str(path), f"split {split}", f"expected text: id pairs, found {text!r:.60}: {item_id!r}")
        splits[str(split)] = {text: str(item_id) for text, item_id in mapping.items()}
    return splits


def load_mfrc(data_dir: Path, split: str, *, splits_file: str | Path | None = None) -> Dataset:
    """One MFRC split: the texts the split map puts in ``split``, with each annotator's foundations from the CSV."""
    data_dir = Path(data_dir)
    split_path = Path(splits_file) if splits_file is not None else data_dir / SPLITS_NAME
    split_map = read_split_map(split_path)
    canonical = canonical_split(split, split_path, available=tuple(split_map))
    text_to_id = split_map[canonical]
    in_any_split = set().union(*(set(m) for m in split_map.values()))

    csv_path = data_dir / CSV_NAME
    frame = read_table(csv_path)
    require_columns(frame, ["text", "annotator", "annotation"], csv_path)

    votes: dict[str, dict[str, frozenset[str]]] = {}
    seen_pairs: set[tuple[str, str]] = set()
    unmapped_texts: set[str] = set()
    repeated = contradictory = 0
    for position, (text, annotator, annotation) in enumerate(
        zip(frame["text"].tolist(), frame["annotator"].tolist(), frame["annotation"].tolist(), strict=True)
    ):
        names = split_label_string(annotation, ",")
        unknown = [n for n in names if n not in ANNOTATION_NAMES]
        if unknown:
            known = ", ".join(sorted(ANNOTATION_NAMES))
            raise DataError(str(csv_path), row_label(position), f"unknown annotation {unknown[0]!r}; known: {known}")
        if not names:
            raise DataError(str(csv_path), row_label(position), "empty annotation")
        if not annotator.strip():
            raise DataError(str(csv_path), row_label(position), "empty annotator")
        if text not in text_to_id:
            if text not in in_any_split:
                unmapped_texts.add(text)
            continue
        if (text, annotator) in seen_pairs:
            repeated += 1
            continue
        seen_pairs.add((text, annotator))
        chosen = set(names)
        if chosen & NO_FOUNDATION:
            if not chosen <= NO_FOUNDATION:
                contradictory += 1
                continue
            chosen = set()
        votes.setdefault(text, {})[annotator] = frozenset(chosen)

    items = [
        Item(item_id, text, votes[text], gold_by_share(votes[text], GOLD_SHARE))
        for text, item_id in text_to_id.items()
        if text in votes
    ]
    if not items:
        raise DataError(str(csv_path), None, f"no rows match a text of split {canonical} in {split_path}")

    notes = []
    without_rows = sum(1 for text in text_to_id if text not in votes)
    if without_rows:
        notes.append(f"{without_rows} of {len(text_to_id)} {canonical} texts in {split_path.name} have no usable annotation rows")
    if contradictory:
        notes.append(f"{contradictory} rows combining Non-Moral or Thin Morality with a foundation were dropped")
    if repeated:
        notes.append(f"{repeated} repeated (text, annotator) rows: kept the first")
    if unmapped_texts:
        notes.append(f"{len(unmapped_texts)} texts of {CSV_NAME} are in no split of {split_path.name}")
    notes.append("gold = foundations chosen by at least half of a text's annotators")
    info = {"files": [str(csv_path), str(split_path)]}
    return Dataset("mfrc", FOUNDATIONS, canonical, items, notes, info)


register(
    DatasetSpec(
        "mfrc",
        load_mfrc,
        "MFRC: Reddit comments, 6 moral foundations, per-annotator votes; splits from the paper's splits.yaml",
    ),
)
