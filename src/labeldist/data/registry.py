"""Dataset names -> loaders, and the one entry point :func:`load_dataset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labeldist.data.groupings import resolve_grouping
from labeldist.data.ids import read_id_list
from labeldist.data.schema import Dataset
from labeldist.errors import DataError

Loader = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's registry entry: name, loader, description, and the named groupings and tasks it knows."""

    name: str
    loader: Loader
    description: str
    # names of --grouping values this dataset knows besides a JSON file path
    groupings: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    def options(self) -> dict[str, object]:
        """The loader's options (``--option KEY=VALUE``, ``options=`` in Python) and their defaults
        (``task`` and ``grouping`` have options of their own); empty if it takes any keyword."""
        import inspect

        parameters = inspect.signature(self.loader).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return {}
        return {
            name: p.default
            for name, p in list(parameters.items())[2:]
            if p.kind is not inspect.Parameter.VAR_POSITIONAL and name not in ("task", "grouping")
        }


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec, *aliases: str) -> None:
    """Register ``spec`` under its name and each of ``aliases`` (case-insensitive)."""
    for key in (spec.name, *aliases):
        _REGISTRY[key.lower()] = spec


def dataset_names() -> list[str]:
    """The registered dataset names, sorted, without aliases (imports the loader modules first)."""
    _ensure_loaded()
    return sorted({spec.name for spec in _REGISTRY.values()})


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name`` or an alias of it (any case); a DataError listing the known names otherwise."""
    _ensure_loaded()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise DataError(name, None, f"unknown dataset; known: {', '.join(dataset_names())}") from None


def load_dataset(
    name: str,
    data_dir: str | Path,
    split: str,
    *,
    grouping: str | None = None,
    task: str | None = None,
    ids: str | Path | None = None,
    **options,
) -> Dataset:
    """Load one split of a dataset, optionally grouped and restricted to an id list.

    ``split`` may join splits with ``+`` (``dev+test``): the paper's MFRC id list spans both.
    ``options`` go to the dataset's loader (e.g. ``raw_dir`` for GoEmotions, ``fold_rare``
    for HateXplain targets, column names for the generic table loader).
    """
    spec = get_spec(name)
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise DataError(str(data_dir), None, "data directory or file does not exist")
    if task is not None:
        if spec.tasks and task not in spec.tasks:
            raise DataError(spec.name, None, f"unknown task {task!r}; known: {', '.join(spec.tasks)}")
        if not spec.tasks:
            raise DataError(spec.name, None, f"has no tasks, but --task {task} was given")
        options["task"] = task
    _check_options(spec, options)
    parts = [part.strip() for part in split.split("+")]
    try:
        loaded = [spec.loader(data_dir, part, **options) for part in parts]
    except TypeError as err:  # an option a loader passes on (**options) and its callee does not take
        if "unexpected keyword argument" not in str(err):
            raise
        raise DataError(spec.name, None, f"unknown loader option (--option): {str(err).split(': ', 1)[-1]}") from None
    dataset = _concatenate(loaded)
    if grouping:
        groups = resolve_grouping(spec.name, grouping, data_dir)
        dataset = dataset.grouped(groups, grouping)
    if ids is not None:
        dataset = dataset.restrict(read_id_list(ids), source=str(ids))
    return dataset


def _check_options(spec, options: dict) -> None:
    """Loader options the loader does not take are one error naming them and the known ones."""
    import inspect

    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(spec.loader).parameters.values()):
        return
    known = [*spec.options(), "task", "grouping"]
    unknown = [key for key in options if key not in known]
    if unknown:
        shown = ", ".join(spec.options()) or "none"
        raise DataError(spec.name, None, f"unknown loader option {unknown[0]!r} (--option); its options: {shown}")


def _concatenate(parts: list[Dataset]) -> Dataset:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for part in parts[1:]:
        if part.labels != first.labels:
            raise DataError(first.name, None, f"splits {first.split} and {part.split} have different label sets")
    items = [item for part in parts for item in part.items]
    seen: set[str] = set()
    for part in parts:
        for item in part.items:
            if item.id in seen:
                raise DataError(first.name, f"item {item.id}", "id occurs in more than one of the joined splits")
            seen.add(item.id)
    notes = [f"{part.split}: {note}" for part in parts for note in part.notes]
    info = dict(first.info, files=[f for part in parts for f in part.info.get("files", [])])
    return Dataset(first.name, first.labels, "+".join(p.split for p in parts), items, notes, info)


_loaded = False


def _ensure_loaded() -> None:
    # Importing the loader modules registers them; done lazily so that importing
    # labeldist.data stays cheap and free of import cycles.
    global _loaded
    if _loaded:
        return
    _loaded = True
    from labeldist.data import (  # noqa: F401
        convabuse,
        goemotions,
        hatexplain,
        lewidi,
        mfrc,
        semeval,
        tables,
        told_br,
        tweet_sensitivity,
        varierr,
    )
