"""The probability that the model's answer contains each label, over every answer it could write.

    P(L in answer) = sum over label sequences s containing L of P(s, then stop)

where P(s, then stop) is the product of slot probabilities along s: slot k's distribution (each
label as the next one, and stopping) is the exact, segmentation- and form-summed slot of
:mod:`labeldist.slots`, computed in the context of s's first k-1 labels written as the answer
format writes them, and conditioned on that text: a slot's events are scored from the last token
boundary before its decision point, joint with the text between (often the previous label's
closing quote, inside a token such as ``"]``), and a label's event at slot k-1 already required
that text's terminator; dividing slot k by the probability of that text (``given_logprob``)
makes the product the probability of the answer, each terminator counted once. (The plain
product undercounts: 0.766 instead of 0.801 for a one-label answer of the tiny test model.)
The label sequences form a trie; nodes are expanded most probable first,
each by scoring its closing slot (the answer format's canonical answer naming the node's labels,
forced), a batch of nodes per model pass, until the mass of the unexpanded nodes is below the
tolerance or the node budget is spent.

Bounds: ``lower[L]`` is the mass of finished answers (a sequence, then stop) that contain L;
``upper[L] = 1 - `` the mass of finished answers without L: everything not settled (unexpanded
nodes, text outside the format at some slot) could still contain L. The truth, under the slot
model, lies between; with nothing left unsettled they meet. A label repeated in a sequence counts
once; the model's own probabilities are followed (repeats are not masked).

The unsettled mass is of two kinds, recorded apart: ``off_format``, answers that leave the format
at some slot (a label outside the set, free text: small models put 0.2-0.4 of slot 1 there), and
``unexpanded``, the nodes left when the tolerance or the budget stopped the expansion. The
probability that an answer *the format reads* names L is known to within the unexpanded mass:
it lies in [lower, lower + unexpanded]. That is what sampled answers estimate when an answer
outside the format names no label, and the default reading of the estimator ``marginal``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labeldist.models.base import Backend
from labeldist.prompts import AnswerFormat, Prompt


@dataclass
class ItemMarginals:
    """One item's marginals: per label, lower and upper bounds on P(L in answer); P(empty
    answer) (settled mass of the answer naming no label); the expected number of distinct labels
    over the settled answers; nodes expanded; seconds; the mass left unsettled, which is the
    mass that left the format plus the mass of the nodes not expanded."""

    lower: np.ndarray
    upper: np.ndarray
    empty: float
    expected_labels: float
    nodes: int
    seconds: float
    unsettled: float
    off_format: float = 0.0
    unexpanded: float = 0.0
    settled: dict = field(default_factory=dict)  # label sequence -> probability (tests read it)


def marginals(
    backend: Backend,
    prompts: Sequence[Prompt],
    labels: Sequence[str],
    fmt: AnswerFormat,
    *,
    tolerance: float = 1e-3,
    max_nodes: int = 200,
    max_depth: int | None = None,
    batch_size: int = 8,
    leads: Sequence[str] | None = None,
    prune_per_answer: bool = True,
) -> list[ItemMarginals]:
    """:class:`ItemMarginals` of each prompt: the trie of label sequences expanded most probable node
    first (``batch_size`` nodes per model pass) until the unexpanded mass is below ``tolerance``,
    ``max_nodes`` nodes were expanded, or (tests) every sequence up to ``max_depth`` labels was.

    ``leads``: per prompt, the whitespace the model writes before its answer (a plain prompt
    ending in "Labels:" is answered " [...]"): taken from its greedy answer, so that the nodes'
    answers read as the model writes them.

    ``prune_per_answer``: a node's tokenisations are pruned when their probability as part of
    the whole answer (the node's mass times theirs) is below the backend's pruning tolerance,
    the precision the root slot has, instead of their probability within the slot (False): deep
    nodes of small mass then skip tokenisations that could not move a marginal by more than
    that tolerance (on SmolLM2 four times fewer tree tokens). What is pruned stays unsettled,
    so the bounds hold either way."""
    leads = leads if leads is not None else [""] * len(prompts)
    walks = [_Walk(prompt, lead) for prompt, lead in zip(prompts, leads)]
    labels = tuple(labels)
    # the items' tries are walked in lockstep: each model pass scores up to ``batch_size`` nodes
    # of every item still open, so the nodes of all the items share the tree passes (each item
    # expands exactly the nodes it would alone, in the same order)
    while True:
        batch = [(walk, walk.take(tolerance, max_nodes, batch_size)) for walk in walks]
        batch = [(walk, taken) for walk, taken in batch if taken]
        if not batch:
            break
        started = time.perf_counter()
        nodes = [(walk, node) for walk, taken in batch for node in taken]
        answers = [_forced(fmt, walk.prompt, node[2], walk.lead) for walk, node in nodes]
        # each node's tokenisations are pruned relative to its mass (the same absolute precision
        # at every node: what is pruned stays unsettled)
        weights = [min(1.0, -node[0]) for _, node in nodes] if prune_per_answer else None
        scored = backend.generate(
            [walk.prompt for walk, _ in nodes],
            labels,
            fmt,
            forced_answers=answers,
            last_slot_only=True,
            answer_weights=weights,
        )
        share = (time.perf_counter() - started) / len(nodes)  # the pass's time, split by nodes
        for (walk, node), generation in zip(nodes, scored):
            walk.settle(node, generation, labels, max_depth)
            walk.seconds += share
    return [walk.result(labels) for walk in walks]


def answer_lead(answer: str, prompt: Prompt) -> str:
    """The whitespace a greedy ``answer`` (answer prefix included) begins with after the prefix."""
    rest = answer[len(prompt.answer_prefix) :]
    return rest[: len(rest) - len(rest.lstrip())]


class _Walk:
    """One item's trie walk: settled answers, the frontier (-mass, tie-break, sequence), the
    mass that left the format or lies beyond ``max_depth``, nodes expanded, seconds spent."""

    def __init__(self, prompt: Prompt, lead: str):
        self.prompt, self.lead = prompt, lead
        self.settled: dict[tuple[str, ...], float] = {}
        self.off_format = 0.0  # mass of answers that left the format
        self.cut = 0.0  # children beyond max_depth (tests): not expanded
        self.frontier: list[tuple[float, int, tuple[str, ...]]] = [(-1.0, 0, ())]
        self.counter = 1
        self.nodes = 0
        self.seconds = 0.0

    def take(self, tolerance: float, max_nodes: int, batch_size: int) -> list[tuple[float, int, tuple[str, ...]]]:
        """The next nodes to expand, most probable first (none once the walk is done)."""
        if not self.frontier or self.nodes >= max_nodes or -sum(m for m, _, _ in self.frontier) < tolerance:
            return []
        count = min(batch_size, len(self.frontier), max_nodes - self.nodes)
        self.nodes += count
        return [heapq.heappop(self.frontier) for _ in range(count)]

    def settle(self, node, generation, labels: tuple[str, ...], max_depth: int | None) -> None:
        """Split a node's mass by its closing slot: the stop settles, each label is a child."""
        negative, _, sequence = node
        mass = -negative
        # the closing slot (1-based index: one past the sequence) is what comes after it
        if generation.error is not None or not generation.slots or generation.slots[-1].index != len(sequence) + 1:
            self.off_format += mass  # the canonical answer did not read back as written: unsettled
            return
        slot = generation.slots[-1]
        # the slot's events are joint with the text that leads to them from the context's
        # token boundary (the previous label's closing quote, or its terminator): given
        # that text, they are P(next | this answer so far), so no terminator counts twice
        given = 1.0 if slot.given_logprob is None else float(np.exp(slot.given_logprob))
        if not given > 0:
            self.off_format += mass
            return
        stop = mass * float(slot.stop_prob) / given
        self.settled[sequence] = self.settled.get(sequence, 0.0) + stop
        children = mass * np.asarray(slot.label_probs, dtype=float) / given
        self.off_format += max(0.0, mass - stop - float(children.sum()))
        deeper = max_depth is None or len(sequence) < max_depth
        for label, child in zip(labels, children):
            if child <= 0:
                continue
            if deeper:
                heapq.heappush(self.frontier, (-child, self.counter, (*sequence, label)))
                self.counter += 1
            else:
                self.cut += child

    def result(self, labels: tuple[str, ...]) -> ItemMarginals:
        k = len(labels)
        unexpanded = self.cut - sum(m for m, _, _ in self.frontier)
        lower = np.zeros(k)
        without = np.zeros(k)
        expected = 0.0
        index = {label: i for i, label in enumerate(labels)}
        for sequence, probability in self.settled.items():
            named = {index[label] for label in sequence}
            mask = np.zeros(k, dtype=bool)
            mask[list(named)] = True
            lower[mask] += probability
            without[~mask] += probability
            expected += probability * len(named)
        return ItemMarginals(
            lower=lower,
            upper=1.0 - without,
            empty=self.settled.get((), 0.0),
            expected_labels=expected,
            nodes=self.nodes,
            seconds=self.seconds,
            unsettled=self.off_format + unexpanded,
            off_format=self.off_format,
            unexpanded=unexpanded,
            settled=self.settled,
        )


def marginal_record(marginal: ItemMarginals) -> dict:
    """The record fields of an item's marginal (what the run store keeps)."""
    return {
        "marginal_lower": marginal.lower.tolist(),
        "marginal_upper": marginal.upper.tolist(),
        "marginal_empty": marginal.empty,
        "marginal_expected_labels": marginal.expected_labels,
        "marginal_nodes": marginal.nodes,
        "marginal_seconds": marginal.seconds,
        "marginal_unsettled": marginal.unsettled,
        "marginal_off_format": marginal.off_format,
        "marginal_unexpanded": marginal.unexpanded,
    }


def _forced(fmt: AnswerFormat, prompt: Prompt, sequence: tuple[str, ...], lead: str) -> str:
    """The format's answer naming ``sequence`` (repeats kept), after the prompt's answer prefix
    (or after ``lead``, the model's own whitespace, when the prompt has no prefix)."""
    answer = fmt.write(sequence)
    if not prompt.answer_prefix:
        return lead + answer
    if not answer.startswith(prompt.answer_prefix):
        raise ValueError(f"the answer {answer!r} does not start with the prompt's answer prefix {prompt.answer_prefix!r}")
    return answer[len(prompt.answer_prefix) :]
