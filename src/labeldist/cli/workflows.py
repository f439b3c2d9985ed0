"""``labeldist suite``, ``finetune``, ``probe``, ``analyze`` and ``report``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from labeldist.cli.main import cli
from labeldist.cli.options import (
    dataset_options,
    load_from_cli,
    load_training_split,
)


@cli.command("suite")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Suite YAML (suites/real.yaml).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Results folder; rerunning resumes it.")
@click.option("--only", multiple=True, help="Only this dataset id of the suite (repeatable).")
@click.option("--model", "models", multiple=True, help="Run these models instead of the suite's (repeatable).")
@click.option(
    "--max-items",
    default=None,
    type=click.IntRange(min=1),
    help="Cap every dataset's eval and calibration samples at N (nested: a later full pass reuses them).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def suite_command(config_path, out, only, models, max_items, quiet):
    """Run a (dataset, model, method) grid with evaluations; finished cells are skipped, and
    OUT/table.md and OUT/table.json hold every finished cell's rows."""
    from labeldist.workflows.suite import load_suite, run_suite

    suite = load_suite(config_path)
    table = run_suite(
        suite, out, only=only, models=models, max_items=max_items, progress=not quiet, log=lambda m: click.echo(m, err=True)
    )
    done = sum(c["finished"] for c in table["cells"])
    click.echo(f"{out}/table.md: {done} of {len(table['cells'])} cells finished", err=True)


@cli.command("finetune")
@dataset_options(name_as="option", split=None, ids=False)
@click.option("--model", required=True, help="Base model: offline alias, model folder or hub id.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the merged model (models/NAME).")
@click.option("--split", default="train", show_default=True, help="Split to train on.")
@click.option("--ids", default=None, type=click.Path(path_type=Path), help="Train only on the ids listed in this file.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Train on the first N items only.")
@click.option("--pool-split", default="train", show_default=True, help="Split the demonstrations come from (--shots > 0).")
@click.option("--shots", default=0, show_default=True, type=click.IntRange(min=0), help="Demonstrations per training prompt.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--answer-format", default="json", show_default=True, type=click.Choice(["json", "comma", "and"]))
@click.option("--template", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="YAML template.")
@click.option(
    "--answers",
    default="gold",
    show_default=True,
    type=click.Choice(["gold", "annotators"]),
    help="Train on the gold labels, or on one example per annotator's labels.",
)
@click.option("--epochs", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", default=2e-4, show_default=True, type=float)
@click.option("--rank", default=8, show_default=True, type=click.IntRange(min=1), help="LoRA rank (alpha = 2 x rank).")
@click.option("--max-length", default=1024, show_default=True, type=click.IntRange(min=16), help="Tokens per example.")
@click.option("--chat/--no-chat", default=None, help="Use the model's chat template (default: when it has one).")
@click.option("--device", default=None, help="cpu, cuda or auto (default).")
def finetune_command(
    name,
    data_dir,
    grouping,
    task,
    options,
    model,
    out,
    split,
    ids,
    limit,
    pool_split,
    shots,
    seed,
    answer_format,
    template,
    answers,
    epochs,
    batch_size,
    learning_rate,
    rank,
    max_length,
    chat,
    device,
):
    """LoRA supervised finetuning of a causal LM on the answer format; writes a merged model
    folder that `labeldist run --model OUT` uses (with the same template, format and --shots)."""
    from labeldist.prompts import PromptTemplate
    from labeldist.training.lora import FinetuneSettings, finetune

    train, source = load_training_split(name, data_dir, split, grouping, task, ids, options, limit)
    pool = train if shots == 0 else load_from_cli(name, data_dir, pool_split, grouping, task, None, options)
    settings = FinetuneSettings(
        shots=shots,
        seed=seed,
        answer_format=answer_format,
        answers=answers,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        rank=rank,
        alpha=2 * rank,
        max_length=max_length,
    )
    source["template"] = str(template) if template else None
    manifest = finetune(
        model,
        train,
        pool,
        out,
        template=PromptTemplate.from_yaml(template) if template else None,
        settings=settings,
        chat=chat,
        device=device,
        progress=True,
        source=source,
    )
    for row in manifest["history"]:
        click.echo(f"epoch {row['epoch']}: answer-token loss {row['answer_token_loss']:.4f}")
    click.echo(
        f"{out}: {manifest['examples']} examples, {manifest['trainable_parameters']:,} LoRA parameters, "
        f"{manifest['seconds']} s; use it with labeldist run --model {out}",
        err=True,
    )


@cli.command("probe")
@click.option("--train", "train_dir", required=True, type=click.Path(path_type=Path), help="Run to fit on (--save-hidden).")
@click.option("--eval", "eval_dir", required=True, type=click.Path(path_type=Path), help="Run to score (--save-hidden).")
@click.option(
    "--target",
    type=click.Choice(["votes", "gold", "model-output"]),
    default="votes",
    show_default=True,
    help="votes: soft vote fractions (gold where none); model-output: the labels the model wrote.",
)
@click.option("--layer", default=-1, show_default=True, type=int, help="Hidden layer (0: embeddings, -1: last).")
@click.option(
    "--C", "C", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Inverse L2 strength."
)
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=1), help="Bootstrap resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON instead of the table.")
def probe_command(train_dir, eval_dir, target, layer, C, resamples, as_json):
    """Linear probes on the first label slot's hidden state, fitted on TRAIN, scored on EVAL;
    the same probe is estimator `probe` in `labeldist evaluate --calibrate-on TRAIN`."""
    from labeldist.evaluation import format_table
    from labeldist.workflows.probe_report import probe_report

    result = probe_report(train_dir, eval_dir, target=target, layer=layer, C=C, n_resamples=resamples)
    if as_json:
        click.echo(json.dumps(result, default=float))
        return
    if target != "model-output":
        click.echo(f"{eval_dir}: {result['items']} items, probe fitted on {train_dir}")
        click.echo(format_table(result))
        return

    def shown(value):
        return "n/a" if value is None else f"{value:.3f}"

    click.echo(
        f"{eval_dir}: {result['items']} items; slot-1 probe for the written labels (fitted on {train_dir}): "
        f"ROC AUC {shown(result['written_label_auc'])} over all labels; for labels written after the first "
        f"({result['items_with_later_labels']} answers with two or more labels, {result['later_label_pairs']} pairs): "
        f"{shown(result['later_label_auc'])}"
    )


@cli.command("analyze")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for analyses.json and the figures.")
@click.option("--attention", is_flag=True, help="Also label attention: reloads each run's model with eager attention.")
@click.option("--attention-items", default=30, show_default=True, type=click.IntRange(min=1), help="Answers read for attention.")
@click.option("--device", default="cpu", show_default=True, help="Device for --attention (cpu, cuda, auto).")
def analyze_command(run_dirs, out, attention, attention_items, device):
    """Spikiness, entropy per slot, label-order accuracy and slot 1 versus the written labels
    (and, with --attention, label attention) of generation runs: statistics in
    OUT/analyses.json, figures as PNG and PDF."""
    from labeldist.report.analyze import analyze

    stats, paths = analyze(run_dirs, out, attention=attention, attention_items=attention_items, device=device, progress=True)
    for name, run in stats["runs"].items():
        slot1 = run["entropy"]["slot1"]
        agree = run["first_vs_output"]["top_label_is_first_written"]
        click.echo(
            f"{name}: {run['summary']['items']} items, {run['summary']['labels_per_answer']} labels per answer, "
            f"slot-1 entropy {slot1['mean']} nats, top label {run['spikiness']['top1_mean']}, "
            f"slot-1 top label written first {agree['value']} of {agree['n']}"
        )
    for row in stats["paired"]:
        cells = [
            f"{what} {cell['difference']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}]"
            for key, what in (
                ("slot1_entropy", "entropy (nats)"),
                ("slot1_top_label", "top label"),
                ("slot1_spearman", "Spearman"),
            )
            if (cell := row.get(key))
        ]
        if cells:
            click.echo(f"{row['second']} - {row['first']} (same {row['items']} items), slot 1: " + ", ".join(cells))
    click.echo(f"written to {out}: " + ", ".join(p.name for p in paths), err=True)


@cli.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The HTML file to write.")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(min=0), help="Example items shown.")
@click.option("--attention", is_flag=True, help="Include label attention (reloads the models; eager attention).")
@click.option("--attention-items", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="cpu", show_default=True, help="Device for --attention.")
@click.option(
    "--resamples",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Bootstrap resamples for runs without evaluation.json.",
)
@click.option("--title", default=None, help="Report title.")
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path),
    default=None,
    help="Also open the report in headless Chromium, save a PNG screenshot here and check every figure rendered.",
)
def report_command(run_dirs, out, examples, attention, attention_items, device, resamples, title, screenshot):
    """One self-contained HTML file (figures embedded, no network): run configurations,
    evaluation tables, analyses and example items. A sweep folder adds its sweep."""
    from labeldist.api import report

    path = report(
        run_dirs,
        out,
        examples=examples,
        attention=attention,
        attention_items=attention_items,
        device=device,
        resamples=resamples,
        title=title,
    )
    click.echo(f"written to {path} ({path.stat().st_size / 1e6:.1f} MB)", err=True)
    if screenshot:
        from labeldist.report.browser import check_report

        result = check_report(path, screenshot)
        click.echo(f"screenshot {screenshot}: {len(result['images'])} figures, all rendered", err=True)
