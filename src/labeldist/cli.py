"""The ``labeldist`` command. Thin: parses options, calls the packages, prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from labeldist.data import DataError, dataset_names, describe, load_dataset
from labeldist.prompts.templates import TemplateError

DATA_DIR_HELP = "Folder (or file, for generic tables) holding the dataset in its official layout."


def parse_options(pairs: tuple[str, ...]) -> dict:
    """``--option key=value`` pairs; values are read as YAML scalars/lists (``keep=[a, b]``)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
    return options


def dataset_options(function):
    """The options every command that loads a dataset shares."""
    decorators = [
        click.argument("name"),
        click.option("--data-dir", required=True, type=click.Path(path_type=Path), help=DATA_DIR_HELP),
        click.option(
            "--split", default="dev", show_default=True, help="Split to load; join splits with '+' (dev+test)."
        ),
        click.option(
            "--grouping",
            default=None,
            help="Label grouping: a built-in name (goemotions: paper-7, ekman, sentiment) or a JSON file.",
        ),
        click.option("--task", default=None, help="Task for datasets with several (hatexplain: label, target)."),
        click.option(
            "--ids",
            default=None,
            type=click.Path(path_type=Path),
            help="Keep only the ids listed in this file (one per line).",
        ),
        click.option(
            "--option",
            "options",
            multiple=True,
            metavar="KEY=VALUE",
            help="Loader option, repeatable (e.g. raw_dir=..., fold_rare=20).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def load_from_cli(name, data_dir, split, grouping, task, ids, options):
    return load_dataset(name, data_dir, split, grouping=grouping, task=task, ids=ids, **parse_options(options))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="labeldist")
def cli():
    """Per-slot label distributions of causal LMs on multi-label data, and their alignment
    with human annotators."""


@cli.group()
def data():
    """Inspect datasets."""


@data.command("list")
def data_list():
    """List the dataset names the loaders know."""
    from labeldist.data.registry import get_spec

    for name in dataset_names():
        spec = get_spec(name)
        extra = []
        if spec.tasks:
            extra.append(f"tasks: {', '.join(spec.tasks)}")
        if spec.groupings:
            extra.append(f"groupings: {', '.join(spec.groupings)}")
        click.echo(f"{name:14s} {spec.description}" + (f" [{'; '.join(extra)}]" if extra else ""))


@data.command("describe")
@dataset_options
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
        ("vote fractions from", summary["vote_source"]),
        ("multi-label share", f"{summary['multilabel_share']:.3f}"),
        ("no-label share", f"{summary['no_label_share']:.3f}"),
        ("disagreement share", "n/a (no item has 2+ votes)" if share is None else f"{share:.3f}"),
    ]
    for key, value in rows:
        click.echo(f"{key:20s} {value}")
    click.echo("label frequency (gold):")
    width = max(len(label) for label in summary["labels"])
    for label, count in summary["label_frequency"].items():
        click.echo(f"  {label:{width}s} {count:7d}  {count / max(summary['items'], 1):.3f}")


@cli.group()
def prompt():
    """Build and inspect few-shot prompts."""


def prompt_options(function):
    """Options that decide how prompts are built (shared with `labeldist run`)."""
    decorators = [
        click.option("--pool-split", default="train", show_default=True, help="Split the demonstrations come from."),
        click.option(
            "--shots", default=10, show_default=True, type=click.IntRange(min=0), help="Demonstrations per prompt."
        ),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the demonstration sampler."),
        click.option(
            "--sampler",
            default="random",
            show_default=True,
            type=click.Choice(["random", "balanced", "covering", "similarity"]),
            help="How demonstrations are chosen.",
        ),
        click.option(
            "--multilabel-share",
            default=None,
            type=click.FloatRange(0, 1),
            help="Share of demonstrations with 2+ labels (random and balanced samplers).",
        ),
        click.option(
            "--answer-format",
            "answer_format",
            default="json",
            show_default=True,
            type=click.Choice(["json", "comma", "and"]),
            help="How the model writes its labels.",
        ),
        click.option(
            "--template",
            default=None,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="YAML template with system, instruction, demonstration and query.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def build_from_cli(
    dataset,
    name,
    data_dir,
    grouping,
    task,
    options,
    pool_split,
    shots,
    seed,
    sampler,
    multilabel_share,
    answer_format,
    template,
    limit,
):
    from labeldist.prompts import PromptTemplate, build_prompts

    pool = load_from_cli(name, data_dir, pool_split, grouping, task, None, options)
    template = PromptTemplate.from_yaml(template) if template else PromptTemplate()
    sampler_options = {} if multilabel_share is None else {"multilabel_share": multilabel_share}
    return build_prompts(
        dataset, pool, template, answer_format, sampler, shots, limit, seed=seed, sampler_options=sampler_options
    )


@prompt.command("show")
@dataset_options
@prompt_options
@click.option("--limit", default=2, show_default=True, type=click.IntRange(min=1), help="How many items to show.")
@click.option(
    "--form",
    default="both",
    show_default=True,
    type=click.Choice(["chat", "plain", "both"]),
    help="Chat messages, the plain-text prompt, or both.",
)
def prompt_show(
    name,
    data_dir,
    split,
    grouping,
    task,
    ids,
    options,
    pool_split,
    shots,
    seed,
    sampler,
    multilabel_share,
    answer_format,
    template,
    limit,
    form,
):
    """Print the exact prompts of the first items of a split."""
    dataset = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    prompts = build_from_cli(
        dataset,
        name,
        data_dir,
        grouping,
        task,
        options,
        pool_split,
        shots,
        seed,
        sampler,
        multilabel_share,
        answer_format,
        template,
        limit,
    )
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: known errors become one line on stderr and exit status 2."""
    try:
        cli.main(args=argv, prog_name="labeldist", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except (DataError, TemplateError) as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except click.exceptions.Exit as err:
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
