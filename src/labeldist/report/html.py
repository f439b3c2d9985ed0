"""``labeldist report``: one self-contained HTML file about one or more runs.

Everything is inside the file: CSS inline, figures as base64 PNG ``data:`` URIs, no script, no
font or stylesheet from the network, so it opens offline and can be mailed as it is. Sections:
the runs' configurations, their evaluation tables (``evaluation.json`` when the run has one,
else computed for the report), the analyses with their figures and key numbers, the sweep
when a sweep folder is given, and a few example items with each slot's distribution drawn as
bars beside the annotators' vote fractions.

Why one file: one function per section of the one report, sharing its escaping and table helpers.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from labeldist import atomic
from labeldist.errors import DataError
from labeldist.metrics.registry import METRICS as METRIC_REGISTRY
from labeldist.prompts.methods import RunMethod
from labeldist.report.analyses import analyze_runs
from labeldist.runs.store import RunStore
from labeldist.runs.view import RunView, load_views
from labeldist.slots.locate import STOP

EVALUATION_COLUMNS = tuple(METRIC_REGISTRY)  # every metric, in the registry's order
CONFIG_KEYS = (
    "model",
    "dataset",
    "split",
    "grouping",
    "task",
    "ids",
    "shots",
    "sampler",
    "multilabel_share",
    "demonstrations",
    "answer_format",
    "chat",
    "seed",
    "pool_split",
    "method",
)

# No emoji font is named here: an emoji font also has digits and spaces, and Chromium would
# draw numbers with it (twice as wide); the browser falls back to the system's emoji font
# (Debian: fonts-noto-color-emoji, which make test installs with chromium) for emoji alone.
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 24px 32px 64px; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 2px solid #e5e5e5; padding-bottom: 4px; }
h3 { margin-top: 26px; } .muted { color: #666; font-size: 13px; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 7px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
.wide { overflow-x: auto; max-width: 100%; }
th { background: #f6f6f6; overflow-wrap: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.num small { color: #888; display: block; font-size: 11px; }
figure { margin: 16px 0 28px; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; max-width: 900px; }
.example { border: 1px solid #e3e3e3; border-radius: 6px; padding: 10px 14px; margin: 14px 0; }
.example .text { font-size: 15px; margin: 4px 0 8px; white-space: pre-wrap; }
.slots { display: flex; flex-wrap: wrap; gap: 18px; }
.slot { min-width: 360px; } .slot h4 { margin: 6px 0; font-size: 13px; }
.bar-row { display: flex; align-items: center; font-size: 12px; min-height: 18px; margin: 1px 0; }
.bar-row .name { width: 150px; flex: none; line-height: 1.2; overflow-wrap: break-word; }
.bar-row .track { width: 150px; flex: none; height: 12px; background: #f0f0f0; position: relative; margin: 0 6px; }
.bar-row .fill { height: 12px; background: #4c72b0; } .bar-row.chosen .fill { background: #dd8452; }
.bar-row.chosen .name { font-weight: bold; } .bar-row.stop .fill { background: #8c8c8c; }
.bar-row .value { width: 48px; text-align: right; font-variant-numeric: tabular-nums; }
.votes .fill { background: #55a868; }
.gold { background: #e8f4ea; border-radius: 3px; padding: 0 3px; }
.label { background: #f0f0f5; border-radius: 3px; padding: 0 4px; display: inline-block; margin: 0 0 2px; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; }
"""

CAPTIONS = {
    "spikiness": "Slot 1's label probabilities, renormalised over the label set and sorted per item: the mass "
    "sits on one label (rank 1) and drops steeply after it, even where several labels apply.",
    "entropy": "Left: mean entropy (nats) of each slot's label + stop distribution, by slot; filled points where "
    "a label was written at that slot, hollow points where the answer closed there. Right: the distribution of "
    "slot-1 entropy per run, for comparing models (size, finetuning) or prompts.",
    "label_order": "Among answers naming two or more distinct labels: the share of 1st, 2nd, ... written labels that are gold.",
    "first_vs_output": "Where each written label ranks in slot 1's distribution. The top row is how often slot 1's "
    "most probable label is the one written first; the rows below show whether labels written later were "
    "already second, third, ... at slot 1.",
    "attention": "Attention from the token just before each label (whose next-token distribution is the slot) to "
    "the first prompt token (the sink), the rest of the input, the labels written before it, and the answer's "
    "punctuation; mean over layers, heads and items. Right: attention per earlier-label token over attention per "
    "input token.",
}


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _breakable(value) -> str:
    """Escaped, with line-break opportunities after the punctuation of names and paths
    (``platt[base=first,scope=shared]``, ``runs/sweep/share-0.2``), so a long one wraps at a
    natural point instead of widening its table or breaking letter by letter."""
    return re.sub(r"([/,\[@_=-])", r"\1<wbr>", _e(value))


def _img(png: bytes, alt: str) -> str:
    from labeldist.report.figures import min_font_pixels

    data = base64.b64encode(png).decode("ascii")
    # the smallest text's height in the PNG's own pixels: the screenshot check scales it by how
    # wide the figure is drawn to tell whether that text stays legible
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" data-min-font-px="{min_font_pixels():.1f}">'


def _cell(value) -> str:
    if not isinstance(value, dict) or value.get("value") is None or not np.isfinite(value["value"]):
        return '<td class="num">n/a</td>'
    return f'<td class="num">{value["value"]:.3f}<small>[{value["low"]:.3f}, {value["high"]:.3f}]</small></td>'


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- sections --------------------------------------------------------------------------------


def expand_runs(paths: Sequence[str | Path]) -> tuple[list[tuple[Path, str | None]], list[Path]]:
    """(run folder, name) pairs, each sweep folder replaced by its runs (named SWEEP/share-x);
    and the sweep folders."""
    from labeldist.workflows.sweep import SWEEP_FILE, read_sweep

    runs, sweeps = [], []
    for path in map(Path, paths):
        if (path / SWEEP_FILE).exists():
            sweeps.append(path)
            runs.extend((p, f"{path.name}/{p.name}") for _, p in read_sweep(path))
        else:
            runs.append((path, None))
    return runs, sweeps


def navigation(sweeps: Sequence[Path], examples: bool) -> str:
    """Links to the sections (anchors inside the file)."""
    links = [("runs", "Runs"), ("evaluation", "Evaluation"), ("analyses", "Analyses")]
    links += [(f"sweep-{n}", f"Sweep: {folder.name}") for n, folder in enumerate(sweeps, start=1)]
    links += [("examples", "Examples")] if examples else []
    return "<p class='muted'>" + " &middot; ".join(f"<a href='#{a}'>{_e(t)}</a>" for a, t in links) + "</p>"


def config_section(views: Sequence[RunView]) -> str:
    """The HTML table of the runs side by side: config, record counts, model source and labels."""
    rows = []
    for key in CONFIG_KEYS:
        # runs made before the method setting existed were generation runs
        values = [v.config.get(key, RunMethod.GENERATE.value if key == "method" else None) for v in views]
        if all(v is None for v in values):
            continue
        rows.append(f"<tr><th>{_e(key)}</th>" + "".join(f"<td>{_breakable(v)}</td>" for v in values) + "</tr>")
    counts = [v.manifest.get("counts", {}) for v in views]
    for key in ("items_recorded", "unparseable_answers", "empty_answers", "unfinished_answers"):
        rows.append(f"<tr><th>{_e(key)}</th>" + "".join(f"<td>{_e(c.get(key))}</td>" for c in counts) + "</tr>")
    models = [v.manifest.get("model", {}) for v in views]
    sources = "".join(f"<td>{_breakable(m.get('upstream') or m.get('path'))}</td>" for m in models)
    rows.append(f"<tr><th>model source</th>{sources}</tr>")
    # one chip per label: a label may itself hold commas ("rent, heating and the cost of living")
    labels = ["".join(f"<span class='label'>{_e(label)}</span> " for label in v.labels) for v in views]
    rows.append("<tr><th>labels</th>" + "".join(f"<td>{x}</td>" for x in labels) + "</tr>")
    head = "<tr><th></th>" + "".join(f"<th>{_breakable(v.name)}</th>" for v in views) + "</tr>"
    return f"<h2 id='runs'>Runs</h2><div class='wide'><table>{head}{''.join(rows)}</table></div>"


def evaluation_section(views: Sequence[RunView], resamples: int) -> str:
    """The HTML evaluation tables of each run, from its evaluation.json files or computed now with ``resamples``."""
    from labeldist.evaluation import evaluate_run

    parts = [
        "<h2 id='evaluation'>Evaluation</h2>",
        '<p class="muted">Each cell: value [95% bootstrap interval over items]. '
        "Classification columns against gold; MAMD, BCE, Brier, Spearman and ECE against the annotators' "
        "vote fractions (gold 0/1 where a dataset has no votes).</p>",
    ]
    for view in views:
        found = evaluation_files(Path(view.path))
        if found:
            tables = [(result, f"from <code>{_e(path)}</code>") for path, result in found]
        else:
            tables = [
                (
                    evaluate_run(view.path, None, n_resamples=resamples),
                    f"computed for this report ({resamples} resamples; no evaluation.json in the run)",
                )
            ]
        for result, source in tables:
            parts.append(_evaluation_table(view, result, source))
    return "".join(parts)


def evaluation_files(run: Path) -> list[tuple[Path, dict]]:
    """The run's ``evaluation.json`` and ``evaluation-*.json`` (what ``labeldist evaluate --json``
    was saved as, e.g. one per threshold), without repeats of the same evaluation."""
    out, seen = [], set()
    for path in sorted(run.glob("evaluation*.json"), key=lambda p: (p.name != "evaluation.json", p.name)):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(str(path), err.lineno, f"invalid JSON: {err.msg}") from None
        if not isinstance(result, dict) or "estimators" not in result:
            continue
        key = json.dumps([result.get(k) for k in ("threshold", "calibration_run", "items", "estimators")], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append((path, result))
    return out


def _evaluation_table(view: RunView, result: dict, source: str) -> str:
    head = "<tr><th>estimator</th>" + "".join(f"<th>{_e(c)}</th>" for c in EVALUATION_COLUMNS) + "</tr>"
    body = "".join(
        f"<tr><td>{_breakable(name)}</td>" + "".join(_cell(row.get(c)) for c in EVALUATION_COLUMNS) + "</tr>"
        for name, row in result.get("estimators", {}).items()
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.get("notes", []))
    calibration = f", calibrated on <code>{_e(result['calibration_run'])}</code>" if result.get("calibration_run") else ""
    return (
        f"<h3>{_e(view.name)}, threshold {_e(result.get('threshold'))}</h3><p class='muted'>{result.get('items')} "
        f"items{calibration}; {source}</p><div class='wide'><table>{head}{body}</table></div>"
        + (f"<ul class='muted'>{notes}</ul>" if notes else "")
    )


def key_numbers(views: Sequence[RunView], stats: dict) -> str:
    """The HTML table of headline analysis numbers per run, and paired slot-1 entropy differences where computed."""

    def row(name, getter, digits=3):
        cells = []
        for view in views:
            try:
                value = getter(stats["runs"][view.name])
            except (KeyError, TypeError, IndexError):
                value = None
            cells.append(f'<td class="num">{_e(_fmt(value, digits))}</td>')
        return f"<tr><th>{_e(name)}</th>{''.join(cells)}</tr>"

    rows = [
        row("items", lambda s: s["summary"]["items"]),
        row("distinct labels per answer", lambda s: s["summary"]["labels_per_answer"]),
        row("answers that repeat a label", lambda s: s["summary"]["answers_with_repeats"]),
        row("answers with 2+ labels", lambda s: s["label_order"]["answers_with_2plus"]),
        row("slot-1 entropy, mean (nats)", lambda s: s["entropy"]["slot1"]["mean"]),
        row("slot-1 entropy / maximum", lambda s: s["entropy"]["slot1"]["normalised_mean"]),
        row("slot-1 entropy over the labels only (nats)", lambda s: s["entropy"]["slot1_labels_only"]["mean"]),
        row("slot-1 top label share (renormalised)", lambda s: s["spikiness"]["top1_mean"]),
        row("slot-1 top label > 0.9 (share of items)", lambda s: s["spikiness"]["top1_above_0.9_share"]),
        row("slot-1 mass on labels (rest: stop, other text)", lambda s: s["spikiness"]["label_mass_mean"]),
        row("slot-1 top label is written first", lambda s: s["first_vs_output"]["top_label_is_first_written"]["value"]),
        row(
            "stop more probable than the first written label",
            lambda s: s["first_vs_output"]["stop_more_probable_than_first_written"]["value"],
        ),
        row("later labels: mean rank at slot 1", lambda s: s["first_vs_output"]["later_label_mean_rank"]),
        row("1st label is gold (answers with 2+)", lambda s: s["label_order"]["by_position"][0]["value"]),
        row("2nd label is gold (answers with 2+)", lambda s: s["label_order"]["by_position"][1]["value"]),
    ]
    head = "<tr><th></th>" + "".join(f"<th>{_breakable(v.name)}</th>" for v in views) + "</tr>"
    table = f"<div class='wide'><table>{head}{''.join(rows)}</table></div>"
    paired = [r for r in stats.get("paired", []) if r.get("slot1_entropy")]
    if paired:
        head = (
            "<tr><th>second run</th><th>first run</th><th>items</th><th>slot-1 entropy, second &minus; first (nats)</th>"
            "<th>labels only</th><th>top label</th><th>Spearman with the votes</th>"
            "<th>items where the second's entropy is higher</th></tr>"
        )
        body = "".join(
            f"<tr><td>{_e(r['second'])}</td><td>{_e(r['first'])}</td><td class='num'>{r['items']}</td>"
            + "".join(
                f"<td class='num'>{c['difference']:+.3f} <small>[{c['low']:+.3f}, {c['high']:+.3f}]</small></td>"
                if c
                else "<td class='num'>n/a</td>"
                for c in (r["slot1_entropy"], r.get("slot1_labels_only"), r.get("slot1_top_label"), r.get("slot1_spearman"))
            )
            + f"<td class='num'>{_fmt(r['slot1_entropy']['second_higher_share'])}</td></tr>"
            for r in paired
        )
        table += (
            "<p class='muted'>Runs over the same items, item by item: mean difference [95% bootstrap "
            f"interval over items].</p><div class='wide'><table>{head}{body}</table></div>"
        )
    return table


def analyses_section(views: Sequence[RunView], stats: dict, attention: dict | None) -> str:
    """The HTML analyses section: the key numbers table and every analysis figure, with a note if attention is absent."""
    from labeldist.report.figures import analysis_figures, png_bytes

    parts = ["<h2 id='analyses'>Analyses</h2>", key_numbers(views, stats)]
    for name, fig in analysis_figures(views, stats, attention).items():
        parts.append(f"<figure>{_img(png_bytes(fig), name)}<figcaption>{_e(CAPTIONS.get(name, ''))}</figcaption></figure>")
    if attention is None:
        parts.append(
            "<p class='muted'>Label attention is not in this report: it needs a second pass of the model "
            "with eager attention (<code>labeldist report ... --attention</code>).</p>"
        )
    return "".join(parts)


def sweep_section(sweeps: Sequence[Path]) -> str:
    """One HTML section per sweep folder: the sweep figure and its table of results by share."""
    from labeldist.report.figures import png_bytes, sweep_figure
    from labeldist.workflows.sweep import SWEEP_FILE, summarize_sweep, sweep_title

    parts = []
    for n, folder in enumerate(sweeps, start=1):
        data = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
        summary = data if "by_share" in data else summarize_sweep(folder)
        figure = sweep_figure(summary, sweep_title(summary.get("shared_config", {})))
        rows = "".join(
            f"<tr><td class='num'>{r['share']:g}</td><td>{_breakable(r['run'])}</td><td class='num'>{r['items']}</td>"
            f"<td class='num'>{_fmt(r.get('multilabel_demonstrations'), 1)}</td>"
            f"<td class='num'>{_fmt(r['labels_per_answer']['mean'])}</td><td class='num'>{_fmt(r['answers_with_2plus'])}</td>"
            f"<td class='num'>{_fmt(r['slot1_entropy']['mean'])}</td>"
            + _cell(r["f1"]["output"]["micro"])
            + _cell(r["f1"]["max"]["micro"])
            + "</tr>"
            for r in summary["by_share"]
        )
        head = (
            "<tr><th>share</th><th>run</th><th>items</th><th>multi-label demos (mean)</th><th>labels per answer</th>"
            "<th>answers with 2+</th><th>slot-1 entropy</th><th>micro-F1, written labels</th>"
            "<th>micro-F1, max over slots &ge; 0.5</th></tr>"
        )
        parts.append(
            f"<h2 id='sweep-{n}'>Sweep: {_e(folder.name)}</h2><p class='muted'>Every run shares all settings but the share of "
            f"multi-label demonstrations; same items in every run: {'yes' if summary.get('same_items') else 'no'}.</p>"
            f"<figure>{_img(png_bytes(figure), 'sweep')}</figure><div class='wide'><table>{head}{rows}</table></div>"
        )
    return "".join(parts)


def _item_texts(view: RunView, ids: Sequence[str]) -> dict[str, str]:
    """The items' texts from the run's dataset, when it can still be read (else none)."""
    from labeldist.data import load_dataset

    config = view.config
    try:
        dataset = load_dataset(
            config["dataset"],
            config["data_dir"],
            config["split"],
            grouping=config.get("grouping"),
            task=config.get("task"),
            **(config.get("options") or {}),
        )
    except Exception:  # noqa: BLE001 - the text is a courtesy; the prompt's end is shown instead
        return {}
    wanted = set(ids)
    return {item.id: item.text for item in dataset if item.id in wanted}


def pick_examples(views: Sequence[RunView], count: int) -> list[tuple[str, list[RunView]]]:
    """Example items and the runs that labelled each: ``count`` items from the first run, those
    labelled by the most runs and with several gold labels (where spikiness shows) first; then
    as many from the first run not yet shown (runs over other items), and so on."""
    out: list[tuple[str, list[RunView]]] = []
    shown: set[str] = set()
    while count > 0:
        remaining = [v for v in views if v.name not in shown]
        if not remaining:
            break
        lead = remaining[0]
        members = {v.name: set(v.ids) for v in views}
        order = sorted(
            range(len(lead.ids)),
            key=lambda i: (-sum(lead.ids[i] in ids for ids in members.values()), -min(lead.gold[i].sum(), 2), i),
        )
        for i in order[:count]:
            item_id = lead.ids[i]
            runs = [v for v in views if item_id in members[v.name]]
            out.append((item_id, runs))
            shown.update(v.name for v in runs)
        shown.add(lead.name)
    return out


def _bars(names, values, chosen=None, css="") -> str:
    rows = []
    for name, value in zip(names, values):
        value = 0.0 if value is None or not np.isfinite(value) else float(value)
        klass = "bar-row" + (" chosen" if name == chosen else "") + (" stop" if name == STOP else "")
        rows.append(
            f'<div class="{klass}"><span class="name" title="{_e(name)}">{_e(name)}</span><span class="track">'
            f'<div class="fill" style="width:{100 * min(max(value, 0.0), 1.0):.1f}%"></div></span>'
            f'<span class="value">{value:.3f}</span></div>'
        )
    return f'<div class="{css}">{"".join(rows)}</div>'


def examples_section(views: Sequence[RunView], count: int) -> str:
    """The HTML examples section: each picked item's slot distributions per run beside its vote fractions."""
    picked = pick_examples(views, count)
    if not picked:
        return ""
    parts = [
        "<h2 id='examples'>Examples</h2><p class='muted'>Each slot's exact distribution over the labels and stopping "
        "(the label written there in orange), beside the annotators' vote fractions (green), for every run "
        "that labelled the item.</p>"
    ]
    texts: dict[str, dict[str, str]] = {}
    for item_id, runs in picked:
        lead = runs[0]
        if lead.name not in texts:
            texts[lead.name] = _item_texts(lead, [i for i, r in picked if r[0] is lead])
        row0 = lead.ids.index(item_id)
        gold = [label for label, g in zip(lead.labels, lead.gold[row0]) if g]
        text = texts[lead.name].get(item_id)
        if text is None:
            prompt = RunStore(lead.path).read_table(["id", "prompt"]).to_pandas().set_index("id").loc[item_id, "prompt"]
            text = "… " + prompt[-300:]
        parts.append('<div class="example">')
        parts.append(
            f"<div><b>{_e(item_id)}</b> &nbsp; gold: "
            + " ".join(f"<span class='gold'>{_e(g)}</span>" for g in gold)
            + f"</div><div class='text'>{_e(text)}</div>"
        )
        for view in runs:
            i = view.ids.index(item_id)
            labels = list(view.labels)
            slots = []
            for k in range(int(view.n_slots[i])):
                chosen = view.chosen[i][k]
                values = [*view.slot_probs[i, k], view.stop[i, k]]
                slots.append(
                    f'<div class="slot"><h4>slot {k + 1}: {_e(chosen)}</h4>{_bars([*labels, STOP], values, chosen)}</div>'
                )
            heading = "vote fractions" if view.votes_available[i] else "gold (no annotator votes)"
            votes = f'<div class="slot"><h4>{heading}</h4>{_bars(labels, view.targets[i], css="votes")}</div>'
            parts.append(
                f"<h4>{_e(view.name)}: <code>{_e(view.answers[i])}</code></h4>"
                f'<div class="slots">{"".join(slots) or "<i>no slots (unparseable answer)</i>"}{votes}</div>'
            )
        parts.append("</div>")
    return "".join(parts)


def build_report(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    examples: int = 3,
    attention: bool = False,
    attention_items: int = 30,
    device: str | None = "cpu",
    resamples: int = 500,
    title: str | None = None,
) -> Path:
    """Write a self-contained HTML report on the runs and sweeps in ``paths`` to ``out`` and return its path."""
    runs, sweeps = expand_runs(paths)
    if not runs:
        raise DataError(", ".join(map(str, paths)), None, "no runs to report on")
    views = load_views([path for path, _ in runs], [name for _, name in runs])
    # a sweep's runs are in the configuration and evaluation tables and in the sweep's own
    # section; the analyses and examples compare the runs given directly (else the sweep's)
    direct = [view for view, (_, name) in zip(views, runs) if name is None] or views
    weights = None
    if attention:
        from labeldist.runs.attention import compute_attention

        weights = compute_attention(direct, attention_items, device)
    stats = analyze_runs(direct, weights)
    try:
        package = version("labeldist")
    except PackageNotFoundError:
        package = "?"
    title = title or "labeldist report: " + ", ".join(v.name for v in views[:4]) + (" …" if len(views) > 4 else "")
    body = [
        f"<h1>{_e(title)}</h1><p class='muted'>Made {_e(time.strftime('%Y-%m-%d %H:%M %Z'))} by labeldist {_e(package)} "
        f"from {len(views)} run(s). Self-contained: opens offline.</p>",
        navigation(sweeps, examples > 0),
        config_section(views),
        evaluation_section(views, resamples),
        analyses_section(direct, stats, weights),
        sweep_section(sweeps),
        examples_section(direct, examples),
    ]
    document = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, document)
    return out
