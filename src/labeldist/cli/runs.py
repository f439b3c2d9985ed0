"""``labeldist run``, ``show`` and ``sweep``: label a dataset, look at a run's slots, and run one run per
share of multi-label demonstrations."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from labeldist.cli.main import cli
from labeldist.cli.options import (
    dataset_options,
    load_config_file,
    parse_options,
    prompt_options,
)
from labeldist.errors import ModelError
from labeldist.models.server_cli import pop_backend_settings, server_options
from labeldist.prompts.methods import RunMethod


def run_and_report(
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
    engine="local",
    workers=None,
    address=None,
    **settings,
):
    """What `labeldist run` does (also called by `labeldist sweep`, once per share): build the run
    config, run it and print the summary line; the docstring of `run` follows.

    Generate answers and record the label distribution at every label slot.

    Records go to OUT/records/*.parquet in batches; a killed run loses at most the batch in
    flight, and rerunning the same command continues where it stopped.
    """
    from labeldist.api import run
    from labeldist.cli.display import precision_warning

    backend, backend_options, server = pop_backend_settings(settings, model)
    template = settings.pop("template")
    result = run(
        name,
        model,
        out,
        data_dir=data_dir,
        split=split,
        grouping=grouping,
        task=task,
        ids=ids,
        options=parse_options(options),
        template=template,
        chat=chat,
        max_new_tokens=max_new_tokens,
        save_hidden=save_hidden,
        method=method,
        limit=limit,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        quantization=quantization,
        prune_tolerance=prune_tolerance,
        precision_check=precision_check,
        backend=backend,
        backend_options=backend_options,
        server=server,
        engine=engine,
        workers=workers,
        address=address,
        progress=not quiet,
        on_gaps="ignore",  # said below, after the summary line
        **settings,
    )
    manifest = result.manifest
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


@cli.command("run")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    callback=load_config_file,
    is_eager=True,
    expose_value=False,
    help="YAML file with any of these options (command-line values win).",
)
@dataset_options(name_as="option")
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
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... or auto (the default).")
@click.option("--dtype", default=None, help="Model dtype (float32, bfloat16, float16); default float32 on CPU.")
@click.option("--quantization", default=None, type=click.Choice(["4bit", "8bit"]), help="bitsandbytes quantization (CUDA only).")
@click.option("--save-hidden", is_flag=True, help="Also store hidden states (all layers) at the first label slot.")
@click.option(
    "--prune-tolerance",
    default=None,
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    help="Exact backends: tokenisation prefixes less likely than this (default 1e-6) are not extended; what they "
    "could add is recorded as each slot's bounds. Larger is faster (1e-4: about 60%% fewer tree tokens on SmolLM2).",
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
@click.option(
    "--samples",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="Also draw N answers per item from the model (seeded by --seed and the item) for the estimator sample.",
)
@click.option(
    "--temperature",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="Temperature of the --samples answers (1: the model's own distribution).",
)
@click.option(
    "--marginal",
    is_flag=True,
    help="hf backend: also compute P(label in answer) over every answer the model could write (the trie of label "
    "sequences, most probable first) for the estimator marginal.",
)
@click.option(
    "--marginal-tolerance",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(min=0.0, max=1.0, min_open=True, max_open=True),
    help="Expand the trie until the unexpanded mass is below this.",
)
@click.option(
    "--marginal-nodes",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many trie nodes per item.",
)
@click.option(
    "--marginal-batch",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Trie nodes of an item expanded per model pass (a setting of the run: where --marginal-nodes binds, it "
    "decides which nodes are expanded; --batch-size does not).",
)
@click.option(
    "--engine",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="local: this process; ray: batches spread over Ray workers (hf backend), each loading the model once, "
    "into the one run folder (pip install 'labeldist[ray]').",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="ray: how many workers (default: one per GPU of the cluster, else one); on CPU they share its cores.",
)
@click.option(
    "--address",
    default=None,
    help="ray: the cluster to join (ray start --head prints it; 'auto': the one on this machine); default: "
    "a local cluster started for the run. Over several nodes --out must be on a shared file system.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder; rerunning the same command resumes it.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_command(**options):
    """Generate answers and record the label distribution at every label slot.

    Records go to OUT/records/*.parquet in batches; a killed run loses at most the batch in
    flight, and rerunning the same command continues where it stopped.
    """
    run_and_report(**options)


@cli.command("show")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--limit", default=3, show_default=True, type=click.IntRange(min=1), help="How many items.")
@click.option("--first-token", is_flag=True, help="Also show the first-token approximation beside each slot.")
def show_command(run_dir, limit, first_token):
    """Per item: the answer and a table of its per-slot label distributions."""
    from labeldist.cli.display import slot_table
    from labeldist.runs import RunStore

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
        if record.get("marginal_lower") is not None:
            click.echo(marginal_line(record, labels))
        sampled = record.get("sampled_labels")
        if sampled is not None and len(sampled):
            click.echo(sampled_shares(sampled, labels, manifest["config"].get("temperature", 1.0)))


def marginal_line(record, labels) -> str:
    """An item's P(label in answer), most probable first: the in-format reading (the estimator
    ``marginal``) with the bounds that let an answer outside the format name anything."""
    from labeldist.runs.arrays import in_format

    lower, upper = np.asarray(record["marginal_lower"]), np.asarray(record["marginal_upper"])
    unsettled = record["marginal_unsettled"]
    off_format = record.get("marginal_off_format")
    unexpanded = record.get("marginal_unexpanded")
    unexpanded = unsettled if unexpanded is None else unexpanded  # older runs: the cautious reading
    reading = in_format(lower, upper, unexpanded)
    order = np.argsort(-reading, kind="stable")
    shown = ", ".join(f"{labels[i]} {reading[i]:.3f} [{lower[i]:.3f}, {upper[i]:.3f}]" for i in order)
    left = "" if off_format is None else f", off format {off_format:.3f}, not expanded {unexpanded:.4f}"
    return (
        f"  P(label in answer): {shown}; empty answer {record['marginal_empty']:.3f}, expected labels "
        f"{record['marginal_expected_labels']:.2f} ({record['marginal_nodes']} nodes{left})"
    )


def sampled_shares(sampled, labels, temperature) -> str:
    """The share of an item's sampled answers naming each label, with its Monte-Carlo standard error."""
    n = len(sampled)
    counts = {label: sum(label in set(draw) for draw in sampled) for label in labels}
    shown = ", ".join(f"{label} {c / n:.2f}±{np.sqrt(c / n * (1 - c / n) / n):.2f}" for label, c in counts.items() if c)
    empty = sum(len(draw) == 0 for draw in sampled)
    return f"  sampled answers ({n} at temperature {temperature:g}): {shown or 'no label named'}; empty {empty / n:.2f}"


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


def _sweep_command() -> click.Command:
    """`labeldist sweep`: `labeldist run`'s options, with --multilabel-share taking a list."""
    from labeldist.prompts.samplers import DEFAULT_SHARES

    def callback(multilabel_share, out, **options):
        from labeldist.workflows.sweep import parse_shares, run_sweep

        shares = parse_shares(multilabel_share)

        def run_one(share, folder):
            click.echo(f"== multilabel share {share:g} -> {folder}", err=True)
            run_and_report(multilabel_share=share, out=folder, **options)

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


@cli.command("backends")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def backends_command(as_json):
    """The model backends (--backend NAME): what each can do and the settings it takes."""
    import dataclasses

    from labeldist.models.registry import BACKENDS, backend_class

    listing = {}
    for name, entry in BACKENDS.items():
        cls = backend_class(name)
        settings = {
            f.name: (None if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls.settings_class)
            if f.name != "model" and f.default_factory is dataclasses.MISSING
        }
        listing[name] = {"summary": entry.summary, "capabilities": cls.capabilities.as_dict(), "settings": settings}
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for name, info in listing.items():
        can = [key for key, able in info["capabilities"].items() if able]
        cannot = [key for key, able in info["capabilities"].items() if not able]
        click.echo(f"{name}: {info['summary']}")
        click.echo(f"  can: {', '.join(can) or '-'}; cannot: {', '.join(cannot) or '-'}")
        shown = ", ".join(f"{key}={value}" for key, value in info["settings"].items())
        click.echo(f"  settings (--backend-option KEY=VALUE): {shown or '-'}")
