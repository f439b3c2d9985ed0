"""Statistics behind the paper's analyses, from the records of generation runs.

Every function takes a :class:`RunView` (a run's arrays plus what the arrays leave out: the
label chosen at each slot) and returns plain numbers, so the same values go into
``analyses.json``, the figures and the HTML report.

Conventions, fixed once here:

- a slot's distribution is its exact label probabilities plus the stop probability, as
  recorded; *entropy* (nats) is that of this vector renormalised to sum to 1 (what
  ``labeldist show`` prints);
- *spikiness* reads slot 1's label probabilities renormalised over the label set (the
  distribution of which label comes first, given that one does), sorted per item;
- an answer's *labels* are its distinct known labels in the order first written: SmolLM2 with
  multi-label demonstrations writes ``["sadness", "sadness"]``, which is one label, repeated
  (counted separately as ``answers_with_repeats``);
- *ranks* at slot 1 are 1 for the most probable label; ties share the better rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeldist.metrics.alignment import spearman_per_item
from labeldist.metrics.summary import mean_interval, rounded, wilson
from labeldist.runs.view import RunView
from labeldist.slots.locate import STOP

# -- helpers ---------------------------------------------------------------------------------


def _share(successes: int, n: int) -> dict:
    low, high = wilson(successes, n)
    return {"value": rounded(successes / n if n else float("nan")), "low": rounded(low), "high": rounded(high), "n": int(n)}


def ranks_of(probs: np.ndarray) -> np.ndarray:
    """Rank (1 = most probable) of every entry of each row; ties share the better rank."""
    probs = np.asarray(probs, dtype=float)
    return (probs[..., None, :] > probs[..., :, None]).sum(axis=-1) + 1


# -- summary ---------------------------------------------------------------------------------


def summary(view: RunView) -> dict:
    """What the run is and what its answers look like."""
    written = view.written()
    counts = np.array([len(w) for w in written])
    repeats = sum(
        1
        for slots in view.chosen
        if len([c for c in slots if c not in (None, STOP)]) > len({c for c in slots if c not in (None, STOP)})
    )
    config, dataset = view.config, view.manifest.get("dataset", {})
    return {
        "path": str(view.path),
        "model": config.get("model"),
        "dataset": dataset.get("name", config.get("dataset")),
        "split": dataset.get("split", config.get("split")),
        "grouping": config.get("grouping"),
        "task": config.get("task"),
        "shots": config.get("shots"),
        "multilabel_share": config.get("multilabel_share"),
        "labels": list(view.labels),
        "items": len(view),
        "parsed_answers": int(view.parsed.sum()),
        "labels_per_answer": rounded(counts.mean()),
        "answers_by_label_count": {str(k): int((counts == k).sum()) for k in range(int(counts.max(initial=0)) + 1)},
        "answers_with_repeats": int(repeats),
    }


# -- spikiness -------------------------------------------------------------------------------


def slot1_sorted(view: RunView, source: str = "exact") -> np.ndarray:
    """Items x labels: slot 1's label probabilities renormalised over the label set, sorted in
    decreasing order. Items without a slot (unparseable answers) and, for ``first-token``,
    items whose slot 1 is the close (no label generated, no first-token numbers) are left out."""
    arrays = view
    p1 = (arrays.slot_probs if source == "exact" else arrays.first_token)[:, 0, :]
    total = p1.sum(axis=1)
    keep = (arrays.n_slots > 0) & np.isfinite(total) & (total > 0)
    q = p1[keep] / total[keep, None]
    return -np.sort(-q, axis=1)


def spikiness(view: RunView) -> dict:
    """Slot-1 spikiness of a run: stats by rank of the sorted renormalised label probabilities, top-1 shares, mass."""
    q = slot1_sorted(view)
    arrays = view
    has = arrays.n_slots > 0
    raw = arrays.slot_probs[has, 0, :]
    out = {
        "items": int(len(q)),
        "by_rank": [
            {
                "rank": r + 1,
                "mean": rounded(q[:, r].mean()) if len(q) else None,
                "median": rounded(np.median(q[:, r])) if len(q) else None,
                "q25": rounded(np.quantile(q[:, r], 0.25)) if len(q) else None,
                "q75": rounded(np.quantile(q[:, r], 0.75)) if len(q) else None,
            }
            for r in range(q.shape[1])
        ],
        "top1_mean": rounded(q[:, 0].mean()) if len(q) else None,
        "top1_above_0.9_share": rounded((q[:, 0] > 0.9).mean()) if len(q) else None,
        # how much of slot 1 goes to labels at all (the rest: closing, or text outside the format)
        "label_mass_mean": rounded(raw.sum(axis=1).mean()) if len(raw) else None,
        "stop_mean": rounded(arrays.stop[has, 0].mean()) if has.any() else None,
    }
    if len(q) and q.shape[1] > 1:
        with np.errstate(divide="ignore"):
            ratio = np.log10(q[:, 0]) - np.log10(q[:, 1])
        out["log10_top1_over_top2_median"] = rounded(np.median(ratio))
    first = slot1_sorted(view, "first-token")
    if len(first):
        out["first_token"] = {
            "items": int(len(first)),
            "top1_mean": rounded(first[:, 0].mean()),
            "top1_above_0.9_share": rounded((first[:, 0] > 0.9).mean()),
        }
    return out


# -- entropy ---------------------------------------------------------------------------------


def entropy_stats(view: RunView) -> dict:
    """Entropy per slot index (all slots; label slots; closing slots), and slot 1's distribution."""
    h = view.entropy()
    k_max = h.shape[1]
    kinds = np.full(h.shape, "", dtype=object)
    for i, slots in enumerate(view.chosen):
        for k, chosen in enumerate(slots):
            kinds[i, k] = "stop" if chosen == STOP else "label"
    by_slot = []
    for k in range(k_max):
        column = h[:, k]
        by_slot.append(
            {
                "slot": k + 1,
                "all": mean_interval(column),
                "label_slots": mean_interval(column[kinds[:, k] == "label"]),
                "closing_slots": mean_interval(column[kinds[:, k] == "stop"]),
            }
        )
    slot1 = h[:, 0][np.isfinite(h[:, 0])]
    return {
        "max_entropy": rounded(np.log(len(view.labels) + 1)),  # uniform over the labels and stop
        "slot1": {
            **mean_interval(slot1),
            "q25": rounded(np.quantile(slot1, 0.25)) if len(slot1) else None,
            "q75": rounded(np.quantile(slot1, 0.75)) if len(slot1) else None,
            "normalised_mean": rounded(slot1.mean() / np.log(len(view.labels) + 1)) if len(slot1) else None,
        },
        # over the labels only (renormalised, stop left out): which label, given that one comes;
        # compares models whose stop probability differs
        "slot1_labels_only": {**mean_interval(labels_only_entropy(view)), "max_entropy": rounded(np.log(len(view.labels)))},
        "by_slot": by_slot,
    }


def labels_only_entropy(view: RunView) -> np.ndarray:
    """Per item: entropy (nats) of slot 1's label probabilities renormalised over the label set;
    NaN where slot 1 gives the labels no mass."""
    p = view.slot_probs[:, 0, :]
    total = p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = p / total
        h = np.where(q > 0, -q * np.log(q), 0.0).sum(axis=1)
    h[~(np.isfinite(total[:, 0]) & (total[:, 0] > 0)) | (view.n_slots == 0)] = np.nan
    return h


# -- label order -----------------------------------------------------------------------------


def label_order(view: RunView) -> dict:
    """Among answers with 2+ labels: the share of k-th labels that are gold, by k (and, for
    reference, the same over all answers with a k-th label)."""
    gold = [set(np.asarray(view.labels)[row.astype(bool)]) for row in view.gold]
    written = view.written()
    multi = [(w, g) for w, g in zip(written, gold) if len(w) >= 2]
    longest = max((len(w) for w in written), default=0)
    out = {"answers_with_2plus": len(multi), "by_position": [], "all_answers_by_position": []}
    for k in range(longest):
        hits = [w[k] in g for w, g in multi if len(w) > k]
        if hits:
            out["by_position"].append({"position": k + 1, **_share(int(sum(hits)), len(hits))})
        every = [w[k] in g for w, g in zip(written, gold) if len(w) > k]
        out["all_answers_by_position"].append({"position": k + 1, **_share(int(sum(every)), len(every))})
    return out


# -- slot 1 versus the generated labels ------------------------------------------------------


def position_rank_counts(view: RunView, positions: int = 3) -> np.ndarray:
    """(positions, K) counts: row j is the j-th written label (the last row: that position and
    later), column r its rank at slot 1."""
    k = len(view.labels)
    index = {label: j for j, label in enumerate(view.labels)}
    counts = np.zeros((positions, k), dtype=int)
    p1 = view.slot_probs[:, 0, :]
    ranks = ranks_of(np.nan_to_num(p1, nan=-1.0))
    for i, written in enumerate(view.written()):
        for j, label in enumerate(written):
            counts[min(j, positions - 1), ranks[i, index[label]] - 1] += 1
    return counts


def first_vs_output(view: RunView) -> dict:
    """How often slot 1's most probable label is the one written first, and where the labels
    written later rank at slot 1 (the paper: the first distribution does not reflect the output)."""
    arrays = view
    index = {label: j for j, label in enumerate(view.labels)}
    written = view.written()
    with_label = [i for i, w in enumerate(written) if w]
    p1 = arrays.slot_probs[:, 0, :]
    first_rank = [int(ranks_of(p1[i])[index[written[i][0]]]) for i in with_label]
    agree = sum(r == 1 for r in first_rank)
    stop_above = sum(arrays.stop[i, 0] > p1[i, index[written[i][0]]] for i in with_label)
    ft_agree = sum(
        int(ranks_of(arrays.first_token[i, 0])[index[written[i][0]]]) == 1
        for i in with_label
        if np.isfinite(arrays.first_token[i, 0]).all()
    )
    ft_n = sum(np.isfinite(arrays.first_token[i, 0]).all() for i in with_label)
    later = [int(ranks_of(p1[i])[index[label]]) for i in with_label for label in written[i][1:]]
    k = len(view.labels)
    later_hist = np.bincount(np.asarray(later, dtype=int), minlength=k + 1)[1:] if later else np.zeros(k, int)
    counts = position_rank_counts(view)
    return {
        "answers_with_a_label": len(with_label),
        "top_label_is_first_written": _share(agree, len(with_label)),
        "top_label_is_first_written_first_token": _share(ft_agree, ft_n),
        "stop_more_probable_than_first_written": _share(int(stop_above), len(with_label)),
        "later_labels": len(later),
        "later_label_rank_share": [{"rank": r + 1, **_share(int(later_hist[r]), len(later))} for r in range(k)] if later else [],
        "later_label_mean_rank": rounded(np.mean(later)) if later else None,
        "position_rank_counts": counts.tolist(),
    }


def analyze_runs(views: Sequence[RunView], attention: dict | None = None) -> dict:
    """All statistics, per run; ``attention`` (from :mod:`labeldist.runs.attention`) is added
    under each run it covers."""
    runs = {}
    for view in views:
        runs[view.name] = {
            "summary": summary(view),
            "spikiness": spikiness(view),
            "entropy": entropy_stats(view),
            "label_order": label_order(view),
            "first_vs_output": first_vs_output(view),
        }
        if attention and view.name in attention:
            runs[view.name]["attention"] = attention[view.name]
    return {"runs": runs, "paired": paired_differences(views)}


def slot1_top_label(view: RunView) -> np.ndarray:
    """Per item: slot 1's largest label probability after renormalising over the labels (the
    spikiness of ``slot1_sorted``); NaN where slot 1 gives the labels no mass."""
    p = view.slot_probs[:, 0, :]
    total = p.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = p.max(axis=1) / total
    top[~(np.isfinite(total) & (total > 0)) | (view.n_slots == 0)] = np.nan
    return top


def slot1_spearman(view: RunView) -> np.ndarray:
    """Per item: Spearman correlation of slot 1's label probabilities with the vote fractions (the
    internal ranking against the annotators); NaN without a slot or where either side is constant."""
    arrays = view
    p = np.nan_to_num(arrays.slot_probs[:, 0, :])
    rho = spearman_per_item(p, arrays.targets)
    rho[arrays.n_slots == 0] = np.nan
    return rho


# what paired_differences compares, item by item
PAIRED = (
    ("slot1_entropy", lambda v: v.entropy()[:, 0]),
    ("slot1_labels_only", labels_only_entropy),
    ("slot1_top_label", slot1_top_label),
    ("slot1_spearman", slot1_spearman),
)


def paired_differences(views: Sequence[RunView], n_resamples: int = 1000, seed: int = 0) -> list[dict]:
    """For every two runs over the same items (e.g. two model sizes on one prompt): the mean
    per-item difference, second run minus first, with a 95% percentile bootstrap interval over
    items, of slot 1's entropy (label + stop distribution, and labels alone), its top label's
    renormalised probability (spikiness) and its per-item Spearman correlation with the vote
    fractions. Items are matched by id, in the first run's order, so the numbers do not depend
    on how either run's records happen to be ordered. Runs that share only part of their items
    (one still running) are compared on the shared ones when those are at least half of the
    smaller run (``items`` says how many); runs over other items are not compared."""
    out = []
    for a in range(len(views)):
        for b in range(a + 1, len(views)):
            first, second = views[a], views[b]
            position = {item_id: i for i, item_id in enumerate(second.ids)}
            mine = [i for i, item_id in enumerate(first.ids) if item_id in position]
            if first.labels != second.labels or not mine or 2 * len(mine) < min(len(first), len(second)):
                continue
            mine = np.array(mine, dtype=int)
            theirs = np.array([position[first.ids[i]] for i in mine], dtype=int)
            row = {"first": first.name, "second": second.name, "items": len(mine)}
            rng = np.random.default_rng(seed)
            for key, get in PAIRED:
                diff = get(second)[theirs] - get(first)[mine]
                diff = diff[np.isfinite(diff)]
                if not len(diff):
                    row[key] = None
                    continue
                means = diff[rng.integers(0, len(diff), (n_resamples, len(diff)))].mean(axis=1)
                low, high = np.quantile(means, [0.025, 0.975])
                row[key] = {
                    "difference": rounded(diff.mean()),
                    "low": rounded(low),
                    "high": rounded(high),
                    "n": len(diff),
                    "second_higher_share": rounded((diff > 0).mean()),
                }
            out.append(row)
    return out
