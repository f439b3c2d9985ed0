"""How far a model's dtype moves the slot numbers from float32: the comparison both exact
backends record under ``precision.check`` in run.json (``--precision-check N``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from labeldist.models.base import Generation


def precision_report(
    low: Sequence[Generation],
    high: Sequence[Generation],
    greedy_high: Sequence[Generation],
    answers,
    prefixes,
    dtype: str,
    started: float,
) -> dict:
    """The largest and mean differences between the slots of the same given answers scored in
    the run's dtype (``low``) and in float32 (``high``; the same labels at every slot, so every
    label and stop probability pairs up), in probability and in log space (small probabilities
    move by factors), and how many greedy answers in float32 (``greedy_high``) differ from the
    recorded ``answers``."""
    label_diffs, stop_diffs, log_diffs = [], [], []
    for a, b in zip(low, high):
        for slot_a, slot_b in zip(a.slots, b.slots):
            label_diffs.extend(np.abs(slot_a.label_probs - slot_b.label_probs).tolist())
            stop_diffs.append(abs(slot_a.stop_prob - slot_b.stop_prob))
            log_a = np.append(slot_a.label_logprobs, slot_a.stop_logprob)
            log_b = np.append(slot_b.label_logprobs, slot_b.stop_logprob)
            finite = np.isfinite(log_a) & np.isfinite(log_b)
            log_diffs.extend(np.abs(log_a[finite] - log_b[finite]).tolist())
    differing = sum(g.answer != prefix + answer for g, prefix, answer in zip(greedy_high, prefixes, answers))
    return {
        "items": len(low),
        "dtype": dtype,
        "slots": len(stop_diffs),
        "max_abs_label_prob_diff": float(max(label_diffs, default=0.0)),
        "mean_abs_label_prob_diff": float(np.mean(label_diffs)) if label_diffs else 0.0,
        "max_abs_stop_prob_diff": float(max(stop_diffs, default=0.0)),
        "max_abs_logprob_diff": float(max(log_diffs, default=0.0)),
        "answers_differing_in_float32": int(differing),
        "seconds": round(time.perf_counter() - started, 3),
    }
