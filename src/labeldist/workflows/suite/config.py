"""The suite file: its settings, datasets and models, read and checked (errors name the file and key)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from labeldist.errors import ConfigError
from labeldist.estimators.registry import SUITE_ESTIMATORS
from labeldist.prompts.methods import RunMethod

# made for a cell's evaluation run only (execute._run_config)
EVAL_ONLY_SETTINGS = ("samples", "temperature", "marginal", "marginal_tolerance", "marginal_nodes", "marginal_batch")

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
    *EVAL_ONLY_SETTINGS,
)


# how a run is computed, not what it records (not part of a cell's identity); precision_check N:
# with a half-precision dtype, the first N items scored again in float32 (run.json "precision")
BACKEND_SETTINGS = ("batch_size", "device", "dtype", "precision_check")


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


def settings_digest(value) -> str:
    """A short SHA-256 of ``value`` as sorted JSON: what tells one cell's settings from another's."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
