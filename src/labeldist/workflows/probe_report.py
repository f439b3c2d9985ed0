"""``labeldist probe``: a hidden-state probe fitted on one run and scored on another, beside the
slot estimators it is meant to beat (a workflow over estimators and evaluation, so it lives
above both)."""

from __future__ import annotations

import numpy as np

from labeldist.estimators.probe import Probe
from labeldist.evaluation import evaluate_run
from labeldist.runs.arrays import RunArrays
from labeldist.runs.store import RunStore


def later_label_pairs(run: RunArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (item, label) pairs the later-label AUC scores, as three arrays (item, label, later):
    for every item whose answer names two or more labels of the set, each label written at
    position 2 or later (later = True) and each label it did not write (False), in label order;
    the first written label is left out, and a repeated label counts once, at its first place."""
    written = RunStore(run.path).read_table(["id", "labels"]).to_pydict()
    order = dict(zip(written["id"], written["labels"]))
    index = {label: k for k, label in enumerate(run.labels)}
    items, labels, later = [], [], []
    for i, item_id in enumerate(run.ids):
        named = list(dict.fromkeys(index[label] for label in order.get(item_id) or [] if label in index))
        if len(named) < 2:
            continue
        for k in range(len(run.labels)):
            if k != named[0]:
                items.append(i)
                labels.append(k)
                later.append(k in named[1:])
    return np.array(items, dtype=int), np.array(labels, dtype=int), np.array(later, dtype=bool)


def later_label_scores(probs: np.ndarray, run: RunArrays) -> dict:
    """How well slot-1 probe scores pick out the labels the model writes *after* its first.

    Over the pairs of :func:`later_label_pairs`: the ROC AUC of ``probs`` (the chance that a
    later label outranks an unwritten one), and the same over all written labels for contrast.
    """
    from sklearn.metrics import roc_auc_score

    items, labels, later = later_label_pairs(run)
    later_scores, later_truth = probs[items, labels], later

    def auc(truth, scores):
        truth = np.asarray(truth, dtype=bool)
        if truth.all() or not truth.any():
            return None
        return float(roc_auc_score(truth, scores))

    return {
        # every item naming two or more labels has pairs (its later labels, or K >= 2 others):
        # the records' labels are the recognised ones, without repeats
        "items_with_later_labels": len(np.unique(items)),
        "later_label_auc": auc(later_truth, later_scores),
        "later_label_pairs": len(later_truth),
        "written_label_auc": auc(run.generated.ravel(), probs.ravel()),
    }


def probe_report(
    train_dir,
    eval_dir,
    *,
    target: str = "votes",
    layer: int = -1,
    C: float = 1.0,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """``labeldist probe``: the probe fitted on ``train_dir`` and scored on ``eval_dir``.

    With target votes or gold: the evaluation table of the probe beside the slot estimators it
    is meant to beat (``first``, ``max``, and ``platt`` fitted on the same training run). With
    target model-output: how well slot 1's state predicts the labels the model writes, all of
    them and the ones written after the first."""
    spec = f"probe[target={target},layer={int(layer)},C={C:g}]"
    if target != "model-output":
        result = evaluate_run(
            eval_dir, [spec, "first", "max", "platt"], calibrate_on=train_dir, n_resamples=n_resamples, seed=seed
        )
        result["probe"] = spec
        return result
    train, run = RunArrays.load(train_dir), RunArrays.load(eval_dir)
    shared = set(train.ids) & set(run.ids)
    if shared:
        raise ValueError(f"the training run shares {len(shared)} items with the evaluated run")
    probe = Probe(layer=layer, target=target, C=C).fit(train)
    probs = probe.predict_proba(run)
    scores = later_label_scores(probs, run)
    return {
        "run": str(eval_dir),
        "training_run": str(train_dir),
        "probe": spec,
        "items": len(run),
        "fitted": probe.fitted(),
        **scores,
    }
