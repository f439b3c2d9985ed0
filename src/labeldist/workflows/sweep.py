"""The multi-label demonstration sweep: one run per share of multi-label demonstrations.

``labeldist sweep --multilabel-share 0,0.2,...,1 [run options] --out runs/SWEEP`` makes
``runs/SWEEP/share-0``, ``runs/SWEEP/share-0.2``, ... with every run setting equal but
``multilabel_share`` (same items, same seed, same model), then summarises them in
``runs/SWEEP/sweep.json`` (the command line adds the figure ``runs/SWEEP/sweep.png`` / ``.pdf``
from ``report.figures``): the number of
labels per answer, slot-1 entropy and F1 against the share. Rerunning the command resumes
each run (the run store refuses a changed setting).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from labeldist import atomic
from labeldist.errors import DataError
from labeldist.metrics.summary import mean_interval, rounded
from labeldist.prompts.samplers import DEFAULT_SHARES  # noqa: F401  (the sweep's default, defined where the CLI reads it)
from labeldist.runs.view import load_view

SWEEP_FILE = "sweep.json"
F1_ESTIMATORS = ("output", "max")


def parse_shares(text: str) -> list[float]:
    """``"0,0.2,1"`` -> [0.0, 0.2, 1.0]: numbers in [0, 1], no repeats, in the order given."""
    shares = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--multilabel-share: {part!r} is not a number (expected e.g. 0,0.2,0.4)") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--multilabel-share: {value} is outside [0, 1]")
        if value in shares:
            raise ValueError(f"--multilabel-share: {value} is given twice")
        shares.append(value)
    if not shares:
        raise ValueError("--multilabel-share: no shares given (expected e.g. 0,0.2,0.4)")
    return shares


def share_folder(out: Path, share: float) -> Path:
    """The run folder of one share in the sweep folder ``out``: ``share-{share:g}``."""
    return Path(out) / f"share-{share:g}"


def run_sweep(shares: Sequence[float], out: str | Path, run_one: Callable[[float, Path], None]) -> dict:
    """Run ``run_one(share, folder)`` for every share, then summarise. The sweep file is written
    first, so a sweep that stops half-way still says what it was for."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [{"share": share, "run": share_folder(out, share).name} for share in shares]
    atomic.write_json(out / SWEEP_FILE, {"runs": runs})
    for share in shares:
        run_one(share, share_folder(out, share))
    return summarize_sweep(out)


def read_sweep(out: str | Path) -> list[tuple[float, Path]]:
    """(share, run folder) pairs listed in the sweep's sweep.json; a DataError if it is missing or malformed."""
    path = Path(out) / SWEEP_FILE
    if not path.exists():
        raise DataError(str(out), None, f"is not a sweep folder (no {SWEEP_FILE}; make one with `labeldist sweep`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [(float(r["share"]), Path(out) / r["run"]) for r in data["runs"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(str(path), None, f"not a sweep file: {err}") from None


def differing_settings(configs: Sequence[dict], allowed: Sequence[str] = ("multilabel_share",)) -> dict:
    """Settings (other than ``allowed``) whose value is not the same in every config."""
    keys = set().union(*configs) - set(allowed)
    return {
        k: [c.get(k) for c in configs] for k in sorted(keys) if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1
    }


def summarize_sweep(out: str | Path, n_resamples: int = 500) -> dict:
    """Per share: labels per answer, share of answers with 2+ labels, slot-1 entropy and F1
    (``output``: the written labels; ``max``: max over slots at 0.5), with 95% intervals.
    Writes ``sweep.json`` beside the runs (the figure is the report's: ``report.figures.sweep_figure``)."""
    from labeldist.evaluation import evaluate_run

    out = Path(out)
    entries = read_sweep(out)
    views = [load_view(path, f"share {share:g}") for share, path in entries]
    configs = [v.config for v in views]
    differing = differing_settings(configs)
    if differing:
        shown = "; ".join(f"{k}: {v}" for k, v in differing.items())
        raise DataError(str(out), None, f"the sweep's runs differ in more than the share ({shown})")
    ids = [tuple(v.ids) for v in views]
    rows = []
    for (share, path), view in zip(entries, views):
        counts = np.array([len(w) for w in view.written()], dtype=float)
        entropy = view.entropy()[:, 0]
        result = evaluate_run(path, list(F1_ESTIMATORS), n_resamples=n_resamples)
        rows.append(
            {
                "share": share,
                "run": path.name,
                "items": len(view),
                "multilabel_demonstrations": _multilabel_demonstrations(view),
                "labels_per_answer": mean_interval(counts),
                "answers_with_2plus": rounded((counts >= 2).mean()),
                "slot1_entropy": mean_interval(entropy),
                "f1": {
                    name: {"micro": result["estimators"][name]["micro_f1"], "macro": result["estimators"][name]["macro_f1"]}
                    for name in F1_ESTIMATORS
                },
            }
        )
    shared = {k: v for k, v in configs[0].items() if k != "multilabel_share"}
    summary = {
        "runs": [{"share": share, "run": path.name} for share, path in entries],
        "shared_config": shared,
        "same_items": all(i == ids[0] for i in ids),
        "by_share": rows,
    }
    atomic.write_json(out / SWEEP_FILE, summary)
    return summary


def sweep_title(config: dict) -> str:
    """A figure title for a sweep: model, dataset (grouping), split and demonstrations."""
    what = config.get("dataset", "")
    if config.get("grouping"):
        what += f" ({config['grouping']})"
    model = str(config.get("model", ""))
    model = Path(model).name if "/" in model else model  # a local folder: its name is enough in a title
    return f"{model} on {what} {config.get('split', '')}, {config.get('shots')} demonstrations"


def _multilabel_demonstrations(view) -> float | None:
    """Mean number of multi-label demonstrations in the prompts, counted from the demonstration
    pool's gold labels: the sampler's promise checked on the records."""
    from labeldist.runs.run import RunConfig, load_data
    from labeldist.runs.store import RunStore

    config = dict(view.config)
    known = set(RunConfig.__dataclass_fields__)
    try:
        _, pool = load_data(RunConfig(**{k: v for k, v in config.items() if k in known}))
    except (DataError, OSError, TypeError):
        return None  # the data moved since the run: the number is a check, not a result
    multi = {item.id for item in pool if len(item.gold) >= 2}
    demos = RunStore(view.path).read_table(["demonstration_ids"]).column("demonstration_ids").to_pylist()
    return rounded(np.mean([sum(d in multi for d in row) for row in demos])) if demos else None
