"""A generation run as the analyses read it: the one reader of a run folder
(:class:`~labeldist.runs.arrays.RunArrays`: arrays, chosen labels, answers, run.json), named
for legends, refused when it is not a generation run with records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from labeldist.errors import DataError
from labeldist.runs.arrays import RunArrays

# what the analyses take: the run folder's one reader, under the name the report's API gives it
RunView = RunArrays


def load_view(path: str | Path, name: str | None = None) -> RunArrays:
    """A generation run, read once (a clear error for anything else)."""
    path = Path(path)
    view = RunArrays.load(path, name, texts=True)  # names the folder when it is not a run
    if view.method.judges:
        raise DataError(str(path), None, f"is a {view.method} run: the analyses read the label slots of generated answers")
    if len(view) == 0:
        raise DataError(str(path), None, "has no records yet")
    return view


def load_views(paths: Sequence[str | Path], names: Sequence[str | None] | None = None) -> list[RunArrays]:
    """Several runs, named by folder (or ``names``); folders with the same name get their
    parent's too."""
    paths = [Path(p) for p in paths]
    given = list(names) if names is not None else [None] * len(paths)
    default = [p.name for p in paths]
    views = []
    for path, name, plain in zip(paths, given, default):
        if name is None:
            name = f"{path.parent.name}/{plain}" if default.count(plain) > 1 else plain
        views.append(load_view(path, name))
    return views
