"""VariErr NLI (Weber-Genzel et al., 2024), the original release ``varierr.json``: JSON Lines
(despite the extension), one premise/hypothesis pair per line.

For each of ``entailment``, ``neutral`` and ``contradiction`` a list of explanations, each with
the ``annotator`` (0-3) who gave that label; an annotator's label set is every label they
explained (round 1). ``idk`` lists annotators who said "I don't know": without a label they give
no vote (counted). ``chaosnli_labels`` holds 100 ChaosNLI votes ``{e, n, c}`` per item:
``votes=chaosnli`` uses those instead (100 single-label votes). Annotator k is ``Ann{k+1}``, as
in LeWiDi 2025. No splits ship with the file: ``all``, or train/dev/test 80/10/10 by a hash of
the id.
"""

from __future__ import annotations

import json
from pathlib import Path

from labeldist.data.io import require_file, utf8_errors
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.repairs import Repairs, check_hashed_split, hashed_split, render_fields
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.errors import DataError

LABELS = ("entailment", "neutral", "contradiction")
CHAOS_KEYS = {"e": "entailment", "n": "neutral", "c": "contradiction"}
FILE = "varierr.json"


def _votes_from_explanations(entry: dict, path: Path, lineno: int, repairs: Repairs) -> dict[str, frozenset[str]]:
    chosen: dict[str, set[str]] = {}
    for label in LABELS:
        explanations = entry.get(label)
        if not isinstance(explanations, list):
            raise DataError(str(path), lineno, f"{label} must be a list of explanations")
        for explanation in explanations:
            annotator = explanation.get("annotator") if isinstance(explanation, dict) else None
            if not isinstance(annotator, int) or isinstance(annotator, bool):
                raise DataError(str(path), lineno, f"{label}: an explanation without an integer annotator")
            name = f"Ann{annotator + 1}"
            if label in chosen.get(name, ()):
                repairs.add("repeated_explanations", "{n} annotators explained the same label twice: counted once")
            chosen.setdefault(name, set()).add(label)
    idk = entry.get("idk") or []
    if not isinstance(idk, list):
        raise DataError(str(path), lineno, "idk must be a list of annotators")
    unlabelled = [a for a in idk if f"Ann{a + 1}" not in chosen]
    repairs.add("idk_no_vote", "{n} 'I don't know' answers without a label give no vote", len(unlabelled))
    return {name: frozenset(labels) for name, labels in sorted(chosen.items())}


def _votes_from_chaosnli(entry: dict, path: Path, lineno: int) -> dict[str, frozenset[str]]:
    counts = entry.get("chaosnli_labels")
    if not isinstance(counts, dict) or not counts or not set(counts) <= set(CHAOS_KEYS):
        raise DataError(str(path), lineno, f"chaosnli_labels must be vote counts keyed e, n, c; found {counts!r:.60}")
    votes: dict[str, frozenset[str]] = {}
    for key, label in CHAOS_KEYS.items():
        n = counts.get(key, 0)  # a label nobody chose is left out of the dict
        if not isinstance(n, int) or n < 0:
            raise DataError(str(path), lineno, f"chaosnli_labels[{key!r}] must be a count, found {n!r}")
        for _ in range(n):
            votes[f"chaosnli{len(votes) + 1}"] = frozenset({label})
    return votes


def load_varierr(data_dir: Path, split: str, *, votes: str = "varierr") -> Dataset:
    """VariErr NLI items with the annotators' label sets (``votes="varierr"``) or the 100 ChaosNLI votes (``"chaosnli"``)."""
    data_dir = Path(data_dir)
    path = data_dir if data_dir.is_file() else data_dir / FILE
    require_file(path)
    canonical = check_hashed_split(split, str(path))
    if votes not in ("varierr", "chaosnli"):
        raise DataError(str(path), None, f"votes must be 'varierr' or 'chaosnli', not {votes!r}")
    repairs = Repairs()
    items = []
    seen: dict[str, int] = {}
    with utf8_errors(path), path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(str(path), lineno, f"invalid JSON: {err.msg}") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise DataError(str(path), lineno, "each line must be an object with a string id")
            item_id = entry["id"]
            if item_id in seen:
                raise DataError(str(path), lineno, f"id {item_id} repeats line {seen[item_id]}")
            seen[item_id] = lineno
            if not all(isinstance(entry.get(k), str) and entry[k].strip() for k in ("context", "statement")):
                raise DataError(str(path), lineno, "context and statement must be non-empty strings")
            if votes == "chaosnli":
                item_votes = _votes_from_chaosnli(entry, path, lineno)
            else:
                item_votes = _votes_from_explanations(entry, path, lineno, repairs)
            if not item_votes:
                repairs.add("items_without_votes", "{n} items without any label were dropped")
                continue
            if canonical != "all" and hashed_split("varierr_nli", item_id) != canonical:
                continue
            text = render_fields({"context": entry["context"], "statement": entry["statement"]})
            items.append(Item(item_id, text, item_votes, gold_by_share(item_votes, 0.5)))
    if not seen:
        raise DataError(str(path), None, "no items")
    notes = [*repairs.notes()]
    if votes == "chaosnli":
        notes.append("votes: the 100 ChaosNLI annotators (chaosnli_labels), one label each")
    else:
        notes.append("votes: the VariErr annotators' round-1 label sets (every label they explained)")
    notes.append("gold = labels chosen by at least half of an item's annotators")
    if canonical != "all":
        notes.append("varierr.json ships no splits: this split is 80/10/10 train/dev/test by a hash of the id")
    info = {"files": [str(path)], "votes": votes, "repairs": repairs.as_dict()}
    return Dataset("varierr_nli", LABELS, canonical, items, notes, info)


register(
    DatasetSpec(
        "varierr_nli",
        load_varierr,
        "VariErr NLI original varierr.json (JSON Lines): NLI label sets of 4 annotators, or votes=chaosnli (100)",
    ),
    "varierr",
)
