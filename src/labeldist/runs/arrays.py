"""A run's records as arrays: what estimators and metrics read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeldist.runs.store import RunStore


@dataclass
class RunArrays:
    """Items x slots x labels arrays of one run (slots padded with NaN past an item's last).

    ``slot_probs`` are the exact label probabilities, ``first_token`` the first-token
    approximation (NaN at closing slots, where no label was generated), ``stop`` the stop
    probability per slot. ``generated`` marks the labels in each answer, ``targets`` the vote
    fractions (gold 0/1 where ``votes_available`` is False).
    """

    path: str
    ids: list[str]
    labels: tuple[str, ...]
    slot_probs: np.ndarray
    first_token: np.ndarray
    stop: np.ndarray
    n_slots: np.ndarray
    generated: np.ndarray
    gold: np.ndarray
    targets: np.ndarray
    votes_available: np.ndarray
    parsed: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunArrays:
        store = RunStore(run_dir)
        labels = tuple(store.read_manifest()["labels"])
        records = store.read()
        n, k = len(records), len(labels)
        width = max([len(s) for s in records["slots"]], default=0) or 1
        slot_probs = np.full((n, width, k), np.nan)
        first_token = np.full((n, width, k), np.nan)
        stop = np.full((n, width), np.nan)
        n_slots = np.zeros(n, dtype=int)
        generated = np.zeros((n, k))
        gold = np.zeros((n, k))
        index = {label: i for i, label in enumerate(labels)}
        for row, record in enumerate(records.itertuples(index=False)):
            slots = record.slots
            n_slots[row] = len(slots)
            for s, slot in enumerate(slots):
                slot_probs[row, s] = slot["label_probs"]
                first_token[row, s] = slot["first_token_probs"]
                stop[row, s] = slot["stop_prob"]
            for label in record.labels:
                generated[row, index[label]] = 1.0
            for label in record.gold:
                gold[row, index[label]] = 1.0
        targets = np.array([np.asarray(v, dtype=float) for v in records["vote_fractions"]]).reshape(n, k)
        return cls(
            path=str(run_dir),
            ids=list(records["id"]),
            labels=labels,
            slot_probs=slot_probs,
            first_token=first_token,
            stop=stop,
            n_slots=n_slots,
            generated=generated,
            gold=gold,
            targets=targets,
            votes_available=records["votes_available"].to_numpy(dtype=bool),
            parsed=records["parsed"].to_numpy(dtype=bool),
        )
