"""HateXplain (Mathew et al., 2021): posts from Twitter and Gab, three annotators each.

Two tasks:

- ``label``: single label hatespeech / offensive / normal. Gold is the majority label (more
  than half of the annotators, i.e. 2 of 3); a post with no majority gets no gold label, as in
  HateXplain (counted in the notes).
- ``target`` (default): multi-label target communities. ``"None"`` means no target and is
  dropped where an annotator listed it next to real targets. Gold = targets chosen by at least
  half of the annotators (2 of 3), the same rule as MFRC. The label set is a fixed list so that
  every split shares the same label order.

Two layouts are read:

- official: ``dataset.json`` (``{post_id: {annotators: [{label, annotator_id, target}],
  post_tokens, ...}}``) split by ``post_id_divisions.json`` (``{"train", "val", "test"}``);
- Hugging Face ``hatexplain`` rows (``id``, ``annotators`` = ``{label: [int], annotator_id:
  [int], target: [[str]]}``, ``post_tokens``) from CSV, JSON Lines or Parquet, where CSV
  exports hold the nested fields as Python literals. HF label ints: 0 hatespeech, 1 normal,
  2 offensive.

Text is ``post_tokens`` joined by single spaces (``<user>`` placeholders kept).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeldist.data.cells import plain, split_label_string
from labeldist.data.io import literal, read_json, read_table, require_columns, row_label
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.data.splits import canonical_split, split_aliases
from labeldist.errors import DataError

TASKS = ("label", "target")
CLASS_LABELS = ("hatespeech", "offensive", "normal")
HF_CLASS_LABELS = {0: "hatespeech", 1: "normal", 2: "offensive"}
NO_TARGET = "None"
OTHER = "Other"
# HateXplain's target communities (every name in the val and test annotations is here).
TARGETS = (
    "African",
    "Arab",
    "Asian",
    "Caucasian",
    "Hispanic",
    "Indian",
    "Indigenous",
    "Jewish",
    "Islam",
    "Christian",
    "Buddhism",
    "Hindu",
    "Nonreligious",
    "Men",
    "Women",
    "Homosexual",
    "Heterosexual",
    "Bisexual",
    "Asexual",
    "Minority",
    "Refugee",
    "Immigrant",
    "Disability",
    "Economic",
    OTHER,
)
# Annotator mentions per target in the official val + test splits together (3,846 posts,
# 11,538 votes; a target counted once per vote). Fixed here so that ``fold_rare`` gives the
# same label set for every split instead of depending on the split being loaded.
TARGET_MENTIONS = {
    "African": 1902,
    "Islam": 1207,
    "Women": 1153,
    "Jewish": 1118,
    "Homosexual": 1082,
    "Other": 901,
    "Refugee": 550,
    "Arab": 533,
    "Caucasian": 443,
    "Men": 323,
    "Hispanic": 250,
    "Asian": 239,
    "Disability": 40,
    "Minority": 38,
    "Christian": 38,
    "Heterosexual": 26,
    "Nonreligious": 18,
    "Indian": 16,
    "Indigenous": 16,
    "Economic": 14,
    "Hindu": 8,
    "Buddhism": 2,
    "Bisexual": 2,
    "Asexual": 2,
    "Immigrant": 0,
}

DATASET_JSON = "dataset.json"
DIVISIONS_JSON = "post_id_divisions.json"
ROW_FILE_EXTENSIONS = ("csv", "jsonl", "parquet")
# The dataset's own split names (the divisions file says "val").
DIVISION_KEYS = {"train": "train", "dev": "val", "test": "test"}


@dataclass(frozen=True)
class Annotation:
    """One annotator's rating of a post: the class label and the target communities named."""

    annotator: str
    label: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Post:
    """One HateXplain post: its tokens and annotations, and ``where`` to point error messages at."""

    post_id: str
    tokens: tuple[str, ...]
    annotations: tuple[Annotation, ...]
    where: str  # how errors point at this post in its file


def _class_label(value: Any, path: Path, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value in HF_CLASS_LABELS:
        return HF_CLASS_LABELS[value]
    if isinstance(value, str) and value in CLASS_LABELS:
        return value
    raise DataError(
        str(path),
        where,
        f"unknown label {value!r} (expected 0/1/2 = hatespeech/normal/offensive or one of {CLASS_LABELS})",
    )


def _string_list(value: Any, path: Path, where: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(str(path), where, f"{field} must be a list of strings, found {value!r:.80}")
    return tuple(value)


def _annotation(label: Any, annotator: Any, targets: Any, path: Path, where: str) -> Annotation:
    if annotator is None or isinstance(annotator, (list, dict)):
        raise DataError(str(path), where, f"bad annotator_id {annotator!r}")
    return Annotation(str(annotator), _class_label(label, path, where), _string_list(targets, path, where, "target"))


def _read_official(path: Path, post_ids: Sequence[str], notes: list[str]) -> list[Post]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(str(path), None, "expected a JSON object mapping post ids to posts")
    posts = []
    missing = 0
    for post_id in post_ids:
        entry = data.get(post_id)
        if entry is None:
            missing += 1
            continue
        where = f"item {post_id}"
        if not isinstance(entry, dict) or not isinstance(entry.get("annotators"), list):
            raise DataError(str(path), where, "expected an object with a list 'annotators'")
        annotations = []
        for raw in entry["annotators"]:
            if not isinstance(raw, dict) or not {"label", "annotator_id", "target"} <= set(raw):
                raise DataError(str(path), where, f"an annotator entry needs label, annotator_id, target: {raw!r:.80}")
            annotations.append(_annotation(raw["label"], raw["annotator_id"], raw["target"], path, where))
        tokens = _string_list(entry.get("post_tokens"), path, where, "post_tokens")
        posts.append(Post(post_id, tokens, tuple(annotations), where))
    if missing == len(post_ids):
        raise DataError(str(path), None, "none of the split's post ids are in this file")
    if missing:
        notes.append(f"{missing} post ids of the split are missing from {path.name}")
    return posts


def _read_rows(path: Path) -> list[Post]:
    frame = read_table(path)
    require_columns(frame, ["id", "annotators", "post_tokens"], path)
    posts = []
    first_row: dict[str, int] = {}
    for position, (post_id, raw_annotators, raw_tokens) in enumerate(
        zip(frame["id"].tolist(), frame["annotators"].tolist(), frame["post_tokens"].tolist(), strict=True)
    ):
        post_id = str(plain(post_id)).strip()
        where = f"{row_label(position)} (item {post_id})"
        if post_id in first_row:
            raise DataError(str(path), where, f"duplicate id (first in {row_label(first_row[post_id])})")
        first_row[post_id] = position
        annotators = plain(literal(plain(raw_annotators), path, where))
        if not isinstance(annotators, dict) or not {"label", "annotator_id", "target"} <= set(annotators):
            raise DataError(str(path), where, f"annotators must hold lists label, annotator_id, target: {annotators!r:.80}")
        columns = [annotators["label"], annotators["annotator_id"], annotators["target"]]
        if not all(isinstance(c, list) for c in columns):
            raise DataError(str(path), where, "annotators' label, annotator_id and target must be lists")
        if len({len(c) for c in columns}) != 1:
            raise DataError(
                str(path),
                where,
                "annotators' lists differ in length: "
                f"label {len(columns[0])}, annotator_id {len(columns[1])}, target {len(columns[2])}",
            )
        annotations = tuple(_annotation(lab, ann, tgt, path, where) for lab, ann, tgt in zip(*columns, strict=True))
        tokens = _string_list(plain(literal(plain(raw_tokens), path, where)), path, where, "post_tokens")
        posts.append(Post(post_id, tokens, annotations, where))
    if not posts:
        raise DataError(str(path), None, "no rows")
    return posts


def _find_table(data_dir: Path, canonical: str) -> Path:
    """The layout-(b) file of a split: ``{split}.*``, ``hatexplain_{split}.*`` or
    ``derived_{split}_annotators.csv``, where dev may be spelled val or validation."""
    candidates = []
    for name in split_aliases(canonical):
        candidates += [f"{name}.{ext}" for ext in ROW_FILE_EXTENSIONS]
        candidates += [f"hatexplain_{name}.{ext}" for ext in ROW_FILE_EXTENSIONS]
        candidates.append(f"derived_{name}_annotators.csv")
    for name in candidates:
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        str(data_dir),
        None,
        f"no HateXplain file for split {canonical}: no {DATASET_JSON}, nor any of {', '.join(candidates)}",
    )


def _read_divisions(path: Path) -> dict[str, list[str]]:
    divisions = read_json(path)
    if not isinstance(divisions, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in divisions.values()
    ):
        raise DataError(str(path), None, "expected a JSON object mapping split names to lists of post ids")
    return divisions


def _division(divisions: dict[str, list[str]], path: Path, canonical: str) -> list[str]:
    key = DIVISION_KEYS[canonical]
    if key not in divisions:
        raise DataError(str(path), None, f"no {key!r} list (found: {', '.join(divisions)})")
    return divisions[key]


def _check_ids(posts: list[Post], division: list[str], path: Path, divisions_path: Path, key: str, notes: list[str]) -> None:
    expected = set(division)
    outside = sum(post.post_id not in expected for post in posts)
    if outside == len(posts):
        raise DataError(str(path), None, f"none of its post ids are in the {key!r} list of {divisions_path}")
    if outside:
        notes.append(f"{outside} of {len(posts)} posts in {path.name} are not in the {key!r} list of {divisions_path.name}")


def _kept_targets(keep: Sequence[str] | None, fold_rare: int | None, source: Path) -> tuple[str, ...] | None:
    """Targets kept as labels (the rest fold into Other), or None to keep all."""
    if keep is not None and fold_rare is not None:
        raise DataError(str(source), None, "give keep or fold_rare, not both")
    if keep is not None:
        unknown = [t for t in keep if t not in TARGETS]
        if unknown:
            raise DataError(str(source), None, f"keep names unknown targets {unknown}; known: {', '.join(TARGETS)}")
        return tuple(dict.fromkeys(t for t in keep if t != OTHER))
    if fold_rare is not None:
        if isinstance(fold_rare, bool) or not isinstance(fold_rare, int) or fold_rare < 1:
            raise DataError(str(source), None, f"fold_rare must be a positive integer, not {fold_rare!r}")
        return tuple(t for t in TARGETS if t != OTHER and TARGET_MENTIONS[t] >= fold_rare)
    return None


def _target_items(posts: list[Post], kept: tuple[str, ...] | None, path: Path, notes: list[str]) -> list[Item]:
    known = set(TARGETS)
    mixed_none = repeated = folded_mentions = folded_votes = 0
    items = []
    for post in posts:
        votes: dict[str, frozenset[str]] = {}
        for annotation in post.annotations:
            unknown = [t for t in annotation.targets if t != NO_TARGET and t not in known]
            if unknown:
                raise DataError(str(path), post.where, f"unknown target {unknown[0]!r}; known: {', '.join(TARGETS)}, {NO_TARGET}")
            if annotation.annotator in votes:
                repeated += 1
                continue
            targets = set(annotation.targets)
            if NO_TARGET in targets and len(targets) > 1:
                mixed_none += 1
            targets.discard(NO_TARGET)
            if kept is not None:
                outside = {t for t in targets if t not in kept and t != OTHER}
                if outside:
                    folded_votes += 1
                    folded_mentions += len(outside)
                    targets = (targets - outside) | {OTHER}
            votes[annotation.annotator] = frozenset(targets)
        items.append(Item(post.post_id, " ".join(post.tokens), votes, gold_by_share(votes, 0.5)))
    if mixed_none:
        notes.append(f"{mixed_none} votes listed 'None' next to real targets: 'None' was dropped from them")
    if kept is not None:
        notes.append(f"{folded_mentions} target mentions in {folded_votes} votes were folded into {OTHER}")
    if repeated:
        notes.append(f"{repeated} repeated annotator ids within a post: kept the first vote")
    notes.append("gold = targets chosen by at least half of a post's annotators (2 of 3)")
    return items


def _label_items(posts: list[Post], notes: list[str]) -> list[Item]:
    no_majority = repeated = 0
    items = []
    for post in posts:
        votes: dict[str, frozenset[str]] = {}
        for annotation in post.annotations:
            if annotation.annotator in votes:
                repeated += 1
                continue
            votes[annotation.annotator] = frozenset({annotation.label})
        counts = Counter(next(iter(v)) for v in votes.values())
        top, count = counts.most_common(1)[0] if counts else (None, 0)
        if 2 * count > len(votes):
            gold = frozenset({top})
        else:
            gold = frozenset()
            no_majority += 1
        items.append(Item(post.post_id, " ".join(post.tokens), votes, gold))
    if no_majority:
        notes.append(f"{no_majority} posts have no majority label and so no gold label (HateXplain's 'undecided')")
    if repeated:
        notes.append(f"{repeated} repeated annotator ids within a post: kept the first vote")
    notes.append("gold = the label of more than half of a post's annotators (2 of 3)")
    return items


def load_hatexplain(
    data_dir: Path,
    split: str,
    *,
    task: str = "target",
    keep: Sequence[str] | str | None = None,
    fold_rare: int | str | None = None,
) -> Dataset:
    """Load one split. ``keep`` (target task): the targets to keep as labels, the rest fold
    into ``Other``. ``fold_rare=N`` (target task): keep the targets with at least N mentions
    in the built-in val+test frequency table :data:`TARGET_MENTIONS`. ``keep`` may be a
    comma-joined string and ``fold_rare`` a digit string, as a command line passes them."""
    data_dir = Path(data_dir)
    if isinstance(keep, str):
        keep = split_label_string(keep, ",")
    if isinstance(fold_rare, str) and fold_rare.strip().isdigit():
        fold_rare = int(fold_rare)
    if task not in TASKS:
        raise DataError(str(data_dir), None, f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if task != "target" and (keep is not None or fold_rare is not None):
        raise DataError(str(data_dir), None, "keep and fold_rare apply to the target task only")
    if not data_dir.is_dir():
        raise DataError(str(data_dir), None, "expected the HateXplain directory")
    canonical = canonical_split(split, data_dir)
    kept = _kept_targets(keep, fold_rare, data_dir)
    notes: list[str] = []

    divisions_path = data_dir / DIVISIONS_JSON
    divisions = _read_divisions(divisions_path) if divisions_path.is_file() else None
    official = data_dir / DATASET_JSON
    if official.is_file():
        if divisions is None:
            raise DataError(str(divisions_path), None, f"needed to split {DATASET_JSON} but does not exist")
        path = official
        posts = _read_official(official, _division(divisions, divisions_path, canonical), notes)
        files = [str(official), str(divisions_path)]
    else:
        path = _find_table(data_dir, canonical)
        posts = _read_rows(path)
        files = [str(path)]
        if divisions is not None:
            division = _division(divisions, divisions_path, canonical)
            _check_ids(posts, division, path, divisions_path, DIVISION_KEYS[canonical], notes)
            files.append(str(divisions_path))

    if task == "label":
        labels: tuple[str, ...] = CLASS_LABELS
        items = _label_items(posts, notes)
    else:
        labels = TARGETS if kept is None else (*kept, OTHER)
        items = _target_items(posts, kept, path, notes)
    info = {
        "files": files,
        "task": task,
        "source_split": DIVISION_KEYS[canonical],
        "kept_targets": list(kept) if kept is not None else None,
        "fold_rare": fold_rare,
    }
    return Dataset("hatexplain", labels, canonical, items, notes, info)


register(
    DatasetSpec(
        "hatexplain",
        load_hatexplain,
        "HateXplain: posts with 3 annotators; task 'target' (multi-label target communities) "
        "or 'label' (hatespeech/offensive/normal)",
        tasks=TASKS,
    ),
)
