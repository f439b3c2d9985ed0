"""An independent brute force of slot probabilities: full forward passes only (no cache, tree
mask, padding or shared prefix), every tokenisation of a label string walked over the
tokenizer's own decoded token texts. The reference of tests/test_slots_tokenizers.py (every
slot of every form and tokenizer) and tests/test_marginal.py (the trie of label sequences)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from labeldist.prompts import Prompt
from labeldist.slots.locate import plan_slots
from labeldist.slots.requests import PRUNE_TOLERANCE


class BruteForce:
    """P(text, then a terminator) after a context, by full forward passes only.

    Token texts come from the tokenizer's own decoder (each token decoded after an anchor
    token), not from :class:`~labeldist.slots.tokens.TokenTexts`; the canonical tokenisation of
    the rest of a string after its first token reuses the scorer's ``tokenize_in_context``.
    """

    def __init__(self, backend):
        self.backend = backend
        self.model = backend.model
        tokenizer = backend.tokenizer
        special = set(tokenizer.all_special_ids)
        anchor = tokenizer("a", add_special_tokens=False)["input_ids"]
        assert len(anchor) == 1
        head = tokenizer.decode(anchor, clean_up_tokenization_spaces=False)
        self.strings: dict[int, str] = {}
        for token_id in range(len(tokenizer)):
            if token_id in special:
                continue
            text = tokenizer.decode(anchor + [token_id], clean_up_tokenization_spaces=False)
            assert text.startswith(head)
            text = text[len(head) :]
            if text and "\ufffd" not in text:  # part of a UTF-8 character: no ASCII label starts so
                self.strings[token_id] = text
        self.size = self.model.config.vocab_size
        self.eos = list(backend.eos)
        self._passes: dict[tuple, torch.Tensor] = {}
        self._masks: dict[tuple, torch.Tensor] = {}

    # -- model ---------------------------------------------------------------------------------

    def dists(self, context: list[int], tokens: list[int]) -> torch.Tensor:
        """Next-token log-distributions before each of ``tokens`` and after the last, from ONE
        full forward pass over ``context + tokens`` (no cache, no mask, no padding)."""
        key = (tuple(context), tuple(tokens))
        if key not in self._passes:
            ids = torch.tensor([context + tokens])
            with torch.no_grad():
                logits = self.model(input_ids=ids).logits[0, len(context) - 1 :]
            self._passes[key] = torch.log_softmax(logits.double(), dim=-1)
        return self._passes[key]

    # -- masks ---------------------------------------------------------------------------------

    def mask(self, starts: tuple[str, ...], eos: bool = False) -> torch.Tensor:
        """Tokens whose text starts with one of ``starts`` (and the EOS tokens when ``eos``)."""
        key = (starts, eos)
        if key not in self._masks:
            out = torch.zeros(self.size, dtype=torch.bool)
            for token_id, text in self.strings.items():
                if any(text.startswith(s) for s in starts):
                    out[token_id] = True
            if eos:
                out[self.eos] = True
            self._masks[key] = out
        return self._masks[key].clone()

    def follow(self, terminators: tuple[str, ...], end: bool) -> torch.Tensor:
        return self.mask(tuple(terminators) + (("\n",) if end else ()), eos=end)

    # -- probability of a string ---------------------------------------------------------------

    def logprob(
        self, context: list[int], text: str, terminators: tuple[str, ...], end: bool, tolerance: float = PRUNE_TOLERANCE
    ) -> tuple[float, float]:
        """(log P(text, then a terminator), pruned mass): every tokenisation of ``text``, found
        by a depth-first walk over the decoder's token texts, each prefix's distribution from
        one full forward pass. A prefix less likely than ``tolerance`` is not extended and its
        probability is added to the pruned mass (the scorer's rule, so both prune the same
        prefixes; a smaller tolerance measures what pruning leaves out)."""
        terminated = bool(terminators) or end
        follow = self.follow(terminators, end) if terminated else None
        starts = tuple(terminators) + (("\n",) if end else ())
        totals: list[float] = []
        pruned = 0.0
        limit = math.log(tolerance)

        def walk(path: list[int], offset: int, logprob: float) -> None:
            nonlocal pruned
            here = self.dists(context, path)[len(path)]
            rest = text[offset:]
            if not rest:
                totals.append(logprob + float(torch.logsumexp(here[follow], 0)))
                return
            for token_id, token_text in self.strings.items():
                value = logprob + float(here[token_id])
                if rest.startswith(token_text):
                    if len(token_text) == len(rest) and not terminated:
                        totals.append(value)  # an open text is written: what follows is free
                    elif value < limit:
                        pruned += math.exp(value)
                    else:
                        walk(path + [token_id], offset + len(token_text), value)
                elif token_text.startswith(rest):
                    extra = token_text[len(rest) :]
                    if not terminated or extra.startswith(starts):
                        totals.append(value)

        walk([], 0, 0.0)
        return (float(np.logaddexp.reduce(totals)) if totals else float("-inf")), pruned

    def event(self, context: list[int], residual: str, forms, tolerance: float = PRUNE_TOLERANCE) -> tuple[float, float]:
        """(log-probability, pruned mass) of an event: the sum over its surface forms, each
        written after ``residual`` (disjoint strings, so their probabilities add)."""
        parts = [self.logprob(context, residual + f.text, f.terminators, f.end, tolerance) for f in forms]
        logprob = float(np.logaddexp.reduce([p for p, _ in parts])) if parts else float("-inf")
        return logprob, sum(m for _, m in parts)


@dataclass
class Reference:
    index: int
    chosen: str | None
    label_logprobs: np.ndarray | None  # None when built with with_labels=False
    stop_logprob: float
    label_pruned: np.ndarray | None
    stop_pruned: float
    first_token_probs: np.ndarray | None  # at the label's start; None at the closing slot


class References:
    """The brute force's slots of one forced answer, each computed when iterated to (so a
    comparison that fails at slot 1 does not pay for the others).

    A slot's context is the prompt's tokens plus the answer's tokens up to the last token
    boundary at or before its decision point; the text between that boundary and the
    decision point (the residual, e.g. the closing quote inside ``",``) starts every string
    scored there. ``with_labels=False`` skips the label strings (first-token shares and the
    stop only)."""

    def __init__(self, bf: BruteForce, prompt: Prompt, forced: str, fmt, labels, with_labels: bool = True):
        self.bf, self.labels, self.with_labels = bf, tuple(labels), with_labels
        scorer = bf.backend.scorer
        self.prompt_ids = bf.backend.tokenizer(prompt.text, add_special_tokens=True)["input_ids"]
        self.answer_ids = scorer.tokenize_in_context(self.prompt_ids, forced)
        self.answer = prompt.answer_prefix + forced
        prefix_length = len(prompt.answer_prefix)
        # character offset in the answer after each generated token (the answers are ASCII)
        self.boundaries = [prefix_length]
        for token_id in self.answer_ids:
            self.boundaries.append(self.boundaries[-1] + len(bf.strings[token_id]))
        assert self.boundaries[-1] == len(self.answer), "the forced answer does not round-trip"
        self.plans = plan_slots(self.answer, prefix_length, fmt, self.labels)

    def __len__(self) -> int:
        return len(self.plans)

    def cut(self, offset: int) -> tuple[list[int], str]:
        j = max(k for k, b in enumerate(self.boundaries) if b <= offset)
        return self.prompt_ids + self.answer_ids[:j], self.answer[self.boundaries[j] : offset]

    def __iter__(self):
        bf = self.bf
        for plan in self.plans:
            context, residual = self.cut(plan.decision)
            stop, stop_pruned = bf.event(context, residual, plan.close_forms)
            label_lps = label_pruned = None
            if self.with_labels:
                both = [bf.event(context, residual, plan.forms_of(label)) for label in self.labels]
                label_lps = np.array([value for value, _ in both])
                label_pruned = np.array([mass for _, mass in both])
            first = None
            if plan.label_start is not None:
                # the original method: each label's first token at the label's start, softmax
                ctx, res = self.cut(plan.label_start)
                base = bf.dists(ctx, [])[0]
                firsts = [bf.backend.scorer.tokenize_in_context(ctx, res + label)[0] for label in self.labels]
                first = torch.softmax(base[firsts], 0).numpy()
            yield Reference(plan.index, plan.chosen, label_lps, stop, label_pruned, stop_pruned, first)


def reference_slots(bf: BruteForce, prompt: Prompt, forced: str, fmt, labels, with_labels=True):
    refs = References(bf, prompt, forced, fmt, labels, with_labels)
    return refs.answer_ids, refs
