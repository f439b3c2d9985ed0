"""Split names: datasets call the development split dev, val, validation or valid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from labeldist.errors import DataError

# Canonical split name -> the names datasets use for it. Loaders record the canonical name.
SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "dev": ("dev", "val", "validation", "valid"),
    "test": ("test",),
}


def split_aliases(canonical: str) -> tuple[str, ...]:
    """The names a split may go by, canonical name first."""
    return SPLIT_NAMES.get(canonical, (canonical,))


def to_canonical_split(split: str) -> str:
    """``val`` -> ``dev`` etc.; a name outside :data:`SPLIT_NAMES` stays as given."""
    wanted = split.strip().lower()
    for canonical, names in SPLIT_NAMES.items():
        if wanted in names:
            return canonical
    return split.strip()


def canonical_split(split: str, source: str | Path, available: Sequence[str] = ("train", "dev", "test")) -> str:
    """The canonical name of ``split``, or a :class:`DataError` listing the available splits."""
    canonical = to_canonical_split(split)
    if canonical in available:
        return canonical
    shown = ", ".join(
        name if len(split_aliases(name)) == 1 else f"{name} (or {', '.join(split_aliases(name)[1:])})" for name in available
    )
    raise DataError(str(source), None, f"unknown split {split!r}; available: {shown}")
