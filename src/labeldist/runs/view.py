"""A generation run as the analyses read it: its arrays plus what the arrays leave out (the label
chosen at each slot, the answers, the manifest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeldist.errors import DataError
from labeldist.runs.arrays import RunArrays
from labeldist.runs.store import RunStore
from labeldist.slots.locate import STOP


@dataclass
class RunView:
    """One generation run as the analyses read it."""

    name: str  # shown in legends and tables
    path: Path
    manifest: dict
    arrays: RunArrays
    chosen: list[list[str | None]]  # per item, the label (or STOP, or None: unknown) at each slot
    answers: list[str]

    @property
    def labels(self) -> tuple[str, ...]:
        """The run's labels, in order."""
        return self.arrays.labels

    @property
    def config(self) -> dict:
        """The run's config from run.json ({} if absent)."""
        return self.manifest.get("config", {})

    def written(self) -> list[list[str]]:
        """Each answer's distinct known labels in the order first written."""
        out = []
        for slots in self.chosen:
            seen: list[str] = []
            for label in slots:
                if label is not None and label != STOP and label not in seen:
                    seen.append(label)
            out.append(seen)
        return out

    def entropy(self) -> np.ndarray:
        """Items x slots entropy (nats) of label + stop probabilities renormalised; NaN past an
        item's last slot."""
        p = np.concatenate([self.arrays.slot_probs, self.arrays.stop[..., None]], axis=-1)
        total = p.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = p / total
            terms = np.where(q > 0, -q * np.log(q), 0.0)
        h = terms.sum(axis=-1)
        h[~np.isfinite(total[..., 0]) | (total[..., 0] <= 0)] = np.nan
        return h


def load_view(path: str | Path, name: str | None = None) -> RunView:
    """A generation run as a :class:`RunView`; a clear error for anything else."""
    path = Path(path)
    arrays = RunArrays.load(path)  # names the folder when it is not a run; reads run.json once
    if arrays.method.judges:
        raise DataError(str(path), None, f"is a {arrays.method} run: the analyses read the label slots of generated answers")
    manifest = arrays.manifest
    store = RunStore(path)
    if len(arrays) == 0:
        raise DataError(str(path), None, "has no records yet")
    table = store.read_table(["slots", "answer"])
    slots = table.column("slots").combine_chunks()
    chosen_flat = slots.flatten().field("chosen").to_pylist()
    chosen, start = [], 0
    for n in arrays.n_slots:
        chosen.append(chosen_flat[start : start + int(n)])
        start += int(n)
    return RunView(name or path.name, path, manifest, arrays, chosen, table.column("answer").to_pylist())


def load_views(paths: Sequence[str | Path], names: Sequence[str | None] | None = None) -> list[RunView]:
    """Views of several runs, named by folder (or ``names``); folders with the same name get
    their parent's too."""
    paths = [Path(p) for p in paths]
    given = list(names) if names is not None else [None] * len(paths)
    default = [p.name for p in paths]
    views = []
    for path, name, plain in zip(paths, given, default):
        if name is None:
            name = f"{path.parent.name}/{plain}" if default.count(plain) > 1 else plain
        views.append(load_view(path, name))
    return views
