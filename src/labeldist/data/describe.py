"""Summary statistics of a dataset split (``labeldist data describe``)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from labeldist.data.schema import Dataset, disagreement


def describe(dataset: Dataset) -> dict:
    """Items, labels, annotators, votes per item, multi-label and disagreement shares, label
    frequencies (gold counts), and where vote fractions come from.

    ``disagreement_share`` is over items that have votes from two or more annotators: the
    share whose annotators did not all choose the same label set. It is ``None`` when no item
    has two votes (aggregate-only data).
    """
    items = dataset.items
    n = len(items)
    gold = dataset.gold_matrix()
    votes_per_item = np.array([len(item.votes) for item in items], dtype=float)
    annotators = {annotator for item in items for annotator in item.votes}
    with_several = [item for item in items if len(item.votes) >= 2]
    frequency = Counter({label: int(count) for label, count in zip(dataset.labels, gold.sum(axis=0))})
    vote_counts = Counter(label for item in items for labels in item.votes.values() for label in labels)
    distribution = Counter(int(v) for v in votes_per_item)
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "items": n,
        "labels": list(dataset.labels),
        "grouping": dataset.info.get("grouping"),
        "annotators": len(annotators),
        "votes_per_item": float(votes_per_item.mean()) if n else 0.0,
        "votes_per_item_distribution": {str(k): distribution[k] for k in sorted(distribution)},
        "vote_source": dataset.vote_source,
        "multilabel_share": float((gold.sum(axis=1) >= 2).mean()) if n else 0.0,
        "no_label_share": float((gold.sum(axis=1) == 0).mean()) if n else 0.0,
        "disagreement_share": (sum(disagreement(item) for item in with_several) / len(with_several) if with_several else None),
        "label_frequency": {label: frequency[label] for label in dataset.labels},
        "label_vote_frequency": {label: vote_counts[label] for label in dataset.labels} if annotators else None,
        "repairs": dict(dataset.info.get("repairs") or {}),
        "notes": list(dataset.notes),
    }
