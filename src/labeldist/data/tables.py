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

import numpy as np

from labeldist.data.cells import plain, split_label_string
from labeldist.data.frames import items_from_frame, label_column_map
from labeldist.data.io import read_table, require_columns
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.schema import Dataset
from labeldist.data.splits import split_aliases, to_canonical_split
from labeldist.errors import DataError

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".parquet")


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
    if label_columns is not None and not len(label_columns):
        raise DataError(str(data_dir), None, "label_columns is empty")
    if split_column is not None:
        require_columns(frame, [split_column], path)
    positions = _rows_of_split(frame, path, split, split_column) if split_column is not None else None
    label_set, items, notes = items_from_frame(
        frame,
        path,
        positions=positions,
        id_column=id_column,
        text_column=text_column,
        label_columns=label_columns,
        label_list_column=label_list_column,
        separator=label_separator,
        labels=labels,
        annotator_column=annotator_column,
        gold_threshold=gold_threshold,
        missing_labels=missing_labels,
    )
    if not items:
        raise DataError(str(path), None, f"no items for split {split!r}")

    options = {
        "id_column": id_column,
        "text_column": text_column,
        "label_columns": label_column_map(label_columns) or None,
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


register(
    DatasetSpec(
        "table",
        load_table,
        "Generic CSV/TSV/JSONL/Parquet table: one row per item (aggregate) or per (item, annotator) rating",
    ),
    "generic",
)
