"""The surface forms scored at a slot: each is read by the parser as the event it stands for,
the text the model wrote is always one of them, and the forms of one slot are disjoint (no
string of one event is a prefix of another's), so a slot's probabilities can add up."""

from __future__ import annotations

import itertools
import json

import pytest

from labeldist.prompts import get_answer_format
from labeldist.slots.locate import STOP, plan_slots, record_forms

LABELS = ("joy", "anger", "angered", "sex harassment", "don't know", "fear and anxiety")
JSON_LABELS = LABELS[:5]
LIST_LABELS = LABELS[:4]

# (format, answer prefix in the prompt, generated text, labels per slot)
ANSWERS = [
    ("json", "[", '"joy", "anger"]', ["joy", "anger", STOP]),
    ("json", "", ' ["joy"]', ["joy", STOP]),
    ("json", "[", "]", [STOP]),
    ("json", "", "[anger, sex harassment]", ["anger", "sex harassment", STOP]),
    ("json", "[", "'joy','angered' ]", ["joy", "angered", STOP]),
    ("json", "[", '"joy" ,  "anger"\n]', ["joy", "anger", STOP]),
    ("json", "", 'Labels: ["don\'t know",]', ["don't know", STOP]),
    ("comma", "", " joy, anger", ["joy", "anger", STOP]),
    ("comma", "", "joy,sex harassment\n", ["joy", "sex harassment", STOP]),
    ("comma", "", " none", [STOP]),
    ("and", "", " joy and anger", ["joy", "anger", STOP]),
    ("and", "", " joy, anger, and angered", ["joy", "anger", "angered", STOP]),
    ("and", "", "none", [STOP]),
]


def labels_for(fmt_name: str) -> tuple[str, ...]:
    return JSON_LABELS if fmt_name == "json" else LIST_LABELS


def endings(form) -> list[str]:
    """Concrete strings that realise a form: text + each terminator, text + a line break for
    the end of the answer; an open form (no terminator) is its text, whatever follows."""
    out = [form.text + t for t in form.terminators]
    if form.end:
        out.append(form.text + "\n")
    return out or [form.text]


@pytest.mark.parametrize("fmt_name, prefix, generated, chosen", ANSWERS)
def test_forms_read_back_as_their_event(fmt_name, prefix, generated, chosen):
    fmt = get_answer_format(fmt_name, match="exact")
    labels = labels_for(fmt_name)
    answer = prefix + generated
    plans = plan_slots(answer, len(prefix), fmt, labels)
    assert [p.chosen for p in plans] == chosen
    for plan in plans:
        before = answer[: plan.decision]
        earlier = list(fmt.parse(answer, labels).labels[: plan.index - 1])
        for label in labels:
            forms = plan.forms_of(label)
            assert forms, (plan.index, label)
            for form in forms:
                for text in endings(form):
                    # complete the answer after the terminator: another label, then the close
                    if text.endswith((",", " and")):
                        rest = ' "joy"]' if fmt_name == "json" else " joy"
                    else:
                        rest = "]" if fmt_name == "json" and not text.endswith("]") else ""
                    read = fmt.parse(before + text + rest, labels)
                    spans = fmt.label_spans(before + text + rest, labels)
                    assert len(spans) >= plan.index and spans[plan.index - 1].label == label, before + text + rest
                    assert list(read.labels[: plan.index - 1]) == earlier
        for form in plan.close_forms:
            for text in endings(form):
                read = fmt.parse(before + text, labels)
                assert read.complete and list(read.labels) == earlier, (before + text, read)


@pytest.mark.parametrize("fmt_name, prefix, generated, chosen", ANSWERS)
def test_the_written_text_is_one_of_the_forms(fmt_name, prefix, generated, chosen):
    fmt = get_answer_format(fmt_name)
    labels = labels_for(fmt_name)
    answer = prefix + generated
    for plan in plan_slots(answer, len(prefix), fmt, labels):
        written = answer[plan.decision :]
        if plan.chosen == STOP:
            assert any(written.startswith(f.text) for f in plan.close_forms), (plan.index, written)
        else:
            texts = [f.text for f in plan.forms_of(plan.chosen)]
            assert any(written.startswith(t) for t in texts), (plan.index, written, texts)


@pytest.mark.parametrize("fmt_name, prefix, generated, chosen", ANSWERS)
def test_forms_of_a_slot_are_disjoint(fmt_name, prefix, generated, chosen):
    fmt = get_answer_format(fmt_name)
    labels = labels_for(fmt_name)
    answer = prefix + generated
    for plan in plan_slots(answer, len(prefix), fmt, labels):
        strings = [(label, s) for label in labels for f in plan.forms_of(label) for s in endings(f)]
        strings += [(STOP, s) for f in plan.close_forms for s in endings(f)]
        assert len({s for _, s in strings}) == len(strings), "a form is counted twice"
        for (event_a, a), (event_b, b) in itertools.permutations(strings, 2):
            assert not b.startswith(a), f"slot {plan.index}: {a!r} ({event_a}) is a prefix of {b!r} ({event_b})"


def test_json_forms_cover_quoting_and_spacing():
    fmt = get_answer_format("json")
    first, second, _ = plan_slots('["joy", "anger"]', 1, fmt, JSON_LABELS)
    assert {f.text for f in first.forms_of("joy")} == {'"joy', "'joy", "joy", ' "joy', " 'joy", " joy"}
    assert {f.text for f in second.forms_of("joy")} == {', "joy', ", 'joy", ", joy", ',"joy', ",'joy", ",joy"}
    assert {f.text for f in second.close_forms} == {"]", " ]", ",]", ", ]"}
    # a label holding a single quote cannot be written in single quotes
    assert {f.text for f in first.forms_of("don't know")} == {"\"don't know", "don't know", " \"don't know", " don't know"}


def test_record_forms_say_what_was_scored():
    fmt = get_answer_format("json")
    plan = plan_slots('["joy", "anger"]', 1, fmt, JSON_LABELS)[1]
    stored = [json.loads(s) for s in record_forms(plan, '"', JSON_LABELS)]
    labels = [s for s in stored if "label" in s]
    closes = [s for s in stored if "close" in s]
    assert {"label": '", "', "then": ['"'], "end": False} in labels
    assert {"label": '", ', "then": [",", "]"], "end": False} in labels
    single = next(s for s in labels if s["label"] == "\", '")
    assert single["skips"] == ["don't know"]
    assert [c["close"] for c in closes] == ['"]', '" ]', '",]', '", ]']
