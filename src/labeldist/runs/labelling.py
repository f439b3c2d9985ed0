"""Labelling one batch, and the engines that run batches: in this process, or over Ray workers.

A :class:`Labeller` holds everything a batch needs beside the model (the run config, the label
order, the vote fractions of the items); ``label_and_store`` labels a batch with a backend and
writes its records as one part of the run folder, returning a small :class:`BatchOutcome`. The
same function runs in this process (:class:`LocalEngine`) and inside each Ray worker
(:mod:`labeldist.runs.ray_engine`), so the records of a run do not depend on where it ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeldist.models.base import Backend, Generation
from labeldist.prompts import get_answer_format
from labeldist.prompts.methods import run_method


def record_of(item, prompt, generation: Generation, labels, fractions_row, has_votes) -> dict:
    """The record of one generated item as stored in the run: prompt, answer, parse, gold, vote fractions and slots."""
    parsed = generation.parsed
    return {
        "id": item.id,
        "prompt": generation.prompt_text,
        "answer": generation.answer,
        "generated_tokens": generation.generated_tokens,
        "finished": generation.finished,
        "parsed": parsed.parsed,
        "complete": parsed.complete,
        "labels": list(parsed.labels),
        "unknown": list(parsed.unknown),
        "corrections": json.dumps(parsed.corrections, ensure_ascii=False),
        "gold": [label for label in labels if label in item.gold],
        "vote_fractions": [float(x) for x in fractions_row],
        "votes_available": bool(has_votes),
        "demonstration_ids": list(prompt.demonstration_ids),
        "token_ids": generation.token_ids,
        "slot_decisions": None if generation.token_ids is None else [slot.decision_token for slot in generation.slots],
        "slot_forms": None if generation.token_ids is None else [list(slot.forms or ()) for slot in generation.slots],
        "slots": [
            {
                "index": slot.index,
                "chosen": slot.chosen,
                "raw": slot.raw,
                "label_probs": slot.label_probs.tolist(),
                "label_logprobs": slot.label_logprobs.tolist(),
                # null, not NaN, where there is no number (the closing slot: no label written)
                "first_token_probs": [None if np.isnan(x) else float(x) for x in slot.first_token_probs],
                "stop_prob": slot.stop_prob,
                "stop_logprob": slot.stop_logprob,
                "entropy": slot.entropy,
                "mass": slot.mass,
                "label_probs_lower": None if slot.label_probs_lower is None else slot.label_probs_lower.tolist(),
                "label_probs_upper": None if slot.label_probs_upper is None else slot.label_probs_upper.tolist(),
                "stop_prob_lower": slot.stop_prob_lower,
                "stop_prob_upper": slot.stop_prob_upper,
                "coverage": slot.coverage,
            }
            for slot in generation.slots
        ],
    }


@dataclass
class BatchOutcome:
    """What labelling one batch gave back to the batch loop: the ids recorded, items the backend
    could not label (id -> error), seconds by stage, (prompt, answer) pairs for the precision
    check, and the worker."""

    ids: list[str]
    gaps: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    checks: list[tuple] = field(default_factory=list)
    worker: str | None = None  # where it was labelled (a Ray worker's pid and host)


@dataclass
class Labeller:
    """Labels one batch of items with a backend into records (any method). Picklable, so that a
    Ray worker can hold one: it holds data, not the model."""

    config: object  # runs.run.RunConfig
    labels: tuple[str, ...]
    fractions: np.ndarray  # items x labels vote fractions, rows as in row_of
    has_votes: np.ndarray
    row_of: dict[str, int]
    precision_check: int = 0  # (prompt, answer) pairs kept for the check, at most, per batch

    def label(self, backend: Backend, items: Sequence, prompts: Sequence) -> tuple[list[dict], dict | None, BatchOutcome]:
        """Records of ``items`` (hidden states by id with --save-hidden, else None) and the outcome
        (its ``ids`` are filled in when the part is written)."""
        if run_method(self.config.method).judges:
            return self._judge(backend, items, prompts)
        return self._generate(backend, items, prompts)

    def _votes(self, item) -> tuple[list[float], bool]:
        row = self.row_of[item.id]
        return [float(x) for x in self.fractions[row]], bool(self.has_votes[row])

    def _generate(self, backend, items, prompts):
        from labeldist.runs.marginal import answer_lead, marginal_record, marginals

        config, labels = self.config, self.labels
        fmt = get_answer_format(config.answer_format)
        outcome = BatchOutcome(ids=[])
        generations = backend.generate(prompts, labels, fmt, save_hidden=config.save_hidden)
        timings = outcome.timings
        timings["decode_seconds"] = sum(g.timings.get("decode", 0.0) for g in generations)
        timings["slot_seconds"] = sum(g.timings.get("slots", 0.0) for g in generations)
        # an item the backend could not label (a server error) is a gap, not a record: it is
        # listed in run.json and the next attempt tries it again
        outcome.gaps = {item.id: gen.error for item, gen in zip(items, generations) if gen.error}
        kept = [(item, prompt, gen) for item, prompt, gen in zip(items, prompts, generations) if not gen.error]
        records = []
        for item, prompt, gen in kept:
            fractions, has_votes = self._votes(item)
            records.append(record_of(item, prompt, gen, labels, fractions, has_votes))
        if config.samples and records:
            started = time.perf_counter()
            drawn = backend.sample_answers(
                [prompt for _, prompt, _ in kept], fmt, config.samples, temperature=config.temperature, seed=config.seed
            )
            for record, answers in zip(records, drawn):
                record["sampled_answers"] = answers
                record["sampled_labels"] = [list(fmt.parse(a, labels).labels) for a in answers]
            timings["sample_seconds"] = time.perf_counter() - started
        if config.marginal and records:
            found = marginals(
                backend,
                [prompt for _, prompt, _ in kept],
                labels,
                fmt,
                tolerance=config.marginal_tolerance,
                max_nodes=config.marginal_nodes,
                batch_size=config.marginal_batch,
                leads=[answer_lead(gen.answer, prompt) for _, prompt, gen in kept],
            )
            for record, marginal in zip(records, found):
                record.update(marginal_record(marginal))
            timings["marginal_seconds"] = sum(m.seconds for m in found)
        hidden = None
        if config.save_hidden:
            hidden = {item.id: gen.hidden for item, _, gen in kept if gen.hidden is not None}
        outcome.checks = [(prompt, gen.answer[len(prompt.answer_prefix) :]) for _, prompt, gen in kept][: self.precision_check]
        return records, hidden, outcome

    def _judge(self, backend, items, prompts):
        from labeldist.prompts.judgements import FILL

        tables = backend.score_answers(prompts)
        records = []
        for item, prompt, table in zip(items, prompts, tables):
            fractions, has_votes = self._votes(item)
            records.append(
                {
                    "id": item.id,
                    "prompt": backend.render(prompt.prompt).replace(FILL, "<candidate>"),
                    "answer": "",
                    "generated_tokens": 0,
                    "finished": True,
                    "parsed": True,
                    "complete": True,
                    "labels": [],
                    "unknown": [],
                    "corrections": json.dumps({}),
                    "gold": [label for label in self.labels if label in item.gold],
                    "vote_fractions": fractions,
                    "votes_available": has_votes,
                    "demonstration_ids": list(prompt.prompt.demonstration_ids),
                    "slots": [],
                    "answer_logprobs": np.asarray(table, dtype=float).ravel().tolist(),
                }
            )
        return records, None, BatchOutcome(ids=[])


def label_and_store(
    labeller: Labeller, backend: Backend, out: str | Path, items, prompts, part: str | None = None
) -> BatchOutcome:
    """Label one batch and write its records as one part of the run folder ``out`` (named
    ``part``, else the next free number); the outcome names the ids in it."""
    from labeldist.runs.store import RunStore

    records, hidden, outcome = labeller.label(backend, items, prompts)
    stored = time.perf_counter()
    if records:
        RunStore(out).append(records, hidden, name=part)
        outcome.ids = [record["id"] for record in records]
    outcome.timings["store_seconds"] = time.perf_counter() - stored
    return outcome


class LocalEngine:
    """Runs batches one after another in this process, with one backend."""

    name = "local"

    def __init__(self, backend: Backend):
        self.backend = backend

    def describe(self) -> dict:
        """The model as the backend describes it (run.json's ``model``)."""
        return self.backend.describe()

    def precision_check(self, prompts, labels, fmt, answers) -> dict:
        """The backend's float32 check of answers it labelled (see Backend.precision_check)."""
        return self.backend.precision_check(prompts, labels, fmt, answers)

    def too_long(self, prompts, reserve: int) -> str | None:
        """The first prompt the model's context cannot hold with ``reserve`` answer tokens (Backend.too_long)."""
        return self.backend.too_long(prompts, reserve)

    def run(self, batches: Sequence[tuple], labeller: Labeller, out: str | Path) -> Iterator[BatchOutcome]:
        """Label and store ``batches`` ((items, prompts) pairs) in order, yielding each outcome as it is stored."""
        for items, prompts in batches:
            yield label_and_store(labeller, self.backend, out, items, prompts)

    def summary(self) -> dict:
        """What run.json's attempt records of the engine."""
        return {"name": self.name}

    def close(self) -> None:
        """Nothing to release: the backend lives as long as the caller keeps it."""
