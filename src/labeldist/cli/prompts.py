"""``labeldist prompt``: show the prompts a run would send."""

from __future__ import annotations

import click

from labeldist.cli.main import cli
from labeldist.cli.options import (
    dataset_options,
    load_from_cli,
    prompt_options,
)


@cli.group()
def prompt():
    """Build and inspect few-shot prompts."""


def build_from_cli(dataset, name, data_dir, grouping, task, options, limit=None, **settings):
    """Prompts for ``dataset`` from the options of :func:`prompt_options`."""
    from labeldist.prompts import PromptTemplate, build_prompts

    pool = load_from_cli(name, data_dir, settings["pool_split"], grouping, task, None, options)
    template = PromptTemplate.from_yaml(settings["template"]) if settings["template"] else PromptTemplate()
    share = settings["multilabel_share"]
    return build_prompts(
        dataset,
        pool,
        template,
        settings["answer_format"],
        settings["sampler"],
        settings["shots"],
        limit,
        seed=settings["seed"],
        sampler_options={} if share is None else {"multilabel_share": share},
        shared_demonstrations=settings["demonstrations"] == "shared",
    )


@prompt.command("show")
@dataset_options()
@prompt_options
@click.option("--limit", default=2, show_default=True, type=click.IntRange(min=1), help="How many items to show.")
@click.option(
    "--form",
    default="both",
    show_default=True,
    type=click.Choice(["chat", "plain", "both"]),
    help="Chat messages, the plain-text prompt, or both.",
)
def prompt_show(name, data_dir, split, grouping, task, ids, options, limit, form, **settings):
    """Print the exact prompts of the first items of a split."""
    dataset = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    prompts = build_from_cli(dataset, name, data_dir, grouping, task, options, limit, **settings)
    gold = {item.id: item.gold for item in dataset}
    for prompt_ in prompts:
        labels = [label for label in dataset.labels if label in gold[prompt_.item_id]]
        click.secho(
            f"=== item {prompt_.item_id}  gold: {labels}  demonstrations: {', '.join(prompt_.demonstration_ids)}",
            bold=True,
        )
        if form in ("chat", "both"):
            for message in prompt_.messages:
                click.secho(f"--- {message['role']}", fg="cyan")
                click.echo(message["content"])
            click.secho(f"--- assistant (answer prefix) {prompt_.answer_prefix!r}", fg="cyan")
        if form in ("plain", "both"):
            click.secho("--- plain text", fg="cyan")
            click.echo(prompt_.text)
        click.echo()
