"""Atomic writes: every file labeldist writes appears whole or not at all.

A file is written beside its target under a hidden temporary name, flushed to disk, and renamed
over the target (``os.replace``, atomic on POSIX file systems), so a full disk, a kill or a
crash mid-write leaves the previous version (or nothing), never a truncated file. JSON is
written strictly: NaN and infinities become ``null`` (a NaN token is not JSON).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (any writer: savefig, torch.save, to_csv);
    renamed over ``path`` when the block ends without an error, removed otherwise."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if tmp.exists():
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None:  # writers such as Arrow's say what failed, not where: name the file
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def json_ready(value):
    """``value`` with every NaN or infinite float replaced by None, numpy scalars and arrays as
    Python numbers and lists, so that it can be written as strict JSON."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars and arrays
        return json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, value, *, indent: int | None = 2, ensure_ascii: bool = True) -> Path:
    """``value`` as strict JSON (NaN -> null) in ``path``, written atomically, with a final newline."""
    text = json.dumps(json_ready(value), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False, default=str)
    return write_text(path, text + "\n")
