"""Exact slot probabilities on tiny random models with both tokenizer families, checked against
an independent brute force.

Answers are forced (``forced_answers``), so random weights are enough: what is checked is that
every label's probability at every slot (the whole label string and then a terminator, summed
over every tokenisation, prefixes below the tolerance pruned and their mass recorded) and the
stop probability equal what plain full forward passes give, one pass per tokenisation prefix,
without cache, padding, shared prefix or tree mask.

Models (all plain-text prompts): a tiny Llama with the byte-level BPE tokenizer, one with the
SentencePiece-style tokenizer, one with a byte-level tokenizer that has tokens extending the
json closes (`"],`, ` [].`); a tiny Gemma 3 (sliding-window layers, window 8) with the
SentencePiece-style tokenizer, fed prompts far longer than its window, and the same Gemma 3 with
a window wider than the prompts.

Gemma 3 with window 8 is the test of sliding-window attention: the tree pass has to draw the
window into its mask for the sliding layers, and batches of sliding-window models must not put
padding between a shared prefix and the rows' suffixes (the window counts cache slots). Both
were defects found by these tests; the wide-window control separates them from anything else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brute_force import BruteForce, reference_slots
from tiny_models import byte_level_bpe_tokenizer, sentencepiece_style_tokenizer, tiny_gemma3, tiny_llama

from labeldist.data import Dataset, Item
from labeldist.models.hf import HFBackend
from labeldist.models.hf import backend as hf_backend
from labeldist.prompts import Prompt, PromptTemplate, build_prompts, get_answer_format
from labeldist.slots.locate import STOP

transformers = pytest.importorskip("transformers")
HAS_GEMMA3 = hasattr(transformers, "Gemma3ForCausalLM") and hasattr(transformers, "Gemma3TextConfig")

# "anger"/"angered" share their first token in both tokenizers (anger + ed); "optimism",
# "admiration" and "sex harassment" are several tokens; "joy", "fear", "sadness" one each
LABELS = ("joy", "fear", "anger", "angered", "optimism", "admiration", "sex harassment", "sadness")


PROB_TOL = 1e-6  # absolute, on probabilities (the exactness issue asks 1e-6)
LOG_TOL = 1e-5  # absolute, on log-probabilities (tiny multi-token probabilities are ~1e-20)

MODELS = ["llama-bpe", "llama-sp", "gemma3-sp"]
GEMMA = "gemma3-sp"  # sliding window 8, prompts of 100+ tokens
GEMMA_WIDE = "gemma3-wide"  # the same weights with a window wider than every prompt
# byte-level tokenizer that also learned `"],`, `"].` and ` [].`: tokens that extend a close
PUNCT = "llama-bpe-punct"
PUNCT_TEXTS = ['Labels: ["joy"].', "Labels: [].", 'Labels: ["fear", "anger"],'] * 40


def _model_param(name):
    marks = []
    if name.startswith("gemma3"):
        marks.append(pytest.mark.skipif(not HAS_GEMMA3, reason="transformers has no Gemma 3"))
    return pytest.param(name, marks=marks, id=name)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("slot-tokenizers")
    byte_level = byte_level_bpe_tokenizer(root / "tok-bpe")
    sentencepiece = sentencepiece_style_tokenizer(root / "tok-sp")
    punct = byte_level_bpe_tokenizer(root / "tok-bpe-punct", extra_texts=PUNCT_TEXTS)
    dirs = {"llama-bpe": root / "llama-bpe", "llama-sp": root / "llama-sp", PUNCT: root / PUNCT}
    tiny_llama(dirs["llama-bpe"], byte_level, seed=1)
    tiny_llama(dirs["llama-sp"], sentencepiece, seed=2)
    tiny_llama(dirs[PUNCT], punct, seed=4)
    if HAS_GEMMA3:
        dirs[GEMMA] = root / GEMMA
        tiny_gemma3(dirs[GEMMA], sentencepiece, seed=3, sliding_window=8)
        dirs[GEMMA_WIDE] = root / GEMMA_WIDE
        tiny_gemma3(dirs[GEMMA_WIDE], sentencepiece, seed=3, sliding_window=4096)
    return dirs


@pytest.fixture(scope="module")
def backends(model_dirs):
    # plain prompts for every model (the byte-level tokenizer has a ChatML template: not used)
    return {name: HFBackend(str(path), device="cpu", chat=False) for name, path in model_dirs.items()}


@pytest.fixture(scope="module")
def brute_forces(backends):
    return {name: BruteForce(backend) for name, backend in backends.items()}


@pytest.fixture(scope="module")
def observed():
    """Largest differences from the brute force, per model (printed at the end with -s)."""
    table: dict[str, dict[str, float]] = {}
    yield table
    for name, values in sorted(table.items()):
        print(f"\n[slot brute force] {name}: " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(values.items())))


def _note(observed, name, key, value):
    slot = observed.setdefault(name, {})
    slot[key] = max(slot.get(key, 0.0), float(value))


@pytest.fixture(scope="module")
def data():
    return tiny_data()


def tiny_data() -> tuple[Dataset, Dataset]:
    """The dev items and the demonstration pool of these tests (tests/test_exact_backend.py reads them too)."""

    def item(i, text, gold):
        return Item(f"i{i}", text, gold=frozenset(gold))

    pool = Dataset(
        "tiny",
        LABELS,
        "train",
        [
            item(0, "I am so happy today", {"joy"}),
            item(1, "that movie was scary and he lied to me again", {"fear", "anger"}),
            item(2, "it is raining again", set()),
            item(3, "you did a great job on the project", {"admiration", "optimism"}),
            item(4, "he was rude to the waiter", {"angered", "sex harassment"}),
        ],
    )
    dev = Dataset(
        "tiny",
        LABELS,
        "dev",
        [
            item(10, "the dog barked all night and I could not sleep", {"anger"}),
            item(11, "we lost the game", {"sadness"}),
            item(12, "what a wonderful morning, thank you so much for the help", {"joy", "admiration"}),
        ],
    )
    return dev, pool


def prompts_for(data, fmt_name, shared=False):
    dev, pool = data
    fmt = get_answer_format(fmt_name)
    return build_prompts(dev, pool, PromptTemplate(), fmt, "random", 2, seed=0, shared_demonstrations=shared)


def compare(observed, name, generation, references, check_first=True):
    """Every label and stop probability of every slot equals the brute force."""
    assert len(generation.slots) == len(references)
    for slot, ref in zip(generation.slots, references):
        assert (slot.index, slot.chosen) == (ref.index, ref.chosen)
        got = np.append(slot.label_logprobs, slot.stop_logprob)
        want = np.append(ref.label_logprobs, ref.stop_logprob)
        # a text all of whose tokenisations fall below the tolerance is -inf in both
        assert (np.isfinite(want) == np.isfinite(got)).all(), (got, want)
        finite = np.isfinite(want)
        prob_diff = np.abs(np.exp(got) - np.exp(want)).max()
        log_diff = np.abs(got[finite] - want[finite]).max() if finite.any() else 0.0
        # the pruned mass is recorded as the distance between the slot's bounds
        got_pruned = np.append(slot.label_probs_upper - slot.label_probs_lower, slot.stop_prob_upper - slot.stop_prob_lower)
        want_pruned = np.minimum(np.exp(want) + np.append(ref.label_pruned, ref.stop_pruned), 1.0) - np.exp(want)
        _note(observed, name, "pruned", np.abs(got_pruned - want_pruned).max())
        assert np.abs(got_pruned - want_pruned).max() < PROB_TOL, (got_pruned, want_pruned)
        _note(observed, name, "prob", prob_diff)
        _note(observed, name, "log", log_diff)
        where = f"slot {slot.index}: got {got.tolist()}, brute force {want.tolist()}"
        assert prob_diff < PROB_TOL, where
        assert log_diff < LOG_TOL, where
        if check_first:
            if ref.first_token_probs is None:
                assert np.isnan(slot.first_token_probs).all()
            else:
                first_diff = np.abs(slot.first_token_probs - ref.first_token_probs).max()
                _note(observed, name, "first-token", first_diff)
                assert first_diff < PROB_TOL, (slot.first_token_probs, ref.first_token_probs)


def run_case(backends, brute_forces, observed, name, prompt, fmt_name, forced):
    backend, bf = backends[name], brute_forces[name]
    fmt = get_answer_format(fmt_name)
    (generation,) = backend.generate([prompt], LABELS, fmt, forced_answers=[forced])
    answer_ids, references = reference_slots(bf, prompt, forced, fmt, LABELS)
    assert generation.answer == prompt.answer_prefix + forced
    assert generation.generated_tokens == len(answer_ids)
    return generation, references


# ---------------------------------------------------------------------------------------------
# the brute force's own footing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_token_texts_agree_with_the_decoder(backends, brute_forces, name):
    """The scorer's token bytes equal what the tokenizer decodes (every decodable token)."""
    texts = backends[name].texts
    bf = brute_forces[name]
    assert len(bf.strings) > 200
    for token_id, text in bf.strings.items():
        assert texts.bytes[token_id] == text.encode("utf-8"), (token_id, text)


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_labels_split_as_the_cases_assume(backends, name):
    scorer = backends[name].scorer
    tokenizer = backends[name].tokenizer
    context = tokenizer('Labels: ["joy", "', add_special_tokens=False)["input_ids"]
    anger = scorer.tokenize_in_context(context, "anger")
    angered = scorer.tokenize_in_context(context, "angered")
    assert len(anger) == 1 and angered[0] == anger[0] and len(angered) > 1
    for label in ("optimism", "admiration", "sex harassment"):
        assert len(scorer.tokenize_in_context(context, label)) > 1, label
    # the json opener ` ["` is one token: slot 1 has no residual; later decision points fall
    # inside `",` and `"]`, so slots 2+ are scored from a token boundary with a residual `"`
    ids = tokenizer(' ["anger", "angered"]', add_special_tokens=False)["input_ids"]
    pieces = [backends[name].texts.text([i]) for i in ids]
    assert pieces[0] == ' ["' and '",' in pieces and pieces[-1] == '"]'


# ---------------------------------------------------------------------------------------------
# exact probabilities against the brute force
# ---------------------------------------------------------------------------------------------

# case id -> (format, forced answer, chosen label per slot)
MULTI = ["optimism", "admiration", "sex harassment"]
CASES = {
    "json-anger-angered": ("json", ' ["anger", "angered"]', ["anger", "angered", STOP]),
    "json-joy": ("json", ' ["joy"]', ["joy", STOP]),
    "json-empty": ("json", " []", [STOP]),
    "json-multi-token": ("json", ' ["optimism", "admiration", "sex harassment"]', [*MULTI, STOP]),
    # forms other than the format's own: bare and single-quoted elements, odd spacing
    "json-bare": ("json", " [anger, sex harassment]", ["anger", "sex harassment", STOP]),
    "json-single-quotes": ("json", " ['joy','angered' ]", ["joy", "angered", STOP]),
    "json-odd-spacing": ("json", ' ["joy" ,  "anger"\n]', ["joy", "anger", STOP]),
    "comma-anger-angered": ("comma", " anger, angered", ["anger", "angered", STOP]),
    "comma-no-space": ("comma", " joy,anger", ["joy", "anger", STOP]),
    "and-serial-comma": ("and", " joy, anger, and fear", ["joy", "anger", "fear", STOP]),
    "comma-none": ("comma", " none", [STOP]),
    "comma-multi-token": ("comma", " sex harassment, optimism", ["sex harassment", "optimism", STOP]),
    "and-joy-fear": ("and", " joy and fear", ["joy", "fear", STOP]),
    "and-none": ("and", " none", [STOP]),
    "and-three": ("and", " optimism, admiration and sex harassment", [*MULTI, STOP]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_slots_match_brute_force(backends, brute_forces, observed, data, name, case):
    fmt_name, forced, chosen = CASES[case]
    prompt = prompts_for(data, fmt_name)[0]
    assert len(backends[name].encode(prompt.text)) > 100  # far beyond Gemma 3's window of 8
    generation, references = run_case(backends, brute_forces, observed, name, prompt, fmt_name, forced)
    assert generation.parsed.parsed and generation.parsed.complete
    assert [s.chosen for s in generation.slots] == chosen
    assert generation.parsed.labels == tuple(c for c in chosen if c != STOP)
    assert generation.parsed.none == (chosen == [STOP])
    compare(observed, name, generation, references)


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_prefilled_opener_matches_brute_force(backends, brute_forces, observed, data, name):
    """With ``[`` in the prompt (prefill) slot 1's decision point is the answer's start."""
    dev, pool = data
    fmt = get_answer_format("json")
    prompt = build_prompts(dev, pool, PromptTemplate(), fmt, "random", 2, seed=0, prefill=True)[1]
    assert prompt.answer_prefix == "[" and prompt.text.endswith(" [")
    generation, references = run_case(backends, brute_forces, observed, name, prompt, "json", '"joy", "angered"]')
    assert [s.chosen for s in generation.slots] == ["joy", "angered", STOP]
    compare(observed, name, generation, references)


@pytest.mark.parametrize(
    "fmt_name, forced", [("json", ' ["joy", "happiness"]'), ("comma", " joy, happiness")], ids=["json", "comma"]
)
@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_unknown_label_slot_is_scored(backends, brute_forces, observed, data, name, fmt_name, forced):
    prompt = prompts_for(data, fmt_name)[1]
    generation, references = run_case(backends, brute_forces, observed, name, prompt, fmt_name, forced)
    assert generation.parsed.labels == ("joy",)
    assert generation.parsed.unknown == ("happiness",)
    assert generation.parsed.complete and not generation.parsed.well_formed
    assert [s.chosen for s in generation.slots] == ["joy", None, STOP]
    assert generation.slots[1].raw == "happiness"
    compare(observed, name, generation, references)


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_cut_off_answer_has_no_closing_slot(backends, brute_forces, observed, data, name):
    prompt = prompts_for(data, "json")[2]
    generation, references = run_case(backends, brute_forces, observed, name, prompt, "json", ' ["joy", "ang')
    assert generation.parsed.parsed and not generation.parsed.complete
    assert generation.parsed.labels == ("joy",)
    assert [s.chosen for s in generation.slots] == ["joy", None]  # the cut-off element, no close
    compare(observed, name, generation, references)


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_unparseable_answer_has_no_slots(backends, data, name):
    prompt = prompts_for(data, "json")[0]
    fmt = get_answer_format("json")
    (generation,) = backends[name].generate([prompt], LABELS, fmt, forced_answers=[" I think it is joy"])
    assert generation.answer == " I think it is joy"
    assert not generation.parsed.parsed and generation.parsed.labels == ()
    assert generation.slots == []


# ---------------------------------------------------------------------------------------------
# what does not depend on the tree pass
# ---------------------------------------------------------------------------------------------


def _shared_prefix_batch(data, fmt_name):
    """Three prompts of different lengths with the same system, instruction and
    demonstrations (a long common prefix: the shared-prefix pass, padding after it)."""
    return prompts_for(data, fmt_name, shared=True)


@pytest.mark.parametrize("layout", ["alone", "shared-prefix"])
@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_decoding_distributions_match_brute_force(backends, brute_forces, observed, data, name, layout):
    """First-token shares, and the list stops that need no tree pass (the answer ending right
    after a label: EOS or a line break next), come from the decoding loop's own distributions.
    They are exact for every architecture and layout, Gemma 3 included."""
    backend, bf = backends[name], brute_forces[name]
    fmt = get_answer_format("and")
    prompts = _shared_prefix_batch(data, "and")
    answers = [" joy and fear", " sadness", " anger and angered"]
    if layout == "alone":
        prompts, answers = prompts[:1], answers[:1]
    generations = backend.generate(prompts, LABELS, fmt, forced_answers=answers)
    checked = 0
    for prompt, forced, generation in zip(prompts, answers, generations):
        _, references = reference_slots(bf, prompt, forced, fmt, LABELS, with_labels=False)
        assert [s.chosen for s in generation.slots] == [plan.chosen for plan in references.plans]
        for slot, ref in zip(generation.slots, references):
            if ref.first_token_probs is not None:
                diff = np.abs(slot.first_token_probs - ref.first_token_probs).max()
                _note(observed, f"{name} ({layout})", "first-token", diff)
                assert diff < PROB_TOL, (prompt.item_id, slot.index, diff)
                checked += 1
            if slot.index > 1:
                diff = abs(slot.stop_logprob - ref.stop_logprob)
                _note(observed, f"{name} ({layout})", "stop log", diff)
                assert diff < LOG_TOL, (prompt.item_id, slot.index, diff)
                checked += 1
    assert checked >= 4


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_slot_properties(backends, data, name, monkeypatch):
    backend = backends[name]
    # random weights spread the mass over the vocabulary, so whole labels fall below the default
    # tolerance (their number is then 0 with a bound); a small one keeps every label scored here
    monkeypatch.setattr(backend.scorer, "tolerance", 1e-12)
    generations = []
    for fmt_name, forced, _ in CASES.values():
        prompt = prompts_for(data, fmt_name)[0]
        generations += backend.generate([prompt], LABELS, get_answer_format(fmt_name), forced_answers=[forced])
    anger, angered = LABELS.index("anger"), LABELS.index("angered")
    shared_first = 0
    for generation in generations:
        for slot in generation.slots:
            # disjoint continuations: labels + stop never exceed 1
            assert slot.label_probs.sum() + slot.stop_prob <= 1 + 1e-6, (generation.answer, slot.index)
            assert 0 < slot.mass <= 1 + 1e-6
            # a label is scored, or every tokenisation of it fell below the tolerance: then its
            # number is 0 and its bound says how much it can be (the long labels of random models)
            pruned = slot.label_probs_upper - slot.label_probs_lower
            assert ((np.isfinite(slot.label_logprobs)) | (pruned > 0)).all() and np.isfinite(slot.stop_logprob)
            assert (pruned >= 0).all() and slot.stop_prob_lower <= slot.stop_prob_upper
            assert np.isfinite(slot.label_logprobs[[anger, angered]]).all()
            # "anger" and "angered" are different events with different probabilities
            assert slot.label_logprobs[anger] != pytest.approx(slot.label_logprobs[angered], abs=1e-3)
            if slot.chosen == STOP:
                assert np.isnan(slot.first_token_probs).all()
                continue
            assert slot.first_token_probs.sum() == pytest.approx(1.0, abs=1e-6)
            # the first-token approximation cannot tell them apart (same first token), the
            # exact method can
            assert slot.first_token_probs[anger] == pytest.approx(slot.first_token_probs[angered], abs=1e-7)
            exact = slot.label_probs / slot.label_probs.sum()
            assert abs(exact[anger] - exact[angered]) > 1e-3 * exact[anger]
            shared_first += 1
    assert shared_first >= 10


# ---------------------------------------------------------------------------------------------
# batching: left padding and the shared-prefix path give the same numbers as one prompt alone
# ---------------------------------------------------------------------------------------------


def _distinct_prompts():
    """Three plain prompts of different lengths with no common prefix (no shared-prefix pass)."""
    texts = [
        "Text: we lost the game\nLabels:",
        "Review the sentence below and name its emotions.\nText: the dog barked all night and I could not "
        "sleep, so in the morning I was tired and cross with everyone\nLabels:",
        "Emotions?\nText: thank you so much for the help\nLabels:",
    ]
    return [Prompt(f"p{i}", [{"role": "user", "content": t}], t, (), "") for i, t in enumerate(texts)]


BATCH_ANSWERS = {
    "json": [' ["anger", "angered"]', ' ["sadness"]', " []"],
    "comma": [" joy, fear", " none", " sex harassment, optimism, angered"],
}


def _batch(backend, data, fmt_name, layout):
    if layout == "same-prompt":  # one prompt, several answers (the marginal's nodes, sampled answers)
        return [_shared_prefix_batch(data, fmt_name)[0]] * 3, BATCH_ANSWERS[fmt_name]
    if layout == "grouped":  # two prompts of different lengths, one with two answers (the marginal's nodes of two items)
        first, second = _shared_prefix_batch(data, fmt_name)[:2]
        assert len(backend.encode(first.text)) != len(backend.encode(second.text))
        return [first, second, first], BATCH_ANSWERS[fmt_name]
    prompts = _shared_prefix_batch(data, fmt_name) if layout == "shared-prefix" else _distinct_prompts()
    encoded = [backend.encode(p.text) for p in prompts]
    assert len({len(e) for e in encoded}) == 3  # different lengths: left padding
    common = 0
    while all(len(e) > common for e in encoded) and len({e[common] for e in encoded}) == 1:
        common += 1
    if layout == "shared-prefix":
        assert common >= 50  # system, instruction and the same demonstrations
    else:
        assert common < 16  # below hf.MIN_SHARED_PREFIX: plain left padding
    return prompts, BATCH_ANSWERS[fmt_name]


@pytest.mark.parametrize("layout", ["shared-prefix", "distinct", "same-prompt", "grouped"])
@pytest.mark.parametrize("fmt_name", list(BATCH_ANSWERS))
@pytest.mark.parametrize("name", [_model_param(m) for m in [*MODELS, GEMMA_WIDE]])
def test_batch_equals_alone(backends, observed, data, name, fmt_name, layout):
    backend = backends[name]
    fmt = get_answer_format(fmt_name)
    prompts, answers = _batch(backend, data, fmt_name, layout)
    together = backend.generate(prompts, LABELS, fmt, forced_answers=answers)
    for prompt, answer, batched in zip(prompts, answers, together):
        (alone,) = backend.generate([prompt], LABELS, fmt, forced_answers=[answer])
        assert batched.answer == alone.answer == answer
        assert batched.generated_tokens == alone.generated_tokens
        assert [s.chosen for s in batched.slots] == [s.chosen for s in alone.slots]
        assert len(batched.slots) >= 1
        for a, b in zip(alone.slots, batched.slots):
            got = np.append(b.label_logprobs, b.stop_logprob)
            want = np.append(a.label_logprobs, a.stop_logprob)
            prob_diff = np.abs(np.exp(got) - np.exp(want)).max()
            # labels all of whose tokenisations fall below the tolerance are -inf in both
            assert (np.isfinite(got) == np.isfinite(want)).all(), (prompt.item_id, b.index)
            finite = np.isfinite(want)
            log_diff = np.abs(got[finite] - want[finite]).max()
            _note(observed, f"{name} ({layout})", "batch-vs-alone prob", prob_diff)
            _note(observed, f"{name} ({layout})", "batch-vs-alone log", log_diff)
            assert prob_diff < PROB_TOL, (prompt.item_id, b.index)
            assert log_diff < LOG_TOL, (prompt.item_id, b.index, got.tolist(), want.tolist())
            if not np.isnan(a.first_token_probs).all():
                assert np.abs(a.first_token_probs - b.first_token_probs).max() < PROB_TOL


@pytest.mark.parametrize(
    "layout, fmt_name", [("shared-prefix", "json"), ("distinct", "comma"), ("same-prompt", "json"), ("grouped", "comma")]
)
@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_batch_matches_brute_force(backends, brute_forces, observed, data, name, layout, fmt_name):
    backend = backends[name]
    fmt = get_answer_format(fmt_name)
    prompts, answers = _batch(backend, data, fmt_name, layout)
    backend._prefix_cache = None
    together = backend.generate(prompts, LABELS, fmt, forced_answers=answers)
    if layout == "same-prompt":  # the prompt's keys/values computed once and shared, sliding window or not
        assert backend._prefix_cache is not None and len(backend._prefix_cache[0]) == len(backend.encode(prompts[0].text)) - 1
    for prompt, answer, generation in zip(prompts, answers, together):
        _, references = reference_slots(brute_forces[name], prompt, answer, fmt, LABELS)
        compare(observed, name, generation, references)


# ---------------------------------------------------------------------------------------------
# Gemma 3 with a window wider than the prompts: the same checks pass, so what fails above is
# the sliding window (and the brute force handles the architecture)
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_GEMMA3, reason="transformers has no Gemma 3")
@pytest.mark.parametrize("case", ["json-anger-angered", "and-three"])
def test_gemma3_exact_when_the_window_covers_the_prompt(backends, brute_forces, observed, data, case):
    fmt_name, forced, chosen = CASES[case]
    prompt = prompts_for(data, fmt_name)[0]
    generation, references = run_case(backends, brute_forces, observed, GEMMA_WIDE, prompt, fmt_name, forced)
    assert [s.chosen for s in generation.slots] == chosen
    compare(observed, GEMMA_WIDE, generation, references)


# ---------------------------------------------------------------------------------------------
# closes that a longer token covers: ` []` is also the start of ` [].`, `"]` of `"],` and `"].`
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["json-anger-angered", "json-empty"])
def test_close_counts_tokens_that_extend_it(backends, brute_forces, observed, data, case):
    texts = backends[PUNCT].texts
    assert {texts.text([t]) for t in texts.extending(b'"]')} >= {'"]', '"],', '"].'}
    assert {texts.text([t]) for t in texts.extending(b" []")} >= {" []", " []."}
    fmt_name, forced, chosen = CASES[case]
    prompt = prompts_for(data, fmt_name)[0]
    generation, references = run_case(backends, brute_forces, observed, PUNCT, prompt, fmt_name, forced)
    assert [s.chosen for s in generation.slots] == chosen
    compare(observed, PUNCT, generation, references)


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_prompts_walked_one_at_a_time_reuse_the_demonstrations_exactly(backends, brute_forces, observed, data, name):
    """The marginal and the sampler hand the backend one prompt at a time (several answers
    each): the next prompt's keys/values start from what it shares with the last one (system,
    instruction, demonstrations), so only its own part is fed, and its slots stay exact."""
    backend = backends[name]
    fmt = get_answer_format("json")
    first, second = _shared_prefix_batch(data, "json")[:2]
    answers = BATCH_ANSWERS["json"][:2]
    fed = []
    hook = backend.model.get_input_embeddings().register_forward_hook(lambda m, args, out: fed.append(args[0].shape[-1]))
    try:
        backend._prefix_cache = None
        for prompt in (first, second):
            fed.clear()
            generations = backend.generate([prompt] * 2, LABELS, fmt, forced_answers=answers)
            for answer, generation in zip(answers, generations):
                _, references = reference_slots(brute_forces[name], prompt, answer, fmt, LABELS)
                compare(observed, name, generation, references)
    finally:
        hook.remove()
    one, two = backend.encode(first.text), backend.encode(second.text)
    common = next(j for j, (a, b) in enumerate(zip(one, two)) if a != b)
    # the second prompt's prefix is fed from the last whole chunk it shares with the first,
    # chunk by chunk: its own tokens and less than a chunk more
    shared = len(two) - 1
    reused = min(common, shared - 1) // hf_backend.PREFIX_CHUNK * hf_backend.PREFIX_CHUNK
    assert reused >= hf_backend.PREFIX_CHUNK and common - reused < hf_backend.PREFIX_CHUNK
    chunks = [min(hf_backend.PREFIX_CHUNK, shared - start) for start in range(reused, shared, hf_backend.PREFIX_CHUNK)]
    assert fed[: len(chunks)] == chunks


@pytest.mark.parametrize("name", [_model_param(m) for m in MODELS])
def test_a_prompts_numbers_do_not_depend_on_the_prompt_before_it(backends, data, name):
    """A Ray worker, a resumed run or a marginal walk meets a prompt after another prompt than an
    uninterrupted run does: what it records must be the same to the last bit, so the reused
    part of the last prompt's keys/values must be what a fresh computation gives (whole chunks
    only, computed with the same shapes)."""
    backend = backends[name]
    fmt = get_answer_format("json")
    first, second = _shared_prefix_batch(data, "json")[:2]
    answers = BATCH_ANSWERS["json"][:2]

    def second_after(before):
        backend._prefix_cache = None
        if before is not None:
            backend.generate([before] * 2, LABELS, fmt, forced_answers=answers)
        return backend.generate([second] * 2, LABELS, fmt, forced_answers=answers)

    fresh, after_first = second_after(None), second_after(first)
    for a, b in zip(fresh, after_first):
        assert [s.chosen for s in a.slots] == [s.chosen for s in b.slots]
        for slot_a, slot_b in zip(a.slots, b.slots):
            np.testing.assert_array_equal(slot_a.label_probs, slot_b.label_probs)
            np.testing.assert_array_equal(slot_a.stop_prob, slot_b.stop_prob)
