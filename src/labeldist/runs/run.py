"""Run a model over a dataset split and store every item's per-slot label distributions.

Why one file: the run config, the one batch loop and the run's bookkeeping (resume checks,
precision check, counts and timings in run.json) are the run; each part is a function of its own.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from labeldist.data import Dataset, load_dataset
from labeldist.data.ids import read_id_list
from labeldist.errors import ConfigError, DataError
from labeldist.models.base import Backend
from labeldist.models.registry import refusal
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format
from labeldist.prompts.judgements import JudgementTemplate, build_judgement_prompts
from labeldist.prompts.methods import RunMethod, run_method
from labeldist.runs.arrays import answer_probabilities
from labeldist.runs.labelling import Labeller, LocalEngine
from labeldist.runs.store import RECORD_FORMAT, RunStore, manifest_method


@dataclass
class RunConfig:
    """Everything that decides a run's records. A resumed run must have the same config;
    ``batch_size`` and ``limit`` may change between attempts (they do not change records, but
    for float rounding: a batch of another shape sums in another order, about 1e-7 in float32)."""

    dataset: str
    data_dir: str | None  # None: a dataset given in memory (labeldist.run on a DataFrame's Dataset)
    split: str
    model: str
    grouping: str | None = None
    task: str | None = None
    ids: str | None = None
    options: dict = field(default_factory=dict)
    pool_split: str = "train"
    shots: int = 10
    seed: int = 0
    sampler: str = "random"
    multilabel_share: float | None = None
    demonstrations: str = "shared"  # or "per-item"
    answer_format: str = "json"
    template: str | None = None
    chat: bool | None = None
    max_new_tokens: int = 64
    save_hidden: bool = False
    method: str = RunMethod.GENERATE  # a RunMethod value
    samples: int = 0  # answers sampled per item beside the greedy one (estimator `sample`)
    temperature: float = 1.0  # of the sampled answers
    marginal: bool = False  # P(label in answer) over the trie of label sequences (estimator `marginal`)
    marginal_tolerance: float = 1e-3  # expand until the unexpanded mass is below this
    marginal_nodes: int = 200  # or this many nodes per item were expanded
    # nodes of an item expanded per model pass: when the node budget binds it decides which
    # nodes are expanded (a batch is taken before its children are known), so it is a setting of
    # the run, not of an attempt as the items per batch (batch_size) are
    marginal_batch: int = 8
    backend: str = "hf"  # a name in models.registry.BACKENDS
    backend_settings: dict | None = None  # the backend's settings that decide records (its settings' identity())

    def __post_init__(self) -> None:
        # the one place a run's settings are checked, whoever built them (the command line, a
        # --config file, labeldist.run(...), a suite cell, a sweep): one ConfigError naming the setting
        for name, problem in _problems(self):
            raise ConfigError("run config", name, problem)

    def identity(self) -> dict:
        """The config as stored and compared on resume (paths resolved, template by content)."""
        out = asdict(self)
        out["data_dir"] = str(Path(self.data_dir).resolve()) if self.data_dir is not None else None
        if self.ids:
            out["ids"] = str(Path(self.ids).resolve())
        if self.template:
            out["template_sha256"] = hashlib.sha256(Path(self.template).read_bytes()).hexdigest()
            out["template"] = str(Path(self.template).resolve())
        return out


def _whole(value, low: int) -> bool:
    """``value`` is an int (not a bool) of at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _real(value) -> bool:
    """``value`` is a number (int or float, not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problems(config: RunConfig):
    """(setting, what is wrong) for each setting of ``config`` that cannot be run, first problem first."""
    from labeldist.models.registry import BACKENDS
    from labeldist.prompts import ANSWER_FORMATS, SAMPLERS

    for name in ("dataset", "split", "model", "pool_split"):
        if not isinstance(getattr(config, name), str) or not getattr(config, name):
            yield name, f"must be a non-empty string, not {getattr(config, name)!r}"
    if not isinstance(config.options, dict):
        yield "options", f"must be a mapping of loader options, not {type(config.options).__name__}"
    if not _whole(config.shots, 0):
        yield "shots", f"must be a whole number of demonstrations, 0 or more, not {config.shots!r}"
    if not _whole(config.seed, -(2**63)):
        yield "seed", f"must be a whole number, not {config.seed!r}"
    if config.sampler not in SAMPLERS:
        yield "sampler", f"must be one of {', '.join(SAMPLERS)}, not {config.sampler!r}"
    share = config.multilabel_share
    if share is not None and not (_real(share) and 0 <= share <= 1):
        yield "multilabel_share", f"must be a share in [0, 1] (or None), not {share!r}"
    if config.demonstrations not in ("shared", "per-item"):
        yield "demonstrations", f"must be 'shared' or 'per-item', not {config.demonstrations!r}"
    if config.answer_format not in ANSWER_FORMATS:
        yield "answer_format", f"must be one of {', '.join(ANSWER_FORMATS)}, not {config.answer_format!r}"
    if config.chat not in (None, True, False):
        yield "chat", f"must be true, false or None (the model's default), not {config.chat!r}"
    if not _whole(config.max_new_tokens, 1):
        yield "max_new_tokens", f"must be a whole number, 1 or more, not {config.max_new_tokens!r}"
    if config.method not in tuple(RunMethod):
        yield "method", f"must be one of {', '.join(RunMethod)}, not {config.method!r}"
    elif run_method(config.method).judges:
        # what only generated answers have
        for name, value, what in (
            ("save_hidden", config.save_hidden, "records the first label slot of generated answers"),
            ("samples", config.samples, "draws generated answers"),
            ("marginal", config.marginal, "expands generated answers"),
        ):
            if value:
                yield name, f"{what}; the {config.method} method generates none"
    if not _whole(config.samples, 0):
        yield "samples", f"must be a whole number of sampled answers, 0 or more, not {config.samples!r}"
    if not (_real(config.temperature) and config.temperature > 0):
        yield "temperature", f"must be above 0, not {config.temperature!r}"
    tolerance = config.marginal_tolerance
    if not (_real(tolerance) and 0 < tolerance < 1):
        yield "marginal_tolerance", f"must be in (0, 1), not {tolerance!r}"
    if not _whole(config.marginal_nodes, 1):
        yield "marginal_nodes", f"must be a whole number, 1 or more, not {config.marginal_nodes!r}"
    if not _whole(config.marginal_batch, 1):
        yield "marginal_batch", f"must be a whole number, 1 or more, not {config.marginal_batch!r}"
    if config.backend not in BACKENDS:
        yield "backend", f"must be one of {', '.join(BACKENDS)}, not {config.backend!r}"


def check_attempt(batch_size: int, limit: int | None, precision_check: int) -> None:
    """The settings of one attempt at a run (they do not change its records): a ConfigError naming the bad one."""
    if not _whole(batch_size, 1):
        raise ConfigError("run config", "batch_size", f"must be a whole number, 1 or more, not {batch_size!r}")
    if limit is not None and not _whole(limit, 1):
        raise ConfigError("run config", "limit", f"must be a whole number of items, 1 or more (or None), not {limit!r}")
    if not _whole(precision_check, 0):
        raise ConfigError("run config", "precision_check", f"must be a whole number of items, 0 or more, not {precision_check!r}")


# settings added after the first runs were made, with the value those runs had
LEGACY_CONFIG = {
    "method": RunMethod.GENERATE.value,
    "backend": "hf",
    "backend_settings": None,
    "samples": 0,
    "temperature": 1.0,
    "marginal": False,
    "marginal_tolerance": 1e-3,
    "marginal_nodes": 200,
    # runs before it took the nodes of a pass from the items per batch, 8 unless --batch-size said
    # otherwise (an attempt's setting, not stored): 8 is what the default attempt did
    "marginal_batch": 8,
}


def upgrade_config(stored: dict) -> dict:
    """A stored run config in today's keys: settings added since it was made take the value it
    had (LEGACY_CONFIG), and a config from before the backend registry (``server``: the HTTP
    backend's settings, None for hf) names its backend."""
    stored = dict(stored)
    if "server" in stored:
        server = stored.pop("server")
        stored.setdefault("backend", "openai" if server else "hf")
        stored.setdefault("backend_settings", server)
    return {**LEGACY_CONFIG, **stored}


def package_versions() -> dict[str, str]:
    """Python, the platform and the installed versions of labeldist and its main libraries, for run.json."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("labeldist", "torch", "transformers", "tokenizers", "numpy", "pandas", "pyarrow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def load_data(config: RunConfig) -> tuple[Dataset, Dataset]:
    """The items to label and the demonstration pool (same grouping/task/options)."""
    _, dataset, pool = _load_split(config)
    return dataset, pool


def _load_split(config: RunConfig) -> tuple[Dataset, Dataset, Dataset]:
    """The whole split, its items to label (restricted to ``--ids``) and the demonstration pool,
    each file read once: the whole split is what a run's data digest covers."""
    common = {"grouping": config.grouping, "task": config.task, **config.options}
    whole = load_dataset(config.dataset, config.data_dir, config.split, **common)
    dataset = whole if config.ids is None else whole.restrict(read_id_list(config.ids), source=str(config.ids))
    pool = dataset if config.shots == 0 else load_dataset(config.dataset, config.data_dir, config.pool_split, **common)
    return whole, dataset, pool


def data_digest(dataset: Dataset, pool: Dataset) -> str:
    """SHA-256 of what a run reads: its split and the demonstration pool (ids, texts, votes, gold,
    labels). A resumed run must read the same data; where the folder lies does not matter."""
    digest = hashlib.sha256()
    for part in (dataset, pool):
        digest.update(json.dumps(list(part.labels)).encode())
        for item in part:
            votes = sorted((annotator, sorted(labels)) for annotator, labels in item.votes.items())
            digest.update(json.dumps([item.id, item.text, votes, sorted(item.gold)], ensure_ascii=False).encode())
    return digest.hexdigest()


def execute_run(
    config: RunConfig,
    out: str | Path,
    backend_factory: Callable[[RunConfig], Backend],
    *,
    batch_size: int = 8,
    limit: int | None = None,
    progress: bool = True,
    precision_check: int = 0,
    data: tuple[Dataset, Dataset] | None = None,
    engine=None,
) -> dict:
    """Label the items not yet recorded in ``out``; returns the updated manifest.

    ``precision_check``: with a model in half precision, score the first N items labelled now
    again in float32 and record the largest difference under ``precision`` in run.json.
    ``data``: the items to label and the demonstration pool, given in memory instead of loaded
    from ``config`` (whose ``data_dir`` is then None; resume compares the data's digest).
    ``engine``: None labels in this process; a :class:`labeldist.runs.ray_engine.RayChoice`
    spreads the batches over Ray workers, each loading the model once."""

    started = time.perf_counter()
    check_attempt(batch_size, limit, precision_check)
    if data is not None:
        dataset, pool = data
        whole = dataset
    else:
        whole, dataset, pool = _load_split(config)
    if not len(dataset):
        raise DataError(config.data_dir or config.dataset, None, f"split {config.split!r} has no items to label")
    store = RunStore(out)
    with store.lock():
        digest = data_digest(whole, whole if config.shots == 0 else pool)
        return _execute(
            config, store, dataset, pool, digest, backend_factory, batch_size, limit, progress, precision_check, started, engine
        )


def _execute(
    config, store, dataset, pool, digest, backend_factory, batch_size, limit, progress, precision_check, started, engine_choice
) -> dict:
    """execute_run's work, with the run folder locked; ``digest``: the data's (data_digest)."""
    out = store.path
    items = dataset.items if limit is None else dataset.items[:limit]
    fmt = get_answer_format(config.answer_format)
    fmt.check_labels(dataset.labels)
    template = _template(config)

    manifest_base = {
        "dataset": {
            "name": dataset.name,
            "split": dataset.split,
            "items": len(dataset),
            "notes": dataset.notes,
            "vote_source": dataset.vote_source,
        },
        "labels": list(dataset.labels),
        "versions": package_versions(),
        "record_format": RECORD_FORMAT,
    }
    judging = run_method(config.method).judges
    # refused before anything is written or loaded: what the backend cannot do
    why = refusal(
        config.backend,
        {
            "marginal": config.marginal,
            "samples": config.samples > 0,
            "hidden_states": config.save_hidden,
            "judgements": judging,
            "ray": engine_choice is not None,
        },
        config.backend_settings,
    )
    if why:
        raise ConfigError("labeldist run", None, why)
    # the digest is of the whole split (an --ids list may grow between attempts: the suite's
    # nested samples do) and the demonstration pool
    identity = {**config.identity(), "data_sha256": digest}
    manifest = store.open(identity, manifest_base, upgrade=upgrade_config)
    _fold_cut_off_attempt(manifest)
    manifest.get("precision", {}).pop("check", None)  # a check describes the attempt that made it
    done = store.done_ids()
    todo = [item for item in items if item.id not in done]
    recorded_format = manifest.get("record_format", 1)
    if todo and done and config.method == RunMethod.GENERATE and recorded_format != RECORD_FORMAT:
        # slot probabilities were defined otherwise then: finishing it would mix two definitions
        raise DataError(
            str(out),
            None,
            f"holds records in format {recorded_format}, this labeldist writes format {RECORD_FORMAT} "
            "(slot probabilities over every surface form); use another --out to run it again",
        )
    if not todo:
        return _finish(store, manifest, dataset, time.perf_counter() - started, 0, None)

    labeller = Labeller(
        config=config,
        labels=tuple(dataset.labels),
        fractions=dataset.vote_fractions(),
        has_votes=dataset.votes_available(),
        row_of={item.id: r for r, item in enumerate(dataset.items)},
        precision_check=precision_check,
    )
    prepared = time.perf_counter()
    # the prompts before the model: a sampler that cannot serve these settings (covering with
    # too few shots) fails at once, and before run.json is written, so the corrected command
    # is not refused as "a different config"
    sampler_options = {} if config.multilabel_share is None else {"multilabel_share": config.multilabel_share}
    todo_set = Dataset(dataset.name, dataset.labels, dataset.split, todo)
    prompts = _build_prompts(config, template, fmt, todo_set, pool, sampler_options)
    built = time.perf_counter()
    engine = start_engine(engine_choice, backend_factory, config)
    try:
        breakdown = {
            "data_seconds": prepared - started,
            "prompt_seconds": built - prepared,
            "load_seconds": time.perf_counter() - built,
        }
        # past its context a model writes garbage without failing: refused before anything is
        # written (a judgement is scored, not generated: no answer tokens beyond its own)
        too_long = engine.too_long(prompts, 0 if judging else config.max_new_tokens)
        if too_long:
            raise DataError(config.data_dir or config.dataset, None, too_long)
        manifest["model"] = engine.describe()
        _record_dtype(manifest)
        if judging:
            manifest["questions"] = _questions(config, template, dataset.labels)
        store.write_manifest(manifest)
        gaps: dict[str, str] = {}
        to_check: list[tuple] = []  # (prompt, answer after its prefix) of the first items labelled now
        run_started = time.perf_counter()

        def stored(labelled: int) -> None:
            # a run killed part way keeps what its stored batches cost (a run made over several
            # sittings is killed at each): this attempt as far as it got, rewritten after each
            # batch and counted among the attempts when the run is next opened
            now = time.perf_counter()
            manifest["attempt_in_progress"] = _attempt_entry(labelled, now - started, now - run_started)
            store.write_manifest(manifest)

        try:
            labelled = _label_in_batches(
                todo, prompts, len(items), batch_size, engine, labeller, store, progress, breakdown, gaps, to_check, stored
            )
        finally:
            manifest["gaps"] = gaps
            manifest["model"] = engine.describe()  # with what the backend learnt while running
            engine_summary = engine.summary()
        model_seconds = time.perf_counter() - run_started
        if to_check:
            checked = time.perf_counter()
            _check_precision(manifest, engine, to_check, dataset.labels, fmt, batch_size)
            breakdown["precision_check_seconds"] = time.perf_counter() - checked
    finally:
        engine.close()
    seconds = time.perf_counter() - started
    # judgement runs record no breakdown (their one stage is scoring)
    return _finish(store, manifest, dataset, seconds, labelled, model_seconds, None if judging else breakdown, engine_summary)


def start_engine(engine_choice, backend_factory: Callable, config: RunConfig):
    """The engine that labels the batches: this process with one backend (``engine_choice``
    None), or Ray workers each holding one (a :class:`labeldist.runs.ray_engine.RayChoice`)."""
    if engine_choice is None:
        return LocalEngine(backend_factory(config))
    from labeldist.runs.ray_engine import RayEngine

    return RayEngine(engine_choice, backend_factory, config)


def _template(config):
    """The run's template: the answers' (PromptTemplate), or the questions' of a unary / pairwise
    run (JudgementTemplate); from the --template file, else the default."""
    if run_method(config.method).judges:
        if config.template:
            return JudgementTemplate.from_yaml(config.template, config.method)
        return JudgementTemplate.default(config.method)
    return PromptTemplate.from_yaml(config.template) if config.template else PromptTemplate()


def _build_prompts(config, template, fmt, todo_set, pool, sampler_options):
    """The prompts of the items to label: answers to generate, or (with a JudgementTemplate)
    questions to judge."""
    common = {
        "seed": config.seed,
        "sampler_options": sampler_options,
        "shared_demonstrations": config.demonstrations == "shared",
    }
    if run_method(config.method).judges:
        return build_judgement_prompts(todo_set, pool, template, config.sampler, config.shots, **common)
    return build_prompts(todo_set, pool, template, fmt, config.sampler, config.shots, **common)


def _questions(config, template, labels) -> dict:
    """run.json's ``questions`` of a unary / pairwise run: the candidates, pairs and answers asked."""
    return {
        "method": config.method,
        "candidates": template.candidates(labels),
        "pairs": template.pairs(labels) if config.method == RunMethod.PAIRWISE else None,
        "answers": list(template.answers),
    }


def _record_dtype(manifest: dict) -> None:
    """Every dtype the run's records were made in; exact only when all are float32."""
    precision = manifest.setdefault("precision", {})
    dtype = manifest["model"].get("dtype")
    if manifest["model"].get("quantization"):
        dtype = f"{dtype} ({manifest['model']['quantization']} weights)"
    dtypes = precision.setdefault("dtypes", [])
    if dtype and dtype not in dtypes:
        dtypes.append(dtype)
    # an HTTP backend's numbers are bounded by coverage instead (its server's dtype is unknown)
    precision["exact_dtype"] = bool(dtypes) and all(d in ("float32", "float64") for d in dtypes)


def _check_precision(manifest, backend, to_check, labels, fmt, batch_size) -> None:
    results = []
    for start in range(0, len(to_check), batch_size):
        chunk = to_check[start : start + batch_size]
        results.append(backend.precision_check([p for p, _ in chunk], labels, fmt, [a for _, a in chunk]))
    done = [r for r in results if not r.get("skipped")]
    if not done:
        manifest["precision"]["check"] = results[0]
        return
    slots = sum(r["slots"] for r in done)
    manifest["precision"]["check"] = {
        "items": sum(r["items"] for r in done),
        "dtype": done[0]["dtype"],
        "slots": slots,
        "max_abs_label_prob_diff": max(r["max_abs_label_prob_diff"] for r in done),
        # weighted by slots, as each chunk's mean is over its slots' labels
        "mean_abs_label_prob_diff": sum(r["mean_abs_label_prob_diff"] * r["slots"] for r in done) / max(slots, 1),
        "max_abs_stop_prob_diff": max(r["max_abs_stop_prob_diff"] for r in done),
        "max_abs_logprob_diff": max(r["max_abs_logprob_diff"] for r in done),
        "answers_differing_in_float32": sum(r["answers_differing_in_float32"] for r in done),
        "seconds": round(sum(r["seconds"] for r in done), 3),
    }
    if done[0].get("reference"):  # what the float32 numbers came from, where not the run's own model
        manifest["precision"]["check"]["reference"] = done[0]["reference"]


def _label_in_batches(
    todo, prompts, total, batch_size, engine, labeller, store, progress, breakdown, gaps, to_check, stored
) -> int:
    """The one batch loop of every method and engine: the items to label cut into batches of
    ``batch_size``, each labelled and stored as one part by the engine (a killed run loses at
    most the batches in flight), the progress bar moved on as each is stored. Gaps, timings and
    precision-check pairs are gathered into ``gaps``, ``breakdown`` and ``to_check``; ``stored``
    is called with the records written so far after each batch. Returns the number of records
    written."""
    from tqdm import tqdm

    batches = [
        (todo[start : start + batch_size], prompts[start : start + batch_size]) for start in range(0, len(todo), batch_size)
    ]
    labelled = 0
    bar = tqdm(total=total, initial=total - len(todo), unit="item", disable=not progress, dynamic_ncols=True)
    try:
        for outcome in engine.run(batches, labeller, store.path):
            gaps.update(outcome.gaps)
            for key, seconds in outcome.timings.items():
                breakdown[key] = breakdown.get(key, 0.0) + seconds
            to_check.extend(outcome.checks[: labeller.precision_check - len(to_check)])  # the first N items
            labelled += len(outcome.ids)
            bar.update(len(outcome.ids) + len(outcome.gaps))
            stored(labelled)
    finally:
        bar.close()
    return labelled


def _judgement_counts(store: RunStore, manifest: dict) -> dict:
    questions = manifest.get("questions") or {}
    table = store.read_table(["answer_logprobs"]).column("answer_logprobs").to_pylist()
    rows = [np.asarray(r, dtype=float).reshape(-1, 2) for r in table if r is not None]
    if not rows:
        return {}
    positive, mass = answer_probabilities(np.stack(rows))
    out = {"answer_mass_mean": round(float(mass.mean()), 4)}
    if questions.get("method") == RunMethod.PAIRWISE:
        # how often "a" (the first-named label) wins, whatever the pair: 0.5 without position bias
        out["position_bias_a"] = round(float(positive.mean()), 4)
        out["position_bias_a_hard"] = round(float((positive > 0.5).mean()), 4)
    else:
        out["positive_share"] = round(float(positive.mean()), 4)
    return out


def _finish(
    store: RunStore, manifest: dict, dataset: Dataset, seconds: float, labelled: int, model_seconds, breakdown=None, engine=None
) -> dict:
    duplicates = store.drop_duplicates()
    records = store.read()
    if manifest_method(manifest) == RunMethod.GENERATE:
        counts = {
            "items_recorded": int(len(records)),
            "items_in_split": len(dataset),
            "unparseable_answers": int((~records["parsed"].astype(bool)).sum()) if len(records) else 0,
            "incomplete_answers": int((~records["complete"].astype(bool)).sum()) if len(records) else 0,
            "unfinished_answers": int((~records["finished"].astype(bool)).sum()) if len(records) else 0,
            "answers_with_unknown_labels": int(records["unknown"].map(len).gt(0).sum()) if len(records) else 0,
            # "[]" / "none" as written (complete, nothing in it), apart from answers whose
            # elements named no known label (["happiness"]) or that could not be read
            "empty_answers": int(_explicitly_empty(records).sum()) if len(records) else 0,
            "answers_without_known_labels": int(records["labels"].map(len).eq(0).sum()) if len(records) else 0,
        }
    else:
        counts = {"items_recorded": int(len(records)), "items_in_split": len(dataset)}
    if manifest_method(manifest).judges and len(records):
        counts.update(_judgement_counts(store, manifest))
    manifest.pop("attempt_in_progress", None)  # this attempt's entry, as far as it had got, is replaced by the whole
    attempts = manifest.setdefault("attempts", [])
    attempt = _attempt_entry(labelled, seconds, model_seconds)
    if engine and engine.get("name") != "local":
        attempt["engine"] = engine
    if duplicates:
        attempt["duplicate_records_dropped"] = duplicates
    if labelled and manifest.get("model", {}).get("prune_tolerance") is not None:
        # the tolerance may change between attempts; each record's slot bounds hold either way
        attempt["prune_tolerance"] = manifest["model"]["prune_tolerance"]
    if breakdown:
        # where the attempt's time went: reading data, loading the model, building prompts, the
        # model's decoding and slot scoring (Generation.timings), writing records, the check
        attempt["breakdown"] = {k: round(v, 3) for k, v in breakdown.items()}
    attempts.append(attempt)
    manifest["counts"] = counts
    manifest["timings"] = _timings(attempts)
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store.write_manifest(manifest)
    return manifest


def _attempt_entry(labelled: int, seconds: float, model_seconds: float | None) -> dict:
    """run.json's entry for one attempt: items labelled, its seconds, and its model's."""
    attempt = {"items_labelled": labelled, "seconds": round(seconds, 3)}
    if model_seconds:
        attempt["model_seconds"] = round(model_seconds, 3)
        attempt["items_per_second"] = round(labelled / model_seconds, 4) if model_seconds > 0 else None
    return attempt


def _timings(attempts: list[dict]) -> dict:
    return {
        "seconds_total": round(sum(a["seconds"] for a in attempts), 3),
        "model_seconds_total": round(sum(a.get("model_seconds", 0) for a in attempts), 3),
    }


def _fold_cut_off_attempt(manifest: dict) -> None:
    """An attempt killed part way left its entry as far as its last stored batch: it becomes one
    of the attempts, marked ``cut_off``, and the totals count it (the time after that batch, the
    work lost with the kill, is not counted)."""
    cut = manifest.pop("attempt_in_progress", None)
    if cut:
        manifest.setdefault("attempts", []).append({**cut, "cut_off": True})
        manifest["timings"] = _timings(manifest["attempts"])


def _explicitly_empty(records) -> np.ndarray:
    parsed = records["parsed"].astype(bool) & records["complete"].astype(bool)
    return (parsed & records["labels"].map(len).eq(0) & records["unknown"].map(len).eq(0)).to_numpy()
