"""Tweet annotation sensitivity (Kern et al., 2023): tweets rated for hate speech and offensive
language by about 15 annotators each, under five questionnaire conditions A-E.

``full_train_s.csv`` (train) and ``full_test_s.csv`` (test): one row per (annotator, tweet) with
columns ``id`` (annotator), ``version`` (condition), ``batch.tweet``, ``hate.speech``,
``offensive.language`` (0/1, ``NA`` where not answered), ``tweet.id`` and ``tweet_hashed`` (the
text); the column order differs between the two files. Items are tweet ids (one text belongs to
two ids). A rating with a missing answer is dropped (counted); ``versions=A`` (or ``[A, B]``)
keeps only those conditions (in A both labels were ticked on one screen: truly multi-select).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from labeldist.data.cells import binary_value, is_missing, plain, split_label_string
from labeldist.data.io import read_table, require_columns, row_label
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.repairs import Repairs
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.data.splits import canonical_split
from labeldist.errors import DataError

LABELS = {"hate.speech": "hate speech", "offensive.language": "offensive language"}
FILES = {"train": "full_train_s.csv", "test": "full_test_s.csv"}
VERSIONS = ("A", "B", "C", "D", "E")


def load_tweet_sensitivity(data_dir: Path, split: str, *, versions: Sequence[str] | str | None = None) -> Dataset:
    """One split of the tweet-sensitivity corpus: each annotator's labels per tweet id, optionally only ``versions``."""
    data_dir = Path(data_dir)
    canonical = canonical_split(split, data_dir, available=("train", "test"))
    if isinstance(versions, str):
        versions = split_label_string(versions, ",")
    if versions is not None:
        unknown = [v for v in versions if v not in VERSIONS]
        if unknown or not versions:
            raise DataError(str(data_dir), None, f"versions must be among {', '.join(VERSIONS)}, not {list(versions)}")
    path = data_dir / FILES[canonical]
    if not path.is_file() and (data_dir / "data" / FILES[canonical]).is_file():
        path = data_dir / "data" / FILES[canonical]
    frame = read_table(path)
    require_columns(frame, ["id", "version", "tweet.id", "tweet_hashed", *LABELS], path)
    columns = {c: frame[c].tolist() for c in ["id", "version", "tweet.id", "tweet_hashed", *LABELS]}
    repairs = Repairs()
    texts: dict[str, tuple[str, int]] = {}
    votes: dict[str, dict[str, frozenset[str]]] = {}
    for position in range(len(frame)):
        where = row_label(position)
        tweet = str(plain(columns["tweet.id"][position])).strip()
        annotator = str(plain(columns["id"][position])).strip()
        text = columns["tweet_hashed"][position]
        version = str(columns["version"][position]).strip()
        if not tweet or not annotator:
            raise DataError(str(path), where, "empty tweet.id or annotator id")
        if version not in VERSIONS:
            raise DataError(str(path), where, f"version must be one of {', '.join(VERSIONS)}, found {version!r}")
        if tweet in texts and texts[tweet][0] != text:
            raise DataError(str(path), where, f"tweet {tweet} has another text than in {row_label(texts[tweet][1])}")
        texts.setdefault(tweet, (text, position))
        votes.setdefault(tweet, {})
        if versions is not None and version not in versions:
            repairs.add("other_versions", "{n} ratings from conditions outside " + ",".join(versions) + " left out")
            continue
        chosen = set()
        missing = []
        for column, label in LABELS.items():
            cell = columns[column][position]
            value = binary_value(cell)
            if value is None:
                if is_missing(plain(cell), empty_is_missing=True):
                    missing.append(column)
                    continue
                raise DataError(str(path), where, f"{column} must be 0, 1 or NA, found {cell!r}")
            if value:
                chosen.add(label)
        if missing:
            for column in missing:
                repairs.add(f"missing_{column}", "{n} ratings with " + column + " = NA dropped")
            continue
        if annotator in votes[tweet]:
            repairs.add("repeated_ratings", "{n} repeated (tweet, annotator) ratings: kept the first")
            continue
        votes[tweet][annotator] = frozenset(chosen)
    items = []
    for tweet, (text, position) in texts.items():
        if not isinstance(text, str) or not text.strip():
            raise DataError(str(path), row_label(position), f"empty text of tweet {tweet}")
        if not votes[tweet]:
            repairs.add("items_without_votes", "{n} tweets left without any rating were dropped")
            continue
        items.append(Item(tweet, text, votes[tweet], gold_by_share(votes[tweet], 0.5)))
    shared = len(items) - len({item.text for item in items})
    repairs.add("shared_texts", "{n} texts belong to two tweet ids: items are tweet ids", shared)
    notes = [*repairs.notes(), "gold = labels chosen by at least half of a tweet's annotators"]
    info = {"files": [str(path)], "versions": list(versions) if versions else None, "repairs": repairs.as_dict()}
    return Dataset("tweet_sensitivity", tuple(LABELS.values()), canonical, items, notes, info)


register(
    DatasetSpec(
        "tweet_sensitivity",
        load_tweet_sensitivity,
        "Tweet annotation sensitivity (full_{train,test}_s.csv): hate speech / offensive language, ~15 ratings each",
    ),
    "tweet_annotation_sensitivity",
)
