"""The one dataset schema every loader produces.

An :class:`Item` carries the text, each annotator's label set and the dataset's aggregate
(gold) labels. A :class:`Dataset` is an ordered label set plus items of one split. Everything
downstream (prompts, runs, estimators, metrics) reads only this schema.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from labeldist.data.items import Item, gold_by_share
from labeldist.errors import DataError

__all__ = ["Dataset", "Item", "VoteSource", "disagreement", "gold_by_share"]

log = logging.getLogger("labeldist")

VoteSource = Literal["annotators", "gold", "mixed"]


@dataclass
class Dataset:
    """Items of one split with an ordered label set.

    ``notes`` holds what the loader repaired, dropped or could not find, in plain sentences,
    so a user sees it once (``labeldist data describe`` prints them).
    """

    name: str
    labels: tuple[str, ...]
    split: str
    items: list[Item]
    notes: list[str] = field(default_factory=list)
    # Free-form provenance (files read, grouping, task), kept for run manifests.
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        if len(set(self.labels)) != len(self.labels):
            dupes = [lab for lab, n in Counter(self.labels).items() if n > 1]
            raise ValueError(f"dataset {self.name}: duplicate labels {dupes}")
        known = set(self.labels)
        for item in self.items:
            unknown = set(item.gold).union(*item.votes.values()) - known
            if unknown:
                raise DataError(self.name, f"item {item.id}", f"labels {sorted(unknown)} not in the label set")

    @classmethod
    def from_pandas(
        cls,
        frame,
        *,
        text: str = "text",
        id: str | None = None,
        labels: str | Sequence[str] | Mapping[str, str] | None = None,
        annotator: str | None = None,
        votes: str | None = None,
        gold: str | None = None,
        label_set: Sequence[str] | None = None,
        name: str = "dataframe",
        split: str = "all",
        gold_threshold: float = 0.5,
        separator: str = ",",
    ) -> Dataset:
        """A dataset from a pandas DataFrame, in one of three layouts.

        - One row per item, aggregate labels: ``labels`` names 0/1 columns (a list, or a
          mapping column -> label name), or one column holding each item's label list (a
          list, a JSON list or a ``separator``-joined string).
        - One row per (item, annotator) rating: the same plus ``annotator``; ``id`` is then
          required, and gold is the labels chosen by at least ``gold_threshold`` of an item's
          annotators.
        - One row per item with its votes: ``votes`` names a column holding annotator ->
          labels (or a list of label lists); ``gold`` optionally names a column with the
          gold label list.

        ``id``: the item id column (default: the frame's index). ``label_set``: the label
        order (default: the label columns' order, else sorted). Errors name the data row.

        >>> import pandas as pd
        >>> df = pd.DataFrame({"text": ["so happy", "how dare you"], "joy": [1, 0], "anger": [0, 1]})
        >>> Dataset.from_pandas(df, labels=["joy", "anger"]).labels
        ('joy', 'anger')
        """
        from labeldist.data.frames import items_from_frame, items_from_vote_cells

        source = f"DataFrame {name!r}"
        if id is None:
            if annotator is not None:
                raise DataError(source, None, "with one row per rating (annotator=...), give the item id column: id=...")
            id = "__labeldist_id__"
            frame = frame.assign(**{id: [str(i) for i in frame.index]})
        if votes is not None:
            if labels is not None or annotator is not None:
                raise DataError(source, None, "give votes=... alone, without labels= or annotator=")
            found, items, notes = items_from_vote_cells(
                frame,
                source,
                id_column=id,
                text_column=text,
                votes_column=votes,
                gold_column=gold,
                labels=label_set,
                gold_threshold=gold_threshold,
            )
        else:
            if labels is None:
                raise DataError(source, None, "give labels= (0/1 label columns or a label list column) or votes=")
            found, items, notes = items_from_frame(
                frame,
                source,
                id_column=id,
                text_column=text,
                label_columns=None if isinstance(labels, str) else labels,
                label_list_column=labels if isinstance(labels, str) else None,
                separator=separator,
                labels=label_set,
                annotator_column=annotator,
                gold_threshold=gold_threshold,
            )
        if not items:
            raise DataError(source, None, "no items")
        return cls(name, found, split, items, notes, {"source": "pandas"})

    def to_pandas(self):
        """One row per item, indexed by id: ``text``, ``gold`` (label list, in label order) and
        ``votes`` (annotator -> label list; empty where the dataset has aggregate labels only).
        ``Dataset.from_pandas(df.reset_index(), id="id", votes="votes", gold="gold",
        label_set=ds.labels)`` gives the dataset back."""
        import pandas as pd

        order = self.label_index()
        rows = [
            {
                "id": item.id,
                "text": item.text,
                "gold": sorted(item.gold, key=order.__getitem__),
                "votes": {a: sorted(v, key=order.__getitem__) for a, v in item.votes.items()},
            }
            for item in self.items
        ]
        return pd.DataFrame(rows, columns=["id", "text", "gold", "votes"]).set_index("id")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, index: int) -> Item:
        return self.items[index]

    @property
    def ids(self) -> list[str]:
        """The item ids, in item order."""
        return [item.id for item in self.items]

    def label_index(self) -> dict[str, int]:
        """Label -> its column in the label order."""
        return {label: i for i, label in enumerate(self.labels)}

    def _set_matrix(self, sets: Iterable[frozenset[str]]) -> np.ndarray:
        index = self.label_index()
        rows = list(sets)
        out = np.zeros((len(rows), len(self.labels)), dtype=np.float64)
        for r, labels in enumerate(rows):
            for label in labels:
                out[r, index[label]] = 1.0
        return out

    def gold_matrix(self) -> np.ndarray:
        """Items x labels, 1.0 where the label is gold."""
        return self._set_matrix(item.gold for item in self.items)

    def votes_available(self) -> np.ndarray:
        """Per item, whether its vote fractions come from annotators (True) or from gold."""
        return np.array([item.has_votes for item in self.items], dtype=bool)

    @property
    def vote_source(self) -> VoteSource:
        """Where :meth:`vote_fractions` comes from: annotators, gold (aggregate-only), or mixed."""
        available = self.votes_available()
        if available.all() and len(available):
            return "annotators"
        if not available.any():
            return "gold"
        return "mixed"

    def vote_fractions(self) -> np.ndarray:
        """Items x labels: share of each item's annotators who chose each label.

        Items without votes get their gold labels as 0/1; :attr:`vote_source` and
        :meth:`votes_available` say which rows those are.
        """
        index = self.label_index()
        out = np.zeros((len(self.items), len(self.labels)), dtype=np.float64)
        for r, item in enumerate(self.items):
            if item.has_votes:
                counts = Counter(label for labels in item.votes.values() for label in labels)
                n = len(item.votes)
                for label, c in counts.items():
                    out[r, index[label]] = c / n
            else:
                for label in item.gold:
                    out[r, index[label]] = 1.0
        return out

    def restrict(self, ids: Sequence[str], *, source: str = "id list") -> Dataset:
        """The items whose ids are in ``ids``, in the order of ``ids``.

        An id that is not in this split is an error naming it, so a wrong split or list is
        caught instead of silently shrinking the evaluation.
        """
        by_id = {item.id: item for item in self.items}
        missing = [i for i in ids if i not in by_id]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(source, None, f"{len(missing)} of {len(ids)} ids are not in {self.name} split {self.split}: {shown}")
        seen: set[str] = set()
        chosen = []
        for i in ids:
            if i not in seen:
                seen.add(i)
                chosen.append(by_id[i])
        notes = list(self.notes)
        if len(chosen) < len(ids):
            notes.append(f"{source}: {len(ids) - len(chosen)} repeated ids ignored")
        info = dict(self.info, ids=str(source))
        return Dataset(self.name, self.labels, self.split, chosen, notes, info)

    def grouped(self, groups: Mapping[str, Sequence[str]], grouping_name: str) -> Dataset:
        """Map labels to groups: an item (or vote) has a group if it has any member label.

        Labels not in any group are an error, so a grouping never silently drops a label.
        """
        member_to_group: dict[str, str] = {}
        for group, members in groups.items():
            for member in members:
                if member in member_to_group:
                    raise ValueError(f"grouping {grouping_name}: label {member!r} is in two groups")
                member_to_group[member] = group
        missing = [label for label in self.labels if label not in member_to_group]
        if missing:
            raise ValueError(f"grouping {grouping_name}: labels {missing} of {self.name} are in no group")
        unknown = sorted(set(member_to_group) - set(self.labels))
        if unknown:
            raise ValueError(f"grouping {grouping_name}: members {unknown} are not labels of {self.name}")

        def to_groups(labels: frozenset[str]) -> frozenset[str]:
            return frozenset(member_to_group[label] for label in labels)

        items = [
            Item(item.id, item.text, {a: to_groups(v) for a, v in item.votes.items()}, to_groups(item.gold))
            for item in self.items
        ]
        info = dict(self.info, grouping=grouping_name)
        return Dataset(self.name, tuple(groups), self.split, items, list(self.notes), info)


def disagreement(item: Item) -> bool:
    """True when the item's annotators did not all choose the same label set."""
    return len(set(item.votes.values())) > 1
