"""The suite's cells and their nested, seeded item samples (one id file per dataset and cap)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labeldist import atomic
from labeldist.errors import ConfigError
from labeldist.workflows.suite.config import Suite, SuiteDataset


class SplitLoader:
    """Each (dataset, split) of a suite loaded once per call: sampling, the encoder's training
    items and its validation items read the same splits."""

    def __init__(self) -> None:
        self._loaded: dict = {}

    def __call__(self, ds: SuiteDataset, split: str):
        from labeldist.data import load_dataset

        key = (ds.id, split)
        if key not in self._loaded:
            self._loaded[key] = load_dataset(ds.dataset, ds.data_dir, split, **ds.loader_options)
        return self._loaded[key]


def model_slug(model: str) -> str:
    """A folder name for a model alias, folder or hub id."""
    name = Path(model).name if ("/" in model or "\\" in model) else model
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"


def sample_ids(ids: Sequence[str], n: int | None, seed: str, *, from_end: bool = False) -> list[str]:
    """At most ``n`` ids: the first ``n`` of a seeded permutation (the last ``n`` with
    ``from_end``), in the split's order. Samples are nested, so a larger cap keeps every item
    of a smaller one and a resumed run only labels the new items."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    if from_end:
        order.reverse()
    chosen = set(order if n is None else order[:n])
    return [i for i in ids if i in chosen]


@dataclass
class Cell:
    """One (dataset, model, method) cell of the suite and its output folder."""

    dataset: SuiteDataset
    model: str
    method: str
    folder: Path

    @property
    def key(self) -> str:
        """``dataset/model-slug/method``, the cell's name."""
        return f"{self.dataset.id}/{model_slug(self.model)}/{self.method}"


def cells(suite: Suite, out: Path, only: Sequence[str] = (), models: Sequence[str] = ()) -> list[Cell]:
    """The suite's cells under ``out/cells``, restricted to the dataset ids ``only`` and to ``models`` when given."""
    chosen_models = list(models) or suite.models
    unknown = [d for d in only if d not in {ds.id for ds in suite.datasets}]
    if unknown:
        raise ConfigError(suite.source, None, f"no dataset with id {unknown[0]!r} in the suite")
    return [
        Cell(ds, model, method, out / "cells" / ds.id / model_slug(model) / method)
        for ds in suite.datasets
        if not only or ds.id in only
        for model in chosen_models
        for method in suite.methods
    ]


def sampled_ids(suite: Suite, ds: SuiteDataset, max_items: int | None, splits: SplitLoader) -> tuple[list[str], list[str]]:
    """The sampled eval and calibration ids of a dataset; ``max_items`` caps both further."""

    def cap(n: int | None) -> int | None:
        return n if max_items is None else min(n or max_items, max_items)

    eval_all = splits(ds, ds.eval_split).ids
    if ds.calibration_split == ds.eval_split:
        # one split for both: eval items from the front of one permutation, calibration items
        # from its back, so the two stay disjoint and nested whatever the caps
        if (ds.eval_items or len(eval_all)) + (ds.calibration_items or len(eval_all)) > len(eval_all):
            raise ConfigError(suite.source, f"dataset {ds.id}", "eval_items + calibration_items exceed the split")
        seed = f"{suite.sample_seed}:{ds.id}:{ds.eval_split}"
        return (
            sample_ids(eval_all, cap(ds.eval_items), seed),
            sample_ids(eval_all, cap(ds.calibration_items), seed, from_end=True),
        )
    cal_all = splits(ds, ds.calibration_split).ids
    return (
        sample_ids(eval_all, cap(ds.eval_items), f"{suite.sample_seed}:{ds.id}:eval"),
        sample_ids(cal_all, cap(ds.calibration_items), f"{suite.sample_seed}:{ds.id}:calibration"),
    )


def write_id_files(
    suite: Suite, ds: SuiteDataset, out: Path, max_items: int | None, splits: SplitLoader, suffix: str = ""
) -> tuple[Path, Path]:
    """Write the sampled eval and calibration ids of a dataset (rewritten only when they change);
    ``suffix`` names the files of a model's own cap."""
    folder = out / "ids"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for role, ids in zip(("eval", "calibration"), sampled_ids(suite, ds, max_items, splits)):
        path = folder / f"{ds.id}-{role}{suffix}.txt"
        text = "\n".join(ids) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic.write_text(path, text)
        paths.append(path)
    return paths[0], paths[1]


def check_sample(run_dir: Path, ids_file: Path) -> None:
    """A run folder may hold fewer items than the sample (it resumes), never others."""
    from labeldist.runs import RunStore

    store = RunStore(run_dir)
    if not store.exists():
        return
    extra = store.done_ids() - set(ids_file.read_text(encoding="utf-8").split())
    if extra:
        raise ConfigError(
            str(run_dir),
            None,
            f"holds {len(extra)} items outside the current sample (a smaller cap than before?): "
            "use another --out or the earlier caps",
        )
