"""Reading table cells the same way in every loader: lists of labels, 0/1 values, missing
values, and the numpy values Parquet hands back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from labeldist.data.io import literal
from labeldist.errors import DataError

# Spellings of "no value" in exported tables (R writes NA, pandas NaN); read as text because
# read_table turns NA guessing off so that real texts like "NA" survive in text columns.
MISSING_STRINGS = frozenset({"NA", "N/A", "NaN", "nan", "null"})


def plain(value: Any) -> Any:
    """Nested numpy arrays and scalars (as Parquet hands back lists and structs) as Python
    lists, dicts and scalars, so one code path serves CSV, JSON Lines and Parquet."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def is_missing(value: Any, *, empty_is_missing: bool) -> bool:
    """Whether a cell holds no value: None, NaN or a spelling such as ``NA``; blank text too when ``empty_is_missing``."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        text = value.strip()
        return text in MISSING_STRINGS or (empty_is_missing and not text)
    return False


def split_label_string(text: str, separator: str) -> list[str]:
    """``"Care, Purity"`` -> ``["Care", "Purity"]``; an empty string is no labels."""
    return [part.strip() for part in text.split(separator) if part.strip()]


def parse_label_list(value: Any, separator: str, path: Path, where: str) -> list[str]:
    """A cell holding a list of labels: a real list (JSON Lines, Parquet), a JSON or
    Python-literal list written as text, or a separator-joined string."""
    value = plain(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return split_label_string(text, separator)
        value = plain(literal(text, path, where))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(str(path), where, f"expected a list of label names, found {value!r}")
    return [v.strip() for v in value if v.strip()]


def binary_value(value: Any) -> bool | None:
    """A 0/1 cell as a bool (also 0.0/1.0 and true/false as written by other tools); None
    when the cell is anything else."""
    value = plain(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "1.0", "true"):
            return True
        if text in ("0", "0.0", "false"):
            return False
    return None
