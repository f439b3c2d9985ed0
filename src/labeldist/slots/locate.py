"""Where the label slots of a generated answer are, and what competes at each one.

Slot k is the k-th place in the answer where the model chooses between naming another label
and closing the answer. Its *decision point* is the character offset where that choice is made
(after ``[`` or after the previous label's closing quote for json; after the previous label for
comma/and lists). From the decision point, label L is the event "the next thing written is L,
as the parser reads it": the sum over every *surface form* of L the parser reads there, each a
string (``, "anger"``) followed by a terminator or by the end of the answer. Closing competes as
the format's close in its forms. Per format and slot:

- ``json``, slot 1: ``"L"``, ``'L'`` and unquoted ``L`` followed by ``,`` or ``]``, each with or
  without a space before it; the close ``]`` or `` ]``. Slot k > 1: the same after ``, `` or
  ``,``; the close ``]``, `` ]``, ``,]``, ``, ]``.
- ``comma``: ``L`` or `` L`` at slot 1 (the close: ``none``, `` none``), ``, L`` or ``,L`` later
  (the close: the end of the answer), each followed by ``,`` or the end of the answer.
- ``and``: as ``comma``, with `` and L`` and ``, and L`` too, and `` and`` as a terminator.

The text the model actually generated there is always one of the forms (added when it is none
of these, e.g. ``,\\n  "L"``). Case variants (``Joy``, ``None``) and misspellings, which the
lenient reader also accepts, are not counted: they are not the label as the format writes it.
The forms of one slot are pairwise disjoint events (no form's string, with its terminator, is a
prefix of another's), so a slot's label and stop probabilities sum to at most 1. After the last
generated label comes one more slot, where the model closed the answer (chosen = :data:`STOP`)
if it did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from labeldist.prompts.formats import AnswerFormat, JsonFormat

STOP = "<stop>"

_QUOTES = ('"', "'")
# what ends an unquoted json element, as the reader sees it
_JSON_BARE_TERMINATORS = (",", "]")


@dataclass(frozen=True)
class Continuation:
    """Text that continues the answer from a decision point, then (optionally) must be followed
    by one of ``terminators`` or by the end of the answer (EOS or a line break) when ``end``.

    With neither, the continuation's last token only has to *start with* the text's last
    canonical token, so ``]`` also counts the tokens ``]\\n`` or ``]}``.
    """

    text: str
    terminators: tuple[str, ...] = ()
    end: bool = False


@dataclass(frozen=True)
class LabelForm:
    """One way of writing a label from a decision point: ``before`` + the label, then one of
    ``terminators`` (or the end of the answer when ``end``). ``quote``: for a json element, the
    quote around the label, empty when it is written bare; None in a comma/and list, where the
    format's label check already guarantees every label reads back."""

    before: str
    terminators: tuple[str, ...]
    end: bool = False
    quote: str | None = None

    def accepts(self, label: str) -> bool:
        """Whether the reader reads ``before + label + terminator`` as ``label``: a quoted json
        element cannot hold its own quote, a bare one ends at ``,``/``]`` and is trimmed."""
        if self.quote is None:
            return True
        if self.quote:
            return self.quote not in label and "\\" not in label and "\n" not in label
        return not any(t in label for t in _JSON_BARE_TERMINATORS) and label == label.strip() and not label.startswith(_QUOTES)

    def continuation(self, label: str) -> Continuation:
        """The continuation that writes ``label`` in this form: ``before + label``, then the terminators or the end."""
        return Continuation(self.before + label, self.terminators, self.end)


@dataclass(frozen=True)
class SlotPlan:
    """One label slot of an answer: where it is decided, what was written there, and the forms that compete."""

    index: int  # 1-based
    decision: int  # character offset in the answer
    label_start: int | None  # where the generated label begins; None at the closing slot
    chosen: str | None  # the label generated here, STOP at the closing slot, None if unknown
    raw: str  # the generated element ("" at the closing slot)
    label_forms: tuple[LabelForm, ...]
    close_forms: tuple[Continuation, ...]
    # What the previous label's event required after the text up to this decision point:
    # (terminators, end) for a label read up to a terminator that this slot's forms write (a
    # bare json element, a list label); None when the text up to here is all it required (slot
    # 1; a quoted element, whose closing quote is before the decision point). A chain of slots
    # (runs.marginal) conditions each slot on this, so no terminator is counted twice.
    given: tuple[tuple[str, ...], bool] | None = None

    def forms_of(self, label: str) -> list[Continuation]:
        """Every surface form of ``label`` at this slot, as continuations of the decision point."""
        return [form.continuation(label) for form in self.label_forms if form.accepts(label)]


def plan_slots(answer: str, prefix_length: int, fmt: AnswerFormat, labels: tuple[str, ...]) -> list[SlotPlan]:
    """The slots of ``answer`` (answer prefix + generated text; the first ``prefix_length``
    characters were part of the prompt). An answer the format cannot read has no slots."""
    parsed = fmt.parse(answer, labels)
    if not parsed.parsed:
        return []
    spans = fmt.label_spans(answer, labels)
    if isinstance(fmt, JsonFormat):
        return _json_slots(answer, prefix_length, fmt, spans, parsed.complete)
    return _list_slots(answer, prefix_length, fmt, spans, parsed.complete, parsed.none)


def record_forms(plan: SlotPlan, residual: str, labels: Sequence[str]) -> tuple[str, ...]:
    """The slot's forms as stored in records, each a JSON object, from the token boundary
    before the decision point (``residual`` is the text from there to the decision point):
    ``{"label": text, "then": [...], "end": bool}`` for a label form (the label is written
    after ``text``; ``"skips"`` lists labels the form cannot hold), then
    ``{"close": text, "then": [...], "end": bool}`` for each form of the close. A label's
    probability is the sum over its forms of P(text + label, then a token starting with one
    of ``then``, or the end of the answer when ``end``), every tokenisation counted; the
    close's likewise, where no ``then`` and no ``end`` means the text only has to start what
    follows."""
    out = []
    for form in plan.label_forms:
        entry = {"label": residual + form.before, "then": list(form.terminators), "end": form.end}
        skips = [label for label in labels if not form.accepts(label)]
        if skips:
            entry["skips"] = skips
        out.append(json.dumps(entry, ensure_ascii=False))
    for form in plan.close_forms:
        entry = {"close": residual + form.text, "then": list(form.terminators), "end": form.end}
        out.append(json.dumps(entry, ensure_ascii=False))
    return tuple(out)


def _with(forms: list, realized) -> tuple:
    """``forms`` with the realized one added (first) when it is not among them."""
    return tuple(forms) if realized in forms else (realized, *forms)


def _label_slot(answer: str, k: int, decision: int, span, label_forms, close_forms, given=None) -> SlotPlan:
    """Slot ``k``, where the generated element ``span`` was written."""
    raw = answer[span.start : span.end]
    return SlotPlan(k, decision, span.start, span.label, raw, tuple(label_forms), tuple(close_forms), given)


def _json_label_forms(lead: str, spacings: tuple[str, ...]) -> list[LabelForm]:
    forms = []
    for space in spacings:
        for quote in _QUOTES:
            forms.append(LabelForm(lead + space + quote, (quote,), quote=quote))
        forms.append(LabelForm(lead + space, _JSON_BARE_TERMINATORS, quote=""))
    return forms


def _json_realized(opening: str) -> LabelForm:
    quote = opening[-1:] if opening.endswith(_QUOTES) else ""
    return LabelForm(opening, (quote,) if quote else _JSON_BARE_TERMINATORS, quote=quote)


def _json_slots(answer, prefix_length, fmt, spans, complete) -> list[SlotPlan]:
    opener_end = answer.find(fmt.opener)
    if opener_end < 0:
        return []
    opener_end += len(fmt.opener)
    decision = prefix_length
    given = None
    slots: list[SlotPlan] = []

    def forms_at(k: int, decision: int) -> tuple[list[LabelForm], list[Continuation]]:
        if k == 1:
            # whatever the model wrote up to the opener (nothing when "[" was in the prompt)
            lead = answer[decision:opener_end]
            return _json_label_forms(lead, ("", " ")), [Continuation(lead + "]"), Continuation(lead + " ]")]
        closes = ["]", " ]", ",]", ", ]"]
        return _json_label_forms("", (", ", ",")), [Continuation(text) for text in closes]

    for k, span in enumerate(spans, start=1):
        label_forms, close_forms = forms_at(k, decision)
        realized = _json_realized(answer[decision : span.start])
        slots.append(_label_slot(answer, k, decision, span, _with(label_forms, realized), close_forms, given))
        # the next slot starts after the element's closing quote (either kind), if it has one
        quote = answer[span.start - 1 : span.start]
        closed = quote in _QUOTES and answer.startswith(quote, span.end)
        decision = span.end + 1 if closed else span.end
        given = None if closed else (_JSON_BARE_TERMINATORS, False)
    if complete:
        close_at = answer.find(fmt.closer, max(decision, opener_end))
        if close_at >= 0:
            k = len(spans) + 1
            label_forms, close_forms = forms_at(k, decision)
            realized = Continuation(answer[decision : close_at + len(fmt.closer)])
            slots.append(SlotPlan(k, decision, None, STOP, "", tuple(label_forms), _with(close_forms, realized), given))
    return slots


def _list_slots(answer, prefix_length, fmt, spans, complete, none) -> list[SlotPlan]:
    decision = prefix_length
    terminators = tuple(sep.rstrip() for sep in fmt.separators)  # ", " -> ","; " and " -> " and"
    # every list format separates with ", "; also read: "," and, for and, the serial comma ", and "
    later = (*fmt.separators, ",") + ((", and ",) if " and " in fmt.separators else ())
    slots: list[SlotPlan] = []

    def forms_at(k: int) -> tuple[list[LabelForm], list[Continuation]]:
        if k == 1:
            return [LabelForm(before, terminators, True) for before in ("", " ")], [
                Continuation(before + fmt.none_text, (), True) for before in ("", " ")
            ]
        return [LabelForm(before, terminators, True) for before in later], [Continuation("", (), True)]

    given = None
    for k, span in enumerate(spans, start=1):
        label_forms, close_forms = forms_at(k)
        realized = LabelForm(answer[decision : span.start], terminators, True)
        slots.append(_label_slot(answer, k, decision, span, _with(label_forms, realized), close_forms, given))
        decision = span.end
        given = (terminators, True)  # a list label is read up to a separator or the end
    if complete and (spans or none):
        k = len(spans) + 1
        label_forms, close_forms = forms_at(k)
        if not spans:
            # "none" answered at slot 1: the realized text up to and including the word
            at = answer.lower().find(fmt.none_text, decision)
            realized = Continuation(answer[decision:at] + fmt.none_text if at >= 0 else fmt.none_text, (), True)
            close_forms = list(_with(close_forms, realized))
        slots.append(SlotPlan(k, decision, None, STOP, "", tuple(label_forms), tuple(close_forms), given))
    return slots
