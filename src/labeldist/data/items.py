"""One item of a dataset (its text, each annotator's labels, the gold labels), and gold from votes.

Below :mod:`labeldist.data.schema` and :mod:`labeldist.data.frames`, so that both can build items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One text to label.

    ``votes`` maps annotator id to the set of labels that annotator chose (an empty set is a
    real vote for "no label"); it is empty when the dataset only has aggregate labels.
    """

    id: str
    text: str
    votes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    gold: frozenset[str] = frozenset()

    @property
    def has_votes(self) -> bool:
        """Whether the item has per-annotator votes (False when the dataset gives aggregate labels only)."""
        return len(self.votes) > 0


def gold_by_share(votes: Mapping[str, frozenset[str]], threshold: float = 0.5) -> frozenset[str]:
    """Labels chosen by at least ``threshold`` of the annotators (0.5: at least half, so 2 of 3
    and also 1 of 2 — a tie counts as chosen)."""
    if not votes:
        return frozenset()
    counts = Counter(label for labels in votes.values() for label in labels)
    n = len(votes)
    # compare shares with a tolerance: 3 >= 0.3 * 10 is False in floating point
    return frozenset(label for label, count in counts.items() if count / n >= threshold - 1e-12)
