"""``labeldist evaluate`` and ``compare``: estimators x metrics for a run, and runs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import click

from labeldist.cli.main import cli

# terminal tables wrap their metric columns to this width (--wide: one line per row)
TABLE_WIDTH = 100


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--estimators",
    default=None,
    help="Comma list of NAME[key=value,...]@SOURCE: first, max, mean, noisy-or, output, unary, pairwise, platt, "
    "platt-shared, probe (hidden states; fitted on --calibrate-on), encoder[model=DIR], marginal (runs made with "
    "--marginal), sample (runs made with --samples N); @first-token reads the first-token approximation "
    "instead of the exact numbers; e.g. "
    "platt[base=first,scope=shared]. Default: first,max,mean,noisy-or,output for generation runs, unary or pairwise "
    "(and platt on it, with --calibrate-on) for those methods.",
)
@click.option("--calibrate-on", type=click.Path(path_type=Path), default=None, help="Run to fit on (another split).")
@click.option(
    "--cross-fit",
    type=click.IntRange(min=2),
    default=None,
    help="Without a calibration run: fit on the run itself in K folds, each item predicted by estimators fitted on "
    "the other folds (platt, probe, tuned thresholds, the prior row).",
)
@click.option("--fold-seed", default=0, show_default=True, type=int, help="Seed of the --cross-fit folds.")
@click.option("--threshold", default="0.5", show_default=True, help="A number, or 'tuned' per label on the calibration items.")
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=1), help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option(
    "--versus",
    default=None,
    metavar="SPEC",
    help="Also give every row's paired difference from this estimator (added if not listed) or reference row "
    "(prior, oracle), on the same bootstrap resamples: an interval that excludes 0 (marked *) says which is better.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON instead of the table.")
@click.option("--markdown", is_flag=True, help="Print the table in Markdown.")
@click.option("--wide", is_flag=True, help="One line per estimator, however wide (default: wrapped to 100 columns).")
@click.option(
    "--save",
    is_flag=True,
    help="Also write RUN_DIR/evaluation.json (what `compare` and `report` read), replacing the one there.",
)
def evaluate_command(
    run_dir, estimators, calibrate_on, cross_fit, fold_seed, threshold, resamples, seed, versus, as_json, markdown, wide, save
):
    """Score estimators against gold (classification) and vote fractions (alignment), with 95%
    bootstrap intervals over items. Nothing is written unless --save: a quick look never
    replaces a saved evaluation."""
    from labeldist.api import evaluate_dict
    from labeldist.estimators import split_specs
    from labeldist.evaluation import format_differences, format_table, write_evaluation

    specs = split_specs(estimators) if estimators else None
    result = evaluate_dict(
        run_dir,
        specs,
        calibrate_on=calibrate_on,
        threshold=threshold,
        resamples=resamples,
        seed=seed,
        cross_fit=cross_fit,
        fold_seed=fold_seed,
        versus=versus.strip() if versus else None,
    )
    path = write_evaluation(result, run_dir) if save else None
    if as_json:
        click.echo(json.dumps(result, default=float))
        return
    click.echo(f"{run_dir}: {result['items']} items ({result['items_with_votes']} with votes), threshold {threshold}")
    style, width = "markdown" if markdown else "text", None if wide else TABLE_WIDTH
    click.echo(format_table(result, style=style, width=width))
    if versus:
        click.echo(f"\npaired differences from {result['versus']} (same resamples; * : the interval excludes 0)")
        click.echo(format_differences(result, style=style, width=width))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    if path is not None:
        click.echo(f"written to {path}", err=True)


@cli.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--estimators", default=None, help="Comma list of rows to keep (e.g. first,max,oracle,prior); all by default.")
@click.option(
    "--metrics", default="micro_f1,macro_f1,mamd,bce,brier,spearman,ece", show_default=True, help="Comma list of columns."
)
@click.option("--markdown", is_flag=True, help="Print the table in Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--wide", is_flag=True, help="One line per row, however wide (default: wrapped to 100 columns).")
def compare_command(run_dirs, estimators, metrics, markdown, as_json, wide):
    """One table across runs (model, dataset, estimator) from each run's evaluation.json
    (written by `labeldist evaluate RUN --save`)."""
    from labeldist.estimators import split_specs
    from labeldist.evaluation import METRICS, compare_runs, format_rows

    columns = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in columns if m not in METRICS]
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}", param_hint="--metrics")
    rows = compare_runs(run_dirs, split_specs(estimators) if estimators else None)
    if as_json:
        click.echo(json.dumps(rows, default=float))
        return
    style = "markdown" if markdown else "text"
    click.echo(format_rows(rows, ("model", "dataset", "estimator"), columns, style, None if wide else TABLE_WIDTH))
