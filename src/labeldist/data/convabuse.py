"""ConvAbuse (Cercas Curry et al., 2021), the original release's split CSVs
``ConvAbuseEMNLP{train,valid,test}.csv``.

One row per example: ``example_id, conv_id, prev_agent, prev_user, agent, user, bot``, then one
block of 17 columns per annotator 1..8: ``is_abuse.{1,0,-1,-2,-3}`` (one-hot severity), the 7
abuse types, ``target.{generalised,individual,system}``, ``explicit``, ``implicit``. A block is
empty where that annotator did not rate the example.

Labels: the 7 abuse types (multi-label per annotator; set only on abusive ratings). Text: the
four turns as ``Prev agent: ... / Prev user: ... / Agent: ... / User: ...`` lines.

Defects handled and counted: the header names the ``transphobic`` columns of annotators 7 and 8
``Annotator6_transphobic`` (the blocks are read by position, so all 8 are there); cells holding
repeated annotations such as ``"1, 1"`` or ``"0, 1"`` (the first value is kept; disagreeing
repeats counted apart).
"""

from __future__ import annotations

from pathlib import Path

from labeldist.data.io import read_table, row_label
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.repairs import Repairs, render_fields
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.data.splits import canonical_split
from labeldist.errors import DataError

TYPES = ("ableist", "homophobic", "intellectual", "racist", "sexist", "sex_harassment", "transphobic")
SEVERITIES = ("1", "0", "-1", "-2", "-3")
BLOCK = (
    *(f"is_abuse.{s}" for s in SEVERITIES),
    *TYPES,
    "target.generalised",
    "target.individual",
    "target.system",
    "explicit",
    "implicit",
)
LEADING = ("example_id", "conv_id", "prev_agent", "prev_user", "agent", "user", "bot")
ANNOTATORS = 8
FILES = {"train": "ConvAbuseEMNLPtrain.csv", "dev": "ConvAbuseEMNLPvalid.csv", "test": "ConvAbuseEMNLPtest.csv"}
TURNS = ("prev_agent", "prev_user", "agent", "user")


def _check_header(columns: list[str], path: Path, repairs: Repairs) -> None:
    expected = list(LEADING) + [f"Annotator{a}_{field}" for a in range(1, ANNOTATORS + 1) for field in BLOCK]
    if len(columns) != len(expected):
        raise DataError(str(path), 1, f"expected {len(expected)} columns (7 + 8 annotators x 17), found {len(columns)}")
    for position, (found, wanted) in enumerate(zip(columns, expected)):
        if found == wanted:
            continue
        # the known misnaming: Annotator7/8's transphobic column is headed Annotator6_transphobic
        if wanted.endswith("_transphobic") and found.endswith("_transphobic"):
            repairs.add(
                "misnamed_columns",
                "{n} columns misnamed in the header (Annotator7/8_transphobic headed Annotator6_transphobic): read by position",
            )
            continue
        raise DataError(str(path), 1, f"column {position + 1} should be {wanted!r}, found {found!r}")


def _cell(value: str, path: Path, where: str, column: str, repairs: Repairs) -> int | None:
    """A 0/1 cell; ``"1, 1"`` (a repeated annotation) keeps the first value, counted."""
    text = value.strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1:
        repairs.add("repeated_cells", "{n} cells held repeated annotations such as '1, 1': kept the first value")
        if len(set(parts)) > 1:
            repairs.add("disagreeing_repeats", "{n} of those repeats disagree (such as '0, 1')")
    if parts[0] in ("0", "0.0"):
        return 0
    if parts[0] in ("1", "1.0"):
        return 1
    raise DataError(str(path), where, f"{column} must be 0 or 1, found {value!r}")


def load_convabuse(data_dir: Path, split: str) -> Dataset:
    """One split of the original ConvAbuse CSVs: each annotator's abuse types per example, gold by half the annotators."""
    data_dir = Path(data_dir)
    canonical = canonical_split(split, data_dir)
    path = data_dir / FILES[canonical]
    frame = read_table(path, header=None)
    rows = frame.to_numpy().tolist()
    if not rows:
        raise DataError(str(path), None, "empty file")
    repairs = Repairs()
    _check_header([str(c) for c in rows[0]], path, repairs)
    items = []
    seen: dict[str, int] = {}
    ratings_with_repeats = 0
    for position, row in enumerate(rows[1:]):
        where = row_label(position)
        raw_id = str(row[0]).strip()
        if not raw_id:
            raise DataError(str(path), where, "empty example_id")
        item_id = raw_id[:-2] if raw_id.endswith(".0") else raw_id
        if item_id in seen:
            raise DataError(str(path), where, f"duplicate example_id {item_id} (first in {row_label(seen[item_id])})")
        seen[item_id] = position
        where = f"{where} (example {item_id})"
        votes: dict[str, frozenset[str]] = {}
        for a in range(ANNOTATORS):
            start = len(LEADING) + a * len(BLOCK)
            block = [str(v) for v in row[start : start + len(BLOCK)]]
            if not any(v.strip() for v in block):
                continue
            before = repairs.counts["repeated_cells"]
            values = {field: _cell(v, path, where, f"Annotator{a + 1}_{field}", repairs) for field, v in zip(BLOCK, block)}
            if repairs.counts["repeated_cells"] > before:
                ratings_with_repeats += 1
            missing = [f for f in (*(f"is_abuse.{s}" for s in SEVERITIES), *TYPES) if values[f] is None]
            if missing:
                raise DataError(str(path), where, f"Annotator{a + 1} rated the example but left {missing[0]} empty")
            severity = sum(values[f"is_abuse.{s}"] for s in SEVERITIES)
            if severity != 1:
                raise DataError(str(path), where, f"Annotator{a + 1}: is_abuse must be one-hot, found {severity} ones")
            types = frozenset(t for t in TYPES if values[t])
            if types and not any(values[f"is_abuse.{s}"] for s in ("-1", "-2", "-3")):
                repairs.add("types_without_abuse", "{n} ratings name abuse types but rate the turn not abusive: kept")
            votes[f"Annotator{a + 1}"] = types
        if not votes:
            raise DataError(str(path), where, "no annotator rated this example")
        text = render_fields({t: str(row[LEADING.index(t)]) for t in TURNS}, TURNS)
        items.append(Item(item_id, text, votes, gold_by_share(votes, 0.5)))
    repairs.add("ratings_with_repeats", "{n} ratings had at least one repeated cell", ratings_with_repeats)
    notes = [*repairs.notes(), "gold = abuse types chosen by at least half of an example's annotators"]
    info = {"files": [str(path)], "repairs": repairs.as_dict()}
    return Dataset("convabuse", TYPES, canonical, items, notes, info)


register(
    DatasetSpec(
        "convabuse",
        load_convabuse,
        "ConvAbuse original CSVs (ConvAbuseEMNLP{train,valid,test}.csv): 7 abuse types, up to 8 annotators",
    ),
    "convabuse_original",
)
