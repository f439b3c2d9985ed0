"""Id lists: one id per line (the paper's ``main_test_set.txt`` files)."""

from __future__ import annotations

from pathlib import Path

from labeldist.data.io import utf8_errors
from labeldist.errors import DataError


def read_id_list(path: str | Path) -> list[str]:
    """Ids in file order; blank lines and ``#`` comments are skipped, whitespace stripped."""
    path = Path(path)
    try:
        with utf8_errors(path):
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(str(path), None, "id list file does not exist") from None
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line)
    if not ids:
        raise DataError(str(path), None, "id list is empty")
    return ids
