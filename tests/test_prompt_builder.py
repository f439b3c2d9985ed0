"""Templates (validation, YAML, chat and plain rendering) and the prompt builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeldist.data.schema import Dataset, Item
from labeldist.prompts import (
    CommaFormat,
    JsonFormat,
    PromptTemplate,
    RandomSampler,
    TemplateError,
    build_prompts,
    make_sampler,
)

LABELS = ("joy", "anger", "fear")


def dataset(n: int, split: str, prefix: str) -> Dataset:
    golds = [{"joy"}, {"anger", "joy"}, set(), {"fear"}, {"fear", "anger"}]
    items = [Item(f"{prefix}{i}", f"{split} text number {i}", gold=frozenset(golds[i % len(golds)])) for i in range(n)]
    return Dataset("toy", LABELS, split, items)


@pytest.fixture
def train() -> Dataset:
    return dataset(30, "train", "t")


@pytest.fixture
def test_set() -> Dataset:
    return dataset(12, "test", "e")


SIMPLE = PromptTemplate(
    system="You label texts.",
    instruction="Labels: {labels}. {answer_format}",
    demonstration="Text: {text}\nLabels: {label}",
    query="Text: {text}\nLabels:",
)


# -- template validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("instruction", "Pick from {labels}.", r"'instruction' lacks placeholder\(s\) \{answer_format\}"),
        ("instruction", "{answer_format}", r"lacks placeholder\(s\) \{labels\}"),
        ("demonstration", "Text: {text}", r"'demonstration' lacks placeholder\(s\) \{label\}"),
        ("query", "Labels:", r"'query' lacks placeholder\(s\) \{text\}"),
        ("query", "{text} {lables}", r"unknown placeholder\(s\) \{lables\}; allowed: \{text\}"),
        ("system", "You are {role}", r"'system' uses unknown placeholder\(s\) \{role\}; allowed: none"),
        ("query", "{text} {", "not a valid format string.*literal braces"),
        ("query", "{text!r}", "must be a plain name"),
    ],
)
def test_template_validation(field, value, message):
    with pytest.raises(TemplateError, match=message):
        PromptTemplate(**{field: value})


def test_literal_braces_are_allowed_when_doubled():
    template = PromptTemplate(system='Answer like {{"a": 1}}.')
    messages = template.chat_messages("x", [], LABELS, JsonFormat())
    assert messages[0]["content"] == 'Answer like {"a": 1}.'


def test_default_instruction_mentions_the_answer_format():
    template = PromptTemplate()
    assert "JSON list" in template.instruction_text(LABELS, JsonFormat())
    assert "[] if none apply" in template.instruction_text(LABELS, JsonFormat())
    assert "separated by commas" in template.instruction_text(LABELS, CommaFormat())
    assert "joy, anger, fear" in template.instruction_text(LABELS, JsonFormat())


# -- YAML ------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_template_loads(tmp_path):
    path = write(
        tmp_path,
        'system: ""\n'
        'instruction: "Choose from {labels}. {answer_format}"\n'
        'demonstration: "Q: {text}\\nA: {label}"\n'
        'query: "Q: {text}\\nA:"\n'
        'label_separator: " | "\n',
    )
    template = PromptTemplate.from_yaml(path)
    assert template.system == ""
    assert template.instruction_text(LABELS, JsonFormat()).startswith("Choose from joy | anger | fear.")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "system: s\ninstruction: '{labels} {answer_format}'\ndemonstration: '{text} {label}'\n",
            r"missing key\(s\) 'query'",
        ),
        ("- a list\n", "must be a YAML mapping"),
        (
            "system: s\ninstruction: '{labels}'\ndemonstration: '{text} {label}'\nquery: '{text}'\n",
            r"'instruction' lacks placeholder",
        ),
        (
            "system: s\ninstruction: '{labels} {answer_format}'\ndemonstration: '{text} {label}'\nquery: '{text}'\nqueries: x\n",
            r"unknown key\(s\) 'queries'",
        ),
        ("system: [unclosed\n", "not a readable YAML file"),
    ],
)
def test_yaml_errors_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TemplateError, match=message) as err:
        PromptTemplate.from_yaml(path)
    assert str(path) in str(err.value)


def test_yaml_missing_file(tmp_path):
    with pytest.raises(TemplateError, match="nowhere.yaml: template file does not exist"):
        PromptTemplate.from_yaml(tmp_path / "nowhere.yaml")


# -- rendering -------------------------------------------------------------------------------

DEMOS = [("I won!", '["joy"]'), ("Go away.", '["anger"]')]


def test_chat_layout_puts_instruction_in_first_user_turn_only():
    messages = SIMPLE.chat_messages("What now?", DEMOS, LABELS, JsonFormat())
    instruction = "Labels: joy, anger, fear. Answer with a JSON list of labels, or [] if none apply."
    assert messages == [
        {"role": "system", "content": "You label texts."},
        {"role": "user", "content": f"{instruction}\n\nText: I won!\nLabels:"},
        {"role": "assistant", "content": '["joy"]'},
        {"role": "user", "content": "Text: Go away.\nLabels:"},
        {"role": "assistant", "content": '["anger"]'},
        {"role": "user", "content": "Text: What now?\nLabels:"},
    ]


def test_zero_shot_chat_without_system():
    template = PromptTemplate(system="")
    messages = template.chat_messages("What now?", [], LABELS, JsonFormat())
    assert [m["role"] for m in messages] == ["user"]
    assert messages[0]["content"].startswith("Classify the following text")
    assert messages[0]["content"].endswith("Text: What now?\nLabels:")


def test_plain_text_layout():
    text = SIMPLE.plain_text("What now?", DEMOS, LABELS, JsonFormat(), answer_prefix="[")
    assert text == (
        "You label texts.\n\n"
        "Labels: joy, anger, fear. Answer with a JSON list of labels, or [] if none apply.\n\n"
        'Text: I won!\nLabels: ["joy"]\n\n'
        'Text: Go away.\nLabels: ["anger"]\n\n'
        "Text: What now?\nLabels: ["
    )
    # no prefix: no trailing space after the query
    assert SIMPLE.plain_text("What now?", [], LABELS, CommaFormat()).endswith("Text: What now?\nLabels:")


# -- builder ---------------------------------------------------------------------------------


def test_build_prompts_end_to_end(train, test_set):
    prompts = build_prompts(test_set, train, SIMPLE, JsonFormat(), RandomSampler(train, seed=0), shots=3)
    assert [p.item_id for p in prompts] == test_set.ids
    by_id = {item.id: item for item in train.items}
    for prompt, item in zip(prompts, test_set.items):
        assert prompt.answer_prefix == ""  # the model writes the opener itself by default
        assert prompt.text.endswith(f"Text: {item.text}\nLabels:")
        assert prompt.messages[-1] == {"role": "user", "content": f"Text: {item.text}\nLabels:"}
        assert len(prompt.demonstration_ids) == 3
        assistant = [m["content"] for m in prompt.messages if m["role"] == "assistant"]
        for demo_id, answer in zip(prompt.demonstration_ids, assistant):
            gold = by_id[demo_id].gold
            # the demonstration's answer names its gold labels in dataset label order
            assert answer == JsonFormat().format([label for label in LABELS if label in gold])
            assert f"Text: {by_id[demo_id].text}\nLabels: {answer}" in prompt.text


def test_demonstration_labels_follow_dataset_label_order():
    one = Dataset("toy", LABELS, "test", [Item("x", "query")])
    pool = Dataset("toy", LABELS, "train", [Item("d", "both", gold=frozenset({"fear", "joy"}))])
    prompt = build_prompts(one, pool, SIMPLE, "comma", "random", shots=1, seed=0)[0]
    assert prompt.messages[2] == {"role": "assistant", "content": "joy, fear"}
    assert prompt.answer_prefix == ""
    assert prompt.text.endswith("Text: query\nLabels:")


def test_same_seed_same_prompts_other_seed_other_demonstrations(train, test_set):
    def build(seed: int):
        return build_prompts(test_set, train, PromptTemplate(), JsonFormat(), "random", shots=4, seed=seed)

    assert build(5) == build(5)
    other = build(6)
    differing = sum(a.demonstration_ids != b.demonstration_ids for a, b in zip(build(5), other))
    assert differing >= 10


def test_item_prompt_does_not_depend_on_other_items(train, test_set):
    sampler = make_sampler("balanced", train, seed=9)
    full = build_prompts(test_set, train, SIMPLE, JsonFormat(), sampler, shots=4)
    part = Dataset(test_set.name, test_set.labels, test_set.split, list(reversed(test_set.items[3:8])))
    partial = build_prompts(part, train, SIMPLE, JsonFormat(), sampler, shots=4)
    assert {p.item_id: p for p in partial} == {p.item_id: p for p in full[3:8]}


def test_demonstration_order_is_shuffled(train, test_set):
    # covering chooses many-label items first; the builder shuffles that order per item
    sampler = make_sampler("covering", train, seed=1)
    prompts = build_prompts(test_set, train, SIMPLE, JsonFormat(), sampler, shots=5)
    reordered = 0
    for prompt, item in zip(prompts, test_set.items):
        chosen = [demo.id for demo in sampler.for_item(item, 5)]
        assert sorted(prompt.demonstration_ids) == sorted(chosen)
        reordered += list(prompt.demonstration_ids) != chosen
    assert reordered >= 8


def test_query_from_pool_never_shows_itself(train):
    prompts = build_prompts(train, train, SIMPLE, JsonFormat(), "random", shots=5, seed=0)
    assert all(p.item_id not in p.demonstration_ids for p in prompts)


def test_limit_zero_shot_and_prefill(train, test_set):
    prompts = build_prompts(test_set, train, SIMPLE, JsonFormat(), "random", shots=0, limit=4, seed=0)
    assert len(prompts) == 4
    assert all(p.demonstration_ids == () and p.answer_prefix == "" for p in prompts)
    assert prompts[0].text.endswith("Labels:")
    prefilled = build_prompts(test_set, train, SIMPLE, JsonFormat(), "random", shots=0, limit=4, seed=0, prefill=True)
    assert all(p.answer_prefix == "[" and p.text.endswith("Labels: [") for p in prefilled)


def test_builder_errors(train, test_set):
    other_labels = Dataset("toy", ("joy", "anger", "disgust"), "train", [])
    with pytest.raises(ValueError, match="has labels"):
        build_prompts(test_set, other_labels, SIMPLE, JsonFormat(), "random", shots=1, seed=0)
    with pytest.raises(ValueError, match="pass seed="):
        build_prompts(test_set, train, SIMPLE, JsonFormat(), "random", shots=1)
    with pytest.raises(ValueError, match="not from the pool given"):
        build_prompts(test_set, train, SIMPLE, JsonFormat(), RandomSampler(test_set, seed=0), shots=1)
    with pytest.raises(ValueError, match="differs from the sampler's seed"):
        build_prompts(test_set, train, SIMPLE, JsonFormat(), RandomSampler(train, seed=0), shots=1, seed=1)
    commas = Dataset("toy", ("hate, speech", "other"), "test", [])
    with pytest.raises(ValueError, match="contains a comma"):
        build_prompts(commas, Dataset("toy", commas.labels, "train", []), SIMPLE, "comma", "random", shots=0, seed=0)


def test_shared_demonstrations_are_identical_and_seeded(train, test_set):
    prompts = build_prompts(test_set, train, SIMPLE, JsonFormat(), "random", shots=3, seed=0, shared_demonstrations=True)
    assert len({p.demonstration_ids for p in prompts}) == 1
    # the prompts differ only after the demonstrations: the text up to the query is common
    query_start = [p.text.rindex("Text: ") for p in prompts]
    assert len({p.text[:q] for p, q in zip(prompts, query_start)}) == 1
    again = build_prompts(test_set, train, SIMPLE, JsonFormat(), "random", shots=3, seed=0, shared_demonstrations=True)
    assert again == prompts
    other = build_prompts(test_set, train, SIMPLE, JsonFormat(), "random", shots=3, seed=1, shared_demonstrations=True)
    assert other[0].demonstration_ids != prompts[0].demonstration_ids


def test_shared_demonstrations_never_show_an_item_its_own_answer(train):
    prompts = build_prompts(train, train, SIMPLE, JsonFormat(), "random", shots=4, seed=0, shared_demonstrations=True)
    shared = max({p.demonstration_ids for p in prompts}, key=lambda ids: sum(p.demonstration_ids == ids for p in prompts))
    for prompt in prompts:
        assert prompt.item_id not in prompt.demonstration_ids
        if prompt.item_id in shared:
            assert prompt.demonstration_ids != shared
    with pytest.raises(ValueError, match="cannot share"):
        build_prompts(
            train,
            train,
            SIMPLE,
            JsonFormat(),
            "similarity",
            shots=2,
            seed=0,
            shared_demonstrations=True,
            sampler_options={"embed": lambda texts: __import__("numpy").ones((len(texts), 2))},
        )
