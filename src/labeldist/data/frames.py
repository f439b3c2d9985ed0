"""Items from a table already in memory (a pandas DataFrame): the row reading shared by the
``table`` loader (files) and :meth:`labeldist.data.schema.Dataset.from_pandas`.

Two layouts: one row per item (labels as 0/1 columns or as one list column), or one row per
(item, annotator) rating, grouped into votes. Errors name the source and the data row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeldist.data.cells import binary_value, is_missing, parse_label_list, plain
from labeldist.data.io import require_columns, row_label
from labeldist.data.items import Item, gold_by_share
from labeldist.errors import DataError


def label_column_map(label_columns: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """Column -> label name of 0/1 label columns given as names (each its own label) or as a mapping."""
    if isinstance(label_columns, Mapping):
        return dict(label_columns)
    return {column: column for column in label_columns or ()}


def items_from_frame(
    frame,
    source: str | Path,
    *,
    positions: np.ndarray | None = None,
    id_column: str = "id",
    text_column: str = "text",
    label_columns: Sequence[str] | Mapping[str, str] | None = None,
    label_list_column: str | None = None,
    separator: str = ",",
    labels: Sequence[str] | None = None,
    annotator_column: str | None = None,
    gold_threshold: float = 0.5,
    missing_labels: str = "error",
) -> tuple[tuple[str, ...], list[Item], list[str]]:
    """(label set, items, notes) of the rows at ``positions`` (all rows when None) of ``frame``.

    Exactly one of ``label_columns`` (0/1 columns, or a mapping column -> label) and
    ``label_list_column``; with ``annotator_column`` each row is one annotator's rating and gold
    is the labels chosen by at least ``gold_threshold`` of an item's annotators.
    ``missing_labels="drop"`` leaves out rows with an empty label cell (counted in the notes).
    """
    source = Path(source) if not isinstance(source, Path) else source
    column_to_label = label_column_map(label_columns)
    if (not column_to_label) == (label_list_column is None):
        raise DataError(str(source), None, "give exactly one of label columns and a label list column")
    needed = [id_column, text_column, *column_to_label]
    needed += [c for c in (label_list_column, annotator_column) if c is not None]
    require_columns(frame, needed, source)
    positions = np.arange(len(frame)) if positions is None else positions
    known = _label_order(column_to_label, labels, source)
    rows = _read_rows(
        frame,
        source,
        positions,
        id_column,
        text_column,
        column_to_label,
        label_list_column,
        separator,
        known,
        annotator_column,
        missing_labels,
    )
    label_set = known if known is not None else tuple(sorted({lab for row in rows for lab in row.labels}))
    notes: list[str] = []
    dropped = len(positions) - len(rows)
    if dropped:
        notes.append(f"{dropped} rows with a missing label value were dropped (missing_labels='drop')")
    if annotator_column is None:
        items = _items_from_item_rows(rows, source)
        notes.append("aggregate labels only: vote fractions are gold 0/1")
    else:
        items, repeated = _items_from_ratings(rows, source, gold_threshold)
        if repeated:
            notes.append(f"{repeated} repeated (item, annotator) rows: kept the first")
        notes.append(f"gold = labels chosen by at least {gold_threshold:g} of an item's annotators")
    return label_set, items, notes


def cell_id(value: Any) -> str | None:
    """An id cell as a string; integral floats (Parquet ids next to missing values) lose
    their ``.0``; None when empty."""
    value = plain(value)
    if is_missing(value, empty_is_missing=True):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _label_order(column_to_label: Mapping[str, str], labels: Sequence[str] | None, path: Path) -> tuple[str, ...] | None:
    """The label set when it is known before reading rows (None: derive it from the rows)."""
    if column_to_label:
        from_columns = tuple(column_to_label.values())
        if labels is None:
            return from_columns
        if sorted(labels) != sorted(from_columns):
            raise DataError(str(path), None, f"labels {list(labels)} differ from the label columns' labels {list(from_columns)}")
        return tuple(labels)
    return tuple(labels) if labels is not None else None


class _Row:
    __slots__ = ("position", "item_id", "text", "labels", "annotator")

    def __init__(self, position: int, item_id: str, text: str, labels: frozenset[str], annotator: str | None):
        self.position = position
        self.item_id = item_id
        self.text = text
        self.labels = labels
        self.annotator = annotator


def _read_rows(
    frame,
    path: Path,
    positions: np.ndarray,
    id_column: str,
    text_column: str,
    column_to_label: Mapping[str, str],
    label_list_column: str | None,
    separator: str,
    known: tuple[str, ...] | None,
    annotator_column: str | None,
    missing_labels: str,
) -> list[_Row]:
    """Validated rows of the split; rows with a missing label value are left out when
    ``missing_labels == "drop"``."""
    columns = {c: frame[c].tolist() for c in frame.columns}
    known_set = set(known) if known is not None else None
    rows = []
    for position in positions.tolist():
        where = row_label(position)
        item_id = cell_id(columns[id_column][position])
        if item_id is None:
            raise DataError(str(path), where, f"empty id in column {id_column}")
        text = plain(columns[text_column][position])
        if not isinstance(text, str) or is_missing(text, empty_is_missing=True):
            raise DataError(str(path), where, f"empty text in column {text_column} (item {item_id})")
        annotator = None
        if annotator_column is not None:
            annotator = cell_id(columns[annotator_column][position])
            if annotator is None:
                raise DataError(str(path), where, f"empty annotator in column {annotator_column} (item {item_id})")

        if label_list_column is not None:
            cell = columns[label_list_column][position]
            if is_missing(plain(cell), empty_is_missing=False):
                if missing_labels == "drop":
                    continue
                raise DataError(str(path), where, f"missing value in column {label_list_column}")
            chosen = parse_label_list(cell, separator, path, where)
            if known_set is not None:
                unknown = [lab for lab in chosen if lab not in known_set]
                if unknown:
                    raise DataError(str(path), where, f"label {unknown[0]!r} is not in the label set {list(known)}")
        else:
            chosen = []
            missing = False
            for column, label in column_to_label.items():
                cell = columns[column][position]
                value = binary_value(cell)
                if value is None:
                    if is_missing(plain(cell), empty_is_missing=True) and missing_labels == "drop":
                        missing = True
                        break
                    raise DataError(str(path), where, f"column {column} must be 0 or 1, found {plain(cell)!r}")
                if value:
                    chosen.append(label)
            if missing:
                continue
        rows.append(_Row(position, item_id, text, frozenset(chosen), annotator))
    return rows


def _items_from_item_rows(rows: list[_Row], path: Path) -> list[Item]:
    first_row: dict[str, int] = {}
    items = []
    for row in rows:
        if row.item_id in first_row:
            first = row_label(first_row[row.item_id])
            raise DataError(str(path), row_label(row.position), f"duplicate item id {row.item_id} (first in {first})")
        first_row[row.item_id] = row.position
        items.append(Item(row.item_id, row.text, {}, row.labels))
    return items


def _items_from_ratings(rows: list[_Row], path: Path, threshold: float) -> tuple[list[Item], int]:
    """Votes grouped per item in order of first appearance; (items, repeated ratings)."""
    texts: dict[str, tuple[str, int]] = {}
    votes: dict[str, dict[str, frozenset[str]]] = {}
    repeated = 0
    for row in rows:
        if row.item_id not in texts:
            texts[row.item_id] = (row.text, row.position)
            votes[row.item_id] = {}
        text, first = texts[row.item_id]
        if row.text != text:
            raise DataError(
                str(path),
                row_label(row.position),
                f"item {row.item_id} has a different text than in {row_label(first)}",
            )
        if row.annotator in votes[row.item_id]:
            repeated += 1
            continue
        votes[row.item_id][row.annotator] = row.labels
    items = [Item(i, texts[i][0], v, gold_by_share(v, threshold)) for i, v in votes.items()]
    return items, repeated


def items_from_vote_cells(
    frame,
    source: str | Path,
    *,
    id_column: str,
    text_column: str,
    votes_column: str,
    gold_column: str | None = None,
    labels: Sequence[str] | None = None,
    gold_threshold: float = 0.5,
) -> tuple[tuple[str, ...], list[Item], list[str]]:
    """(label set, items, notes) of a frame with one row per item whose ``votes_column`` holds
    each annotator's labels: a mapping annotator -> labels, or a list of label lists (annotators
    named by position). Gold is ``gold_column``'s label list, or the labels chosen by at least
    ``gold_threshold`` of the item's annotators."""
    source = Path(source) if not isinstance(source, Path) else source
    require_columns(frame, [c for c in (id_column, text_column, votes_column, gold_column) if c], source)
    known = set(labels) if labels is not None else None
    items, seen = [], {}
    for position, (raw_id, text, cell, gold_cell) in enumerate(
        zip(
            frame[id_column].tolist(),
            frame[text_column].tolist(),
            frame[votes_column].tolist(),
            frame[gold_column].tolist() if gold_column else [None] * len(frame),
        )
    ):
        where = row_label(position)
        item_id = cell_id(raw_id)
        if item_id is None:
            raise DataError(str(source), where, f"empty id in column {id_column}")
        if item_id in seen:
            raise DataError(str(source), where, f"duplicate item id {item_id} (first in {row_label(seen[item_id])})")
        seen[item_id] = position
        if not isinstance(text, str) or is_missing(text, empty_is_missing=True):
            raise DataError(str(source), where, f"empty text in column {text_column} (item {item_id})")
        cell = plain(cell)
        if isinstance(cell, Mapping):
            pairs = [(str(annotator), chosen) for annotator, chosen in cell.items()]
        elif isinstance(cell, (list, tuple)):
            pairs = [(str(k), chosen) for k, chosen in enumerate(cell)]
        else:
            wanted = "annotator -> labels or a list of label lists"
            raise DataError(str(source), where, f"column {votes_column} must hold {wanted}, found {cell!r}")
        votes = {annotator: frozenset(parse_label_list(chosen, ",", source, where)) for annotator, chosen in pairs}
        gold = frozenset(parse_label_list(gold_cell, ",", source, where)) if gold_column else gold_by_share(votes, gold_threshold)
        if known is not None:
            unknown = sorted(set(gold).union(*votes.values()) - known)
            if unknown:
                raise DataError(str(source), where, f"label {unknown[0]!r} is not in the label set {list(labels)}")
        items.append(Item(item_id, text, votes, gold))
    used = {label for item in items for label in item.gold.union(*item.votes.values())}
    label_set = tuple(labels) if labels is not None else tuple(sorted(used))
    notes = [] if gold_column else [f"gold = labels chosen by at least {gold_threshold:g} of an item's annotators"]
    return label_set, items, notes
