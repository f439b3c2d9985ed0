"""The exact probability of continuation strings over every tokenisation, for a backend that
gives next-token distributions after any token sequence (vLLM's one-token requests with every
log-probability, a served model that takes token ids): the same walk as the hf backend's tree
passes (``models/hf/scoring.py``, whose docstring defines the numbers), with each level's
distributions asked for in one batch instead of computed in one tree pass.

From a request's token boundary, every vocabulary token whose text is a proper prefix of the
rest of the text leads to a lattice node one token deeper; a token equal to the rest completes
the text (then a terminator must follow: the log-sum of the follow tokens' probabilities), and
a token running past the end counts when what it adds begins with a terminator (any token, for
a text without terminators). A prefix less likely than the tolerance is not extended; its
probability is the request's pruned mass, the bound on what its number leaves out. The
distributions are read where they are needed and dropped with the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from labeldist.slots.requests import PRUNE_TOLERANCE, ScoreRequest
from labeldist.slots.tokens import ContextTokenizer, TokenTexts, follow_mask

# (token ids after which next-token log-distributions are wanted, the ids read from each) ->
# those distributions (log-probabilities over the vocabulary; exact at least at the ids read, so
# that an engine may send only those; a token the model does not have reads -inf)
Distributions = Callable[[Sequence[tuple[int, ...]], Sequence[np.ndarray]], Sequence[np.ndarray]]


FOLLOW = -1  # a read of the follow set's total, not of one token


def next_reads(
    texts: TokenTexts, data: bytes, offset: int, exact: list[int] | None, terminated: bool, can_follow: bool, starts
) -> list[tuple[int, int]]:
    """What a tokenisation prefix that has consumed ``offset`` bytes of ``data`` (or ``offset``
    of the ``exact`` tokens) reads next: (token, or FOLLOW for the follow set; bytes consumed,
    or -1 when the read completes the text). ``terminated``: a terminator must follow the text
    (``can_follow``: some token may); ``starts``: what a token running past the text must
    continue with. The walk of both the hf tree passes and :class:`LatticeScorer`."""
    if exact is not None:
        return [(exact[offset], 1)]
    rest = data[offset:]
    if not rest:  # the whole text is written: a terminator must follow
        return [(FOLLOW, -1)] if terminated and can_follow else []
    out = list(texts.prefixes_of(rest))
    for token in texts.extending(rest):
        extra = texts.bytes[token][len(rest) :]
        if not extra:  # the token is the rest: a node, or the end of an open text
            out.append((token, len(rest)))
        elif not terminated or extra.startswith(starts):
            out.append((token, -1))
    return out


def request_text(request: ScoreRequest) -> tuple[bytes, bool, tuple[bytes, ...]]:
    """A (non exact-token) request's text as bytes, whether a terminator must follow it, and what
    a token running past the text must continue with (its terminators; a line break where the
    answer may end)."""
    terminated = bool(request.terminators) or request.end
    if not request.text and not terminated:
        raise ValueError(f"empty continuation with no terminator: {request}")
    starts = tuple(t.encode("utf-8") for t in request.terminators) + ((b"\n",) if request.end else ())
    return request.text.encode("utf-8"), terminated, starts


def completes(data: bytes, exact: list[int] | None, terminated: bool, offset: int, length: int) -> bool:
    """Whether a read that took a prefix to ``offset`` (``length``: as :func:`next_reads` gave
    it) completes the text."""
    if exact is not None:
        return offset == len(exact)
    return length < 0 or (not terminated and offset == len(data))


@dataclass
class LatticeItem:
    """One item's context (prompt + generated tokens), its prompt's length, and the requests
    (each from a token boundary of the generated part)."""

    context_ids: Sequence[int]
    prompt_length: int
    requests: Sequence[ScoreRequest]
    # log-probability of reaching this context (a marginal trie node's mass): spellings are
    # pruned when their probability times that is below the tolerance
    log_weight: float = 0.0


@dataclass
class _Path:
    row: int
    request: int
    tokens: tuple[int, ...]  # after the request's cut
    offset: int  # bytes (or exact tokens) consumed
    logprob: float


@dataclass
class _Spec:
    data: bytes
    follow: np.ndarray | None  # ids of the tokens that may follow (None: the text only has to start what follows)
    starts: tuple[bytes, ...]
    exact: list[int] | None
    cut: int  # the context's length at the request's boundary


class LatticeScorer:
    """Log-probabilities of :class:`ScoreRequest` continuations, summed over every tokenisation,
    from next-token distributions asked of ``distributions`` a lattice level at a time."""

    def __init__(
        self,
        texts: TokenTexts,
        context_tokenizer: ContextTokenizer,
        eos_ids: Sequence[int],
        distributions: Distributions,
        tolerance: float = PRUNE_TOLERANCE,
    ):
        self.texts = texts
        self.context_tokenizer = context_tokenizer
        self.eos_ids = list(eos_ids)
        self.distributions = distributions
        self.tolerance = tolerance
        self._follow: dict[tuple, np.ndarray] = {}
        self.stats = {"levels": 0, "distributions": 0}

    def _follow_ids(self, terminators: tuple[str, ...], end: bool) -> np.ndarray:
        key = (terminators, end)
        if key not in self._follow:
            self._follow[key] = np.flatnonzero(follow_mask(self.texts, self.eos_ids, terminators, end))
        return self._follow[key]

    def _spec(self, item: LatticeItem, request: ScoreRequest) -> _Spec:
        cut = item.prompt_length + request.boundary
        if request.exact_tokens:
            return _Spec(b"", None, (), self.context_tokenizer.tokenize(list(item.context_ids[:cut]), request.text), cut)
        data, terminated, starts = request_text(request)
        follow = self._follow_ids(request.terminators, request.end) if terminated else None
        return _Spec(data, follow, starts, None, cut)

    def score(self, items: Sequence[LatticeItem]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per item: each request's log-probability (every tokenisation) and its pruned mass."""
        log_tolerance = math.log(self.tolerance) if self.tolerance > 0 else float("-inf")
        specs = [[self._spec(item, request) for request in item.requests] for item in items]
        totals: list[list[list[float]]] = [[[] for _ in item.requests] for item in items]
        pruned = [np.zeros(len(item.requests)) for item in items]
        frontier = [_Path(b, r, (), 0, 0.0) for b, item in enumerate(items) for r in range(len(item.requests))]
        while frontier:
            # what each path reads next, from the distribution after its prefix
            pending: list[tuple[_Path, tuple, int | np.ndarray, int, int]] = []  # (path, prefix, token or ids, token, length)
            for path in frontier:
                spec = specs[path.row][path.request]
                prefix = (path.row, spec.cut, path.tokens)
                if spec.exact is not None and path.offset == len(spec.exact):
                    totals[path.row][path.request].append(path.logprob)
                    continue
                terminated = spec.follow is not None
                for token, length in next_reads(
                    self.texts, spec.data, path.offset, spec.exact, terminated, terminated and len(spec.follow) > 0, spec.starts
                ):
                    pending.append((path, prefix, spec.follow if token == FOLLOW else token, token, length))
            if not pending:
                break
            reads: dict[tuple, list] = {}
            for _, prefix, read, _, _ in pending:
                reads.setdefault(prefix, []).append(np.atleast_1d(read))
            prefixes = list(reads)
            asked = [tuple(items[row].context_ids[:cut]) + tokens for row, cut, tokens in prefixes]
            got = self.distributions(asked, [np.unique(np.concatenate(reads[p])) for p in prefixes])
            self.stats["levels"] += 1
            self.stats["distributions"] += len(asked)
            where = dict(zip(prefixes, got))
            frontier = []
            for path, prefix, read, token, length in pending:
                spec = specs[path.row][path.request]
                dist = where[prefix]
                if isinstance(read, np.ndarray):
                    value = float(np.logaddexp.reduce(dist[read[read < len(dist)]].astype(np.float64)))
                else:
                    value = float(dist[read]) if read < len(dist) else float("-inf")
                logprob = path.logprob + value
                offset = path.offset + length
                if completes(spec.data, spec.exact, spec.follow is not None, offset, length):
                    totals[path.row][path.request].append(logprob)
                    continue
                if spec.exact is None and logprob + items[path.row].log_weight < log_tolerance:
                    pruned[path.row][path.request] += math.exp(logprob)
                    continue
                frontier.append(_Path(path.row, path.request, path.tokens + (token,), offset, logprob))
        out = []
        for item_totals, item_pruned in zip(totals, pruned):
            logprobs = np.array([float(np.logaddexp.reduce(t)) if t else float("-inf") for t in item_totals])
            out.append((logprobs, item_pruned))
        return out
