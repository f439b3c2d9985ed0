"""A standing results table: a (dataset, model, method) grid of runs and evaluations, from one
YAML file, that resumes where it stopped.

Each cell labels a capped, seeded sample of the dataset's evaluation split and of its calibration
split (``execute_run``; demonstrations from ``pool_split``), then scores every estimator with
``evaluate_run`` calibrated on the calibration run (Platt, tuned thresholds, the constant prior
and the supervised estimators are fitted there, never on the evaluated items). A cell is
finished when both runs hold every sampled item and ``cell.json`` records an evaluation made
with the same settings (a hash of both runs' configs, the estimators, the threshold and the
bootstrap); a finished cell is skipped without loading a model. An interrupted run continues
from its last complete batch. The table (Markdown and JSON: dataset x estimator rows with MAMD,
BCE, Brier, Spearman and macro-F1, each with a 95% bootstrap interval, plus the oracle and
constant-prior rows) is rewritten from every finished cell after each cell.

The bare estimator ``encoder`` makes the suite fine-tune one small encoder per dataset
(``train_suite_encoder``: the pool split without any sampled evaluation or calibration item,
best epoch on the calibration sample), shared by every model's cell of that dataset.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labeldist.errors import ConfigError
from labeldist.estimators.registry import SUITE_ESTIMATORS
from labeldist.prompts.methods import RunMethod

TABLE_METRICS = ("mamd", "bce", "brier", "spearman", "macro_f1")
RUN_SETTINGS = (
    "shots",
    "seed",
    "sampler",
    "multilabel_share",
    "demonstrations",
    "answer_format",
    "template",
    "chat",
    "max_new_tokens",
    "save_hidden",
)
BACKEND_SETTINGS = ("batch_size", "device", "dtype")
DATASET_KEYS = (
    "id",
    "dataset",
    "data_dir",
    "eval_split",
    "calibration_split",
    "pool_split",
    "eval_items",
    "calibration_items",
    "options",
    "grouping",
    "task",
    "run",
)
SUITE_KEYS = (
    "name",
    "models",
    "methods",
    "estimators",
    "threshold",
    "resamples",
    "bootstrap_seed",
    "sample_seed",
    "run",
    "encoder",
    "datasets",
)
# the bare estimator `encoder` in a suite: one encoder per dataset, trained by the suite on the
# dataset's pool split (never on a sampled evaluation or calibration item), validated on the
# calibration sample; the same for every model of the grid
ENCODER_SETTINGS = {
    "train_items": 1000,
    "epochs": 3,
    "batch_size": 16,
    "learning_rate": 5e-5,
    "max_length": 128,
    "label_names": False,
    "seed": 0,
    "base": None,
}


@dataclass
class SuiteDataset:
    """One dataset of a suite: where to load it, its splits and sample caps, loader options and run overrides."""

    id: str
    dataset: str
    data_dir: str
    eval_split: str
    calibration_split: str
    pool_split: str = "train"
    eval_items: int | None = None
    calibration_items: int | None = None
    options: dict = field(default_factory=dict)
    grouping: str | None = None
    task: str | None = None
    run: dict = field(default_factory=dict)  # run settings that override the suite's for this dataset

    @property
    def loader_options(self) -> dict:
        """Keyword arguments for the loader: grouping, task and the dataset's options."""
        return {"grouping": self.grouping, "task": self.task, **self.options}


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


@dataclass
class Suite:
    """A suite file's content: the models, methods, estimators and datasets of the grid and the shared settings."""

    name: str
    models: list[str]
    methods: list[str]
    estimators: dict[str, list[str]]
    datasets: list[SuiteDataset]
    threshold: str = "0.5"
    resamples: int = 1000
    bootstrap_seed: int = 0
    sample_seed: int = 0
    run: dict = field(default_factory=dict)
    encoder: dict = field(default_factory=lambda: dict(ENCODER_SETTINGS))
    source: str = ""
    # models listed as {name: ..., max_items: N}: their samples capped at N per dataset (a large
    # model on a small machine); the samples are nested, so a capped model's items are the
    # first N of every other model's
    model_caps: dict[str, int] = field(default_factory=dict)

    @property
    def trains_encoder(self) -> bool:
        """Whether any method lists the bare ``encoder`` estimator, so one encoder is trained per dataset."""
        return any(spec == "encoder" for specs in self.estimators.values() for spec in specs)


def _models(entries: list, path: Path) -> tuple[list[str], dict[str, int]]:
    """``models``: names, or mappings ``{name: NAME, max_items: N}`` capping that model's samples."""
    names, caps = [], {}
    for position, entry in enumerate(entries):
        where = f"models[{position}]"
        if isinstance(entry, dict):
            unknown = [k for k in entry if k not in ("name", "max_items")]
            if unknown:
                raise ConfigError(str(path), f"{where} key {unknown[0]!r}", "unknown setting; known: name, max_items")
            if not entry.get("name"):
                raise ConfigError(str(path), where, "missing name")
            cap = entry.get("max_items")
            if cap is not None:
                if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
                    raise ConfigError(str(path), f"{where} key 'max_items'", f"must be a positive integer, not {cap!r}")
                caps[str(entry["name"])] = cap
            names.append(str(entry["name"]))
        elif isinstance(entry, str | int | float) and not isinstance(entry, bool) and str(entry).strip():
            names.append(str(entry))
        else:
            raise ConfigError(str(path), where, f"must be a model name or a mapping with name and max_items, not {entry!r}")
    repeated = [name for name in names if names.count(name) > 1]
    if repeated:
        raise ConfigError(str(path), "key 'models'", f"model {repeated[0]!r} is listed twice")
    return names, caps


def load_suite(path: str | Path) -> Suite:
    """The suite in a YAML file; relative ``data_dir`` paths are relative to the working
    directory (the repository root, as the commands are run). Errors name the file and key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), None, "suite file does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(str(path), None, f"invalid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), None, "expected a mapping with models, methods, datasets, ...")
    unknown = [k for k in raw if k not in SUITE_KEYS]
    if unknown:
        raise ConfigError(str(path), f"key {unknown[0]!r}", f"unknown setting; known: {', '.join(SUITE_KEYS)}")
    for key in ("models", "datasets"):
        if not isinstance(raw.get(key), list) or not raw[key]:
            raise ConfigError(str(path), f"key {key!r}", "must be a non-empty list")
    methods = raw.get("methods", [RunMethod.GENERATE.value])
    if not isinstance(methods, list) or not methods or any(m not in SUITE_ESTIMATORS for m in methods):
        raise ConfigError(str(path), "key 'methods'", f"must be a list of {', '.join(SUITE_ESTIMATORS)}")
    estimators = raw.get("estimators")
    if estimators is None:
        estimators = {m: SUITE_ESTIMATORS[m] for m in methods}
    elif isinstance(estimators, list):
        estimators = {
            RunMethod.GENERATE: [str(e) for e in estimators],
            **{m: SUITE_ESTIMATORS[m] for m in methods if m != RunMethod.GENERATE},
        }
    elif isinstance(estimators, dict):
        estimators = {m: [str(e) for e in estimators.get(m, SUITE_ESTIMATORS[m])] for m in methods}
    else:
        raise ConfigError(str(path), "key 'estimators'", "must be a list (generation runs) or a mapping method -> list")
    run = raw.get("run") or {}
    _check_run_settings(run, path, "run")
    encoder = raw.get("encoder") or {}
    if not isinstance(encoder, dict):
        raise ConfigError(str(path), "key 'encoder'", "must be a mapping of encoder training settings")
    unknown = [k for k in encoder if k not in ENCODER_SETTINGS]
    if unknown:
        raise ConfigError(str(path), f"encoder key {unknown[0]!r}", f"unknown setting; known: {', '.join(ENCODER_SETTINGS)}")
    for key in ("train_items", "epochs", "batch_size", "max_length"):
        value = encoder.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(str(path), f"encoder key {key!r}", f"must be a positive integer, not {value!r}")
    datasets = []
    seen: set[str] = set()
    for position, entry in enumerate(raw["datasets"]):
        where = f"datasets[{position}]"
        if not isinstance(entry, dict):
            raise ConfigError(str(path), where, "must be a mapping")
        unknown = [k for k in entry if k not in DATASET_KEYS]
        if unknown:
            raise ConfigError(str(path), f"{where} key {unknown[0]!r}", f"unknown setting; known: {', '.join(DATASET_KEYS)}")
        missing = [k for k in ("id", "dataset", "data_dir", "eval_split", "calibration_split") if not entry.get(k)]
        if missing:
            raise ConfigError(str(path), where, f"missing {', '.join(missing)}")
        if entry["id"] in seen:
            raise ConfigError(str(path), where, f"id {entry['id']!r} repeats")
        seen.add(entry["id"])
        for key in ("eval_items", "calibration_items"):
            value = entry.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(str(path), f"{where} key {key!r}", f"must be a positive integer, not {value!r}")
        _check_run_settings(entry.get("run") or {}, path, f"{where} run")
        datasets.append(SuiteDataset(**{k: entry[k] for k in DATASET_KEYS if k in entry and entry[k] is not None}))
    models, model_caps = _models(raw["models"], path)
    return Suite(
        name=str(raw.get("name", path.stem)),
        models=models,
        model_caps=model_caps,
        methods=list(methods),
        estimators=estimators,
        datasets=datasets,
        threshold=str(raw.get("threshold", "0.5")),
        resamples=int(raw.get("resamples", 1000)),
        bootstrap_seed=int(raw.get("bootstrap_seed", 0)),
        sample_seed=int(raw.get("sample_seed", 0)),
        run=dict(run),
        encoder={**ENCODER_SETTINGS, **encoder},
        source=str(path),
    )


def _check_run_settings(run: dict, path: Path, where: str) -> None:
    if not isinstance(run, dict):
        raise ConfigError(str(path), where, "must be a mapping of run settings")
    unknown = [k for k in run if k not in (*RUN_SETTINGS, *BACKEND_SETTINGS)]
    if unknown:
        raise ConfigError(
            str(path),
            f"{where} key {unknown[0]!r}",
            f"unknown run setting; known: {', '.join((*RUN_SETTINGS, *BACKEND_SETTINGS))}",
        )


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


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def _samples(suite: Suite, ds: SuiteDataset, max_items: int | None, splits: SplitLoader) -> tuple[list[str], list[str]]:
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


def _id_files(
    suite: Suite, ds: SuiteDataset, out: Path, max_items: int | None, splits: SplitLoader, suffix: str = ""
) -> tuple[Path, Path]:
    """Write the sampled eval and calibration ids of a dataset (rewritten only when they change);
    ``suffix`` names the files of a model's own cap."""
    folder = out / "ids"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for role, ids in zip(("eval", "calibration"), _samples(suite, ds, max_items, splits)):
        path = folder / f"{ds.id}-{role}{suffix}.txt"
        text = "\n".join(ids) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def train_suite_encoder(
    suite: Suite, ds: SuiteDataset, out: Path, log: Callable[[str], None] = print, splits: SplitLoader | None = None
) -> Path:
    """The dataset's encoder folder, trained now unless an earlier call trained it with the same
    items and settings. Training items: a seeded sample of ``pool_split`` without any item of
    the configured (uncapped) eval and calibration samples, so a quick ``--max-items`` pass and
    the full pass share one encoder; validation: the calibration sample (best epoch kept)."""
    from labeldist.estimators.encoder import MANIFEST, train_encoder

    splits = splits or SplitLoader()
    eval_ids, cal_ids = _samples(suite, ds, None, splits)
    held_out = set(eval_ids) | set(cal_ids)
    settings = suite.encoder
    pool = splits(ds, ds.pool_split)
    train_ids = sample_ids(
        [i for i in pool.ids if i not in held_out], settings["train_items"], f"{suite.sample_seed}:{ds.id}:encoder"
    )
    if not train_ids:
        problem = f"pool split {ds.pool_split} has no item left to train the encoder on"
        raise ConfigError(suite.source, f"dataset {ds.id}", problem)
    folder = out / "encoders" / ds.id
    identity = {
        "train_ids": train_ids,
        "validation_ids": cal_ids,
        "settings": settings,
        "dataset": ds.dataset,
        "data_dir": str(ds.data_dir),
        "pool_split": ds.pool_split,
        "common": ds.loader_options,
    }
    digest = _digest(identity)
    stamp = folder / "suite-encoder.json"
    if stamp.is_file() and (folder / MANIFEST).is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("sha") == digest:
        return folder
    train = pool.restrict(train_ids, source=f"{ds.id} encoder sample")
    validation = splits(ds, ds.calibration_split).restrict(cal_ids, source=f"{ds.id} calibration sample")
    log(f"{ds.id}: training the encoder on {len(train)} {ds.pool_split} items (validation: {len(validation)})")
    manifest = train_encoder(
        train,
        folder,
        validation=validation,
        encoder=settings["base"],
        label_names=bool(settings["label_names"]),
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        max_length=settings["max_length"],
        seed=settings["seed"],
        device=_encoder_device(suite.run.get("device")),
        source={"name": ds.dataset, "data_dir": str(ds.data_dir), "split": ds.pool_split, "suite": suite.source},
    )
    log(f"{ds.id}: encoder trained in {manifest['seconds']:.0f} s, kept epoch {manifest['kept_epoch']}")
    stamp.write_text(json.dumps({"sha": digest, "training_sha256": manifest["training_ids_sha256"]}) + "\n", encoding="utf-8")
    return folder


def _encoder_device(device: str | None) -> str:
    """The suite's run device for the encoder too ("auto": CUDA when there is one)."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def _encoder_spec(folder: Path) -> str:
    return f"encoder[model={folder}]"


def _check_sample(run_dir: Path, ids_file: Path) -> None:
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


def _run_config(suite: Suite, cell: Cell, split: str, ids: Path):
    from labeldist.runs import RunConfig

    ds = cell.dataset
    settings = {**suite.run, **ds.run}
    run_settings = {k: v for k, v in settings.items() if k in RUN_SETTINGS}
    return RunConfig(
        dataset=ds.dataset,
        data_dir=str(ds.data_dir),
        split=split,
        model=cell.model,
        grouping=ds.grouping,
        task=ds.task,
        ids=str(ids),
        options=dict(ds.options),
        pool_split=ds.pool_split,
        method=cell.method,
        **run_settings,
    )


def _complete(run_dir: Path, expected: int) -> bool:
    path = run_dir / "run.json"
    if not path.is_file():
        return False
    manifest = json.loads(path.read_text(encoding="utf-8"))
    counts = manifest.get("counts", {})
    return counts.get("items_recorded") == expected and not manifest.get("gaps")


def run_suite(
    suite: Suite,
    out: str | Path,
    *,
    only: Sequence[str] = (),
    models: Sequence[str] = (),
    max_items: int | None = None,
    backend_factory: Callable | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run every unfinished cell, then write the tables; returns the table JSON. ``max_items``
    caps every dataset's eval and calibration samples further (a quick pass; the samples are
    nested, so a later pass with larger caps reuses every labelled item)."""
    from labeldist.estimators import parse_estimator
    from labeldist.evaluation import evaluate_run, write_evaluation
    from labeldist.runs import execute_run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for specs in suite.estimators.values():
        for spec in specs:
            parse_estimator(spec)  # a typo fails before any model runs
    backends: dict = {}

    def default_backend(config):
        from labeldist.models.registry import BackendSettings, make_backend

        key = (config.model, config.chat, config.max_new_tokens)
        if key not in backends:
            backends.clear()  # one model in memory at a time
            settings = BackendSettings(device=suite.run.get("device", "auto"), dtype=suite.run.get("dtype"))
            backends[key] = make_backend(config, settings)
        return backends[key]

    factory = backend_factory or default_backend
    statuses = []
    id_files: dict[tuple[str, str], tuple[Path, Path]] = {}
    encoders: dict[str, Path] = {}
    splits = SplitLoader()
    for cell in cells(suite, out, only, models):
        ds = cell.dataset
        model_cap = suite.model_caps.get(cell.model)
        cap = model_cap if max_items is None else min(max_items, model_cap or max_items)
        suffix = f"-max{cap}" if model_cap is not None and cap != max_items else ""
        if (ds.id, suffix) not in id_files:
            id_files[ds.id, suffix] = _id_files(suite, ds, out, cap, splits, suffix)
        eval_ids, cal_ids = id_files[ds.id, suffix]
        n_eval = len(eval_ids.read_text(encoding="utf-8").split())
        n_cal = len(cal_ids.read_text(encoding="utf-8").split())
        eval_config = _run_config(suite, cell, ds.eval_split, eval_ids)
        cal_config = _run_config(suite, cell, ds.calibration_split, cal_ids)
        estimators = list(suite.estimators[cell.method])
        encoder_sha = None
        if "encoder" in estimators:
            if ds.id not in encoders:
                encoders[ds.id] = train_suite_encoder(suite, ds, out, log, splits)
            folder = encoders[ds.id]
            estimators[estimators.index("encoder")] = _encoder_spec(folder)
            encoder_sha = json.loads((folder / "suite-encoder.json").read_text(encoding="utf-8"))["sha"]
        settings = {
            "eval_run": eval_config.identity(),
            "calibration_run": cal_config.identity(),
            "ids": [eval_ids.read_text(encoding="utf-8"), cal_ids.read_text(encoding="utf-8")],
            "estimators": estimators,
            "threshold": suite.threshold,
            "resamples": suite.resamples,
            "bootstrap_seed": suite.bootstrap_seed,
        }
        if encoder_sha:
            settings["encoder"] = encoder_sha  # a retrained encoder re-evaluates the cell
        digest = _digest(settings)
        cell_file = cell.folder / "cell.json"
        eval_dir, cal_dir = cell.folder / "eval", cell.folder / "calibration"
        if cell_file.is_file():
            recorded = json.loads(cell_file.read_text(encoding="utf-8"))
            if recorded.get("settings_sha") == digest and _complete(eval_dir, n_eval) and _complete(cal_dir, n_cal):
                log(f"{cell.key}: finished earlier, skipped")
                statuses.append({"cell": cell.key, "status": "finished earlier", "seconds": recorded.get("seconds")})
                continue
        started = time.perf_counter()
        log(f"{cell.key}: {n_eval} eval items ({ds.eval_split}), {n_cal} calibration items ({ds.calibration_split})")
        batch_size = int({**suite.run, **ds.run}.get("batch_size", 8))
        for config, folder in ((cal_config, cal_dir), (eval_config, eval_dir)):
            _check_sample(folder, Path(config.ids))
            manifest = execute_run(config, folder, factory, batch_size=batch_size, progress=progress)
            if manifest.get("gaps"):
                raise RuntimeError(f"{folder}: {len(manifest['gaps'])} items not labelled; rerun the suite to retry")
        result = evaluate_run(
            eval_dir,
            estimators,
            calibrate_on=cal_dir,
            threshold=suite.threshold,
            n_resamples=suite.resamples,
            seed=suite.bootstrap_seed,
        )
        write_evaluation(result, eval_dir)
        seconds = round(time.perf_counter() - started, 1)
        run_seconds = {
            role: json.loads((folder / "run.json").read_text(encoding="utf-8"))["timings"]["seconds_total"]
            for role, folder in (("eval", eval_dir), ("calibration", cal_dir))
        }
        record = {
            "cell": cell.key,
            "dataset": ds.id,
            "model": cell.model,
            "method": cell.method,
            "settings_sha": digest,
            "seconds": seconds,
            "run_seconds_total": run_seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "evaluation": result,
        }
        cell.folder.mkdir(parents=True, exist_ok=True)
        cell_file.write_text(json.dumps(record, indent=2, default=float) + "\n", encoding="utf-8")
        log(f"{cell.key}: done in {seconds:.0f} s")
        statuses.append({"cell": cell.key, "status": "computed", "seconds": seconds})
        write_tables(suite, out)
    table = write_tables(suite, out)
    table["statuses"] = statuses
    return table


def table_rows(suite: Suite, out: Path) -> tuple[list[dict], list[dict]]:
    """(rows of every finished cell, per-cell summaries incl. unfinished cells)."""
    rows, summaries = [], []
    out = Path(out)
    listed = cells(suite, out)
    # cells of models given on the command line (--model) are in the table too
    for ds in suite.datasets:
        for method in suite.methods:
            for path in sorted((out / "cells" / ds.id).glob(f"*/{method}/cell.json")):
                model = json.loads(path.read_text(encoding="utf-8")).get("model", path.parent.parent.name)
                if not any(c.folder == path.parent for c in listed):
                    listed.append(Cell(ds, model, method, path.parent))
    order = {ds.id: i for i, ds in enumerate(suite.datasets)}
    listed.sort(key=lambda c: (order[c.dataset.id], c.model, c.method))
    for cell in listed:
        path = cell.folder / "cell.json"
        if not path.is_file():
            summaries.append({"cell": cell.key, "finished": False})
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        result = record["evaluation"]
        summaries.append(
            {
                "cell": cell.key,
                "finished": True,
                "seconds": record["seconds"],
                "items": result["items"],
                "run_seconds_total": record.get("run_seconds_total"),
            }
        )
        for name, row in result["estimators"].items():
            if name.startswith("encoder[model=") and Path(name[len("encoder[model=") : -1]).parent.name == "encoders":
                name = "encoder"  # the suite's own per-dataset encoder
            # Spearman is undefined on an item whose votes (or probabilities) are all equal, so the
            # mean runs over fewer items than the other columns; the table says over how many
            spearman_items = result["items"] - int(row.get("spearman_skipped") or 0)
            rows.append(
                {
                    "dataset": cell.dataset.id,
                    "model": cell.model,
                    "method": cell.method,
                    "estimator": name,
                    "items": result["items"],
                    "spearman_items": spearman_items,
                    **{m: row.get(m) for m in TABLE_METRICS},
                }
            )
    return rows, summaries


def _seconds(value) -> str:
    return "n/a" if value is None else f"{float(value):.0f}"


def write_tables(suite: Suite, out: str | Path) -> dict:
    """``table.md`` and ``table.json`` in ``out`` from every finished cell."""
    from labeldist.evaluation import format_rows

    out = Path(out)
    rows, summaries = table_rows(suite, out)
    finished = sum(s["finished"] for s in summaries)
    lines = [
        f"Suite `{suite.name}` ({suite.source}): {finished} of {len(summaries)} cells finished. "
        f"Threshold {suite.threshold}; 95% bootstrap intervals over items ({suite.resamples} resamples).",
        "",
        format_rows(rows, ("dataset", "model", "method", "estimator", "items", "spearman_items"), TABLE_METRICS, style="markdown")
        if rows
        else "(no finished cells)",
        "",
        "`spearman_items`: the items where per-item Spearman is defined (neither the probabilities nor the vote "
        "fractions all equal); n/a where no item has two labels that differ (binary sets).",
    ]
    timed = [s for s in summaries if s["finished"]]
    if timed:
        lines += ["", "| cell | evaluated items | calibration run s | evaluated run s | cell s |", "|---|---|---|---|---|"]
        for s in timed:
            run_seconds = s.get("run_seconds_total") or {}
            lines.append(
                f"| {s['cell']} | {s['items']} | {_seconds(run_seconds.get('calibration'))} | "
                f"{_seconds(run_seconds.get('eval'))} | {_seconds(s['seconds'])} |"
            )
        total = sum(s["seconds"] or 0 for s in timed)
        lines += [
            "",
            f"Cell time in total: {total / 60:.1f} min. Run columns add up every attempt at that run "
            "(an earlier quick pass included); the cell column is the suite call that finished the "
            "cell, evaluation included.",
        ]
    unfinished = [s["cell"] for s in summaries if not s["finished"]]
    if unfinished:
        lines += ["", "Not finished: " + ", ".join(unfinished)]
    (out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = {"suite": suite.name, "source": suite.source, "metrics": list(TABLE_METRICS), "cells": summaries, "rows": rows}
    (out / "table.json").write_text(json.dumps(table, indent=2, default=float) + "\n", encoding="utf-8")
    return table
