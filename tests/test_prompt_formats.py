"""Answer formats: writing, lenient reading, label spans, and the round trip."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeldist.prompts import (
    AndFormat,
    CommaFormat,
    JsonFormat,
    LabelSpan,
    get_answer_format,
)

EMOTIONS = ("joy", "anger", "angered", "sadness", "fear")
FORMATS = (JsonFormat(), CommaFormat(), AndFormat())


def format_id(answer_format) -> str:
    return answer_format.name


# -- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer_format", "labels", "expected"),
    [
        (JsonFormat(), ["joy", "anger"], '["joy", "anger"]'),
        (JsonFormat(), ["joy"], '["joy"]'),
        (JsonFormat(), [], "[]"),
        (CommaFormat(), ["joy", "anger"], "joy, anger"),
        (CommaFormat(), [], "none"),
        (AndFormat(), ["joy"], "joy"),
        (AndFormat(), ["joy", "anger"], "joy and anger"),
        (AndFormat(), ["joy", "anger", "sadness"], "joy, anger and sadness"),
        (AndFormat(), [], "none"),
    ],
)
def test_format_writes_labels_in_given_order(answer_format, labels, expected):
    assert answer_format.format(labels) == expected


def test_registry_returns_configured_formats():
    fmt = get_answer_format("comma", match="exact")
    assert isinstance(fmt, CommaFormat) and fmt.match == "exact"
    with pytest.raises(ValueError, match="unknown answer format 'yaml'"):
        get_answer_format("yaml")
    with pytest.raises(ValueError, match="match must be one of"):
        JsonFormat(match="loose")


@pytest.mark.parametrize(
    ("answer_format", "labels", "message"),
    [
        (CommaFormat(), ["hate, speech"], "contains a comma"),
        (AndFormat(), ["hate, speech"], "contains a comma"),
        (CommaFormat(), ["None"], "reads as 'none'"),
        (AndFormat(), ["none."], "reads as 'none'"),
        (CommaFormat(), [" joy"], "whitespace"),
        (CommaFormat(), ["two\nlines"], "line break"),
        (JsonFormat(), ['say "hi"'], "quote"),
        (JsonFormat(), ["back\\slash"], "backslash"),
        (AndFormat(), ["and so on"], 'word "and"'),
        (AndFormat(), ["rock and"], 'word "and"'),
        (JsonFormat(), ["joy", "joy"], "given twice"),
        (JsonFormat(), [""], "non-empty"),
    ],
)
def test_format_refuses_labels_it_cannot_write(answer_format, labels, message):
    with pytest.raises(ValueError, match=message):
        answer_format.format(labels)
    with pytest.raises(ValueError, match=message):
        answer_format.check_labels(labels)


def test_labels_that_are_fine_in_json_but_not_in_comma_formats():
    JsonFormat().check_labels(["hate, speech", "none", " padded "])


@pytest.mark.parametrize(
    "label_set",
    [
        ("fear", "anxiety", "fear and anxiety"),
        # no label is the join of others, but "x and y and z" splits two ways
        ("x and y", "y and z", "x", "z"),
    ],
)
def test_and_format_refuses_ambiguous_label_sets(label_set):
    with pytest.raises(ValueError, match="unambiguously"):
        AndFormat().check_labels(label_set)
    # the json and comma formats have no such problem
    JsonFormat().check_labels(label_set)
    CommaFormat().check_labels(label_set)


def test_and_format_reads_labels_containing_and_by_longest_match():
    labels = ("joy", "fear and anxiety", "sex harassment")
    fmt = AndFormat()
    text = fmt.format(["joy", "fear and anxiety"])
    assert text == "joy and fear and anxiety"
    assert fmt.parse(text, labels).labels == ("joy", "fear and anxiety")
    assert fmt.parse("fear and anxiety and sex harassment", labels).labels == ("fear and anxiety", "sex harassment")


# -- reading ---------------------------------------------------------------------------------


def test_exact_answers_are_well_formed():
    result = JsonFormat().parse('["joy", "anger"]', EMOTIONS)
    assert result.labels == ("joy", "anger")
    assert (result.parsed, result.none, result.complete, result.well_formed) == (True, False, True, True)
    assert result.corrections == {} and result.unknown == ()


def test_casefold_match_is_recorded_as_correction():
    result = JsonFormat().parse('["Joy", "ANGER"]', EMOTIONS)
    assert result.labels == ("joy", "anger")
    assert result.corrections == {"Joy": "joy", "ANGER": "anger"}
    assert not result.well_formed
    assert CommaFormat(match="casefold").parse("Joy.", EMOTIONS).labels == ("joy",)
    assert CommaFormat(match="exact").parse("Joy", EMOTIONS).unknown == ("Joy",)


def test_near_miss_is_corrected_under_fuzzy_only():
    assert JsonFormat().parse('["angr"]', EMOTIONS).labels == ("anger",)
    assert JsonFormat().parse('["angr"]', EMOTIONS).corrections == {"angr": "anger"}
    for mode in ("exact", "casefold"):
        result = JsonFormat(match=mode).parse('["angr"]', EMOTIONS)
        assert result.labels == () and result.unknown == ("angr",)
    # a stricter threshold refuses it: similarity of angr/anger is exactly 0.8
    assert JsonFormat(min_similarity=0.85).parse('["angr"]', EMOTIONS).unknown == ("angr",)
    assert AndFormat().parse("joy and sadnes", EMOTIONS).labels == ("joy", "sadness")


def test_unknown_strings_are_reported_in_order_without_repeats():
    result = CommaFormat().parse("joy, banana, kiwi, banana", EMOTIONS)
    assert result.labels == ("joy",)
    assert result.unknown == ("banana", "kiwi")
    assert result.parsed and not result.none and not result.well_formed


def test_prefix_sharing_labels_are_never_confused():
    labels = ("anger", "angered")
    for fmt in FORMATS:
        assert fmt.parse(fmt.format(["anger"]), labels).labels == ("anger",)
        assert fmt.parse(fmt.format(["angered"]), labels).labels == ("angered",)
        assert fmt.parse(fmt.format(["angered", "anger"]), labels).labels == ("angered", "anger")
    # a near miss goes to the closer of the two: angerd is 1 edit from both, relatively closer to angered
    assert JsonFormat().parse('["angerd"]', labels).labels == ("angered",)
    # a list cut off inside "anger..." names neither
    cut = JsonFormat().parse('["angered", "anger', labels)
    assert cut.labels == ("angered",) and not cut.complete


def test_truncated_json_keeps_complete_elements():
    result = JsonFormat().parse('["joy", "ang', EMOTIONS)
    assert result.labels == ("joy",)
    assert result.parsed and not result.complete and not result.none and not result.well_formed
    assert result.unknown == () and result.corrections == {}
    # a truncated list whose last element was closed still reads it
    assert JsonFormat().parse('["joy", "anger"', EMOTIONS).labels == ("joy", "anger")
    # only the opener: nothing said yet, so not an explicit "none"
    opened = JsonFormat().parse("[", EMOTIONS)
    assert opened.parsed and not opened.none and not opened.complete


@pytest.mark.parametrize(
    ("answer_format", "text", "well_formed"),
    [
        (JsonFormat(), "[]", True),
        (JsonFormat(), "  [ ]  ", False),
        (JsonFormat(), '["none"]', False),
        (CommaFormat(), "none", True),
        (CommaFormat(), "None.", False),
        (AndFormat(), "none", True),
    ],
)
def test_explicit_none(answer_format, text, well_formed):
    result = answer_format.parse(text, EMOTIONS)
    assert result.none and result.parsed and result.labels == ()
    assert result.well_formed is well_formed


def test_none_is_not_read_as_a_label_spelled_like_it():
    labels = ("nones", "joy")
    assert CommaFormat().parse("none", labels).none
    assert CommaFormat().parse("none", labels).labels == ()


def test_json_lenient_fallbacks():
    fmt = JsonFormat()
    single = fmt.parse("['joy', 'anger']", EMOTIONS)
    assert single.labels == ("joy", "anger") and single.complete and not single.well_formed
    surrounded = fmt.parse('The labels are ["sadness"] because the text is sad.', EMOTIONS)
    assert surrounded.labels == ("sadness",) and surrounded.complete and not surrounded.well_formed
    assert fmt.parse("[joy, fear]", EMOTIONS).labels == ("joy", "fear")
    assert fmt.parse('["joy" "fear"]', EMOTIONS).labels == ("joy", "fear")
    assert fmt.parse('["joy", "joy"]', EMOTIONS).labels == ("joy",)
    # text after the close is a model running on, not part of the answer
    after = fmt.parse('["fear"]\n\nText: something else ["joy"]', EMOTIONS)
    assert after.labels == ("fear",) and after.well_formed
    # a raw line break inside a string ends the list
    broken = fmt.parse('["joy", "fear\nText: "anger"]', EMOTIONS)
    assert broken.labels == ("joy",) and not broken.complete
    assert fmt.parse('["jo\\u0079"]', EMOTIONS).labels == ("joy",)


def test_no_list_is_not_parsed():
    result = JsonFormat().parse("joy and anger", EMOTIONS)
    assert not result.parsed and not result.none and result.labels == ()
    assert not CommaFormat().parse("   \n  ", EMOTIONS).parsed
    # leading blank lines are skipped: the answer is the first non-empty line
    assert CommaFormat().parse("\n joy", EMOTIONS).labels == ("joy",)
    assert not AndFormat().parse("", EMOTIONS).parsed


def test_line_formats_read_only_the_first_line():
    assert CommaFormat().parse("joy, fear\n\nText: anger everywhere", EMOTIONS).labels == ("joy", "fear")
    assert AndFormat().parse(" joy and fear\nsadness", EMOTIONS).labels == ("joy", "fear")


def test_and_format_lenient_forms():
    fmt = AndFormat()
    assert fmt.parse("joy, anger, and sadness", EMOTIONS).labels == ("joy", "anger", "sadness")
    assert fmt.parse("joy and anger and sadness", EMOTIONS).labels == ("joy", "anger", "sadness")
    assert fmt.parse("Joy AND fear", EMOTIONS).labels == ("joy", "fear")
    assert fmt.parse("joy, anger and sadness", EMOTIONS).well_formed
    assert not fmt.parse("joy, anger, sadness", EMOTIONS).well_formed


def test_trailing_separator_marks_cut_off_answer():
    result = CommaFormat().parse("joy, ", EMOTIONS)
    assert result.labels == ("joy",) and not result.complete and not result.none


# -- label spans -----------------------------------------------------------------------------


def test_json_spans_exclude_quotes_and_follow_label_open():
    labels = ("joy", "sex harassment")
    fmt = JsonFormat()
    text = fmt.format(["sex harassment", "joy"])
    spans = fmt.label_spans(text, labels)
    assert spans == [LabelSpan(2, 16, "sex harassment"), LabelSpan(20, 23, "joy")]
    for start, _, _ in spans:
        assert text[:start].endswith(fmt.label_open)


def test_spans_of_generated_answers_with_prefix_repeats_and_cut_off():
    fmt = JsonFormat()
    text = '["Joy", "joy", "kiwi", "ang'
    assert fmt.label_spans(text, EMOTIONS) == [
        LabelSpan(2, 5, "joy"),
        LabelSpan(9, 12, "joy"),
        LabelSpan(16, 20, None),
        LabelSpan(24, 27, None),
    ]
    assert fmt.label_spans("[]", EMOTIONS) == []
    assert fmt.label_spans("no list", EMOTIONS) == []
    assert CommaFormat().label_spans("none", EMOTIONS) == []


def test_and_spans_cover_multiword_labels():
    labels = ("joy", "fear and anxiety")
    text = "joy and fear and anxiety"
    assert AndFormat().label_spans(text, labels) == [LabelSpan(0, 3, "joy"), LabelSpan(8, 24, "fear and anxiety")]


def test_syntax_attributes_describe_written_answers():
    for fmt in FORMATS:
        two = fmt.format(["joy", "fear"])
        assert two.startswith(fmt.opener)
        assert fmt.format([]) == fmt.none_text
        between = two[len(fmt.opener) + len(fmt.label_open) + 3 + len(fmt.label_close) :]
        assert any(between.startswith(sep) for sep in fmt.separators)
    assert JsonFormat().format(["joy"]).endswith(JsonFormat.closer)


# -- properties ------------------------------------------------------------------------------

TRICKY_LABELS = [
    "joy",
    "anger",
    "angered",
    "anger management",
    "sex harassment",
    "fear and anxiety",
    "fear",
    "anxiety",
    "band",
    "sand and stone",
    "x AND y",
    "hate, speech",
    "none",
    "None",
    "Joy",
    "ünïcödé",
    "two  spaces",
    "and",
    "[brackets]",
    "it's",
]
label_strategy = st.one_of(
    st.sampled_from(TRICKY_LABELS),
    st.text(alphabet="ab nd,'\"\\[]\n", min_size=1, max_size=8),
)


def valid_for(fmt):
    def check(labels: list[str]) -> bool:
        try:
            fmt.check_labels(labels)
        except ValueError:
            return False
        return True

    return check


@pytest.mark.parametrize("fmt", FORMATS, ids=format_id)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_round_trip_for_every_subset(fmt, data):
    label_set = data.draw(st.lists(label_strategy, min_size=1, max_size=5, unique=True).filter(valid_for(fmt)))
    # a drawn order, so that subsets come in orders other than the label set's
    ordered = data.draw(st.permutations(label_set))
    for size in range(len(ordered) + 1):
        for subset in combinations(ordered, size):
            text = fmt.format(subset)
            result = fmt.parse(text, label_set)
            assert result.labels == subset, text
            assert result.none is (size == 0)
            assert result.well_formed and result.complete and result.parsed
            assert result.unknown == () and result.corrections == {}
            spans = fmt.label_spans(text, label_set)
            assert [text[s:e] for s, e, _ in spans] == list(subset)
            assert [label for _, _, label in spans] == list(subset)


def test_round_trip_exhaustive_on_tricky_set():
    label_set = ("anger", "angered", "fear and anxiety", "sex harassment", "joy", "band")
    for fmt in FORMATS:
        fmt.check_labels(label_set)
        for size in range(len(label_set) + 1):
            for subset in combinations(label_set, size):
                for ordered in (subset, subset[::-1]):
                    assert fmt.parse(fmt.format(ordered), label_set).labels == ordered


structural_text = st.lists(
    st.sampled_from(["[", "]", '"', "'", ",", " and ", "joy", "anger", "angr", "\\", "\n", "none", " ", "\x00", "é"]),
    max_size=30,
).map("".join)


@pytest.mark.parametrize("fmt", [*FORMATS, JsonFormat(match="exact"), AndFormat(match="casefold")], ids=repr)
@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(), structural_text))
def test_parser_never_raises(fmt, text):
    label_set = ("joy", "anger", "angered", "fear and anxiety", "none of these")
    result = fmt.parse(text, label_set)
    assert set(result.labels) <= set(label_set)
    assert len(set(result.labels)) == len(result.labels)
    if not result.parsed:
        assert result.labels == () and not result.none
    for start, end, label in fmt.label_spans(text, label_set):
        assert 0 <= start <= end <= len(text)
        assert label is None or label in label_set
