"""``labeldist analyze``: the statistics of every analysis as JSON, and their figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from labeldist import atomic
from labeldist.report.analyses import analyze_runs
from labeldist.report.figures import analysis_figures, write_figures
from labeldist.runs.attention import compute_attention
from labeldist.runs.view import load_views

ANALYSES_FILE = "analyses.json"


def analyze(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    attention: bool = False,
    attention_items: int = 30,
    device: str | None = "cpu",
    progress: bool = False,
) -> tuple[dict, list[Path]]:
    """Write ``analyses.json`` and the figures (PNG + PDF) into ``out``; returns both."""
    out = Path(out)
    views = load_views(run_dirs)
    weights = compute_attention(views, attention_items, device, progress) if attention else None
    stats = analyze_runs(views, weights)
    figures = analysis_figures(views, stats, weights)
    paths = write_figures(figures, out)
    stats["figures"] = sorted({p.stem for p in paths})
    path = out / ANALYSES_FILE
    atomic.write_json(path, stats)
    return stats, [path, *paths]
