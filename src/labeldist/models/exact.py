"""A backend with exact slots over any model that gives next-token distributions after token ids
(vLLM in this process; a test's transformers model): the prompts are encoded on this side
exactly as the hf backend encodes them, the slots planned as it plans them
(``models/slot_plans.py``) and every continuation scored over every tokenisation by the lattice
walk of ``slots/lattice.py``, each level's distributions asked for in one batch. The numbers are
the hf backend's (same definition, same pruning and bounds), computed by another engine.

The engine (:class:`NextTokenModel`) does three things: greedy continuations with the
distribution before each token, the distributions after any token sequences, and sampled
continuations. Everything else is here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeldist.errors import ModelError
from labeldist.models.base import Backend, Generation, answer_log_weights, draw_seed
from labeldist.models.encoding import PromptEncoding, special_token_strings
from labeldist.models.slot_plans import first_token_ids, prepare_answer, slot_distributions
from labeldist.prompts import AnswerFormat, Prompt
from labeldist.prompts.formats import answer_closed
from labeldist.prompts.judgements import JudgementPrompt
from labeldist.slots.lattice import LatticeItem, LatticeScorer
from labeldist.slots.requests import ScoreRequest
from labeldist.slots.tokens import ContextTokenizer, TokenTexts


@dataclass(frozen=True)
class ItemFailed:
    """What :meth:`NextTokenModel.greedy` gives for a prompt the engine refused, and why."""

    reason: str


class NextTokenModel(ABC):
    """What an exact backend needs of a model. Distributions are float32 (or wider) arrays of
    log-probabilities over the vocabulary (``vocab_size`` wide: a token the model does not
    have reads -inf)."""

    vocab_size: int

    @abstractmethod
    def greedy(self, prompts: Sequence[list[int]], max_tokens: int, stop_ids: Sequence[int]) -> list[list[int] | ItemFailed]:
        """Per prompt: the greedy continuation, up to ``max_tokens``, ending at a ``stop_ids``
        token if one comes, or :class:`ItemFailed` where the engine refused that prompt alone (a
        server's answer to one request; the item is recorded as a gap and retried by a rerun).
        (The distributions the slots need are asked for afterwards, only where they are read: a
        whole distribution at every step costs more than the answer.)"""

    @abstractmethod
    def distributions(self, prefixes: Sequence[tuple[int, ...]], wanted: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """The next-token distribution after each token sequence, exact at least at its
        ``wanted`` token ids (None: every id); an engine may send only those."""

    @abstractmethod
    def sample(
        self, prompts: Sequence[list[int]], max_tokens: int, stop_ids: Sequence[int], temperature: float, seeds: Sequence[int]
    ) -> list[list[int]]:
        """One continuation per prompt drawn at ``temperature`` (no top-k or top-p), each seeded by its ``seeds`` entry."""


class ExactBackend(PromptEncoding, Backend):
    """Exact slots from a :class:`NextTokenModel` and the model's tokenizer (subclasses load
    both, and describe themselves)."""

    def _setup_exact(
        self, engine: NextTokenModel, tokenizer, eos: Sequence[int], chat: bool | None, max_new_tokens: int, tolerance: float
    ):
        if not 0.0 <= tolerance < 1.0:
            raise ModelError(f"the prune tolerance must be in [0, 1), not {tolerance!r}")
        self.engine = engine
        self.tokenizer = tokenizer
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat and not has_template:
            raise ModelError(f"model {self.name!r} has no chat template; run without --chat")
        self.chat = has_template if chat is None else chat
        self.max_new_tokens = max_new_tokens
        self.texts = TokenTexts(tokenizer)
        self._specials = special_token_strings(tokenizer)
        self.eos = list(eos)
        self.context_tokenizer = ContextTokenizer(tokenizer, self.texts)
        # distributions of the batch in hand: (values, which are exact; None: all)
        self._known: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray | None]] = {}
        self.scorer = LatticeScorer(self.texts, self.context_tokenizer, self.eos, self._distributions, tolerance)

    # -- distributions -----------------------------------------------------------------------

    def _distributions(
        self, prefixes: Sequence[tuple[int, ...]], wanted: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """The distribution after each prefix, exact at least at its ``wanted`` ids (None: all),
        from what the batch in hand already has or from the engine (only what is missing)."""
        size = self.engine.vocab_size
        wanted = [None if ids is None else ids[ids < size] for ids in wanted] if wanted is not None else [None] * len(prefixes)
        asked: dict[tuple[int, ...], np.ndarray | None] = {}
        for prefix, ids in zip(prefixes, wanted):
            known = self._known.get(prefix)
            if known is not None:
                valid = known[1]
                if valid is None or (ids is not None and valid[ids].all()):
                    continue
                ids = None if ids is None else ids[~valid[ids]]
            if prefix in asked:  # the same prefix twice: the union of what both read
                before = asked[prefix]
                asked[prefix] = None if before is None or ids is None else np.union1d(before, ids)
            else:
                asked[prefix] = ids
        if asked:
            for (prefix, ids), dist in zip(asked.items(), self.engine.distributions(list(asked), list(asked.values()))):
                self._remember(prefix, dist, ids)
        return [self._known[p][0] for p in prefixes]

    def _remember(self, prefix: tuple[int, ...], dist: np.ndarray, ids: np.ndarray | None) -> None:
        """Keep ``dist`` for the batch: whole (``ids`` None), or exact at ``ids`` only."""
        if ids is None:
            self._known[prefix] = (dist, None)
            return
        known = self._known.get(prefix)
        if known is None:
            known = self._known[prefix] = (np.full(len(dist), -np.inf, dtype=dist.dtype), np.zeros(len(dist), dtype=bool))
        known[0][ids] = dist[ids]
        known[1][ids] = True

    # -- generation --------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Prompt],
        labels: Sequence[str],
        answer_format: AnswerFormat,
        *,
        save_hidden: bool = False,
        forced_answers: Sequence[str] | None = None,
        last_slot_only: bool = False,
        answer_weights: Sequence[float] | None = None,
    ) -> list[Generation]:
        """Greedy answers (or ``forced_answers``) with their exact label slots, as the hf backend."""
        if save_hidden:
            raise ModelError(f"{type(self).__name__} does not return hidden states; run --save-hidden with --backend hf")
        log_weights = answer_log_weights(answer_weights, len(prompts))
        labels = tuple(labels)
        rendered, encoded = map(list, zip(*(self.encode_prompt(p) for p in prompts)))
        started = time.perf_counter()
        try:
            if forced_answers is not None:
                if len(forced_answers) != len(prompts):
                    raise ValueError(f"{len(forced_answers)} forced answers for {len(prompts)} prompts")
                generated = [self.context_tokenizer.tokenize(ids, text) for ids, text in zip(encoded, forced_answers)]
                finished = [len(tokens) > 0 for tokens in generated]
            else:
                generated, finished = self._greedy(encoded, [p.answer_prefix for p in prompts], answer_format)
            decode_seconds = time.perf_counter() - started
            # an item the engine refused becomes a gap; the others are scored as a batch
            kept = [i for i, tokens in enumerate(generated) if not isinstance(tokens, ItemFailed)]
            started = time.perf_counter()
            scored = self._scored(
                [prompts[i] for i in kept],
                [encoded[i] for i in kept],
                [generated[i] for i in kept],
                labels,
                answer_format,
                last_slot_only,
                [log_weights[i] for i in kept],
            )
        finally:
            self._known.clear()
        slot_seconds = time.perf_counter() - started
        results = [
            Generation.failed(text, tokens.reason) if isinstance(tokens, ItemFailed) else None
            for text, tokens in zip(rendered, generated)
        ]
        for i, (answer, slots) in zip(kept, scored):
            results[i] = Generation(
                prompt_text=rendered[i],
                answer=answer.answer,
                generated_tokens=answer.generated_tokens,
                parsed=answer.parsed,
                slots=slots,
                finished=finished[i],
                token_ids=list(generated[i]),
                timings={"decode": decode_seconds / len(prompts), "slots": slot_seconds / max(1, len(kept))},
            )
        return results

    def _scored(self, prompts, encoded, generated, labels, answer_format, last_slot_only, log_weights=None):
        """Each answer (``generated`` after ``encoded``) prepared, with its slots; ``log_weights``:
        each answer's log-probability of being reached (pruning relative to the whole answer)."""
        prepared = [
            prepare_answer(p.answer_prefix, tokens, self.eos, self.texts, labels, answer_format, last_slot_only)
            for p, tokens in zip(prompts, generated)
        ]
        log_weights = log_weights if log_weights is not None else [0.0] * len(prepared)
        items = [
            LatticeItem(list(ids) + answer.answer_ids, len(ids), answer.requests, log_weight)
            for ids, answer, log_weight in zip(encoded, prepared, log_weights)
        ]
        out = []
        for answer, item, (logprobs, pruned) in zip(prepared, items, self.scorer.score(items)):
            out.append(
                (answer, slot_distributions(answer, logprobs, pruned, labels, self._first_token_reader(answer, item, labels)))
            )
        return out

    def _greedy(self, encoded, prefixes, fmt) -> tuple[list[list[int]], list[bool]]:
        """Greedy answers cut where the hf backend stops (EOS, the answer closed, the token limit)."""
        outputs = self.engine.greedy(encoded, self.max_new_tokens, self.eos)
        generated, finished = [], []
        for prefix, tokens in zip(prefixes, outputs):
            if isinstance(tokens, ItemFailed):
                generated.append(tokens)
                finished.append(False)
                continue
            kept, done = self._cut(tokens, prefix, fmt)
            generated.append(kept)
            finished.append(done)
        return generated, finished

    def _cut(self, tokens: Sequence[int], prefix: str, fmt: AnswerFormat) -> tuple[list[int], bool]:
        """``tokens`` up to where the hf backend's decoding stops (an EOS token, the answer
        closed, the token limit), and whether the answer finished (not cut by the limit)."""
        kept: list[int] = []
        for token in tokens[: self.max_new_tokens]:
            kept.append(token)
            if token in self.eos or answer_closed(fmt, prefix + self.texts.text([t for t in kept if t not in self.eos])):
                return kept, True
        return kept, False

    def _first_token_reader(self, answer, item: LatticeItem, labels):
        def first_token(plan) -> np.ndarray:
            # the original method: each label's first token at the label's start, softmax over
            # the label set (labels sharing a first token get the same share)
            found = first_token_ids(plan, answer, item.context_ids, item.prompt_length, self.context_tokenizer, labels)
            if found is None:
                return np.full(len(labels), np.nan)
            j, first_ids = found
            (dist,) = self._distributions([tuple(item.context_ids[: item.prompt_length + j])], [np.asarray(first_ids)])
            logits = dist[first_ids].astype(np.float64)
            shares = np.exp(logits - logits.max())
            return shares / shares.sum()

        return first_token

    # -- questions and continuations ---------------------------------------------------------

    def score_answers(self, prompts: Sequence[JudgementPrompt]) -> list[np.ndarray]:
        """For each unary/pairwise prompt, log P(answer | prompt with fill) for every fill x
        answer: every token of the answer, in context."""
        encoded, contexts = self.encode_judgements(prompts, self.context_tokenizer)
        wanted = []  # (item, fill, answer, prefix, token)
        for i, (ids, (fills, answers)) in enumerate(zip(encoded, contexts)):
            for f, (fill, per_answer) in enumerate(zip(fills, answers)):
                for a, tokens in enumerate(per_answer):
                    for k, token in enumerate(tokens):
                        wanted.append((i, f, a, tuple(ids) + tuple(fill) + tuple(tokens[:k]), token))
        try:
            dists = self._distributions([w[3] for w in wanted], [np.asarray([w[4]]) for w in wanted])
        finally:
            self._known.clear()
        out = [np.zeros((len(fills), max((len(a) for a in answers), default=0))) for fills, answers in contexts]
        for (i, f, a, _, token), dist in zip(wanted, dists):
            out[i][f, a] += float(dist[token]) if token < len(dist) else float("-inf")
        return out

    def score(self, prefix: str, continuations: Sequence[str]) -> list[float]:
        """log P(continuation | prefix) for each continuation, in its canonical tokens."""
        ids = self.encode(prefix)
        item = LatticeItem(ids, len(ids), [ScoreRequest(0, text, exact_tokens=True) for text in continuations])
        try:
            ((logprobs, _),) = self.scorer.score([item])
        finally:
            self._known.clear()
        return [float(x) for x in logprobs]

    # -- sampling ----------------------------------------------------------------------------

    def sample_answers(
        self, prompts: Sequence[Prompt], answer_format: AnswerFormat, n: int, *, temperature: float = 1.0, seed: int = 0
    ) -> list[list[str]]:
        """``n`` answers per prompt drawn at ``temperature`` (the engine's sampler, seeded per
        (seed, item, draw): the same draws whatever the batch), cut where a greedy answer
        would stop. The draws are the engine's, not the hf backend's: the same distribution,
        other random numbers."""
        if n < 1:
            raise ValueError(f"samples must be at least 1, not {n}")
        if not temperature > 0:
            raise ValueError(f"temperature must be above 0, not {temperature}")
        encoded = [self.encode_prompt(p)[1] for p in prompts]
        rows = [(i, draw) for i in range(len(prompts)) for draw in range(n)]
        seeds = [draw_seed(seed, prompts[i].item_id, draw) for i, draw in rows]
        drawn = self.engine.sample([encoded[i] for i, _ in rows], self.max_new_tokens, self.eos, temperature, seeds)
        answers: list[list[str]] = [[] for _ in prompts]
        for (i, _), tokens in zip(rows, drawn):
            prefix = prompts[i].answer_prefix
            kept, _ = self._cut(tokens, prefix, answer_format)
            answers[i].append(prefix + self.texts.text([t for t in kept if t not in self.eos]))
        return answers
