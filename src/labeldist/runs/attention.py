"""Attention from label slots to the input versus to the labels generated before them (opt-in).

A run does not store attention (it would be layers x heads x tokens squared per item, and
needs eager attention, which is slower than the sdpa kernels a run uses). So this is a second
pass: the model named in the run's config is loaded again, switched to eager attention, and
each recorded prompt plus the recorded answer is read in one forward pass with
``output_attentions=True``. The answer's tokens are the canonical tokens of the recorded text
in the context of the prompt (what the run's slot scoring uses too).

For slot k the *query* is the token whose next-token distribution starts the k-th label: the
last token that ends at or before the label's first character (``["`` for SmolLM2 at slot 1,
``, "`` at slot 2). Its attention over the keys it sees (itself included) sums to 1 per layer
and head, and is split into:

- ``sink``: the first token of the prompt, which most heads use as a resting place (the
  "attention sink"); shown apart so it does not swamp the input's share;
- ``input``: the rest of the prompt (instructions, demonstrations, the text);
- ``previous_labels``: tokens that overlap the labels written at slots 1..k-1;
- ``answer_format``: the answer's other tokens (brackets, quotes, commas, the query itself).

Each share is averaged over layers and heads, then over items. ``per_token`` divides a share
by its number of tokens, so the pull of one earlier-label token can be set against that of one
input token.

It lives with the runs, not the report: it is a pass of the run's model over the run's records
(the report and ``labeldist analyze`` draw what it returns, and load no model themselves).
"""

from __future__ import annotations

import time

import numpy as np

from labeldist.errors import DataError
from labeldist.metrics.summary import mean_interval, rounded
from labeldist.prompts import get_answer_format
from labeldist.runs.store import RunStore
from labeldist.runs.view import RunView
from labeldist.slots.locate import STOP, plan_slots

PARTS = ("sink", "input", "previous_labels", "answer_format")


def answer_prefix(prompt: str, answer: str, opener: str) -> str:
    """The part of ``answer`` that was already in the prompt: the format's opener when the run
    prefilled it (the prompt then ends with it), else nothing."""
    if opener and answer.startswith(opener) and prompt.endswith(opener):
        return opener
    return ""


def query_parts(prompt_length: int, token_ends: list[int], prefix_length: int, plans, labels: tuple[str, ...]) -> list[dict]:
    """For every label slot: the query position and the positions of earlier labels' tokens.

    ``token_ends``: character offset (in the generated text, after the prefix) where each
    generated token ends. Positions count from the first prompt token.
    """
    out = []
    starts = [prefix_length + (token_ends[t - 1] if t else 0) for t in range(len(token_ends))]
    ends = [prefix_length + e for e in token_ends]
    earlier: list[int] = []
    for plan in plans:
        if plan.label_start is None or plan.chosen in (None, STOP):
            continue
        before = [t for t, end in enumerate(ends) if end <= plan.label_start]
        query = prompt_length + before[-1] if before else prompt_length - 1
        out.append({"slot": plan.index, "label": plan.chosen, "query": query, "previous": sorted(set(earlier))})
        span = (plan.label_start, plan.label_start + len(plan.raw))
        earlier.extend(prompt_length + t for t in range(len(ends)) if starts[t] < span[1] and ends[t] > span[0])
    return out


def shares(weights: np.ndarray, prompt_length: int, previous: list[int]) -> dict:
    """(layers, heads, keys) attention of one query -> mean share of each part, and per layer."""
    keys = weights.shape[-1]
    parts = {
        "sink": weights[..., :1].sum(-1),
        "input": weights[..., 1:prompt_length].sum(-1),
        "previous_labels": weights[..., previous].sum(-1) if previous else np.zeros(weights.shape[:-1]),
    }
    parts["answer_format"] = weights.sum(-1) - parts["sink"] - parts["input"] - parts["previous_labels"]
    counts = {
        "sink": 1,
        "input": prompt_length - 1,
        "previous_labels": len(previous),
        "answer_format": keys - prompt_length - len(previous),
    }
    return {
        "mass": {k: float(v.mean()) for k, v in parts.items()},
        "by_layer": {k: v.mean(axis=-1) for k, v in parts.items()},
        "tokens": counts,
    }


def load_attention_backend(view: RunView, device: str | None = "cpu", model: str | None = None):
    """The run's model through the HF backend, switched to eager attention (the only kind that
    returns attention weights)."""
    from labeldist.models.hf import HFBackend

    config = view.config
    hf = HFBackend(
        model or config["model"], device=device, chat=config.get("chat"), max_new_tokens=config.get("max_new_tokens", 64)
    )
    hf.use_eager_attention()
    return hf


def label_attention(
    view: RunView, items: int = 30, *, backend=None, device: str | None = "cpu", model: str | None = None, progress: bool = False
) -> dict:
    """Attention shares by slot over the first ``items`` answers with at least one label."""
    from tqdm import tqdm

    started = time.perf_counter()
    # the hf backend's own methods (token boundaries, attention rows), not the run interface:
    # only the transformers backend can return attention weights
    hf = backend or load_attention_backend(view, device, model)
    fmt = get_answer_format(view.config.get("answer_format", "json"))
    records = RunStore(view.path).read_table(["id", "prompt", "answer"]).to_pylist()
    chosen = [i for i, written in enumerate(view.written()) if written][:items]
    if not chosen:
        raise DataError(str(view.path), None, "has no answer with a label: no label slot to read attention from")
    per_slot: dict[int, list[dict]] = {}
    skipped = 0
    for i in tqdm(chosen, disable=not progress, unit="item", desc=f"attention {view.name}"):
        record = records[i]
        prefix = answer_prefix(record["prompt"], record["answer"], fmt.opener)
        generated = record["answer"][len(prefix) :]
        prompt_ids, answer_ids, boundaries = hf.answer_tokens(record["prompt"], generated)
        plans = plan_slots(record["answer"], len(prefix), fmt, view.labels)
        queries = query_parts(len(prompt_ids), boundaries, len(prefix), plans, view.labels)
        if not queries:
            skipped += 1
            continue
        last = max(q["query"] for q in queries)
        rows = hf.attention_rows((prompt_ids + answer_ids)[: last + 1], [q["query"] for q in queries])
        for n, q in enumerate(queries):
            weights = rows[:, :, n, : q["query"] + 1]
            per_slot.setdefault(q["slot"], []).append(shares(weights, len(prompt_ids), q["previous"]))
    by_slot = []
    for slot in sorted(per_slot):
        entries = per_slot[slot]
        mass = {k: float(np.mean([e["mass"][k] for e in entries])) for k in PARTS}
        tokens = {k: float(np.mean([e["tokens"][k] for e in entries])) for k in PARTS}
        per_token = {}
        for k in PARTS:
            values = [e["mass"][k] / e["tokens"][k] for e in entries if e["tokens"][k] > 0]
            per_token[k] = rounded(np.mean(values), 6) if values else None
        by_slot.append(
            {
                "slot": slot,
                "n": len(entries),
                "mass": {k: rounded(v) for k, v in mass.items()},
                "mass_ci": {k: mean_interval([e["mass"][k] for e in entries]) for k in PARTS},
                "tokens_mean": {k: rounded(v, 1) for k, v in tokens.items()},
                "per_token": per_token,
                "by_layer": {k: [rounded(x) for x in np.mean([e["by_layer"][k] for e in entries], axis=0)] for k in PARTS},
            }
        )
    return {
        "items": len(chosen) - skipped,
        "items_asked": items,
        "model": hf.describe().get("model"),
        "attention": "eager, output_attentions, mean over layers and heads",
        "by_slot": by_slot,
        "seconds": round(time.perf_counter() - started, 2),
    }


def compute_attention(views, items: int, device: str | None = "cpu", progress: bool = False) -> dict:
    """Attention shares per run; runs of one model share one loaded backend."""
    out, backends = {}, {}
    for view in views:
        key = (view.config.get("model"), view.config.get("chat"))
        if key not in backends:
            backends[key] = load_attention_backend(view, device)
        out[view.name] = label_attention(view, items, backend=backends[key], progress=progress)
    return out
