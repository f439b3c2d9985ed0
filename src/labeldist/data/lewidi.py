"""The Learning With Disagreements (LeWiDi) JSON layout, 2nd (SemEval 2023 Task 11) and 3rd
(NLPerspectives 2025) editions.

Each split file ``<SET>_{train,dev,test}.json`` is one JSON object ``{id: item}``; an item has
``text``, ``annotators``, ``annotations``, ``soft_label`` and ``other_info``.

- 2023 (``lewidi2023``; folders ``<SET>_dataset``): ``annotators`` and ``annotations`` are
  comma-joined strings in the same order.

  * ``HS-Brexit``: multi-label per annotator over {hate, aggressive, offensive}: the hate-speech
    ``annotations`` plus ``other_info["other annotations"]`` (aggressive, offensive), aligned.
  * ``ConvAbuse``: multi-label per annotator over the 7 abuse types in
    ``other_info["other_annotations"]``; ``annotations`` is the severity (1 = not abusive, 0 =
    ambiguous, -1..-3 abusive). ``text`` is a JSON string of the conversation turns.
  * ``MD-Agreement`` (offensive) and ``ArMIS`` (misogyny): binary, one label.
- 2025 (``lewidi2025``; folders ``<SET>``): ``annotations`` is ``{annotator: label}`` and
  ``text`` a dict of fields; annotator metadata in ``<SET>_annotators_meta.json``.

  * ``VariErrNLI``: multi-label: a value is a comma-joined subset of {entailment, neutral,
    contradiction}.
  * ``Paraphrase`` (Likert -5..5), ``CSC`` (sarcasm 1..6): one class per annotator.
  * ``MP`` (MultiPICo irony): binary, one label.

Ids restart in every file (2023) or repeat across splits with another text (2025), so item ids
are ``<split>-<id>``. Known defects are repaired and counted (see :mod:`labeldist.data.repairs`):
``"No"`` written for 0, an annotator listed twice in one item, trailing commas in the metadata
JSON, metadata keyed ``"0"`` for annotator ``"Ann0"``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeldist.data.io import require_file, utf8_errors
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.repairs import Repairs, render_fields
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.data.splits import canonical_split
from labeldist.errors import DataError

CONVABUSE_TYPES = ("ableist", "homophobic", "intellectual", "racist", "sexist", "sex_harassment", "transphobic")
NLI_LABELS = ("entailment", "neutral", "contradiction")
CONVABUSE_TURNS = ("prev_agent", "prev_user", "agent", "user")


@dataclass(frozen=True)
class SetSpec:
    """A LeWiDi set's label set, ``kind`` (how its votes are read) and a one-line description."""

    labels: tuple[str, ...]
    kind: str  # "hs-brexit", "convabuse", "binary", "multi", "class"
    description: str


SETS_2023 = {
    "HS-Brexit": SetSpec(("hate", "aggressive", "offensive"), "hs-brexit", "hate speech about Brexit, 6 annotators"),
    "ConvAbuse": SetSpec(CONVABUSE_TYPES, "convabuse", "abuse types in conversations with chatbots"),
    "MD-Agreement": SetSpec(("offensive",), "binary", "offensive tweets, 5 annotators"),
    "ArMIS": SetSpec(("misogyny",), "binary", "Arabic misogyny, 3 annotators"),
}
SETS_2025 = {
    "VariErrNLI": SetSpec(NLI_LABELS, "multi", "NLI label sets, 4 annotators"),
    "Paraphrase": SetSpec(tuple(str(v) for v in range(-5, 6)), "class", "paraphrase Likert -5..5"),
    "CSC": SetSpec(tuple(str(v) for v in range(1, 7)), "class", "sarcasm 1..6"),
    "MP": SetSpec(("irony",), "binary", "MultiPICo irony, 9 languages"),
}
EDITIONS = {"2023": SETS_2023, "2025": SETS_2025}
SPLITS = ("train", "dev", "test")
TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def read_json_counting_duplicates(path: Path, repairs: Repairs) -> Any:
    """``json.load`` that keeps the first value of a repeated key (and counts it) instead of
    silently keeping the last."""
    require_file(path)

    def first_wins(pairs):
        out: dict = {}
        for key, value in pairs:
            if key in out:
                repairs.add("repeated_json_keys", "{n} repeated keys in a JSON object: kept the first value")
                continue
            out[key] = value
        return out

    try:
        with utf8_errors(path), path.open(encoding="utf-8") as handle:
            return json.load(handle, object_pairs_hook=first_wins)
    except json.JSONDecodeError as err:
        raise DataError(str(path), err.lineno, f"invalid JSON: {err.msg}") from None


def _locate(data_dir: Path, edition: str, set_name: str | None, split: str) -> tuple[str, Path]:
    """(set name, folder holding ``<SET>_<split>.json``) from the folder given and the option."""
    sets = EDITIONS[edition]
    if set_name is not None:
        matches = [name for name in sets if name.lower() == str(set_name).lower()]
        if not matches:
            raise DataError(str(data_dir), None, f"unknown LeWiDi {edition} set {set_name!r}; known: {', '.join(sets)}")
        name = matches[0]
        for folder in (data_dir, data_dir / f"{name}_dataset", data_dir / name):
            if folder.is_dir() and any(folder.glob(f"{name}_*.json")):
                return name, folder
        raise DataError(str(data_dir), None, f"no {name}_*.json files here or in {name}_dataset/ or {name}/")
    found = sorted({p.name.rsplit("_", 1)[0] for p in data_dir.glob("*_*.json") if p.stem.rsplit("_", 1)[-1] in SPLITS})
    known = [name for name in found if name in sets]
    if len(known) == 1:
        return known[0], data_dir
    if not known:  # the edition's root folder: one folder per set
        known = [
            name
            for name in sets
            if any((data_dir / f"{name}_dataset").glob(f"{name}_*.json")) or any((data_dir / name).glob(f"{name}_*.json"))
        ]
        if len(known) == 1:
            return _locate(data_dir, edition, known[0], split)
    if not known:
        raise DataError(
            str(data_dir),
            None,
            f"no LeWiDi {edition} split files (<SET>_{{train,dev,test}}.json for a set in {', '.join(sets)}); "
            "point --data-dir at a set's folder or add --option set=NAME",
        )
    raise DataError(str(data_dir), None, f"several sets here ({', '.join(known)}): add --option set=NAME")


def _split_path(folder: Path, name: str, split: str) -> Path:
    path = folder / f"{name}_{split}.json"
    if not path.is_file():
        present = sorted(p.stem.rsplit("_", 1)[-1] for p in folder.glob(f"{name}_*.json") if p.stem.rsplit("_", 1)[-1] in SPLITS)
        raise DataError(str(path), None, f"split file does not exist (splits present: {', '.join(present) or 'none'})")
    return path


def _comma_list(value: Any, path: Path, where: str, field: str) -> list[str]:
    if not isinstance(value, str):
        raise DataError(str(path), where, f"{field} must be a comma-joined string, found {value!r:.60}")
    return [part.strip() for part in value.split(",")]


def _binary(value: str, path: Path, where: str, field: str, repairs: Repairs) -> bool:
    text = str(value).strip()
    if text in ("0", "0.0"):
        return False
    if text in ("1", "1.0"):
        return True
    if text.lower() == "no":
        repairs.add("no_for_0", "{n} values written 'No' instead of 0: read as 0")
        return False
    if text.lower() == "yes":
        repairs.add("yes_for_1", "{n} values written 'Yes' instead of 1: read as 1")
        return True
    raise DataError(str(path), where, f"{field} values must be 0 or 1, found {value!r}")


def _text_2023(raw: Any, kind: str, path: Path, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise DataError(str(path), where, "empty or missing text")
    if kind != "convabuse":
        return raw.strip()
    try:
        turns = json.loads(raw)
    except json.JSONDecodeError:
        raise DataError(str(path), where, f"ConvAbuse text must be a JSON object of turns, found {raw[:60]!r}") from None
    if not isinstance(turns, dict):
        raise DataError(str(path), where, "ConvAbuse text must be a JSON object of turns")
    return render_fields(turns, CONVABUSE_TURNS)


def _votes_2023(entry: dict, spec: SetSpec, path: Path, where: str, repairs: Repairs) -> dict[str, frozenset[str]]:
    annotators = _comma_list(entry.get("annotators"), path, where, "annotators")
    values = _comma_list(entry.get("annotations"), path, where, "annotations")
    if len(annotators) != len(values):
        raise DataError(str(path), where, f"{len(annotators)} annotators but {len(values)} annotations")
    other = entry.get("other_info") or {}
    columns: dict[str, list[str]] = {}
    if spec.kind == "hs-brexit":
        extra = other.get("other annotations")
        names = {"aggressive": "aggressive language detection", "offensive": "offensive language detection"}
        if not isinstance(extra, dict) or not set(names.values()) <= set(extra):
            raise DataError(str(path), where, "other_info['other annotations'] must hold aggressive and offensive labels")
        columns = {label: _comma_list(extra[key], path, where, key) for label, key in names.items()}
    elif spec.kind == "convabuse":
        extra = other.get("other_annotations")
        if not isinstance(extra, dict) or not set(CONVABUSE_TYPES) <= set(extra):
            missing = sorted(set(CONVABUSE_TYPES) - set(extra or {}))
            raise DataError(str(path), where, f"other_info['other_annotations'] lacks {', '.join(missing)}")
        columns = {label: _comma_list(extra[label], path, where, label) for label in CONVABUSE_TYPES}
    for label, column in columns.items():
        if len(column) != len(annotators):
            raise DataError(str(path), where, f"{label}: {len(column)} values for {len(annotators)} annotators")

    votes: dict[str, frozenset[str]] = {}
    for r, annotator in enumerate(annotators):
        if not annotator:
            raise DataError(str(path), where, "empty annotator id")
        chosen: set[str] = set()
        if spec.kind == "convabuse":
            try:
                severity = int(values[r])
            except ValueError:
                raise DataError(str(path), where, f"severity must be an integer -3..1, found {values[r]!r}") from None
            if severity not in (1, 0, -1, -2, -3):
                raise DataError(str(path), where, f"severity must be in -3..1, found {severity}")
            chosen = {label for label, column in columns.items() if _binary(column[r], path, where, label, repairs)}
            if chosen and severity >= 0:
                repairs.add("types_without_abuse", "{n} ratings name abuse types but rate the turn not abusive: kept")
        else:
            if _binary(values[r], path, where, "annotations", repairs):
                chosen.add(spec.labels[0])
            for label, column in columns.items():
                if _binary(column[r], path, where, label, repairs):
                    chosen.add(label)
        if annotator in votes:
            repairs.add("repeated_annotator", "{n} annotators listed twice in one item: kept the first rating")
            continue
        votes[annotator] = frozenset(chosen)
    return votes


def _votes_2025(entry: dict, spec: SetSpec, path: Path, where: str, repairs: Repairs) -> dict[str, frozenset[str]]:
    annotations = entry.get("annotations")
    if not isinstance(annotations, dict) or not annotations:
        raise DataError(str(path), where, "annotations must be a non-empty object {annotator: label}")
    votes: dict[str, frozenset[str]] = {}
    for annotator, value in annotations.items():
        text = str(value).strip()
        if spec.kind == "multi":
            parts = [p.strip() for p in text.split(",") if p.strip()]
            unknown = [p for p in parts if p not in spec.labels]
            if unknown or not parts:
                raise DataError(str(path), where, f"{annotator}: label {text!r} is not a subset of {', '.join(spec.labels)}")
            votes[annotator] = frozenset(parts)
        elif spec.kind == "binary":
            votes[annotator] = frozenset(spec.labels) if _binary(text, path, where, annotator, repairs) else frozenset()
        else:
            try:
                number = float(text)
            except ValueError:
                number = None
            label = str(int(number)) if number is not None and number.is_integer() else text
            if label not in spec.labels:
                raise DataError(str(path), where, f"{annotator}: label {text!r} is not one of {', '.join(spec.labels)}")
            votes[annotator] = frozenset({label})
    return votes


def _class_gold(votes: dict[str, frozenset[str]]) -> frozenset[str]:
    """The class of more than half of the annotators, else none."""
    counts = Counter(label for labels in votes.values() for label in labels)
    if not counts:
        return frozenset()
    top, count = counts.most_common(1)[0]
    return frozenset({top}) if 2 * count > len(votes) else frozenset()


def _text_key(text: Any) -> str:
    return json.dumps(text, sort_keys=True, ensure_ascii=False) if isinstance(text, dict) else str(text)


def _cross_split_checks(folder: Path, name: str, split: str, data: dict, repairs: Repairs) -> None:
    """Count ids that recur in another split with another text, and texts shared across splits."""
    own = {str(k): _text_key(v.get("text")) for k, v in data.items() if isinstance(v, dict)}
    own_texts = set(own.values())
    for other in SPLITS:
        path = folder / f"{name}_{other}.json"
        if other == split or not path.is_file():
            continue
        with path.open(encoding="utf-8") as handle:
            try:
                theirs = json.load(handle)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # reported when that split is loaded
        changed = sum(1 for k, v in theirs.items() if k in own and isinstance(v, dict) and _text_key(v.get("text")) != own[k])
        shared_texts = sum(1 for v in theirs.values() if isinstance(v, dict) and _text_key(v.get("text")) in own_texts)
        repairs.add(
            f"ids_reused_{other}",
            "{n} ids of this split recur in " + other + " with another text: ids are prefixed with the split",
            changed,
        )
        repairs.add(
            f"texts_shared_{other}", "{n} items of this split have a text that also occurs in " + other + ": kept", shared_texts
        )


def read_annotator_meta(path: Path, repairs: Repairs) -> dict[str, dict]:
    """``<SET>_annotators_meta.json`` with trailing commas removed (counted) and numeric keys
    (``"0"``) mapped to the data's annotator ids (``"Ann0"``, counted)."""
    require_file(path)
    with utf8_errors(path):
        text = path.read_text(encoding="utf-8")
    fixed, commas = TRAILING_COMMA.subn(r"\1", text)
    repairs.add("meta_trailing_commas", "{n} trailing commas removed from " + path.name + " (invalid strict JSON)", commas)
    try:
        meta = json.loads(fixed)
    except json.JSONDecodeError as err:
        raise DataError(str(path), err.lineno, f"invalid JSON: {err.msg}") from None
    if not isinstance(meta, dict):
        raise DataError(str(path), None, "expected an object {annotator: metadata}")
    numeric = [k for k in meta if str(k).isdigit()]
    if numeric:
        repairs.add("meta_numeric_keys", "{n} metadata keys like '0' mapped to annotator ids like 'Ann0'", len(numeric))
        meta = {(f"Ann{k}" if str(k).isdigit() else k): v for k, v in meta.items()}
    return meta


def load_lewidi(data_dir: Path, split: str, *, edition: str = "2023", set_name: str | None = None) -> Dataset:
    """One split of a LeWiDi set; ``set_name`` (the loaders' option ``set``) is inferred from the
    folder when it holds one set."""
    data_dir = Path(data_dir)
    edition = str(edition)
    if edition not in EDITIONS:
        raise DataError(str(data_dir), None, f"unknown LeWiDi edition {edition!r}; known: {', '.join(EDITIONS)}")
    if not data_dir.is_dir():
        raise DataError(str(data_dir), None, "expected a LeWiDi folder")
    canonical = canonical_split(split, data_dir)
    name, folder = _locate(data_dir, edition, set_name, canonical)
    spec = EDITIONS[edition][name]
    path = _split_path(folder, name, canonical)
    repairs = Repairs()
    data = read_json_counting_duplicates(path, repairs)
    if not isinstance(data, dict) or not data:
        raise DataError(str(path), None, "expected a non-empty JSON object {id: item}")

    items = []
    for raw_id, entry in data.items():
        where = f"item {raw_id}"
        if not isinstance(entry, dict):
            raise DataError(str(path), where, "an item must be a JSON object")
        if edition == "2023":
            text = _text_2023(entry.get("text"), spec.kind, path, where)
            votes = _votes_2023(entry, spec, path, where, repairs)
        else:
            raw_text = entry.get("text")
            if not isinstance(raw_text, dict) or not raw_text:
                raise DataError(str(path), where, "text must be a non-empty object of fields")
            text = render_fields(raw_text)
            votes = _votes_2025(entry, spec, path, where, repairs)
        gold = _class_gold(votes) if spec.kind == "class" else gold_by_share(votes, 0.5)
        items.append(Item(f"{canonical}-{raw_id}", text, votes, gold))

    _cross_split_checks(folder, name, canonical, data, repairs)
    files = [str(path)]
    meta_path = folder / f"{name}_annotators_meta.json"
    meta_info = None
    if edition == "2025" and meta_path.is_file():
        meta = read_annotator_meta(meta_path, repairs)
        annotators = {a for item in items for a in item.votes}
        without = sorted(annotators - set(meta))
        repairs.add("annotators_without_meta", "{n} annotators of this split have no metadata", len(without))
        meta_info = {"entries": len(meta), "annotators_without_meta": len(without)}
        files.append(str(meta_path))

    why = "ids restart in every split file" if edition == "2023" else "some ids recur in another split"
    notes = [f"item ids are '{canonical}-<id>' (LeWiDi {edition}: {why})", *repairs.notes()]
    if spec.kind == "class":
        notes.append("one class per annotator; gold = the class of more than half of the annotators")
    else:
        notes.append("gold = labels chosen by at least half of an item's annotators")
    info = {"files": files, "set": name, "edition": edition, "repairs": repairs.as_dict(), "annotator_meta": meta_info}
    # "convabuse" names the original release's loader; the LeWiDi re-packaging gets its own name
    dataset_name = "convabuse-lewidi" if name == "ConvAbuse" else name.lower()
    return Dataset(dataset_name, spec.labels, canonical, items, notes, info)


def load_lewidi2023(data_dir: Path, split: str, *, set: str | None = None) -> Dataset:  # noqa: A002
    """One split of a LeWiDi 2023 (SemEval 2023 Task 11) set (``set``: HS-Brexit, ConvAbuse, ...,
    inferred from a set's folder); see :func:`load_lewidi`."""
    return load_lewidi(data_dir, split, edition="2023", set_name=set)


def load_lewidi2025(data_dir: Path, split: str, *, set: str | None = None) -> Dataset:  # noqa: A002
    """One split of a LeWiDi 2025 (NLPerspectives) set (``set``: VariErrNLI, MP, ..., inferred
    from a set's folder); see :func:`load_lewidi`."""
    return load_lewidi(data_dir, split, edition="2025", set_name=set)


register(
    DatasetSpec(
        "lewidi2023",
        load_lewidi2023,
        "LeWiDi 2023 JSON (a set's folder, or --option set=): HS-Brexit and ConvAbuse (multi-label), "
        "MD-Agreement and ArMIS (binary)",
    ),
)
register(
    DatasetSpec(
        "lewidi2025",
        load_lewidi2025,
        "LeWiDi 2025 JSON (a set's folder, or --option set=): VariErrNLI (multi-label), Paraphrase, CSC (classes), MP (binary)",
    ),
)
