"""The analyses' figures (matplotlib, Agg backend), each written as PNG and PDF with one name.

Every figure compares runs side by side in one colour per run (the same colour in every
figure), with the run's folder name and item count in the legend, so runs of different model
sizes, finetuned or not, or with different prompts read against each other.

Why one file: one short function per figure of the analyses, sharing the colours, legends and
saving of this module.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here or on CI; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from labeldist import atomic  # noqa: E402
from labeldist.report.analyses import position_rank_counts, slot1_sorted  # noqa: E402
from labeldist.runs.view import RunView  # noqa: E402

COLOURS = plt.get_cmap("tab10").colors
ATTENTION_PARTS = (
    ("sink", "first prompt token", "#bdbdbd"),
    ("input", "rest of the input", "#4c72b0"),
    ("previous_labels", "earlier labels", "#dd8452"),
    ("answer_format", "answer punctuation", "#55a868"),
)

plt.rcParams.update(
    {
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "pdf.fonttype": 42,  # text stays text in the PDF
    }
)


# the smallest text any figure here writes (annotations, small legends); the report's
# screenshot check scales it by how wide each figure is drawn (min_font_pixels)
SMALLEST_FONT_PT = 7
# figures are drawn no wider than this (inches) where a layout can choose, so that at the report's
# page width (about 1,116 px for a PNG of 150 dpi) the smallest text stays legible (8 px or more)
MAX_WIDTH_IN = 12.0


def min_font_pixels() -> float:
    """The height in PNG pixels of the smallest text (:data:`SMALLEST_FONT_PT` at the saving dpi)."""
    return SMALLEST_FONT_PT * float(plt.rcParams["savefig.dpi"]) / 72


def colour(i: int):
    """The ``i``-th colour of the tab10 palette, cycling."""
    return COLOURS[i % len(COLOURS)]


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """``name``.png and ``name``.pdf in ``out_dir``; closes the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, bbox_inches="tight", format=path.suffix[1:])
    plt.close(fig)
    return paths


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _legend_name(view: RunView, n: int | None = None) -> str:
    return f"{view.name} (n={len(view) if n is None else n})"


def _percent(value: float) -> str:
    # a count of 1 in 200 is not "0%", and 199 of 200 is not "100%"
    if 0 < value < 0.005:
        return "<1%"
    if 0.995 <= value < 1:
        return ">99%"
    return f"{value:.0%}"


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555", wrap=True)
    ax.axis("off")


# -- spikiness -------------------------------------------------------------------------------


def spikiness_figure(views: Sequence[RunView]):
    """Box and strip plots of each run's slot-1 label probabilities by rank, renormalised and sorted per item."""
    k = max(len(v.labels) for v in views)
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH_IN, max(6.5, 0.9 * k + 2.5)), 4.2))
    width = 0.8 / len(views)
    rng = np.random.default_rng(0)
    handles = []
    for i, view in enumerate(views):
        q = slot1_sorted(view)
        if not len(q):
            continue
        positions = np.arange(1, q.shape[1] + 1) + (i - (len(views) - 1) / 2) * width
        box = ax.boxplot(
            [q[:, r] for r in range(q.shape[1])],
            positions=positions,
            widths=width * 0.8,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for patch in box["boxes"]:
            patch.set_facecolor((*colour(i), 0.35))
            patch.set_edgecolor(colour(i))
        # the items themselves, jittered inside each box's width (strip plot)
        for r in range(q.shape[1]):
            x = positions[r] + rng.uniform(-width * 0.3, width * 0.3, len(q))
            ax.scatter(x, q[:, r], s=5, color=colour(i), alpha=0.35, linewidths=0)
        has = view.n_slots > 0
        mass = float(np.nanmean(view.slot_probs[has, 0, :].sum(axis=1))) if has.any() else float("nan")
        handles.append(
            plt.Rectangle(
                (0, 0), 1, 1, facecolor=(*colour(i), 0.35), edgecolor=colour(i), label=f"{_legend_name(view, len(q))}: {mass:.0%}"
            )
        )
    ax.set_xticks(range(1, k + 1))
    ax.set_xticklabels([f"{r}" for r in range(1, k + 1)])
    ax.set_xlabel("label rank at slot 1 (1 = most probable)")
    ax.set_ylabel("probability (renormalised over the labels)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Spikiness: slot-1 label probabilities, sorted per item")
    ax.legend(
        handles=handles,
        loc="upper right",
        fontsize=8,
        title="run (items): slot-1 mass on labels (the rest: stop, other text)",
        title_fontsize=8,
    )
    return fig


# -- entropy ---------------------------------------------------------------------------------


def entropy_figure(views: Sequence[RunView], stats: dict):
    """Mean entropy by slot (label and closing slots apart, 95% CI) and each run's slot-1 entropy distribution."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [1.2, 1]}, layout="constrained")
    # slots where a label was written (filled, solid) and slots where the answer closed
    # (hollow) are drawn apart: a closing slot is usually near-certain, and mixing the
    # two would show a fall in entropy that is only the answer ending
    # (no line joins closing slots: the answers that close at slot 1 are not those closing at slot 2)
    kinds = (("label_slots", "-", None), ("closing_slots", "none", "white"))
    longest = 1
    for i, view in enumerate(views):
        offset = (i - (len(views) - 1) / 2) * 0.1
        for key, style, face in kinds:
            rows = [r for r in stats[view.name]["entropy"]["by_slot"] if r[key]["n"] > 0]
            if not rows:
                continue
            x = np.array([r["slot"] for r in rows]) + offset
            mean = np.array([r[key]["mean"] for r in rows], dtype=float)
            low = np.array([r[key]["low"] if r[key]["low"] is not None else r[key]["mean"] for r in rows], dtype=float)
            high = np.array([r[key]["high"] if r[key]["high"] is not None else r[key]["mean"] for r in rows], dtype=float)
            left.errorbar(
                x,
                mean,
                yerr=[mean - low, high - mean],
                marker="o",
                linestyle=style,
                capsize=3,
                color=colour(i),
                markerfacecolor=face or colour(i),
                markersize=6,
            )
            for xs, m, r in zip(x, mean, rows):
                # how many answers a point averages, where not all of the run's: above label
                # points, below closing ones, so that points at one slot do not share a spot
                if r[key]["n"] < len(view):
                    closing = key == "closing_slots"
                    left.annotate(
                        f"n={r[key]['n']}",
                        (xs, m),
                        textcoords="offset points",
                        ha="left" if closing else "center",
                        va="center" if closing else "bottom",
                        xytext=(6, 0) if closing else (0, 7),
                        fontsize=7,
                        color=colour(i),
                    )
            longest = max(longest, int(max(r["slot"] for r in rows)))
    ceilings = sorted({len(v.labels) for v in views})
    for k in ceilings:
        left.axhline(np.log(k + 1), color="#888888", linestyle="--", linewidth=0.8)
        left.text(
            0.65, np.log(k + 1), f"maximum: uniform over {k} labels + stop", fontsize=7, va="bottom", ha="left", color="#666666"
        )
    left.set_xticks(range(1, longest + 1))
    left.set_xticklabels([f"slot {k}" for k in range(1, longest + 1)])
    left.set_xlim(0.6, longest + 0.5)
    left.set_ylim(0, np.log(max(ceilings) + 1) * 1.1)
    left.set_ylabel("entropy (nats), mean and 95% CI")
    left.set_title("Entropy by slot (labels + stop)")
    handles = [
        plt.Line2D([], [], color=colour(i), marker="o", linestyle="-", label=_legend_name(view)) for i, view in enumerate(views)
    ]
    handles += [
        plt.Line2D([], [], color="#555555", marker="o", linestyle="-", label="a label was written at this slot"),
        plt.Line2D(
            [], [], color="#555555", marker="o", markerfacecolor="white", linestyle="none", label="the answer closed at this slot"
        ),
    ]
    left.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncol=2)

    data = [view.entropy()[:, 0] for view in views]
    data = [d[np.isfinite(d)] for d in data]
    positions = np.arange(1, len(views) + 1)
    parts = right.violinplot([d if len(d) else [np.nan] for d in data], positions=positions, showextrema=False)
    for i, body in enumerate(parts["bodies"]):
        body.set_facecolor(colour(i))
        body.set_alpha(0.35)
    right.boxplot(data, positions=positions, widths=0.15, showfliers=False, medianprops={"color": "black"})
    right.scatter(
        positions,
        [d.mean() if len(d) else np.nan for d in data],
        marker="D",
        color="white",
        edgecolor="black",
        zorder=3,
        s=18,
        label="mean",
    )
    right.set_xticks(positions)
    right.set_xticklabels(
        [v.name for v in views], rotation=20 if len(views) > 2 else 0, ha="right" if len(views) > 2 else "center"
    )
    right.set_ylim(bottom=0)
    right.set_ylabel("slot-1 entropy (nats)")
    right.set_title("Slot-1 entropy per run")
    right.legend(loc="upper right", fontsize=8)
    return fig


# -- label order -----------------------------------------------------------------------------


def label_order_figure(views: Sequence[RunView], stats: dict):
    """Bars of the share of gold labels at each position of the answers with 2+ distinct labels, per run (95% CI)."""
    longest = max((len(stats[v.name]["label_order"]["by_position"]) for v in views), default=0)
    fig, ax = plt.subplots(figsize=(10, 4.2) if longest else (7, 1.6), layout="constrained")  # legend beside
    if longest == 0:
        _empty(ax, "No answer in these runs names 2 or more distinct labels:\nlabel-order accuracy needs some.")
        ax.set_title("Label-order accuracy (answers with 2+ labels)")
        return fig
    shown = [(i, v) for i, v in enumerate(views) if stats[v.name]["label_order"]["by_position"]]
    width = min(0.8 / len(shown), 0.35)
    for slot, (i, view) in enumerate(shown):
        rows = stats[view.name]["label_order"]["by_position"]
        x = np.array([r["position"] for r in rows]) + (slot - (len(shown) - 1) / 2) * width
        value = np.array([r["value"] for r in rows])
        err = [value - np.array([r["low"] for r in rows]), np.array([r["high"] for r in rows]) - value]
        n_answers = stats[view.name]["label_order"]["answers_with_2plus"]
        ax.bar(
            x,
            value,
            width * 0.9,
            color=colour(i),
            alpha=0.8,
            yerr=err,
            capsize=3,
            label=f"{view.name} ({n_answers} answers with 2+ labels)",
        )
        for xs, r in zip(x, rows):
            ax.text(xs, r["high"] + 0.02, f"n={r['n']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(1, longest + 1))
    ax.set_xticklabels([f"label {k}" for k in range(1, longest + 1)])
    ax.set_xlim(0.4, longest + 0.6)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of labels that are gold (95% CI)")
    ax.set_xlabel("position in the answer (distinct labels, in the order written)")
    ax.set_title("Label-order accuracy: is the k-th written label correct?")
    handles = ax.get_legend_handles_labels()[0]
    # runs without such answers are named too, so a missing bar is not read as a zero
    handles += [
        plt.Rectangle(
            (0, 0), 1, 1, facecolor="none", edgecolor=colour(i), linestyle=":", label=f"{v.name}: no answers with 2+ labels"
        )
        for i, v in enumerate(views)
        if not stats[v.name]["label_order"]["by_position"]
    ]
    # beside the axes: a legend inside would sit on the bars and their counts
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


# -- slot 1 versus the output ----------------------------------------------------------------


def first_vs_output_figure(views: Sequence[RunView], stats: dict):
    """Heatmaps per run: where the 1st, 2nd and later written labels rank at slot 1."""
    names = ("1st written", "2nd written", "3rd and later")
    k_max = max(len(v.labels) for v in views)
    counts = [position_rank_counts(v, len(names)) for v in views]
    # the rows some run fills, and at least the 2nd (its "none written" is itself a finding)
    used = max([2] + [int(np.flatnonzero(c.sum(axis=1))[-1]) + 1 for c in counts if c.sum()])
    names = names[:used]
    # panels wrap into rows so that many runs (or many labels) stay readable at the page's width
    panel = 0.42 * k_max + 1.9
    most = max(1, min(3, int((MAX_WIDTH_IN - 1.0) // panel)))
    lines = -(-len(views) // most)
    columns = -(-len(views) // lines)  # balanced: 4 runs are 2 x 2, not 3 + 1
    fig, axes = plt.subplots(
        lines,
        columns,
        figsize=(panel * columns + 1.0, (0.55 * used + 1.3) * lines + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[len(views) :]:
        ax.set_visible(False)
    image = None
    for n, (ax, view, count) in enumerate(zip(axes.flat, views, counts)):
        count = count[:used]
        totals = count.sum(axis=1, keepdims=True)
        share = count / np.maximum(totals, 1)
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        k = share.shape[1]
        for r in range(used):
            if totals[r, 0] == 0:
                ax.text((k - 1) / 2, r, "none written", ha="center", va="center", fontsize=8, color="#777777")
                continue
            for c in range(k):
                if count[r, c]:
                    ax.text(
                        c,
                        r,
                        _percent(share[r, c]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[r, c] > 0.6 else "black",
                    )
        ax.set_xticks(range(k))
        ax.set_xticklabels([str(c + 1) for c in range(k)], fontsize=8)
        ax.set_yticks(range(used))
        # every panel says how many labels each row has; only the first of a line names the rows
        ax.set_yticklabels(
            [f"{name}  n={int(totals[r, 0])}" if n % columns == 0 else f"n={int(totals[r, 0])}" for r, name in enumerate(names)],
            fontsize=8,
        )
        ax.set_xlabel("rank at slot 1 (1 = most probable)", fontsize=8)
        agree = stats[view.name]["first_vs_output"]["top_label_is_first_written"]
        if agree["n"]:
            hits = int(round(agree["value"] * agree["n"]))
            shown = f"{hits} of {agree['n']} ({_percent(agree['value'])})"
        else:
            shown = "no label written"
        ax.set_title(f"{view.name}\nslot-1 top label written first: {shown}", fontsize=9)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, label="share of the row", aspect=15)
    fig.suptitle("Does slot 1 show the final output? Where each written label ranks at slot 1")
    return fig


# -- attention -------------------------------------------------------------------------------


def attention_figure(views: Sequence[RunView], attention: dict):
    """Stacked shares of attention by part of the prompt at each slot, and earlier-label vs input attention per token."""
    names = [v.name for v in views if v.name in attention]
    bars = sum(len(attention[n]["by_slot"]) for n in names)
    fig, (ax, right) = plt.subplots(
        1,
        2,
        figsize=(max(6.0, 1.1 * bars + 2.0) + max(4.0, 0.8 * bars + 1.5), 4.6),
        gridspec_kw={"width_ratios": [max(6.0, 1.1 * bars + 2.0), max(4.0, 0.8 * bars + 1.5)]},
        layout="constrained",
    )
    x, ticks, tick_labels = 0.0, [], []
    for name in names:
        for row in attention[name]["by_slot"]:
            bottom = 0.0
            for key, _, col in ATTENTION_PARTS:
                value = row["mass"][key]
                ax.bar(x, value, 0.7, bottom=bottom, color=col, edgecolor="white", linewidth=0.5)
                if value >= 0.03:
                    ax.text(
                        x,
                        bottom + value / 2,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if key in ("input", "previous_labels") else "black",
                    )
                bottom += value
            ticks.append(x)
            tick_labels.append(f"slot {row['slot']}\n(n={row['n']})")
            x += 1
        ax.text(x - 1 - (len(attention[name]["by_slot"]) - 1) / 2, 1.04, name, ha="center", fontsize=9, fontweight="bold")
        x += 0.6
    ax.set_xticks(ticks)
    ax.set_xticklabels(tick_labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("share of attention (mean over layers, heads, items)")
    ax.set_title("Where the token before each label looks", pad=18)
    handles = [plt.Rectangle((0, 0), 1, 1, color=col, label=label) for _, label, col in ATTENTION_PARTS]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, ncol=4)

    # per token: the input has hundreds of tokens, an earlier label a few, so the shares alone
    # hide how strongly one earlier-label token is attended next to one input token
    x, ticks, tick_labels, top = 0.0, [], [], 1.0
    for name in names:
        for row in attention[name]["by_slot"]:
            earlier, given = row["per_token"].get("previous_labels"), row["per_token"].get("input")
            if not earlier or not given:
                continue  # slot 1: no earlier label
            ratio = earlier / given
            right.bar(x, ratio, 0.6, color=ATTENTION_PARTS[2][2])  # the colour of "earlier labels" on the left
            right.text(x, ratio, f"{ratio:.1f}x", ha="center", va="bottom", fontsize=8)
            top = max(top, ratio)
            ticks.append(x)
            tick_labels.append(
                f"{name}\nslot {row['slot']} (n={row['n']})" if len(names) > 1 else f"slot {row['slot']}\n(n={row['n']})"
            )
            x += 1
        x += 0.4
    if ticks:
        right.axhline(1, color="#666666", linestyle="--", linewidth=0.8, label="1: as much as an input token")
        right.legend(loc="upper left", fontsize=7)
        right.set_xticks(ticks)
        right.set_xticklabels(tick_labels, fontsize=7)
        right.set_ylim(0, top * 1.35)  # room for the legend above the bars
        right.set_xlim(ticks[0] - 0.9, ticks[-1] + 0.9)  # one bar stays a bar, not a wall
        right.set_ylabel("attention per earlier-label token\n÷ attention per input token")
    else:
        _empty(right, "No answer with a second label:\nno earlier labels to attend to.")
    right.set_title("Per token: earlier labels vs the input", pad=18)
    return fig


# -- all of them -----------------------------------------------------------------------------


def analysis_figures(views: Sequence[RunView], stats: dict, attention: dict | None = None) -> dict:
    """name -> figure, for every analysis that has something to show."""
    runs = stats["runs"]
    figures = {
        "spikiness": spikiness_figure(views),
        "entropy": entropy_figure(views, runs),
        "label_order": label_order_figure(views, runs),
        "first_vs_output": first_vs_output_figure(views, runs),
    }
    if attention:
        figures["attention"] = attention_figure(views, attention)
    return figures


def write_figures(figures: dict, out_dir: Path) -> list[Path]:
    """Save each figure as ``name``.png and ``name``.pdf in ``out_dir``; return the paths written."""
    paths = []
    for name, fig in figures.items():
        paths.extend(save(fig, out_dir, name))
    return paths


# -- the multi-label demonstration sweep -----------------------------------------------------


def sweep_figure(summary: dict, title: str = ""):
    """Three panels against the share of multi-label demonstrations: labels per answer, slot-1 entropy and micro-F1."""
    rows = sorted(summary["by_share"], key=lambda r: r["share"])
    x = np.array([r["share"] for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.9), layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)  # room between the left panel's second axis and the middle one

    def interval(ax, cells, label, col, marker="o", linestyle="-"):
        mean = np.array([c["mean"] if c["mean"] is not None else np.nan for c in cells], dtype=float)
        low = np.array([c["low"] if c["low"] is not None else m for c, m in zip(cells, mean)], dtype=float)
        high = np.array([c["high"] if c["high"] is not None else m for c, m in zip(cells, mean)], dtype=float)
        ax.plot(x, mean, marker=marker, linestyle=linestyle, color=col, label=label)
        ax.fill_between(x, low, high, color=col, alpha=0.15, linewidth=0)

    interval(axes[0], [r["labels_per_answer"] for r in rows], "labels per answer", colour(0))
    axes[0].set_ylabel("distinct labels per answer (mean, 95% CI)")
    axes[0].set_ylim(bottom=0)
    twin = axes[0].twinx()
    twin.plot(
        x, [r["answers_with_2plus"] for r in rows], marker="s", linestyle="--", color=colour(1), label="answers with 2+ labels"
    )
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("share of answers with 2+ labels", color=colour(1))
    twin.spines["right"].set_visible(True)
    handles = axes[0].get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    axes[0].legend(handles=handles, loc="upper left", fontsize=8)
    axes[0].set_title("Labels predicted")

    interval(axes[1], [r["slot1_entropy"] for r in rows], "slot-1 entropy", colour(2))
    axes[1].set_ylabel("slot-1 entropy (nats, mean, 95% CI)")
    axes[1].set_ylim(bottom=0)
    axes[1].set_title("Slot-1 entropy")

    styles = {"output": ("written labels (output)", colour(3), "-"), "max": ("max over slots ≥ 0.5", colour(4), "--")}
    for name, (label, col, style) in styles.items():
        cells = [
            {
                "mean": r["f1"][name]["micro"]["value"],
                "low": r["f1"][name]["micro"]["low"],
                "high": r["f1"][name]["micro"]["high"],
            }
            for r in rows
        ]
        interval(axes[2], cells, label, col, linestyle=style)
    axes[2].set_ylabel("micro-F1 against gold (95% CI)")
    axes[2].set_ylim(0, 1)
    axes[2].legend(loc="upper left", fontsize=8)
    axes[2].set_title("F1")
    for ax in axes:
        ax.set_xlabel("share of multi-label demonstrations")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:g}" for v in x])
    items = rows[0]["items"] if rows else 0
    fig.suptitle(
        f"Multi-label demonstrations sweep: {title} (n={items} items per share)"
        if title
        else f"Multi-label demonstrations sweep (n={items} items per share)"
    )
    return fig
