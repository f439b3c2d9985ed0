"""``labeldist data``: list and describe datasets."""

from __future__ import annotations

import json

import click

from labeldist.cli.main import cli
from labeldist.cli.options import (
    dataset_options,
    load_from_cli,
)
from labeldist.data import dataset_names, describe


@cli.group()
def data():
    """Inspect datasets."""


@data.command("list")
def data_list():
    """List the dataset names the loaders know, each with its --option keys and their defaults."""
    from labeldist.data.registry import get_spec

    for name in dataset_names():
        spec = get_spec(name)
        extra = []
        if spec.tasks:
            extra.append(f"tasks: {', '.join(spec.tasks)}")
        if spec.groupings:
            extra.append(f"groupings: {', '.join(spec.groupings)}")
        click.echo(f"{name:14s} {spec.description}" + (f" [{'; '.join(extra)}]" if extra else ""))
        options = spec.options()
        if options:
            shown = ", ".join(key if default is None else f"{key}={default!r}" for key, default in options.items())
            click.echo(f"{'':14s}   --option {shown}")


@data.command("describe")
@dataset_options()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def data_describe(name, data_dir, split, grouping, task, ids, options, as_json):
    """Items, labels, annotators, votes per item, multi-label and disagreement shares, and
    label frequencies of one split."""
    dataset = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    summary = describe(dataset)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    for note in summary["notes"]:
        click.echo(f"note: {note}", err=True)
    share = summary["disagreement_share"]
    rows = [
        ("dataset", summary["dataset"] + (f" ({summary['grouping']})" if summary["grouping"] else "")),
        ("split", summary["split"]),
        ("items", summary["items"]),
        ("labels", f"{len(summary['labels'])}: {', '.join(summary['labels'])}"),
        ("annotators", summary["annotators"]),
        ("votes per item", f"{summary['votes_per_item']:.2f}"),
        ("items by votes", ", ".join(f"{k}: {v}" for k, v in summary["votes_per_item_distribution"].items())),
        ("vote fractions from", summary["vote_source"]),
        ("multi-label share", f"{summary['multilabel_share']:.3f}"),
        ("no-label share", f"{summary['no_label_share']:.3f}"),
        ("disagreement share", "n/a (no item has 2+ votes)" if share is None else f"{share:.3f}"),
    ]
    if summary["repairs"]:
        rows.append(("repaired/dropped", ", ".join(f"{k} {v}" for k, v in summary["repairs"].items())))
    for key, value in rows:
        click.echo(f"{key:20s} {value}")
    click.echo("label frequency (gold):")
    width = max(len(label) for label in summary["labels"])
    for label, count in summary["label_frequency"].items():
        click.echo(f"  {label:{width}s} {count:7d}  {count / max(summary['items'], 1):.3f}")
