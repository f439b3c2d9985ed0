"""Generic tables (CSV, TSV, JSON Lines, Parquet).

Two layouts, chosen by options:

- one row per item: ``id_column``, ``text_column`` and the item's labels, either as 0/1
  ``label_columns`` or as one ``label_list_column`` (a JSON/Python list or a
  ``label_separator``-joined string). Aggregate labels only.
- one row per (item, annotator) rating: the same plus ``annotator_column``. Rows are grouped
  per item into votes; gold = labels chosen by at least ``gold_threshold`` of the item's
  annotators.

``data_dir`` is either one file (the split is the rows whose ``split_column`` names it, or the
whole file) or a directory holding ``{split}.csv|tsv|jsonl|parquet``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeldist.data.cells import binary_value, is_missing, parse_label_list, plain, split_label_string
from labeldist.data.io import read_table, require_columns, row_label
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.data.splits import split_aliases, to_canonical_split
from labeldist.errors import DataError

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".parquet")


def cell_id(value: Any) -> str | None:
    """An id cell as a string; integral floats (Parquet ids next to missing values) lose
    their ``.0``; None when empty."""
    value = plain(value)
    if is_missing(value, empty_is_missing=True):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _find_split_file(data_dir: Path, split: str) -> Path:
    names = split_aliases(to_canonical_split(split))
    for name in names:
        for ext in TABLE_EXTENSIONS:
            path = data_dir / f"{name}{ext}"
            if path.is_file():
                return path
    found = sorted({p.stem for p in data_dir.iterdir() if p.suffix.lower() in TABLE_EXTENSIONS})
    looked = ", ".join(f"{n}{{{','.join(TABLE_EXTENSIONS)}}}" for n in names)
    raise DataError(
        str(data_dir),
        None,
        f"no file for split {split!r} (looked for {looked}); splits found: {', '.join(found) or 'none'}",
    )


def _rows_of_split(frame, path: Path, split: str, split_column: str) -> np.ndarray:
    """Positions of the rows whose split column names ``split`` (``val`` matches ``dev``)."""
    values = [str(plain(v)).strip() for v in frame[split_column].tolist()]
    wanted = to_canonical_split(split)
    chosen = np.array([to_canonical_split(v) == wanted for v in values], dtype=bool)
    if not chosen.any():
        present = sorted(set(values))
        raise DataError(str(path), None, f"no rows with {split_column} = {split!r}; values found: {', '.join(present)}")
    return np.flatnonzero(chosen)


def load_table(
    data_dir: Path,
    split: str,
    *,
    id_column: str = "id",
    text_column: str = "text",
    label_columns: Sequence[str] | Mapping[str, str] | None = None,
    label_list_column: str | None = None,
    label_separator: str = ",",
    labels: Sequence[str] | None = None,
    annotator_column: str | None = None,
    gold_threshold: float = 0.5,
    split_column: str | None = None,
    missing_labels: str = "error",
    dataset_name: str = "table",
) -> Dataset:
    """Load one split of a generic table; see the module docstring for the layouts.

    ``label_columns`` may map column -> label name to rename labels. ``missing_labels="drop"``
    drops rows with an empty/NA label cell (counted in the notes) instead of failing.
    ``dataset_name`` names the result (``Dataset.name``), e.g. after the corpus the table holds.
    List options may also be given as comma-joined strings and ``gold_threshold`` as a numeric
    string, as a command line passes them.
    """
    data_dir = Path(data_dir)
    if isinstance(label_columns, str):
        label_columns = split_label_string(label_columns, ",")
    if isinstance(labels, str):
        labels = split_label_string(labels, ",")
    gold_threshold = _number(gold_threshold, "gold_threshold", data_dir)
    if (label_columns is None) == (label_list_column is None):
        raise DataError(str(data_dir), None, "give exactly one of label_columns and label_list_column")
    if missing_labels not in ("error", "drop"):
        raise DataError(str(data_dir), None, f"missing_labels must be 'error' or 'drop', not {missing_labels!r}")
    if not 0 < gold_threshold <= 1:
        raise DataError(str(data_dir), None, f"gold_threshold must be in (0, 1], not {gold_threshold}")

    path = data_dir if data_dir.is_file() else _find_split_file(data_dir, split)
    frame = read_table(path)
    column_to_label: dict[str, str] = {}
    if label_columns is not None:
        column_to_label = dict(label_columns) if isinstance(label_columns, Mapping) else {c: c for c in label_columns}
        if not column_to_label:
            raise DataError(str(data_dir), None, "label_columns is empty")
    needed = [id_column, text_column, *column_to_label]
    needed += [c for c in (label_list_column, annotator_column, split_column) if c is not None]
    require_columns(frame, needed, path)

    positions = _rows_of_split(frame, path, split, split_column) if split_column is not None else np.arange(len(frame))
    known = _label_order(column_to_label, labels, path)
    rows = _read_rows(
        frame,
        path,
        positions,
        id_column,
        text_column,
        column_to_label,
        label_list_column,
        label_separator,
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
        items = _items_from_item_rows(rows, path)
        notes.append("aggregate labels only: vote fractions are gold 0/1")
    else:
        items, repeated = _items_from_ratings(rows, path, gold_threshold)
        if repeated:
            notes.append(f"{repeated} repeated (item, annotator) rows: kept the first")
        notes.append(f"gold = labels chosen by at least {gold_threshold:g} of an item's annotators")
    if not items:
        raise DataError(str(path), None, f"no items for split {split!r}")

    options = {
        "id_column": id_column,
        "text_column": text_column,
        "label_columns": column_to_label or None,
        "label_list_column": label_list_column,
        "label_separator": label_separator,
        "annotator_column": annotator_column,
        "gold_threshold": gold_threshold,
        "split_column": split_column,
        "missing_labels": missing_labels,
    }
    info = {"files": [str(path)], "layout": "ratings" if annotator_column else "items", "options": options}
    return Dataset(dataset_name, label_set, to_canonical_split(split), items, notes, info)


def _number(value: float | str, option: str, source: Path) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(str(source), None, f"{option} must be a number, not {value!r}") from None


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


register(
    DatasetSpec(
        "table",
        load_table,
        "Generic CSV/TSV/JSONL/Parquet table: one row per item (aggregate) or per (item, annotator) rating",
    ),
    "generic",
)
