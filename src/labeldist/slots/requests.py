"""What a backend scores at a label slot, whatever computes it: one :class:`ScoreRequest` per
surface form (a continuation string from a token boundary, and what must follow it), and the
pruning tolerance of the tokenisation lattice. The hf backend scores requests in tree passes
over its key/value cache (``models/hf/scoring.py``); any backend that scores them must give the
same numbers, defined in ``models/hf/scoring.py``'s docstring."""

from __future__ import annotations

from dataclasses import dataclass

# Tokens of context re-tokenised together with a continuation, so the continuation's tokens
# are the ones the tokenizer produces *in context* (leading spaces, SentencePiece prefixes).
CONTEXT_TAIL_TOKENS = 6
# A tokenisation prefix less likely than this is not extended; its probability is recorded as
# the bound on what the slot's number leaves out (the issue-16 definition's default).
PRUNE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ScoreRequest:
    """One continuation to score: ``text`` from a token boundary of the generated answer, and what must follow it."""

    boundary: int  # the context is prompt + generated[:boundary]
    text: str  # continuation text from that token boundary
    terminators: tuple[str, ...] = ()
    end: bool = False
    # score exactly these tokens (loglikelihood of the text), no terminator or last-token rule
    exact_tokens: bool = False
