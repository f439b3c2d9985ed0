"""Running the suite: every unfinished cell's two runs and evaluation, finished cells skipped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from labeldist import atomic
from labeldist.workflows.suite.config import EVAL_ONLY_SETTINGS, RUN_SETTINGS, Suite, settings_digest
from labeldist.workflows.suite.encoder import encoder_spec, train_suite_encoder
from labeldist.workflows.suite.samples import Cell, SplitLoader, cells, check_sample, write_id_files
from labeldist.workflows.suite.tables import write_tables


def _run_config(suite: Suite, cell: Cell, split: str, ids: Path, *, calibration: bool = False):
    """The run of one cell's evaluation or calibration sample. Sampled answers and the marginal
    (``samples``, ``marginal``) are made for the evaluation run only: no estimator fits on them,
    and they cost 10-40 generation runs."""
    from labeldist.runs import RunConfig

    ds = cell.dataset
    settings = {**suite.run, **ds.run}
    run_settings = {k: v for k, v in settings.items() if k in RUN_SETTINGS and not (calibration and k in EVAL_ONLY_SETTINGS)}
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
        from labeldist.models.registry import make_backend, make_settings

        key = (config.model, config.chat, config.max_new_tokens)
        if key not in backends:
            backends.clear()  # one model in memory at a time
            options = {name: suite.run[name] for name in ("device", "dtype") if suite.run.get(name) is not None}
            backends[key] = make_backend(config, make_settings(config.backend, config.model, options), progress=progress)
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
            id_files[ds.id, suffix] = write_id_files(suite, ds, out, cap, splits, suffix)
        eval_ids, cal_ids = id_files[ds.id, suffix]
        n_eval = len(eval_ids.read_text(encoding="utf-8").split())
        n_cal = len(cal_ids.read_text(encoding="utf-8").split())
        eval_config = _run_config(suite, cell, ds.eval_split, eval_ids)
        cal_config = _run_config(suite, cell, ds.calibration_split, cal_ids, calibration=True)
        estimators = list(suite.estimators[cell.method])
        encoder_sha = None
        if "encoder" in estimators:
            if ds.id not in encoders:
                encoders[ds.id] = train_suite_encoder(suite, ds, out, log, splits)
            folder = encoders[ds.id]
            estimators[estimators.index("encoder")] = encoder_spec(folder)
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
        digest = settings_digest(settings)
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
        precision_check = int({**suite.run, **ds.run}.get("precision_check", 0))
        for config, folder in ((cal_config, cal_dir), (eval_config, eval_dir)):
            check_sample(folder, Path(config.ids))
            manifest = execute_run(
                config, folder, factory, batch_size=batch_size, progress=progress, precision_check=precision_check
            )
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
        atomic.write_json(cell_file, record)
        log(f"{cell.key}: done in {seconds:.0f} s")
        statuses.append({"cell": cell.key, "status": "computed", "seconds": seconds})
        write_tables(suite, out)
    table = write_tables(suite, out)
    table["statuses"] = statuses
    return table
