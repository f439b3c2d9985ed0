"""The ``labeldist`` command. Thin: parses options, calls the packages, prints."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import numpy as np

from labeldist.data import dataset_names, describe, load_dataset
from labeldist.errors import DataError, LabeldistError, ModelError
from labeldist.models.server_cli import pop_server_settings, server_options
from labeldist.prompts.methods import RunMethod

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
        click.option("--split", default="dev", show_default=True, help="Split to load; join splits with '+' (dev+test)."),
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


@cli.group()
def prompt():
    """Build and inspect few-shot prompts."""


def prompt_options(function):
    """Options that decide how prompts are built (shared with `labeldist run`)."""
    decorators = [
        click.option("--pool-split", default="train", show_default=True, help="Split the demonstrations come from."),
        click.option("--shots", default=10, show_default=True, type=click.IntRange(min=0), help="Demonstrations per prompt."),
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
            "--demonstrations",
            default="shared",
            show_default=True,
            type=click.Choice(["shared", "per-item"]),
            help="The same demonstrations for every item (the original protocol; the run computes them once) or a draw per item.",
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
            help="YAML template with system, instruction, demonstration and query (--method unary/pairwise: any of "
            "system, instruction, query, candidate, answers, answer_lead, none_label; see docs).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


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


def _load_config_file(ctx, param, value):
    """``--config run.yaml``: option values from a YAML mapping (keys as the long option
    names, with - or _); options given on the command line win."""
    if not value:
        return value
    import yaml

    try:
        loaded = yaml.safe_load(Path(value).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise click.BadParameter(f"{value}: invalid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise click.BadParameter(f"{value}: expected a mapping of option names to values")
    known = {p.name for p in ctx.command.params}
    defaults = {}
    for key, setting in loaded.items():
        name = str(key).replace("-", "_")
        if name == "dataset":
            name = "name"
        if name not in known or name == "config":
            raise click.BadParameter(f"{value}: unknown setting {key!r}")
        if name == "options" and isinstance(setting, dict):
            setting = [f"{k}={v}" for k, v in setting.items()]
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


@cli.command("run")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    callback=_load_config_file,
    is_eager=True,
    expose_value=False,
    help="YAML file with any of these options (command-line values win).",
)
@click.option("--dataset", "name", required=True, help="Dataset name (labeldist data list).")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path), help=DATA_DIR_HELP)
@click.option("--split", default="dev", show_default=True, help="Split to label; join splits with '+'.")
@click.option("--grouping", default=None, help="Label grouping (goemotions: paper-7, ekman, sentiment) or a JSON file.")
@click.option("--task", default=None, help="Task for datasets with several (hatexplain: label, target).")
@click.option("--ids", default=None, type=click.Path(path_type=Path), help="Only the ids listed in this file.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Loader option, repeatable.")
@prompt_options
@server_options
@click.option(
    "--model",
    required=True,
    help="Offline alias (smollm2-135m-instruct, gemma3-270m), a model folder, or a hub id; with --backend openai, "
    "the served model's name.",
)
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Label only the first N items.")
@click.option(
    "--batch-size",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Prompts per forward pass (and per flushed part).",
)
@click.option("--max-new-tokens", default=64, show_default=True, type=click.IntRange(min=1), help="Longest answer.")
@click.option("--chat/--no-chat", default=None, help="Use the model's chat template (default: when it has one).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto.")
@click.option("--dtype", default=None, help="Model dtype (float32, bfloat16, float16); default float32 on CPU.")
@click.option("--quantization", default=None, type=click.Choice(["4bit", "8bit"]), help="bitsandbytes quantization (CUDA only).")
@click.option("--save-hidden", is_flag=True, help="Also store hidden states (all layers) at the first label slot.")
@click.option(
    "--prune-tolerance",
    default=1e-6,
    show_default=True,
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    help="hf backend: tokenisation prefixes less likely than this are not extended; what they could add is "
    "recorded as each slot's bounds. Larger is faster (1e-4: about 60%% fewer tree tokens on SmolLM2).",
)
@click.option(
    "--precision-check",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="With --dtype bfloat16/float16: score the first N items labelled again in float32 and record the largest "
    "difference in run.json (precision.check).",
)
@click.option(
    "--method",
    default=RunMethod.GENERATE.value,
    show_default=True,
    type=click.Choice([method.value for method in RunMethod]),
    help="generate: answers with per-slot label distributions; unary: 'is this label reasonable?' per label and "
    "none; pairwise: 'which label fits better, a or b?' for every pair, both orders.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder; rerunning the same command resumes it.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_command(
    name,
    data_dir,
    split,
    grouping,
    task,
    ids,
    options,
    model,
    limit,
    batch_size,
    max_new_tokens,
    chat,
    device,
    dtype,
    quantization,
    save_hidden,
    prune_tolerance,
    precision_check,
    method,
    out,
    quiet,
    **settings,
):
    """Generate answers and record the label distribution at every label slot.

    Records go to OUT/records/*.parquet in batches; a killed run loses at most the batch in
    flight, and rerunning the same command continues where it stopped.
    """
    from labeldist.models.registry import BackendSettings, make_backend
    from labeldist.runs import RunConfig, execute_run
    from labeldist.runs.run import precision_warning

    server = pop_server_settings(settings, model)
    config = RunConfig(
        dataset=name,
        data_dir=str(data_dir),
        split=split,
        model=model,
        grouping=grouping,
        task=task,
        ids=str(ids) if ids else None,
        options=parse_options(options),
        template=str(settings.pop("template")) if settings["template"] else None,
        chat=chat,
        max_new_tokens=max_new_tokens,
        save_hidden=save_hidden,
        method=method,
        server=server.identity() if server else None,
        **{k: v for k, v in settings.items() if k != "template"},
    )

    backend_settings = BackendSettings(
        device=device,
        dtype=dtype,
        quantization=quantization,
        prune_tolerance=prune_tolerance,
        server=server,
        progress=not quiet,
    )

    def backend(cfg):
        return make_backend(cfg, backend_settings)

    manifest = execute_run(
        config, out, backend, batch_size=batch_size, limit=limit, progress=not quiet, precision_check=precision_check
    )
    counts = manifest["counts"]
    last = manifest["attempts"][-1]
    speed = f", {last['items_per_second']:.3f} items/s" if last.get("items_per_second") else ""
    if method == RunMethod.GENERATE:
        detail = (
            f"unparseable {counts['unparseable_answers']}, with unknown labels {counts['answers_with_unknown_labels']}, "
            f"cut off {counts['unfinished_answers']}"
        )
    else:
        detail = f"mean probability of the two answers {counts.get('answer_mass_mean', float('nan')):.3f}"
        if "position_bias_a" in counts:
            detail += f"; 'a' wins {counts['position_bias_a']:.3f} of the time (0.5: no position bias)"
        if server is not None:
            detail += f"; answers scored through the server: {manifest['model'].get('scoring')}"
    click.echo(f"{out}: {counts['items_recorded']} items recorded ({last['items_labelled']} now{speed}); {detail}", err=True)
    warning = precision_warning(manifest)
    if warning:
        click.echo(warning, err=True)
    if manifest.get("gaps"):
        first_id, first_error = next(iter(manifest["gaps"].items()))
        raise ModelError(
            f"{len(manifest['gaps'])} items not labelled (listed under gaps in {out}/run.json; first, {first_id}: "
            f"{first_error}); rerun the same command to retry them"
        )


@cli.command("show")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--limit", default=3, show_default=True, type=click.IntRange(min=1), help="How many items.")
@click.option("--first-token", is_flag=True, help="Also show the first-token approximation beside each slot.")
def show_command(run_dir, limit, first_token):
    """Per item: the answer and a table of its per-slot label distributions."""
    from labeldist.runs import RunStore
    from labeldist.runs.run import slot_table

    store = RunStore(run_dir)
    manifest = store.read_manifest()
    labels = manifest["labels"]
    records = store.read()
    if records.empty:
        click.echo(f"{run_dir}: no records yet", err=True)
        return
    width = max(len(label) for label in [*labels, "<stop>"])
    for _, record in records.head(limit).iterrows():
        click.secho(f"=== {record['id']}  answer: {record['answer']!r}  gold: {list(record['gold'])}", bold=True)
        rows, exact, first = slot_table(record, labels)
        if exact.shape[1] == 0:
            click.echo("  (no label slots: the answer could not be parsed)")
            continue
        slots = record["slots"]
        header = "".join(f" {'slot ' + str(s['index']):>9s}" + ("  (first)" if first_token else "") for s in slots)
        click.echo(f"  {'':{width}s}{header}")
        for r, label in enumerate(rows):
            cells = ""
            for k, slot in enumerate(slots):
                mark = "*" if (slot["chosen"] == label or (label == "<stop>" and slot["chosen"] == "<stop>")) else " "
                cells += f" {exact[r, k]:8.4f}{mark}"
                if first_token:
                    cells += f"  ({first[r, k]:.3f})" if not np.isnan(first[r, k]) else "         "
            click.echo(f"  {label:{width}s}{cells}")
        footer = "".join(f" {'H=' + format(s['entropy'], '.2f'):>9s}" + ("         " if first_token else "") for s in slots)
        click.echo(f"  {'entropy':{width}s}{footer}")
        click.echo(slot_sources(record, labels))


def slot_sources(record, labels) -> str:
    """Where each slot was decided and the forms scored there (record format 2 or later)."""
    decisions, forms = record.get("slot_decisions"), record.get("slot_forms")
    if decisions is None or forms is None:
        return "  (decision positions and scored forms: not recorded, a run made before record format 2)"
    lines = []
    for slot, decision, scored in zip(record["slots"], decisions, forms):
        scored = list(scored)
        if scored and scored[0].startswith("{"):  # format 3: every surface form, as JSON
            entries = [json.loads(entry) for entry in scored]
            label_forms = [_shown_form(e) for e in entries if "label" in e]
            close_forms = [_shown_form(e) for e in entries if "close" in e]
        else:  # format 2: one string per label, then the close
            label_forms, close_forms = [repr(f) for f in scored[:-1]], [repr(f) for f in scored[-1:]]
        lines.append(
            f"  slot {slot['index']}: decided after generated token {decision}; "
            f"labels <L> scored as {' | '.join(label_forms)}; close as {' | '.join(close_forms)}"
        )
    return "\n".join(lines)


def _shown_form(entry: dict) -> str:
    """One stored form, readably: its text with <L> for the label, then in braces what must
    follow it ("end": the end of the answer); "..." when anything may follow (a close)."""

    def visible(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")

    text = visible(entry["label"]) + "<L>" if "label" in entry else visible(entry["close"])
    follows = [visible(t) for t in entry["then"]] + (["end"] if entry["end"] else [])
    return text + ("{" + "|".join(follows) + "}" if follows else "...")


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--estimators",
    default=None,
    help="Comma list of NAME[key=value,...]@SOURCE: first, max, mean, noisy-or, output, unary, pairwise, platt, "
    "platt-shared, probe (hidden states; fitted on --calibrate-on); @first-token reads the first-token approximation "
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
@click.option("--json", "as_json", is_flag=True, help="Print the JSON instead of the table.")
@click.option("--markdown", is_flag=True, help="Print the table in Markdown.")
def evaluate_command(run_dir, estimators, calibrate_on, cross_fit, fold_seed, threshold, resamples, seed, as_json, markdown):
    """Score estimators against gold (classification) and vote fractions (alignment), with 95%
    bootstrap intervals over items; also written to RUN_DIR/evaluation.json."""
    from labeldist.estimators import split_specs
    from labeldist.evaluation import evaluate_run, format_table, write_evaluation

    specs = split_specs(estimators) if estimators else None
    result = evaluate_run(
        run_dir,
        specs,
        calibrate_on=calibrate_on,
        threshold=threshold,
        n_resamples=resamples,
        seed=seed,
        cross_fit=cross_fit,
        fold_seed=fold_seed,
    )
    path = write_evaluation(result, run_dir)
    if as_json:
        click.echo(json.dumps(result, default=float))
        return
    click.echo(f"{run_dir}: {result['items']} items ({result['items_with_votes']} with votes), threshold {threshold}")
    click.echo(format_table(result, style="markdown" if markdown else "text"))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"written to {path}", err=True)


@cli.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--estimators", default=None, help="Comma list of rows to keep (e.g. first,max,oracle,prior); all by default.")
@click.option(
    "--metrics", default="micro_f1,macro_f1,mamd,bce,brier,spearman,ece", show_default=True, help="Comma list of columns."
)
@click.option("--markdown", is_flag=True, help="Print the table in Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def compare_command(run_dirs, estimators, metrics, markdown, as_json):
    """One table across runs (model, dataset, estimator) from each run's evaluation.json."""
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
    click.echo(format_rows(rows, ("model", "dataset", "estimator"), columns, style="markdown" if markdown else "text"))


def encoder_data_options(function):
    """Where `labeldist encoder` reads its items (as `labeldist run` does)."""
    decorators = [
        click.option("--dataset", "name", required=True, help=f"Dataset loader: {', '.join(dataset_names())}."),
        click.option("--data-dir", required=True, type=click.Path(path_type=Path), help=DATA_DIR_HELP),
        click.option("--grouping", default=None, help="Label grouping (goemotions: paper-7, ekman, sentiment) or a JSON file."),
        click.option("--task", default=None, help="Task for datasets with several (hatexplain: label, target)."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Loader option, repeatable."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@cli.group("encoder")
def encoder_group():
    """A fine-tuned encoder baseline (estimator `encoder[model=FOLDER]` in `labeldist evaluate`)."""


@encoder_group.command("train")
@encoder_data_options
@click.option("--split", default="train", show_default=True, help="Split to train on.")
@click.option("--ids", default=None, type=click.Path(path_type=Path), help="Train only on the ids listed in this file.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Train on the first N items only.")
@click.option("--val-split", default=None, help="Validation split: the epoch with the lowest soft BCE on it is kept.")
@click.option("--val-limit", default=None, type=click.IntRange(min=1), help="Validate on the first N items only.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder to write (models/NAME).")
@click.option("--encoder", default=None, help="HF encoder folder or id (default: the offline all-MiniLM-L6-v2).")
@click.option("--label-names", is_flag=True, help="Demux's input: label names first, each label read from its name's tokens.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", default=5e-5, show_default=True, type=float, help="Encoder learning rate.")
@click.option("--max-length", default=128, show_default=True, type=click.IntRange(min=8), help="Tokens per input.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
def encoder_train_command(
    name,
    data_dir,
    grouping,
    task,
    options,
    split,
    ids,
    limit,
    val_split,
    val_limit,
    out,
    encoder,
    label_names,
    epochs,
    batch_size,
    learning_rate,
    max_length,
    seed,
    device,
):
    """Fine-tune an encoder with soft binary cross-entropy on the vote fractions of one split."""
    from labeldist.estimators.encoder import train_encoder

    train = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    if limit:
        train = train.restrict(train.ids[:limit], source=f"first {limit}")
    validation = None
    if val_split:
        validation = load_from_cli(name, data_dir, val_split, grouping, task, None, options)
        if val_limit:
            validation = validation.restrict(validation.ids[:val_limit], source=f"first {val_limit}")
    source = {
        "name": name,
        "data_dir": str(Path(data_dir).resolve()),
        "split": split,
        "grouping": grouping,
        "task": task,
        "options": parse_options(options),
        "ids": str(ids) if ids else None,
        "limit": limit,
    }
    manifest = train_encoder(
        train,
        out,
        validation=validation,
        encoder=encoder,
        label_names=label_names,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        seed=seed,
        device=device,
        progress=True,
        source=source,
    )
    for row in manifest["history"]:
        shown = f", validation soft BCE {row['validation_bce']:.4f}" if "validation_bce" in row else ""
        click.echo(f"epoch {row['epoch']}: training loss {row['train_loss']:.4f}{shown}")
    click.echo(
        f"{out}: trained on {manifest['training_items']} items in {manifest['seconds']} s, kept epoch {manifest['kept_epoch']}",
        err=True,
    )


@encoder_group.command("predict")
@encoder_data_options
@click.option("--split", default="dev", show_default=True, help="Split to predict.")
@click.option("--ids", default=None, type=click.Path(path_type=Path), help="Only the ids listed in this file.")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path), help="Folder from encoder train.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="CSV to write: id, then one column per label.")
def encoder_predict_command(name, data_dir, grouping, task, options, split, ids, model_dir, out):
    """Per-label probabilities of a trained encoder for one split."""
    import pandas as pd

    from labeldist.estimators.encoder import load_encoder

    dataset = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    model, manifest = load_encoder(model_dir)
    if tuple(manifest["labels"]) != tuple(dataset.labels):
        raise DataError(str(model_dir), None, f"was trained on labels {manifest['labels']}, the split has {list(dataset.labels)}")
    probs = model.predict([item.text for item in dataset.items])
    frame = pd.DataFrame(probs, columns=list(dataset.labels))
    frame.insert(0, "id", dataset.ids)
    frame.to_csv(out, index=False)
    overlap = len(set(manifest["training_ids"]) & set(dataset.ids))
    if overlap:
        click.echo(f"note: {overlap} of these items were in the model's training data", err=True)
    click.echo(f"written to {out}: {len(frame)} items x {len(dataset.labels)} labels", err=True)


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
@encoder_data_options
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
    from labeldist.models.finetune import FinetuneSettings, finetune
    from labeldist.prompts import PromptTemplate

    train = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    if limit:
        train = train.restrict(train.ids[:limit], source=f"first {limit}")
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
    source = {
        "name": name,
        "data_dir": str(Path(data_dir).resolve()),
        "split": split,
        "grouping": grouping,
        "task": task,
        "options": parse_options(options),
        "ids": str(ids) if ids else None,
        "limit": limit,
        "template": str(template) if template else None,
    }
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


def _sweep_command() -> click.Command:
    """`labeldist sweep`: `labeldist run`'s options, with --multilabel-share taking a list."""
    from labeldist.workflows.sweep import DEFAULT_SHARES

    def callback(multilabel_share, out, **options):
        from labeldist.workflows.sweep import parse_shares, run_sweep

        shares = parse_shares(multilabel_share)

        def run_one(share, folder):
            click.echo(f"== multilabel share {share:g} -> {folder}", err=True)
            run_command.callback(multilabel_share=share, out=folder, **options)

        summary = run_sweep(shares, out, run_one)
        from labeldist.report.figures import save, sweep_figure
        from labeldist.workflows.sweep import sweep_title

        save(sweep_figure(summary, title=sweep_title(summary["shared_config"])), out, "sweep")
        for row in summary["by_share"]:
            f1 = row["f1"]["output"]["micro"]["value"]
            click.echo(
                f"share {row['share']:g}: {row['labels_per_answer']['mean']} labels per answer, "
                f"slot-1 entropy {row['slot1_entropy']['mean']}, micro-F1 (written labels) {f1:.3f}"
            )
        click.echo(f"written to {out}/sweep.json and {out}/sweep.png", err=True)

    params = []
    for param in run_command.params:
        if param.name == "multilabel_share":
            param = click.Option(
                ["--multilabel-share"],
                default=DEFAULT_SHARES,
                show_default=True,
                help="Comma list of shares of multi-label demonstrations, one run each.",
            )
        elif param.name == "out":
            param = click.Option(
                ["--out"],
                required=True,
                type=click.Path(path_type=Path),
                help="Sweep folder: one run per share (share-0, share-0.2, ...) and sweep.json / sweep.png.",
            )
        params.append(param)
    return click.Command(
        "sweep",
        callback=callback,
        params=params,
        help="One run per share of multi-label demonstrations (every other setting shared), then the number of "
        "labels per answer, slot-1 entropy and F1 against the share (OUT/sweep.json, OUT/sweep.png). Takes every "
        "option of `labeldist run`.",
    )


cli.add_command(_sweep_command())


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
    from labeldist.report.html import build_report

    path = build_report(
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
    except LabeldistError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except ValueError as err:
        # settings that cannot work together (a sampler that cannot cover the labels, a label
        # set a format cannot write, ...); LABELDIST_DEBUG=1 shows the traceback
        if os.environ.get("LABELDIST_DEBUG"):
            raise
        click.echo(f"error: {err}", err=True)
        return 2
    except click.exceptions.Exit as err:
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
