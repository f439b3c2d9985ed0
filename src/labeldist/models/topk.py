"""Label probabilities from what an OpenAI-compatible server reports: top-k next tokens.

A server returns, at each position it generated (or echoed), the token it took and the k most
likely tokens with their log-probabilities (k is at most 20 on most servers). It never returns
the whole distribution, so the probability of a label string at a slot can only be *bounded*
from those numbers, and is exact only where every branch the string can take was seen.

The distributions are kept as a tree of text nodes: a node is the text generated so far (after
the prompt), and its :class:`Step` is the next-token top-k the server reported there. The
generated answer gives one node per token; more nodes come from asking the server for the
top-k after a given text (one ``max_tokens=1`` completion each) or from echoed prompts.

:func:`walk` follows a continuation string (``", "`` + label, then a terminator) through that
tree, over every way the observed tokens can spell it, and returns three numbers:

- ``lower``: the probability of the branches seen completely (every token and the terminator
  after them observed). A lower bound of the string's probability.
- ``estimate``: ``lower`` plus the branches seen only in part, each counted as if its unseen
  rest had probability 1 (for a label whose first token is in the top-k but whose terminator
  was never asked for, that is the first-token probability). The number a run records.
- ``upper``: ``estimate`` plus, at every node passed, the mass the top-k left unreported, since
  any unreported token could be the next piece of the string. An upper bound.

A label whose tokens are outside the top-k thus gets ``estimate`` 0 and an ``upper`` bound
(the unreported mass), never a silent zero. Token texts compare as strings; tokens with empty
text and the usual end-of-turn texts stand for the end of the answer.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Texts servers give end-of-generation tokens in top-k lists: llama.cpp detokenises control
# tokens to "", vLLM and hosted APIs may spell them out.
END_TEXTS = frozenset(
    {"", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "</s>", "<eos>", "<end_of_turn>", "<|end_of_text|>"}
)
# Servers round log-probabilities (and sum them in float32): observed mass may exceed 1 by this
# much before a response is called inconsistent.
MASS_TOLERANCE = 1e-3


class LogprobError(ValueError):
    """A response whose log-probabilities cannot be right (positive, NaN, mass above 1, token
    texts that do not add up to the text); the message says which."""


@dataclass
class Step:
    """The next-token distribution reported at one node: ``top`` maps token text to
    log-probability (the taken token included). ``taken`` is the token the server generated or
    echoed there, None when it reported none (an expansion that ended at once)."""

    top: dict[str, float]
    taken: str | None = None
    taken_logprob: float | None = None
    observed: float = field(init=False)  # total probability of the reported tokens
    floor: float = field(init=False)  # bound on the probability of each unreported token

    def __post_init__(self) -> None:
        self.top = dict(self.top)
        if self.taken is not None and self.taken_logprob is not None:
            # a token reported both as taken and in the top-k keeps the larger (the dict of a
            # server keyed by text keeps one of several same-text tokens)
            self.top[self.taken] = max(self.top.get(self.taken, -math.inf), self.taken_logprob)
        for text, logprob in self.top.items():
            if not isinstance(logprob, (int, float)) or math.isnan(logprob) or logprob > 1e-4:
                raise LogprobError(f"log-probability {logprob!r} of token {text!r} is not a log-probability")
        self.observed = float(sum(math.exp(lp) for lp in self.top.values()))
        if self.observed > 1 + MASS_TOLERANCE:
            raise LogprobError(f"the reported top tokens hold probability {self.observed:.4f} > 1")
        # every token the server left out is at most as likely as the least likely one it
        # ranked; the taken token is left out of that when it is below all ranked ones (an
        # echoed token outside the top-k)
        ranked = [lp for text, lp in self.top.items() if text != self.taken or len(self.top) == 1]
        if self.taken in self.top and ranked and self.top[self.taken] >= min(ranked):
            ranked.append(self.top[self.taken])
        self.floor = math.exp(min(ranked)) if ranked else 1.0

    @property
    def unreported(self) -> float:
        """Probability of all the tokens the server did not report here."""
        return max(0.0, 1.0 - self.observed)

    def merge(self, other: Step) -> None:
        """Add the entries of another report of the same node (an echoed token outside the
        top-k, say). Each entry keeps its larger value."""
        merged = dict(self.top)
        for text, logprob in other.top.items():
            merged[text] = max(merged.get(text, -math.inf), logprob)
        self.top = merged
        self.observed = min(1.0 + MASS_TOLERANCE, float(sum(math.exp(lp) for lp in merged.values())))
        # the floor of the first report stays valid: the added entries were unreported there


@dataclass(frozen=True)
class Bounds:
    """Lower bound, estimate and upper bound of one probability."""

    lower: float
    estimate: float
    upper: float

    def __add__(self, other: Bounds) -> Bounds:
        return Bounds(self.lower + other.lower, self.estimate + other.estimate, self.upper + other.upper)

    def scaled(self, p: float) -> Bounds:
        """All three numbers multiplied by ``p``."""
        return Bounds(p * self.lower, p * self.estimate, p * self.upper)

    @property
    def gap(self) -> float:
        """The width of the bounds, upper - lower."""
        return self.upper - self.lower

    def capped(self) -> Bounds:
        """The bounds with the upper one cut to 1 and the other two to at most the upper one."""
        upper = min(1.0, self.upper)
        return Bounds(min(self.lower, upper), min(self.estimate, upper), upper)


ZERO = Bounds(0.0, 0.0, 0.0)
ONE = Bounds(1.0, 1.0, 1.0)
UNKNOWN = Bounds(0.0, 1.0, 1.0)  # a factor nothing is known about


@dataclass(frozen=True)
class Target:
    """A continuation to bound: ``text`` from a node, then (``terminators``) a token starting
    with one of them, or (``end``) the end of the answer; with neither, the last token only has
    to start with the rest of the text (a close ``]`` also counts ``]\\n``), unless ``exact``,
    when the text must end on a token boundary (continuation scoring)."""

    text: str
    terminators: tuple[str, ...] = ()
    end: bool = False
    exact: bool = False

    @property
    def terminated(self) -> bool:
        """Whether the text must be followed by a terminator or by the end of the answer."""
        return bool(self.terminators) or self.end


@dataclass
class WalkResult:
    """What :func:`walk` returns: the bounds, and the nodes whose top-k would tighten them with their reach probability."""

    bounds: Bounds
    # nodes whose top-k would tighten the bounds, with the probability of reaching them
    wanted: dict[str, float]


def walk(
    nodes: dict[str, Step],
    start: str,
    target: Target,
    min_branch: float = 1e-7,
    max_depth: int = 64,
    vocabulary: Vocabulary | None = None,
) -> WalkResult:
    """Bounds on P(``target`` | the text ``start``) from the reported nodes (see the module).

    With the served model's ``vocabulary``, the unreported mass a node adds to an upper bound
    is cut to (unreported tokens that could continue the string) x (the node's floor)."""
    wanted: dict[str, float] = {}

    def unreported(step: Step, rest: str) -> float:
        if vocabulary is None:
            return step.unreported
        count = sum(n for text, n in vocabulary.consistent(rest, target).items() if text not in step.top)
        return min(step.unreported, count * step.floor)

    def ends(text: str) -> bool:
        return any(text.startswith(t) for t in target.terminators) or (
            target.end and (text in END_TEXTS or text.startswith("\n"))
        )

    def go(key: str, rest: str, reach: float, depth: int) -> Bounds:
        step = nodes.get(key)
        if step is None:
            if reach >= min_branch:
                wanted[key] = max(wanted.get(key, 0.0), reach)
            return UNKNOWN
        if not rest:
            if not target.terminated:
                return ONE
            mass = sum(math.exp(lp) for text, lp in step.top.items() if ends(text))
            return Bounds(mass, mass, mass + unreported(step, ""))
        total = Bounds(0.0, 0.0, unreported(step, rest))
        for text, logprob in step.top.items():
            if not text or text in END_TEXTS:
                continue
            p = math.exp(logprob)
            if rest.startswith(text) and len(text) < len(rest):
                # a piece of the string: what follows it decides
                if depth >= max_depth or reach * p < min_branch:
                    total += Bounds(0.0, p, p)
                else:
                    total += go(key + text, rest[len(text) :], reach * p, depth + 1).scaled(p)
            elif text.startswith(rest):
                extra = text[len(rest) :]
                if not extra:
                    if target.terminated:
                        total += (
                            go(key + text, "", reach * p, depth + 1).scaled(p) if reach * p >= min_branch else Bounds(0.0, p, p)
                        )
                    else:
                        total += Bounds(p, p, p)
                elif target.terminated:
                    if ends(extra):
                        total += Bounds(p, p, p)
                elif not target.exact:
                    total += Bounds(p, p, p)
        return total

    result = go(start, target.text, 1.0, 0).capped()
    return WalkResult(result, wanted)


class Vocabulary:
    """The token texts of the served model (from its tokenizer), to count which tokens could
    continue a string. Counts are by text, as servers report top-k tokens by text."""

    def __init__(self, texts: Sequence[bytes], end_ids: Iterable[int] = ()):
        self.by_text: dict[str, int] = {}
        for data in texts:
            if data:
                text = data.decode("utf-8", errors="replace")
                self.by_text[text] = self.by_text.get(text, 0) + 1
        self.ends = len(set(end_ids))  # end-of-generation tokens (text "" in llama.cpp's reports)
        self._sorted = sorted(self.by_text)
        self._cache: dict[tuple, dict[str, int]] = {}

    @classmethod
    def from_tokenizer(cls, tokenizer) -> Vocabulary:
        """The vocabulary of a Hugging Face tokenizer: its token texts and end-of-generation ids."""
        from labeldist.slots.tokens import TokenTexts, eos_ids

        texts = TokenTexts(tokenizer)
        return cls(texts.bytes, eos_ids(tokenizer))

    def known(self, text: str) -> bool:
        """Whether ``text`` is a token text of the vocabulary, an end-of-turn text, or empty."""
        return not text or text in END_TEXTS or text in self.by_text

    def _starting(self, prefix: str) -> list[str]:
        start = bisect.bisect_left(self._sorted, prefix)
        out = []
        for text in self._sorted[start:]:
            if not text.startswith(prefix):
                break
            out.append(text)
        return out

    def consistent(self, rest: str, target: Target) -> dict[str, int]:
        """Token texts (with how many tokens have each) that can come next when ``rest`` of
        ``target`` is still to be written: its proper prefixes, and tokens covering it as
        :func:`walk` counts them; with ``rest`` empty, the tokens that end it."""
        key = (rest, target.terminators, target.end, target.exact, target.terminated)
        found = self._cache.get(key)
        if found is not None:
            return found
        found = {}
        if not rest:
            for prefix in (*target.terminators, *(("\n",) if target.end else ())):
                for text in self._starting(prefix):
                    found[text] = self.by_text[text]
            if target.end and self.ends:
                found[""] = self.ends
        else:
            for length in range(1, len(rest)):
                if rest[:length] in self.by_text:
                    found[rest[:length]] = self.by_text[rest[:length]]
            for text in self._starting(rest):
                extra = text[len(rest) :]
                if not extra:
                    found[text] = self.by_text[text]
                elif target.terminated:
                    if any(extra.startswith(t) for t in target.terminators) or (target.end and extra.startswith("\n")):
                        found[text] = self.by_text[text]
                elif not target.exact:
                    found[text] = self.by_text[text]
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[key] = found
        return found


def first_token_share(step: Step | None, texts: Iterable[str], firsts: Sequence[str | None] | None = None) -> list[float]:
    """The original method's approximation from a top-k: each text's first token probability,
    0 when it was not reported; renormalised over the texts. NaN when none was seen.

    ``firsts`` gives each text's first token as the served model's tokenizer splits it (the
    token the original method reads); without it, the longest reported token the text starts
    with stands in for it (else the shortest reported token that starts with the text)."""
    texts = list(texts)
    if step is None:
        return [math.nan] * len(texts)
    values = []
    for i, text in enumerate(texts):
        if firsts is not None and firsts[i]:
            values.append(math.exp(step.top[firsts[i]]) if firsts[i] in step.top else 0.0)
            continue
        inside = [t for t in step.top if t and t not in END_TEXTS and text.startswith(t)]
        if inside:
            values.append(math.exp(step.top[max(inside, key=len)]))
            continue
        over = [t for t in step.top if t and t.startswith(text)]
        values.append(math.exp(step.top[min(over, key=len)]) if over else 0.0)
    total = sum(values)
    return [v / total for v in values] if total > 0 else [math.nan] * len(texts)


def steps_from_completion(logprobs: dict, text: str, *, where: str) -> list[tuple[int, Step]]:
    """``(text offset, Step)`` for each token of a completions response's ``logprobs``
    (``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``), offsets relative to
    the start of ``text`` as the server gives them. Echoed first tokens have null logprobs and
    are skipped. Raises :class:`LogprobError` on anything inconsistent."""
    if not isinstance(logprobs, dict):
        raise LogprobError(f"{where}: the response has no logprobs (got {type(logprobs).__name__})")
    tokens = logprobs.get("tokens")
    values = logprobs.get("token_logprobs")
    tops = logprobs.get("top_logprobs")
    offsets = logprobs.get("text_offset")
    if not isinstance(tokens, list) or not isinstance(values, list) or not isinstance(tops, list):
        raise LogprobError(f"{where}: logprobs lack tokens, token_logprobs or top_logprobs")
    if not (len(tokens) == len(values) == len(tops)) or (isinstance(offsets, list) and len(offsets) != len(tokens)):
        raise LogprobError(
            f"{where}: logprobs lists of different lengths ({len(tokens)} tokens, {len(values)} logprobs, {len(tops)} top lists)"
        )
    out = []
    for i, (token, value, top) in enumerate(zip(tokens, values, tops)):
        if not isinstance(token, str):
            raise LogprobError(f"{where}: token {i} is not text: {token!r}")
        offset = offsets[i] if isinstance(offsets, list) else None
        if value is None and top is None:
            out.append((offset, None, token))
            continue
        if not isinstance(top, dict):
            raise LogprobError(f"{where}: token {i} ({token!r}) has no top_logprobs")
        out.append((offset, Step(top, token, value), token))
    return _with_offsets(out, text, where)


def steps_from_chat(content: list, text: str, *, where: str) -> list[tuple[int, Step]]:
    """The same for a chat response's ``logprobs.content`` (``token``, ``logprob``, ``bytes``,
    ``top_logprobs``: a list of ``{token, logprob, bytes}``). Byte lists, when given, decide the
    text (a character split over two tokens shows as garbage in ``token``)."""
    if not isinstance(content, list):
        raise LogprobError(f"{where}: the response has no logprobs.content")
    out = []
    pending = b""
    for i, entry in enumerate(content):
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise LogprobError(f"{where}: logprobs.content[{i}] is not a token entry")
        top = entry.get("top_logprobs")
        if not isinstance(top, list):
            raise LogprobError(f"{where}: token {i} ({entry['token']!r}) has no top_logprobs")
        token = entry["token"]
        if isinstance(entry.get("bytes"), list):
            # a token ending inside a character contributes its bytes to the next one
            pending += bytes(entry["bytes"])
            try:
                token = pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:
                token = ""
        try:
            ranked = {t["token"]: t["logprob"] for t in top}
        except (TypeError, KeyError):
            raise LogprobError(f"{where}: token {i}: top_logprobs entries need token and logprob") from None
        out.append((None, Step(ranked, token, entry.get("logprob")), token))
    return _with_offsets(out, text, where)


def _with_offsets(entries, text: str, where: str) -> list[tuple[int, Step]]:
    """Offsets from the token texts, checked against the response text and any offsets the
    server sent: a mismatch means the numbers cannot be placed in the answer."""
    position = 0
    out = []
    for _server_offset, step, token in entries:
        if step is not None:
            out.append((position, step))
        position += len(token)
    if position != len(text) or "".join(t for _, _, t in entries) != text:
        raise LogprobError(
            f"{where}: the token texts ({position} characters) do not add up to the returned text ({len(text)} characters)"
        )
    return out
