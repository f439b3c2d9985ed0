"""What the command line shows of a run: its closing warning and the slot tables of `labeldist show`
(display only; the run itself lives in labeldist.runs)."""

from __future__ import annotations

import numpy as np


def precision_warning(manifest: dict) -> str | None:
    """The line a run ends with when its probabilities are not float32 numbers, else None."""
    precision = manifest.get("precision") or {}
    dtypes = precision.get("dtypes") or []
    if not dtypes or precision.get("exact_dtype"):
        return None
    line = f"warning: records made in {', '.join(dtypes)}; label probabilities are exact only in float32 (--dtype float32)"
    check = precision.get("check") or {}
    if check.get("items"):
        line += (
            f"; precision check on {check['items']} items: label probabilities differ from float32 by up to "
            f"{check['max_abs_label_prob_diff']:.3g} (mean {check['mean_abs_label_prob_diff']:.2g}), "
            f"{check['answers_differing_in_float32']} of {check['items']} greedy answers differ"
        )
    else:
        line += "; --precision-check N measures the difference on N items"
    return line


def slot_table(record, labels) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rows (labels then <stop>) x slots of exact and first-token probabilities."""
    slots = record["slots"]
    exact = np.array([[*s["label_probs"], s["stop_prob"]] for s in slots]).T if len(slots) else np.zeros((len(labels) + 1, 0))
    first = (
        # null values (closing slots) read as NaN
        np.array([[*s["first_token_probs"], np.nan] for s in slots], dtype=float).T
        if len(slots)
        else np.zeros((len(labels) + 1, 0))
    )
    return [*labels, "<stop>"], exact, first
