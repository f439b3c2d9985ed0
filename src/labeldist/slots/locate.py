"""Where the label slots of a generated answer are, and what competes at each one.

Slot k is the k-th place in the answer where the model chooses between naming another label
and closing the answer. Its *decision point* is the character offset where that choice is made
(after ``[`` or after the previous label's closing quote for json; after the previous label for
comma/and lists). From the decision point, every label competes as the continuation
``opening + label`` followed by a terminator (``"`` for json; ``,``/`` and``/end of answer for
lists), and closing competes as the format's close (``]``; the end of the answer; ``none`` at
slot 1 of a list). The opening is the text the model actually generated there (``", "``),
so each label is scored in the exact context of the slot. After the last generated label comes
one more slot, where the model closed the answer (chosen = :data:`STOP`) if it did.
"""

from __future__ import annotations

from dataclasses import dataclass

from labeldist.prompts.formats import AnswerFormat, JsonFormat

STOP = "<stop>"


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
class SlotPlan:
    index: int  # 1-based
    decision: int  # character offset in the answer
    label_start: int | None  # where the generated label begins; None at the closing slot
    chosen: str | None  # the label generated here, STOP at the closing slot, None if unknown
    raw: str  # the generated element ("" at the closing slot)
    opening: str  # text between the decision point and the label
    close: Continuation
    label_terminators: tuple[str, ...]
    label_end: bool

    def label_continuation(self, label: str) -> Continuation:
        return Continuation(self.opening + label, self.label_terminators, self.label_end)


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


def _json_slots(answer, prefix_length, fmt, spans, complete) -> list[SlotPlan]:
    opener_end = answer.find(fmt.opener)
    if opener_end < 0:
        return []
    opener_end += len(fmt.opener)
    decision = prefix_length
    slots: list[SlotPlan] = []
    terminators = (fmt.label_close,)
    for k, span in enumerate(spans, start=1):
        # the close competing here: "]" after a label; at slot 1 whatever the model wrote up
        # to the opener (nothing when "[" was in the prompt) and then "]"
        close_text = fmt.closer if k > 1 else answer[decision:opener_end] + fmt.closer
        slots.append(
            SlotPlan(
                k,
                decision,
                span.start,
                span.label,
                answer[span.start : span.end],
                answer[decision : span.start],
                Continuation(close_text),
                terminators,
                False,
            )
        )
        decision = span.end + len(fmt.label_close) if answer.startswith(fmt.label_close, span.end) else span.end
    if complete:
        close_at = answer.find(fmt.closer, max(decision, opener_end))
        if close_at >= 0:
            first = not spans
            opening = (answer[decision:opener_end] if first else fmt.separators[0]) + fmt.label_open
            close_text = answer[decision : close_at + len(fmt.closer)]
            slots.append(
                SlotPlan(
                    len(spans) + 1, decision, None, STOP, "", opening, Continuation(close_text), terminators, False
                )
            )
    return slots


def _list_slots(answer, prefix_length, fmt, spans, complete, none) -> list[SlotPlan]:
    decision = prefix_length
    terminators = tuple(sep.rstrip() for sep in fmt.separators)  # ", " -> ","; " and " -> " and"
    slots: list[SlotPlan] = []
    for k, span in enumerate(spans, start=1):
        opening = answer[decision : span.start]
        close = Continuation(opening + fmt.none_text, (), True) if k == 1 else Continuation("", (), True)
        slots.append(
            SlotPlan(
                k, decision, span.start, span.label, answer[span.start : span.end], opening, close, terminators, True
            )
        )
        decision = span.end
    if complete and (spans or none):
        if spans:
            opening, close = fmt.separators[0], Continuation("", (), True)
        else:
            # "none" answered at slot 1: the realized text up to the word is the opening
            at = answer.lower().find(fmt.none_text, decision)
            opening = answer[decision:at] if at >= 0 else ""
            close = Continuation(opening + fmt.none_text, (), True)
        slots.append(SlotPlan(len(spans) + 1, decision, None, STOP, "", opening, close, terminators, True))
    return slots
