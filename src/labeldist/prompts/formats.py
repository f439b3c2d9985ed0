"""Answer formats: how a set of labels is written in a prompt, read back from a model's answer,
and located inside the generated text.

Three formats:

- ``json``:  ``["joy", "anger"]``; no label is ``[]``.
- ``comma``: ``joy, anger``; no label is ``none``.
- ``and``:   ``joy``, ``joy and anger``, ``joy, anger and sadness``; no label is ``none``.

Reading is lenient (a model's answer is rarely perfect) but never guesses between labels:
an element is matched exactly first, then ignoring case, surrounding whitespace and
punctuation, then (``match="fuzzy"``) to the single closest label by normalised Levenshtein
similarity. Parsing never raises, whatever the text.

Label sets a format cannot write unambiguously are refused by :meth:`AnswerFormat.check_labels`
(and :meth:`AnswerFormat.format`) with a :class:`ValueError` that names the label:

- every format: empty labels and duplicates.
- ``json``: labels that JSON would have to escape (``"``, backslash, control characters), since
  escaping would make the answer text differ from the label and break :meth:`label_spans`.
- ``comma`` and ``and``: labels containing a comma or a line break (the answer is one line of
  comma-separated elements), labels with leading or trailing whitespace, and labels that read
  as ``none`` (the empty answer).
- ``and``: labels starting or ending with the word "and", and label sets in which one answer
  could be split into labels in two ways, e.g. ``fear``, ``anxiety`` and ``fear and anxiety``
  (is ``fear and anxiety`` one label or two?). A label containing " and " is fine on its own
  (``joy and fear and anxiety`` reads as ``joy`` + ``fear and anxiety`` when ``fear`` and
  ``anxiety`` are not labels): the reader prefers the longest label at each position.

Why one file: the three formats are small subclasses of one base class, and each format's writer,
reader and locator must agree character for character; keeping them side by side is what keeps
them in step.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, Literal, NamedTuple

from rapidfuzz.distance import Levenshtein

MatchMode = Literal["exact", "casefold", "fuzzy"]
MATCH_MODES: tuple[str, ...] = ("exact", "casefold", "fuzzy")

NONE_WORD = "none"

# Characters a model tends to put around a label ("Joy.", **joy**, 'joy', [joy]) that are
# dropped before the case-insensitive comparison.
_EDGE_PUNCTUATION = ".,;:!?\"'`*[]\u201c\u201d\u2018\u2019"

# " and " as the and-format reads it: any whitespace around the word, any case.
_AND_SPLIT = re.compile(r"\s+and\s+", re.IGNORECASE)
_STARTS_WITH_AND = re.compile(r"and(\s|$)", re.IGNORECASE)
_ENDS_WITH_AND = re.compile(r"(^|\s)and$", re.IGNORECASE)


def _normalise(raw: str) -> str:
    """Casefolded text without surrounding punctuation and with single spaces."""
    squeezed = " ".join(raw.split()).strip(_EDGE_PUNCTUATION)
    return " ".join(squeezed.split()).casefold()


@dataclass(frozen=True)
class ParsedAnswer:
    """What a model's answer says.

    ``labels``: recognised labels in the order written, without repeats.
    ``corrections``: each element that matched a label other than exactly (case, surrounding
    punctuation or a near-miss spelling), raw text -> label.
    ``unknown``: elements that matched no label, in order, without repeats.
    ``parsed``: False when no answer could be found at all (no list for ``json``, an empty
    answer for ``comma``/``and``); every other field is then empty/False.
    ``none``: the answer explicitly says no label applies (``[]``, ``none``).
    ``complete``: the answer was closed (``]`` for ``json``; for ``comma``/``and`` it was not
    cut off after a separator). A final element cut off by the end of the text is never
    counted as a label, since it could be the start of several (``ang`` -> anger? angered?).
    ``well_formed``: the answer, from its first non-space character to its close, is exactly
    what :meth:`AnswerFormat.format` writes for ``labels``. Text after the close is ignored,
    since a model continuing past its answer is normal.
    """

    labels: tuple[str, ...]
    corrections: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    parsed: bool = True
    none: bool = False
    complete: bool = True
    well_formed: bool = False


class LabelSpan(NamedTuple):
    """Where one element of an answer lies: ``text[start:end]``, and the label it names
    (None when it names no label or was cut off by the end of the text)."""

    start: int
    end: int
    label: str | None


class LabelMatcher:
    """Maps raw answer elements to labels of one label set."""

    def __init__(self, labels: Sequence[str], min_similarity: float = 0.8):
        self.labels = tuple(labels)
        self.min_similarity = min_similarity
        self._exact = frozenset(self.labels)
        groups: dict[str, list[str]] = {}
        for label in self.labels:
            groups.setdefault(_normalise(label), []).append(label)
        # A normalised form shared by two labels ("Joy" and "joy") identifies neither of them;
        # only the exact comparison can tell them apart.
        self._by_normalised = {key: group[0] for key, group in groups.items() if key and len(group) == 1}

    def exact(self, raw: str) -> str | None:
        """``raw`` if it is exactly one of the labels, else None."""
        return raw if raw in self._exact else None

    def casefold(self, raw: str) -> str | None:
        """Exact, else ignoring case, surrounding punctuation and repeated whitespace."""
        if raw in self._exact:
            return raw
        return self._by_normalised.get(_normalise(raw))

    def closest(self, raw: str) -> str | None:
        """The one label most similar to ``raw`` when similar enough; None on a tie, since
        an element equally close to two labels says nothing about which was meant."""
        key = _normalise(raw)
        if not key:
            return None
        best_score, best = 0.0, []
        # the tolerance keeps a similarity of exactly the threshold (1 - 1/5 = 0.8 for
        # "angr" -> "anger") from failing on floating-point rounding
        threshold = self.min_similarity - 1e-9
        for candidate, label in self._by_normalised.items():
            # the similarity is at most shorter/longer length: skip hopeless (e.g. long) strings
            if min(len(key), len(candidate)) < threshold * max(len(key), len(candidate)):
                continue
            score = Levenshtein.normalized_similarity(key, candidate)
            if score < threshold:
                continue
            if score > best_score:
                best_score, best = score, [label]
            elif score == best_score:
                best.append(label)
        return best[0] if len(best) == 1 else None


@lru_cache(maxsize=64)
def _matcher(labels: tuple[str, ...], min_similarity: float) -> LabelMatcher:
    return LabelMatcher(labels, min_similarity)


@dataclass(frozen=True)
class _Element:
    """One element of an answer as written: ``text[start:end]`` holds it, ``value`` is its
    string (JSON escapes resolved), ``terminated`` is False when the text ended inside it."""

    start: int
    end: int
    value: str
    terminated: bool = True


@dataclass(frozen=True)
class _Scan:
    elements: list[_Element]
    complete: bool
    # The answer from its first non-space character up to and including its close.
    region: str


_NONE = object()  # what an element resolves to when it is the word "none"


@dataclass(frozen=True)
class AnswerFormat(ABC):
    """How labels are written in an answer. Subclasses fix the syntax; instances fix how
    strictly answers are read (``match``, and ``min_similarity`` for ``fuzzy``).

    Class attributes describe the syntax for the later per-slot scoring, which needs to know
    what text surrounds each label:

    - ``opener``: text that opens every answer (``[`` for json, empty otherwise).
    - ``closer``: text that closes an answer after its last label (``]`` for json; a line
      break for comma/and, where in a chat turn the end-of-turn token closes it too).
    - ``separators``: every string that can stand between two labels; ``and`` uses ``", "``
      between all but the last two labels and ``" and "`` before the last.
    - ``label_open`` / ``label_close``: text right before and after each label (the quotes
      of json).
    - ``none_text``: the whole answer when no label applies.
    - ``instruction``: one sentence telling a model to answer in this format.
    """

    name: ClassVar[str]
    opener: ClassVar[str]
    closer: ClassVar[str]
    separators: ClassVar[tuple[str, ...]]
    label_open: ClassVar[str] = ""
    label_close: ClassVar[str] = ""
    none_text: ClassVar[str]
    instruction: ClassVar[str]

    match: MatchMode = "fuzzy"
    min_similarity: float = 0.8

    def __post_init__(self) -> None:
        if self.match not in MATCH_MODES:
            raise ValueError(f"match must be one of {', '.join(MATCH_MODES)}, not {self.match!r}")
        if not 0.0 < self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in (0, 1], not {self.min_similarity!r}")

    # -- writing -----------------------------------------------------------------------------

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise ValueError when this format cannot write these labels unambiguously."""
        seen: set[str] = set()
        for label in labels:
            if not isinstance(label, str) or not label:
                raise ValueError(f"{self.name} answer format: labels must be non-empty strings, got {label!r}")
            if label in seen:
                raise ValueError(f"{self.name} answer format: label {label!r} is given twice")
            seen.add(label)
            problem = self._label_problem(label)
            if problem:
                raise ValueError(f"{self.name} answer format cannot write label {label!r}: {problem}")
        problem = self._label_set_problem(list(labels))
        if problem:
            raise ValueError(f"{self.name} answer format cannot write this label set unambiguously: {problem}")

    def format(self, labels: Sequence[str]) -> str:
        """The answer naming ``labels``, in the order given."""
        self.check_labels(labels)
        return self._render(list(labels))

    def write(self, labels: Sequence[str]) -> str:
        """The answer naming ``labels`` in the order given, repeats kept: how the format writes
        any label sequence a model might produce (labels of a set already checked)."""
        return self._render(list(labels))

    # -- reading -----------------------------------------------------------------------------

    def parse(self, text: str, label_set: Sequence[str]) -> ParsedAnswer:
        """Read an answer (never raises). ``text`` is the whole answer, including any answer
        prefix that was put into the prompt (e.g. ``[`` for json)."""
        read = self._read(text, label_set)
        if read is None:
            return ParsedAnswer(labels=(), parsed=False, complete=False)
        scan, resolved_elements = read
        labels: list[str] = []
        unknown: list[str] = []
        corrections: dict[str, str] = {}
        cut_off = False
        for element, resolved in resolved_elements:
            if not element.terminated:
                cut_off = True
            elif resolved is None:
                if _normalise(element.value) and element.value not in unknown:
                    unknown.append(element.value)
            elif resolved is not _NONE:
                if resolved != element.value:
                    corrections[element.value] = resolved
                if resolved not in labels:
                    labels.append(resolved)
        complete = scan.complete and not cut_off
        well_formed = complete and not unknown and not corrections and scan.region == self._render(labels)
        return ParsedAnswer(
            labels=tuple(labels),
            corrections=corrections,
            unknown=tuple(unknown),
            parsed=True,
            none=complete and not labels and not unknown,
            complete=complete,
            well_formed=well_formed,
        )

    def label_spans(self, text: str, label_set: Sequence[str]) -> list[LabelSpan]:
        """Where each element of the answer lies in ``text``, in order (never raises).

        One span per element the answer writes, repeats included, so the k-th span is the
        k-th label slot. The span holds the element only, without the json quotes; for
        answers written by :meth:`format`, ``text[start:end]`` equals the label and the text
        before ``start`` ends with :attr:`label_open`. ``label`` is None for an element that
        names no label or that the end of the text cut off. Elements that say "none" are not
        slots and get no span.
        """
        read = self._read(text, label_set)
        if read is None:
            return []
        return [LabelSpan(element.start, element.end, resolved) for element, resolved in read[1] if resolved is not _NONE]

    def _read(self, text: str, label_set: Sequence[str]) -> tuple[_Scan, list[tuple[_Element, object]]] | None:
        """The scanned answer and, per element, its label, ``_NONE`` or None (always None
        for a cut-off element); None when there is no answer."""
        matcher = _matcher(tuple(label_set), self.min_similarity)
        scan = self._scan(text, matcher)
        if scan is None:
            return None
        return scan, [
            (element, self._resolve(element.value, matcher) if element.terminated else None) for element in scan.elements
        ]

    def _resolve(self, value: str, matcher: LabelMatcher) -> str | object | None:
        """The label an element names, ``_NONE`` for the word none, or None."""
        label = matcher.exact(value) if self.match == "exact" else matcher.casefold(value)
        if label is not None:
            return label
        # "none" is checked before the fuzzy step so that it is never read as a label that
        # happens to be spelled like it ("nones").
        if _normalise(value) == NONE_WORD:
            return _NONE
        if self.match == "fuzzy":
            return matcher.closest(value)
        return None

    # -- per format --------------------------------------------------------------------------

    @abstractmethod
    def _render(self, labels: list[str]) -> str: ...

    @abstractmethod
    def _scan(self, text: str, matcher: LabelMatcher) -> _Scan | None:
        """The answer's elements, or None when there is no answer to read."""

    @abstractmethod
    def _label_problem(self, label: str) -> str | None: ...

    def _label_set_problem(self, labels: list[str]) -> str | None:
        return None


class JsonFormat(AnswerFormat):
    """``["joy", "anger"]``; ``[]`` when no label applies.

    Reading starts at the first ``[`` (text before it is allowed) and stops at the matching
    ``]`` (text after it is ignored). Also read: single quotes, unquoted words
    (``[joy, anger]``), missing commas, and a list cut off before its ``]``.
    """

    name = "json"
    opener = "["
    closer = "]"
    separators = (", ",)
    label_open = '"'
    label_close = '"'
    none_text = "[]"
    instruction = "Answer with a JSON list of labels, or [] if none apply."

    def _render(self, labels: list[str]) -> str:
        return "[" + ", ".join(f'"{label}"' for label in labels) + "]"

    def _label_problem(self, label: str) -> str | None:
        if '"' in label or "\\" in label or any(ord(ch) < 0x20 for ch in label):
            return "it contains a quote, a backslash or a control character, which JSON would escape"
        return None

    def _scan(self, text: str, matcher: LabelMatcher) -> _Scan | None:
        opening = text.find("[")
        if opening < 0:
            return None
        elements: list[_Element] = []
        complete = False
        pos, n = opening + 1, len(text)
        while pos < n:
            ch = text[pos]
            if ch.isspace() or ch == ",":
                pos += 1
            elif ch == "]":
                complete = True
                pos += 1
                break
            elif ch in "\"'":
                end = _string_end(text, pos + 1, ch)
                if end < 0 or text[end] != ch:
                    # The text (or the line: JSON strings cannot hold a raw line break)
                    # ended inside the string, so the list is cut off here.
                    stop = n if end < 0 else end
                    elements.append(_Element(pos + 1, stop, text[pos + 1 : stop], terminated=False))
                    break
                elements.append(_Element(pos + 1, end, _unescape(text[pos + 1 : end], ch)))
                pos = end + 1
            else:
                end = pos
                while end < n and text[end] not in ",]":
                    end += 1
                value = text[pos:end].rstrip()
                elements.append(_Element(pos, pos + len(value), value, terminated=end < n))
                pos = end
        region = text[:pos].lstrip() if complete else text.lstrip()
        return _Scan(elements, complete, region)


def _string_end(text: str, pos: int, quote: str) -> int:
    """Index of the quote closing a string that starts at ``pos``, or of the raw line break
    that ends it early; -1 when the text ends first."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "\\":
            pos += 2
        elif ch == quote or ch == "\n":
            return pos
        else:
            pos += 1
    return -1


def _unescape(raw: str, quote: str) -> str:
    """The string a JSON(-like) string literal stands for; the raw text when it is not valid."""
    if "\\" not in raw:
        return raw
    body = raw.replace("\\'", "'") if quote == "'" else raw
    try:
        value = json.loads(f'"{body}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


class _LineFormat(AnswerFormat):
    """Formats whose answer is one line of comma-separated elements ending at a line break."""

    opener = ""
    closer = "\n"
    none_text = NONE_WORD

    def _label_problem(self, label: str) -> str | None:
        if "," in label:
            return "it contains a comma, which separates labels"
        if "\n" in label or "\r" in label:
            return "it contains a line break, which ends the answer"
        if label != label.strip():
            return "it starts or ends with whitespace, which is not kept around labels"
        if _normalise(label) == NONE_WORD:
            return f"it reads as {NONE_WORD!r}, the answer for no label"
        return None

    def _scan(self, text: str, matcher: LabelMatcher) -> _Scan | None:
        start = len(text) - len(text.lstrip())
        line_end = text.find("\n", start)
        if line_end < 0:
            line_end = len(text)
        line = text[start:line_end].rstrip()
        if not line:
            return None
        elements: list[_Element] = []
        chunk_start = start
        for index, chunk in enumerate(line.split(",")):
            chunk_end = chunk_start + len(chunk)
            trimmed = chunk.strip()
            if trimmed:
                first = chunk_start + len(chunk) - len(chunk.lstrip())
                elements.extend(self._chunk_elements(text, first, first + len(trimmed), index, matcher))
            chunk_start = chunk_end + 1
        # A trailing separator means the model stopped (or was stopped) before the next label.
        complete = not line.endswith(",")
        return _Scan(elements, complete, line)

    def _chunk_elements(self, text: str, start: int, end: int, index: int, matcher: LabelMatcher) -> list[_Element]:
        return [_Element(start, end, text[start:end])]


class CommaFormat(_LineFormat):
    """``joy, anger``; ``none`` when no label applies. The answer is its first line."""

    name = "comma"
    separators = (", ",)
    instruction = "Answer with the labels separated by commas, or with none if no label applies."

    def _render(self, labels: list[str]) -> str:
        return ", ".join(labels) if labels else NONE_WORD


class AndFormat(_LineFormat):
    """``joy``, ``joy and anger``, ``joy, anger and sadness``; ``none`` when no label applies.

    Also read: ``joy and anger and sadness`` and the serial comma (``joy, anger, and sadness``).
    Within a comma-separated chunk the reader splits at " and " so that every piece is a label,
    preferring the longest label at each position; the label-set check guarantees that such a
    split is unique for every answer :meth:`format` writes.
    """

    name = "and"
    separators = (", ", " and ")
    instruction = 'Answer with the labels written as a list like "a, b and c", or with none if no label applies.'

    def _render(self, labels: list[str]) -> str:
        if not labels:
            return NONE_WORD
        if len(labels) == 1:
            return labels[0]
        return ", ".join(labels[:-1]) + " and " + labels[-1]

    def _label_problem(self, label: str) -> str | None:
        problem = super()._label_problem(label)
        if problem:
            return problem
        if _STARTS_WITH_AND.match(label) or _ENDS_WITH_AND.search(label):
            return 'it starts or ends with the word "and", which joins labels'
        return None

    def _label_set_problem(self, labels: list[str]) -> str | None:
        # Each label is a sequence of pieces between " and "s; an answer is the concatenation
        # of its labels' pieces. Reading is unambiguous exactly when no piece sequence splits
        # into labels in two ways, i.e. when the labels form a uniquely decodable code over
        # pieces (Sardinas-Patterson test).
        words = {tuple(_AND_SPLIT.split(label)) for label in labels}
        if _uniquely_decodable(words):
            return None
        joined = [label for label in labels if len(_AND_SPLIT.split(label)) > 1]
        return (
            f"labels containing 'and' ({', '.join(map(repr, joined))}) can be read as other labels joined "
            "by 'and'; rename them or use the json format"
        )

    def _chunk_elements(self, text: str, start: int, end: int, index: int, matcher: LabelMatcher) -> list[_Element]:
        if index > 0:
            # serial comma: "joy, anger, and sadness"
            serial = _STARTS_WITH_AND.match(text, start, end)
            if serial and serial.end() < end:
                start = serial.end()
        pieces: list[tuple[int, int]] = []
        piece_start = start
        for joint in _AND_SPLIT.finditer(text, start, end):
            pieces.append((piece_start, joint.start()))
            piece_start = joint.end()
        pieces.append((piece_start, end))
        longest = max((len(_AND_SPLIT.split(label)) for label in matcher.labels), default=1)
        groups = (
            _split_into_labels(text, pieces, longest, matcher.exact)
            or _split_into_labels(text, pieces, longest, matcher.casefold)
            or self._greedy_groups(text, pieces, longest, matcher)
        )
        return [_Element(s, e, text[s:e]) for s, e in groups]

    def _greedy_groups(
        self, text: str, pieces: list[tuple[int, int]], longest: int, matcher: LabelMatcher
    ) -> list[tuple[int, int]]:
        """Left to right, the longest run of pieces naming a label (near misses included),
        else a single piece; used when the chunk cannot be split into labels exactly."""
        groups = []
        i = 0
        while i < len(pieces):
            size = 1
            for candidate in range(min(longest, len(pieces) - i), 0, -1):
                s, e = pieces[i][0], pieces[i + candidate - 1][1]
                if self._resolve(text[s:e], matcher) is not None:
                    size = candidate
                    break
            groups.append((pieces[i][0], pieces[i + size - 1][1]))
            i += size
        return groups


def _split_into_labels(
    text: str, pieces: list[tuple[int, int]], longest: int, accept: Callable[[str], str | None]
) -> list[tuple[int, int]] | None:
    """Split a run of pieces into groups that ``accept`` takes as labels, longest group first
    at each position; None when no split exists. Dynamic programming from the end, so long
    adversarial answers cost pieces x longest checks and no recursion."""
    count = len(pieces)
    # next_cut[i]: end (exclusive piece index) of the group starting at piece i in a full split
    next_cut: list[int | None] = [None] * (count + 1)
    for i in range(count - 1, -1, -1):
        for j in range(min(count, i + longest), i, -1):
            if (j == count or next_cut[j] is not None) and accept(text[pieces[i][0] : pieces[j - 1][1]]):
                next_cut[i] = j
                break
    if count and next_cut[0] is None:
        return None
    groups = []
    i = 0
    while i < count:
        j = next_cut[i]
        groups.append((pieces[i][0], pieces[j - 1][1]))
        i = j
    return groups


def _uniquely_decodable(words: set[tuple[str, ...]]) -> bool:
    """Sardinas-Patterson: no sequence of symbols splits into ``words`` in two ways."""

    def dangling(prefixes, candidates):
        return {
            word[len(prefix) :]
            for prefix in prefixes
            for word in candidates
            if len(word) > len(prefix) and word[: len(prefix)] == prefix
        }

    current = dangling(words, words)
    seen: set[frozenset] = set()
    while current:
        if current & words:
            return False
        key = frozenset(current)
        if key in seen:
            return True
        seen.add(key)
        current = dangling(words, current) | dangling(current, words)
    return True


ANSWER_FORMATS: dict[str, type[AnswerFormat]] = {cls.name: cls for cls in (JsonFormat, CommaFormat, AndFormat)}


def get_answer_format(name: str, match: MatchMode = "fuzzy", min_similarity: float = 0.8) -> AnswerFormat:
    """The answer format called ``name`` (json, comma, and)."""
    try:
        cls = ANSWER_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown answer format {name!r}; choose from {', '.join(ANSWER_FORMATS)}") from None
    return cls(match=match, min_similarity=min_similarity)


def answer_closed(fmt: AnswerFormat, answer: str) -> bool:
    """Whether the answer is over, where decoding stops: the json list closed, or a list
    format's line ended."""
    if isinstance(fmt, JsonFormat):
        opened = answer.find(fmt.opener)
        return opened >= 0 and fmt.closer in answer[opened:]
    stripped = answer.lstrip()
    return "\n" in stripped
