"""Reading files with errors that name the file, the line and the problem."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labeldist.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def require_file(path: Path, what: str = "file") -> Path:
    """Return ``path`` if it is an existing file, else raise a DataError saying that ``what`` does not exist."""
    if not path.is_file():
        raise DataError(str(path), None, f"{what} does not exist")
    return path


def not_utf8(path: Path, err: UnicodeDecodeError) -> DataError:
    """The DataError for a file that is not UTF-8: names the file, the line and the byte."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
        start = err.start
    except UnicodeDecodeError as found:  # the error's offset may be within a chunk: find it in the file
        start = found.start
    line = data[:start].count(b"\n") + 1
    return DataError(str(path), line, f"not UTF-8 text (byte 0x{data[start]:02x} at offset {start}: {err.reason})")


@contextmanager
def utf8_errors(path: Path) -> Iterator[None]:
    """Turn a UnicodeDecodeError inside the block into the DataError naming ``path`` and the line."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file; a missing, non-UTF-8 or invalid file is a DataError naming it (and the line)."""
    require_file(path)
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(str(path), err.lineno, f"invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def read_table(path: Path, **read_options) -> pd.DataFrame:
    """CSV/TSV, JSON Lines or Parquet by extension; every column read as given (no NA guessing
    for CSV text: ``keep_default_na=False`` unless overridden), errors as :class:`DataError`."""
    import pandas as pd  # here, not at the top: `labeldist --help` imports this module and not pandas

    require_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path)
        if suffix in (".csv", ".tsv", ".txt"):
            options = {"dtype": str, "keep_default_na": False}
            if suffix == ".tsv":
                options["sep"] = "\t"
            options.update(read_options)
            # checked first, with the csv module: a byte that is not UTF-8 is named as such (and
            # its line), not as the field-count error that pandas' tokenizer would make of it
            _check_field_counts(path, options.get("sep", ","))
            return pd.read_csv(path, **options)
    except pd.errors.ParserError as err:
        # pandas says "Error tokenizing data. C error: Expected 3 fields in line 7, saw 4"
        raise DataError(str(path), None, f"malformed row: {' '.join(str(err).split())}") from None
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    except (OSError, ValueError) as err:
        raise DataError(str(path), None, f"cannot read: {err}") from None
    raise DataError(str(path), None, f"unsupported file type {suffix!r} (use .csv, .tsv, .jsonl or .parquet)")


def _check_field_counts(path: Path, sep: str) -> None:
    """Every record has the header's number of fields: a row cut short (a truncated file, a
    field dropped) would otherwise load with empty values in place of what is missing."""
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if row and len(row) != len(header):
                raise DataError(str(path), reader.line_num, f"expected {len(header)} fields (as the header), found {len(row)}")


def _read_jsonl(path: Path) -> pd.DataFrame:
    import pandas as pd

    rows = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(str(path), lineno, f"invalid JSON: {err.msg}") from None
            if not isinstance(row, dict):
                raise DataError(str(path), lineno, "each line must be a JSON object")
            rows.append(row)
    return pd.DataFrame(rows)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    """Raise a DataError naming the ``columns`` that ``frame`` (read from ``path``) lacks, and the columns it has."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(str(path), None, f"missing column(s) {', '.join(missing)} (found: {', '.join(map(str, frame.columns))})")


def literal(value: Any, path: Path, where: str | int) -> Any:
    """A nested field that may arrive as a Python-literal or JSON string (CSV exports of
    Hugging Face datasets write dicts and lists with ``repr``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise DataError(str(path), where, f"cannot parse nested field {text[:60]!r}") from None


def row_label(position: int) -> str:
    """How errors point at a data row of a table: ``row N`` counts data rows from 1 after the
    header (file line numbers are unreliable once quoted fields hold newlines)."""
    return f"row {position + 1}"
