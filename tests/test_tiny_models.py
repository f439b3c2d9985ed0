"""The test-only tokenizers and tiny models of ``tiny_models`` are real and behave as documented."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import (
    CORPUS_LABELS,
    SYNTHETIC_LABELS,
    Example,
    byte_level_bpe_tokenizer,
    evaluate_greedy,
    format_answer,
    format_prompt,
    get_trained_tiny_llama,
    greedy_answer,
    label_token_ids,
    load_tiny,
    sentencepiece_style_tokenizer,
    synthetic_examples,
    tiny_gemma3,
    tiny_llama,
)

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

HAS_GEMMA3 = hasattr(transformers, "Gemma3ForCausalLM") and hasattr(transformers, "Gemma3TextConfig")

ROUND_TRIP = [
    'Text: I am so happy today\nLabels: ["joy", "optimism"]',
    'Text: nobody came\nLabels: []\n\nText: what?!\nLabels: ["surprise", "sex harassment"]',
    "Classify the following text into zero or more of these labels: anger, angered, angry.",
    "café ❤ naïve – “quoted” 'single' {braces} [brackets] back\\slash\ttab",
    "two  spaces and a trailing newline\n",
    "数字 123 and emoji 😀 at the end",
]


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-tokenizers")
    return {"byte_level": root / "byte_level", "sentencepiece": root / "sentencepiece"}


@pytest.fixture(scope="module")
def byte_level(tokenizer_dirs):
    return byte_level_bpe_tokenizer(tokenizer_dirs["byte_level"])


@pytest.fixture(scope="module")
def sentencepiece(tokenizer_dirs):
    return sentencepiece_style_tokenizer(tokenizer_dirs["sentencepiece"])


@pytest.fixture(scope="module", params=["byte_level", "sentencepiece"])
def any_tokenizer(request):
    return request.getfixturevalue(request.param)


def tokens(tokenizer, label: str, context: str = 'Labels: ["') -> list[str]:
    return tokenizer.convert_ids_to_tokens(label_token_ids(tokenizer, label, context))


# --- both tokenizers ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(any_tokenizer, text):
    ids = any_tokenizer.encode(text)
    assert any_tokenizer.decode(ids, skip_special_tokens=True) == text
    assert any_tokenizer.unk_token_id not in ids or any_tokenizer.unk_token_id == any_tokenizer.eos_token_id


def test_reload_with_auto_tokenizer_gives_the_same_tokens(tokenizer_dirs, byte_level, sentencepiece):
    for name, original in (("byte_level", byte_level), ("sentencepiece", sentencepiece)):
        reloaded = AutoTokenizer.from_pretrained(tokenizer_dirs[name])
        assert len(reloaded) == len(original)
        for text in ROUND_TRIP:
            assert reloaded.encode(text) == original.encode(text)
        assert reloaded.all_special_tokens == original.all_special_tokens


def test_vocabulary_sizes(byte_level, sentencepiece):
    assert 400 <= len(byte_level) <= 600
    assert 400 <= len(sentencepiece) <= 600


def test_some_labels_are_one_token_and_some_several(any_tokenizer):
    lengths = {label: len(tokens(any_tokenizer, label)) for label in CORPUS_LABELS}
    # frequent in the corpus -> one token; rare -> split
    for label in ("joy", "anger", "sadness"):
        assert lengths[label] == 1, (label, tokens(any_tokenizer, label))
    for label in ("admiration", "sex harassment", "angered", "gratitude"):
        assert lengths[label] >= 2, (label, tokens(any_tokenizer, label))
    assert lengths["sex harassment"] >= 3


def test_labels_share_a_first_token(any_tokenizer):
    anger, angered = tokens(any_tokenizer, "anger"), tokens(any_tokenizer, "angered")
    assert anger != angered and angered[0] == anger[0]
    # more generally, a first token does not tell which label follows
    firsts: dict[str, list[str]] = {}
    for label in CORPUS_LABELS:
        firsts.setdefault(tokens(any_tokenizer, label)[0], []).append(label)
    assert any(len(group) >= 2 for group in firsts.values())


def test_label_tokens_inside_a_json_list_do_not_merge_with_quotes(any_tokenizer):
    for label in [*CORPUS_LABELS, *SYNTHETIC_LABELS]:
        pieces = tokens(any_tokenizer, label)
        assert '"' not in "".join(pieces), pieces
        # the label followed by the closing quote tokenizes as the label's tokens + the rest
        whole = label_token_ids(any_tokenizer, label + '"]', 'Labels: ["')
        assert whole[: len(pieces)] == label_token_ids(any_tokenizer, label)


def test_label_token_ids_refuses_a_context_that_merges(byte_level):
    with pytest.raises(ValueError, match="merges"):
        label_token_ids(byte_level, "oy", 'Labels: ["j')


# --- byte-level ---------------------------------------------------------------------------------


def test_byte_level_specials_and_no_bos(byte_level):
    eos = byte_level.convert_tokens_to_ids("<|endoftext|>")
    assert byte_level.eos_token_id == byte_level.bos_token_id == byte_level.pad_token_id == eos
    assert byte_level.encode("Text: hi")[0] != eos  # nothing is prepended
    for special in ("<|im_start|>", "<|im_end|>"):
        assert byte_level.encode(special, add_special_tokens=False) == [byte_level.convert_tokens_to_ids(special)]
        assert special in byte_level.all_special_tokens


def test_byte_level_label_tokens_as_documented(byte_level):
    assert tokens(byte_level, "joy") == ["joy"]
    assert tokens(byte_level, "anger") == ["anger"]
    assert tokens(byte_level, "angered") == ["anger", "ed"]
    assert tokens(byte_level, "sex harassment")[:2] == ["s", "ex"]
    # the label after a space (a plain-text answer) is another token sequence
    assert tokens(byte_level, " joy", "Labels:") != tokens(byte_level, "joy")
    assert tokens(byte_level, " joy", "Labels:")[0].startswith("Ġ")


def test_byte_level_lone_token_keeps_its_space(byte_level):
    quote = byte_level.convert_tokens_to_ids('Ġ"')
    assert quote != byte_level.unk_token_id
    assert byte_level.decode([quote]) == ' "'


def test_byte_level_chat_template_after_reload(tokenizer_dirs, byte_level):
    reloaded = AutoTokenizer.from_pretrained(tokenizer_dirs["byte_level"])
    messages = [
        {"role": "system", "content": "You label texts."},
        {"role": "user", "content": "Text: hi\nLabels:"},
        {"role": "assistant", "content": '["joy"]'},
        {"role": "user", "content": "Text: bye\nLabels:"},
    ]
    text = reloaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou label texts.<|im_end|>\n"
        "<|im_start|>user\nText: hi\nLabels:<|im_end|>\n"
        '<|im_start|>assistant\n["joy"]<|im_end|>\n'
        "<|im_start|>user\nText: bye\nLabels:<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    closed = reloaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert not closed.endswith("<|im_start|>assistant\n")
    ids = reloaded.encode(text, add_special_tokens=False)
    assert ids.count(reloaded.convert_tokens_to_ids("<|im_start|>")) == 5


# --- SentencePiece-style ------------------------------------------------------------------------


def test_sentencepiece_specials_bos_and_no_chat_template(sentencepiece):
    assert sentencepiece.bos_token == "<s>" and sentencepiece.eos_token == "</s>"
    assert sentencepiece.pad_token == "<pad>" and sentencepiece.unk_token == "<unk>"
    assert len({sentencepiece.bos_token_id, sentencepiece.eos_token_id, sentencepiece.pad_token_id}) == 3
    assert sentencepiece.encode("Text: hi")[0] == sentencepiece.bos_token_id
    assert sentencepiece.encode("Text: hi", add_special_tokens=False)[0] != sentencepiece.bos_token_id
    assert not sentencepiece.chat_template


def test_sentencepiece_byte_fallback(sentencepiece):
    assert sentencepiece.tokenize("a\nb") == ["▁a", "<0x0A>", "b"]
    assert "<0xC3>" in sentencepiece.tokenize("é")
    assert sentencepiece.decode(sentencepiece.encode("x\ny é"), skip_special_tokens=True) == "x\ny é"


def test_sentencepiece_leading_space(sentencepiece):
    # a label right after '"' is bare; after a space it starts with "▁" (here a lone "▁")
    assert tokens(sentencepiece, "joy") == ["joy"]
    assert tokens(sentencepiece, " joy", "Labels:") == ["▁", "joy"]
    # the first word gets "▁" prepended; a word after a space carries it, glued text does not
    assert sentencepiece.tokenize("Text: I") == ["▁Text", ":", "▁I"]
    assert sentencepiece.tokenize("Text:I") == ["▁Text", ":", "I"]
    # decode() drops the leading space of the first token: a lone "▁Text" decodes to "Text",
    # and so does a text that started with a space (Llama 2's "legacy" behaviour)
    text_id = sentencepiece.convert_tokens_to_ids("▁Text")
    assert text_id != sentencepiece.unk_token_id
    assert sentencepiece.decode([text_id]) == "Text"
    assert sentencepiece.decode(sentencepiece.encode("Text: Text", add_special_tokens=False)) == "Text: Text"
    assert sentencepiece.decode(sentencepiece.encode(" Text"), skip_special_tokens=True) == "Text"


# --- tiny random models -------------------------------------------------------------------------

ARCHITECTURES = ["llama", pytest.param("gemma3", marks=pytest.mark.skipif(not HAS_GEMMA3, reason="no Gemma 3"))]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tiny_model_loads_with_auto_classes(tmp_path, any_tokenizer, arch):
    build = tiny_llama if arch == "llama" else tiny_gemma3
    model = build(tmp_path, any_tokenizer, seed=3)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config.vocab_size == len(tokenizer) == len(any_tokenizer)
    assert loaded.config.eos_token_id == tokenizer.eos_token_id
    assert loaded.config.pad_token_id == tokenizer.pad_token_id
    assert loaded.generation_config.eos_token_id == tokenizer.eos_token_id
    # longer than Gemma 3's sliding window (8), padded batch
    batch = tokenizer(
        ['Text: a long enough text to pass the sliding window\nLabels: ["joy"]', "Text: hi"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        logits = loaded(**batch).logits
        again = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, again)


def test_tiny_llama_is_deterministic_per_seed(tmp_path, byte_level):
    a = tiny_llama(tmp_path / "a", byte_level, seed=7)
    b = tiny_llama(tmp_path / "b", byte_level, seed=7)
    c = tiny_llama(tmp_path / "c", byte_level, seed=8)
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_load_tiny(tmp_path, sentencepiece):
    tiny_llama(tmp_path, sentencepiece)
    model, tokenizer = load_tiny(tmp_path)
    assert not model.training and tokenizer.bos_token == "<s>"


# --- synthetic task and the trained model -------------------------------------------------------


def test_synthetic_examples_follow_their_cues():
    examples = synthetic_examples(n=300, seed=4)
    assert examples == synthetic_examples(n=300, seed=4)
    counts = {len(e.labels) for e in examples}
    assert {0, 1, 2, 3} <= counts
    assert any("happy" in e.text.split() and "joy" in e.labels for e in examples)
    for e in examples:
        assert list(e.labels) == [label for label in SYNTHETIC_LABELS if label in e.labels]
    assert all(set(e.labels) <= {"joy", "fear"} for e in synthetic_examples(["joy", "fear"], n=50))
    with pytest.raises(ValueError, match="cue"):
        synthetic_examples(["nonsense"], n=1)
    assert format_answer([]) == "[]" and format_answer(["joy", "fear"]) == '["joy", "fear"]'


def test_format_prompt():
    assert format_prompt("hi") == "Text: hi\nLabels:"
    assert format_prompt("hi", "[") == "Text: hi\nLabels: ["
    demo = Example("so happy", ("joy",))
    assert format_prompt("hi", "", [demo, Example("ok", ())]) == (
        'Text: so happy\nLabels: ["joy"]\n\nText: ok\nLabels: []\n\nText: hi\nLabels:'
    )


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    return get_trained_tiny_llama(tmp_path_factory.mktemp("trained-tiny-llama"))


def test_trained_model_is_cached(trained_model):
    again = get_trained_tiny_llama(trained_model.path.parent)
    assert again.path == trained_model.path and again.train_seconds == 0.0
    assert trained_model.train_seconds < 60


# measured on 1,000 held-out texts (seed 0, 200 steps): 100% well formed, 99.9% ("") / 99.8% ("[")
# exact; seeds 1 and 2 and 160 steps: 100% well formed, >= 99.5% exact on 400 texts
@pytest.mark.parametrize("answer_prefix", ["", "["])
def test_trained_model_writes_json_label_lists(trained_model, answer_prefix):
    model, tokenizer = load_tiny(trained_model.path)
    held_out = synthetic_examples(n=120, seed=1001)
    report = evaluate_greedy(model, tokenizer, held_out, answer_prefix)
    assert report.parse_rate >= 0.9, report.failures[:5]
    assert report.set_rate >= 0.9, report.failures[:5]
    assert report.exact_rate >= 0.85, report.failures[:5]


def test_trained_model_answers_with_0_1_and_several_labels(trained_model):
    model, tokenizer = load_tiny(trained_model.path)
    sizes = set()
    for text in ("the dog was at the party", "i was so happy today", "i was happy and scared at the movie"):
        answer, ended = greedy_answer(model, tokenizer, text)
        assert ended
        sizes.add(len(json.loads(answer)))
    assert sizes == {0, 1, 2}
