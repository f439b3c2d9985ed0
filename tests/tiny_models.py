"""Real tokenizers and tiny real causal LMs, built offline in about a second, for tests.

Nothing here is a mock: the tokenizers are trained with the Hugging Face ``tokenizers`` library
and the models are ``transformers`` classes with random (or briefly trained) weights, saved with
``save_pretrained`` so that ``AutoTokenizer`` / ``AutoModelForCausalLM`` load them from a folder.

Two tokenizer families, the two that label scoring has to get right:

- :func:`byte_level_bpe_tokenizer`: GPT-2 / Llama 3 / SmolLM style byte-level BPE; no BOS is
  added, ``<|endoftext|>`` is BOS, EOS *and* PAD (as in GPT-2 and SmolLM), and a ChatML chat
  template with ``<|im_start|>`` / ``<|im_end|>`` special tokens.
- :func:`sentencepiece_style_tokenizer`: Llama 2 / Gemma style metaspace BPE with byte fallback
  (``"\\n"`` becomes ``<0x0A>``), ``<s>`` added as BOS, ``</s>`` EOS, a separate ``<pad>``, no
  chat template. A lone token decodes without its leading space (``decode([id("▁Text")])`` is
  ``"Text"``), like the real ones.

Models: :func:`tiny_llama`, :func:`tiny_gemma3` (random weights, fixed seed) and
:func:`trained_tiny_llama`, a tiny Llama trained for a few seconds on :func:`synthetic_examples`
so that greedy decoding writes a well-formed JSON label list whose labels follow from cue words
in the text. :func:`get_trained_tiny_llama` trains it once per cache folder and reuses it.

Training uses the prompt shapes labeldist produces: ``Text: {text}\\nLabels:`` with the answer
`` ["joy", "fear"]`` + EOS, and ``Text: {text}\\nLabels: [`` (answer prefix ``[``) with the answer
``"joy", "fear"]`` + EOS, each side tokenized on its own, as at inference.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BYTE_LEVEL_SPECIALS",
    "CHATML_TEMPLATE",
    "CORPUS_LABELS",
    "SYNTHETIC_CUES",
    "SYNTHETIC_LABELS",
    "METASPACE",
    "SENTENCEPIECE_SPECIALS",
    "Example",
    "GreedyReport",
    "TrainedModel",
    "byte_level_bpe_tokenizer",
    "evaluate_greedy",
    "format_answer",
    "format_prompt",
    "get_trained_tiny_llama",
    "greedy_answer",
    "label_token_ids",
    "load_tiny",
    "prompt_corpus",
    "sentencepiece_style_tokenizer",
    "single_thread",
    "synthetic_examples",
    "tiny_gemma3",
    "tiny_llama",
    "trained_tiny_llama",
]

METASPACE = "\u2581"  # "▁"
BYTE_LEVEL_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
SENTENCEPIECE_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# ---------------------------------------------------------------------------------------------
# Corpus: prompt-like English text over emotion labels. Label frequency decides tokenization:
# frequent labels become one token, rare ones stay split (see the tests for what each becomes).
# ---------------------------------------------------------------------------------------------

# label -> how often it is written in the corpus answers (per pass)
CORPUS_LABELS: dict[str, int] = {
    "joy": 40,
    "fear": 40,
    "anger": 40,
    "love": 30,
    "sadness": 30,
    "surprise": 25,
    "optimism": 3,
    "admiration": 2,
    "angered": 2,
    "angry": 2,
    "disgust": 2,
    "sex harassment": 1,
    "gratitude": 1,
    "nervousness": 1,
}

_SENTENCES = (
    "I am so happy today",
    "this is the best day of my life",
    "I cannot believe they did that to us",
    "the dog barked all night and I could not sleep",
    "thank you so much for the help",
    "we lost the game again",
    "what a wonderful morning",
    "I miss my friends",
    "that movie was scary",
    "please stop doing that",
    "the weather is nice and warm",
    "he was rude to the waiter",
    "she finally got the job she wanted",
    "nobody came to the party",
    "I like this song a lot",
    "it is raining again",
    "my phone broke on the first day",
    "the train was late for the third time this week",
    "our team won the final match",
    "he never listens to anyone",
    "the food at that place was cold and bland",
    "I just want to go home",
    "they gave me flowers for my birthday",
    "why would anyone do something like this",
    "the kids played in the garden until dark",
    "you did a great job on the project",
    "I think it will work out in the end",
    "the news this morning made me think",
    "honestly that was the worst service ever",
    "can't wait to see you next week",
    "my cat sleeps on my keyboard",
    "the exam was much harder than expected",
    "he lied to me again and again",
    "what a strange thing to say",
    "we should try the new place downtown",
    "that joke was not funny at all",
)

_INSTRUCTIONS = (
    "You are an expert annotator. You read a text and decide which labels from a fixed label set "
    "apply to it. Several labels can apply at once, and it is possible that none applies.",
    "Classify the following text into zero or more of these labels: {labels}. "
    "Answer with a JSON list of labels, or [] if none apply.",
)


def prompt_corpus(extra_texts: Iterable[str] = (), seed: int = 0) -> list[str]:
    """Deterministic prompt-like training text for the tokenizers."""
    rng = random.Random(seed)
    pool = [label for label, count in CORPUS_LABELS.items() for _ in range(count)]
    rng.shuffle(pool)
    lines: list[str] = []
    labels_line = ", ".join(CORPUS_LABELS)
    for template in _INSTRUCTIONS:
        lines.append(template.format(labels=labels_line))
    # every answer names one to three labels drawn from the pool (so each label appears about as
    # often as CORPUS_LABELS says), or none
    while pool:
        sentence = _SENTENCES[len(lines) % len(_SENTENCES)]
        k = rng.choice((0, 1, 1, 2, 2, 3))
        chosen: list[str] = []
        while pool and len(chosen) < k:
            label = pool.pop()
            if label not in chosen:
                chosen.append(label)
        lines.append(f"Text: {sentence}\nLabels: {format_answer(chosen)}")
    lines.extend(extra_texts)
    return lines


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


def byte_level_bpe_tokenizer(path: str | Path, extra_texts: Iterable[str] = (), vocab_size: int = 512):
    """A byte-level BPE tokenizer (GPT-2 / Llama 3 / SmolLM family), saved to ``path``.

    ``<|endoftext|>`` is BOS, EOS and PAD; no BOS is added on encoding. ``<|im_start|>`` and
    ``<|im_end|>`` are special tokens used by the ChatML ``chat_template``. Returns the tokenizer
    as :class:`~transformers.AutoTokenizer` reloads it from ``path``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=3,
        special_tokens=list(BYTE_LEVEL_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(prompt_corpus(extra_texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    fast.chat_template = CHATML_TEMPLATE
    return _save_and_reload(fast, path)


def sentencepiece_style_tokenizer(path: str | Path, extra_texts: Iterable[str] = (), vocab_size: int = 576):
    """A SentencePiece-style (Llama 2 / Gemma family) tokenizer, saved to ``path``.

    BPE over metaspace words (``"▁"`` stands for a space and is prepended to the first word),
    with byte fallback: characters outside the learned alphabet, ``"\\n"`` included, become
    ``<0xNN>`` tokens. Punctuation and letters are not merged into one piece (SentencePiece's
    ``split_by_unicode_script``), so ``["joy"`` is ``▁["`` + ``joy`` + ``"``. ``<s>`` is added as
    BOS; ``</s>`` is EOS, ``<pad>`` PAD, ``<unk>`` UNK. No chat template.

    ``vocab_size`` counts the 4 special and 256 byte tokens too.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    metaspace = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    scripts = pre_tokenizers.Split(
        Regex(f"{METASPACE}?\\p{{L}}+|{METASPACE}?\\p{{N}}+|[^\\p{{L}}\\p{{N}}]+"), behavior="isolated"
    )
    pre_tokenizer = pre_tokenizers.Sequence([metaspace, scripts])

    # 1. learn merges on the corpus with line breaks taken out, so "\n" stays outside the
    #    alphabet and falls back to <0x0A> as in Llama 2
    corpus = [line.replace("\n", " ") for line in prompt_corpus(extra_texts)]
    learner = Tokenizer(models.BPE(unk_token="<unk>"))
    learner.pre_tokenizer = pre_tokenizer
    n_fixed = len(SENTENCEPIECE_SPECIALS) + 256
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_fixed,
        min_frequency=3,
        special_tokens=[],
        limit_alphabet=200,
        show_progress=False,
    )
    learner.train_from_iterator(corpus, trainer=trainer)
    learned = json.loads(learner.to_str())["model"]

    # 2. the final vocabulary in Llama 2's order: specials, the 256 byte tokens, then pieces
    vocab: dict[str, int] = {}
    for token in SENTENCEPIECE_SPECIALS:
        vocab[token] = len(vocab)
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda item: item[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = pre_tokenizer
    # what transformers' Llama converter writes: ▁ -> space, bytes -> text, drop the first space
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(METASPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer.add_special_tokens(list(SENTENCEPIECE_SPECIALS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    return _save_and_reload(fast, path)


def _save_and_reload(tokenizer, path: Path):
    from transformers import AutoTokenizer

    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def label_token_ids(tokenizer, label: str, context: str = 'Labels: ["') -> list[int]:
    """Token ids of ``label`` as it is written after ``context`` (default: inside a JSON list).

    Checks that the context's own tokens are unchanged by appending the label, so the ids are
    exactly the label's share of the sequence.
    """
    head = tokenizer.encode(context, add_special_tokens=False)
    whole = tokenizer.encode(context + label, add_special_tokens=False)
    if whole[: len(head)] != head:
        raise ValueError(f"{label!r} merges with the end of {context!r} in this tokenizer")
    return whole[len(head) :]


# ---------------------------------------------------------------------------------------------
# Tiny random models
# ---------------------------------------------------------------------------------------------


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (restored after).

    Tiny models gain nothing from intra-op threads, and on a small, busy machine (2 cores here)
    a second thread can make each step 10x slower while it waits for a core.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _special_ids(tokenizer) -> dict[str, int]:
    eos = tokenizer.eos_token_id
    return {
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos,
        "eos_token_id": eos,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
    }


def _save_model(model, tokenizer, path: Path):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    ids = _special_ids(tokenizer)
    model.generation_config.bos_token_id = ids["bos_token_id"]
    model.generation_config.eos_token_id = ids["eos_token_id"]
    model.generation_config.pad_token_id = ids["pad_token_id"]
    model.generation_config.do_sample = False
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    model.eval()
    return model


def tiny_llama(
    path: str | Path,
    tokenizer,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    max_positions: int = 2048,
):
    """A randomly initialised ``LlamaForCausalLM`` for ``tokenizer``, saved with it to ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        **_special_ids(tokenizer),
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return _save_model(model, tokenizer, path)


def tiny_gemma3(
    path: str | Path,
    tokenizer,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    sliding_window: int = 8,
    max_positions: int = 2048,
):
    """A randomly initialised ``Gemma3ForCausalLM`` (text-only) for ``tokenizer``, saved to ``path``.

    Layer 0 uses sliding-window attention (window ``sliding_window``), the last layer full
    attention, as Gemma 3 alternates them. Raises ``ImportError`` where transformers has no
    Gemma 3.
    """
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    head_dim = max(hidden // heads, 4)
    layer_types = ["sliding_attention"] * (layers - 1) + ["full_attention"]
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        sliding_window=sliding_window,
        layer_types=layer_types,
        max_position_embeddings=max_positions,
        **_special_ids(tokenizer),
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    return _save_model(model, tokenizer, path)


def load_tiny(path: str | Path):
    """``(model, tokenizer)`` loaded from a folder with the Auto classes, model in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Synthetic task and a trained tiny model
# ---------------------------------------------------------------------------------------------

# label -> cue words; a text's labels are exactly those whose cue words it contains.
# "anger" and "angered" share their first token in the byte-level tokenizer; "admiration" and
# "optimism" are several tokens long.
SYNTHETIC_CUES: dict[str, tuple[str, ...]] = {
    "joy": ("happy", "glad", "delighted"),
    "fear": ("scared", "afraid", "terrified"),
    "anger": ("furious", "mad"),
    "angered": ("insulted", "offended"),
    "sadness": ("sad", "crying", "lonely"),
    "surprise": ("shocked", "amazed"),
    "admiration": ("impressive", "brilliant"),
    "optimism": ("hopeful", "soon"),
}
SYNTHETIC_LABELS: tuple[str, ...] = tuple(SYNTHETIC_CUES)

_FILLER = (
    "i",
    "we",
    "they",
    "the",
    "a",
    "my",
    "our",
    "today",
    "was",
    "is",
    "am",
    "feel",
    "felt",
    "about",
    "this",
    "that",
    "game",
    "movie",
    "dog",
    "trip",
    "work",
    "party",
    "news",
    "really",
    "very",
    "so",
    "at",
    "after",
    "and",
    "with",
    "friends",
    "night",
    "weather",
    "school",
)


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]  # in label-set order


def format_answer(labels: Sequence[str]) -> str:
    """The JSON answer as labeldist's ``json`` format writes it: ``["joy", "fear"]`` or ``[]``."""
    return "[" + ", ".join(f'"{label}"' for label in labels) + "]"


def format_prompt(text: str, answer_prefix: str = "", demonstrations: Sequence[Example] = ()) -> str:
    """``Text: {text}\\nLabels:`` (+ ``" " + answer_prefix`` when one is given), after the
    demonstrations ``Text: {text}\\nLabels: {answer}``, blocks separated by blank lines (the
    layout of labeldist's plain-text prompts, without system and instruction)."""
    blocks = [f"Text: {e.text}\nLabels: {format_answer(e.labels)}" for e in demonstrations]
    blocks.append(f"Text: {text}\nLabels:")
    prompt = "\n\n".join(blocks)
    return f"{prompt} {answer_prefix}" if answer_prefix else prompt


def synthetic_examples(
    labels: Sequence[str] = SYNTHETIC_LABELS,
    n: int = 1000,
    seed: int = 0,
    cues: dict[str, Sequence[str]] | None = None,
    label_counts: Sequence[int] = (0, 1, 1, 1, 2, 2, 3),
) -> list[Example]:
    """``n`` texts whose labels follow from cue words (``happy`` -> joy, ``scared`` -> fear, ...).

    The number of labels of each text is drawn from ``label_counts`` (0 -> no cue, answer
    ``[]``); cue words are placed at random among 3 to 7 filler words. ``labels`` picks a subset of
    :data:`SYNTHETIC_CUES` (or of ``cues``, which maps each label to its cue words).
    """
    cues = dict(cues or SYNTHETIC_CUES)
    labels = tuple(labels)
    missing = [label for label in labels if label not in cues]
    if missing:
        raise ValueError(f"no cue words for {missing}; pass cues={{label: (words, ...)}}")
    rng = random.Random(seed)
    examples: list[Example] = []
    for _ in range(n):
        k = min(rng.choice(label_counts), len(labels))
        chosen = set(rng.sample(labels, k))
        words = [rng.choice(_FILLER) for _ in range(rng.randint(3, 7))]
        # in label order, not the set's: a set of strings iterates in an order that changes with
        # PYTHONHASHSEED, which made the texts (and every model trained on them) differ between
        # processes
        for label in (label for label in labels if label in chosen):
            words.insert(rng.randint(0, len(words)), rng.choice(cues[label]))
        examples.append(Example(" ".join(words), tuple(label for label in labels if label in chosen)))
    return examples


def _training_pairs(
    tokenizer, examples: Sequence[Example], rng: random.Random, max_shots: int = 0
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids + EOS) for each example, prompt with or without the ``[`` prefix,
    each side tokenized on its own as labeldist does at inference; with ``max_shots``, 0 to
    ``max_shots`` other examples come first as demonstrations."""
    eos = tokenizer.eos_token_id
    pairs = []
    for example in examples:
        answer = format_answer(example.labels)
        shots = rng.sample(examples, rng.randint(0, max_shots)) if max_shots else []
        if rng.random() < 0.5:
            prompt, completion = format_prompt(example.text, "", shots), " " + answer
        else:
            prompt, completion = format_prompt(example.text, "[", shots), answer[1:]
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=True)
        completion_ids = tokenizer.encode(completion, add_special_tokens=False) + [eos]
        pairs.append((prompt_ids, completion_ids))
    return pairs


def trained_tiny_llama(
    path: str | Path,
    tokenizer,
    examples: Sequence[Example] | None = None,
    steps: int = 200,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 3e-3,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_shots: int = 0,
):
    """A tiny Llama trained (CPU, seconds) to answer :func:`format_prompt` prompts with a JSON
    label list and EOS; saved with ``tokenizer`` to ``path`` and returned in eval mode.

    Loss is on the answer tokens only. AdamW, linear warm-up then cosine decay, fixed seeds, one
    thread: the same inputs give the same weights. ``max_shots`` > 0 trains on few-shot prompts
    (0 to ``max_shots`` demonstrations before the query; slower: longer sequences).
    """
    import torch

    examples = list(examples) if examples is not None else synthetic_examples(n=2000, seed=seed)
    rng = random.Random(seed)
    pairs = _training_pairs(tokenizer, examples, rng, max_shots)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    with single_thread():
        model = tiny_llama(
            path,
            tokenizer,
            seed=seed,
            hidden=hidden,
            layers=layers,
            heads=heads,
            kv_heads=kv_heads,
            intermediate=4 * hidden,
            max_positions=256,
        )
        model.train()
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
        warmup = max(1, steps // 20)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        order: list[int] = []
        for _ in range(steps):
            if len(order) < batch_size:
                order = list(range(len(pairs)))
                rng.shuffle(order)
            batch = [pairs[order.pop()] for _ in range(batch_size)]
            length = max(len(p) + len(c) for p, c in batch)
            input_ids = torch.full((batch_size, length), pad, dtype=torch.long)
            labels = torch.full((batch_size, length), -100, dtype=torch.long)
            attention = torch.zeros((batch_size, length), dtype=torch.long)
            for row, (p, c) in enumerate(batch):
                ids = p + c
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, len(p) : len(ids)] = torch.tensor(c)
                attention[row, : len(ids)] = 1
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        model.eval()
    return _save_model(model, tokenizer, path)


def greedy_answer(
    model,
    tokenizer,
    text: str,
    answer_prefix: str = "",
    demonstrations: Sequence[Example] = (),
    max_new_tokens: int = 40,
) -> tuple[str, bool]:
    """The greedy continuation of :func:`format_prompt` (``answer_prefix`` + generated text, EOS
    not included) and whether it ended with EOS."""
    import torch

    prompt_ids = tokenizer.encode(format_prompt(text, answer_prefix, demonstrations), add_special_tokens=True)
    with torch.no_grad(), single_thread():
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones((1, len(prompt_ids)), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
    new = out[0, len(prompt_ids) :].tolist()
    ended = bool(new) and new[-1] == tokenizer.eos_token_id
    if ended:
        new = new[:-1]
    return answer_prefix + tokenizer.decode(new, skip_special_tokens=False), ended


@dataclass
class GreedyReport:
    n: int
    parsed: int  # answers that are a JSON list of strings, followed by EOS
    exact: int  # ... whose labels equal the gold labels (order included)
    same_set: int  # ... whose label set equals the gold set
    failures: list[tuple[str, str]]

    @property
    def parse_rate(self) -> float:
        return self.parsed / self.n

    @property
    def exact_rate(self) -> float:
        return self.exact / self.n

    @property
    def set_rate(self) -> float:
        return self.same_set / self.n


def evaluate_greedy(
    model,
    tokenizer,
    examples: Sequence[Example],
    answer_prefix: str = "",
    shots: int = 0,
    demonstrations: Sequence[Example] = (),
    seed: int = 0,
) -> GreedyReport:
    """How often greedy answers are well formed (a JSON list of strings, then EOS) and right.

    With ``shots``, each prompt starts with that many examples drawn from ``demonstrations``.
    """
    if shots and len(demonstrations) < shots:
        raise ValueError(f"{shots} shots need at least {shots} demonstrations")
    rng = random.Random(seed)
    parsed = exact = same_set = 0
    failures = []
    for example in examples:
        shown = rng.sample(list(demonstrations), shots) if shots else ()
        answer, ended = greedy_answer(model, tokenizer, example.text, answer_prefix, shown)
        try:
            value = json.loads(answer)
            ok = ended and isinstance(value, list) and all(isinstance(v, str) for v in value)
        except ValueError:
            ok = False
        if ok:
            parsed += 1
            exact += tuple(value) == example.labels
            same_set += set(value) == set(example.labels)
        if not ok or tuple(value) != example.labels:
            failures.append((example.text, answer))
    return GreedyReport(len(examples), parsed, exact, same_set, failures)


@dataclass
class TrainedModel:
    path: Path
    labels: tuple[str, ...]
    train_seconds: float  # 0.0 when it was loaded from the cache


def get_trained_tiny_llama(cache_dir: str | Path, seed: int = 0, steps: int | None = None, max_shots: int = 0) -> TrainedModel:
    """The trained tiny Llama (byte-level tokenizer) in a folder under ``cache_dir``: trained and
    saved the first time, reused afterwards (call it from a session fixture with
    ``tmp_path_factory.mktemp(...)``). Load it with :func:`load_tiny` (or the Auto classes).

    Default (``max_shots=0``, 200 steps, ~8 s): zero-shot prompts only; it answers few-shot
    prompts in the right format but mostly with the demonstrations' labels. ``max_shots=2``
    (400 steps by default, ~40 s on 2 busy cores) also learns prompts with up to 2 demonstrations.
    Held-out data: ``synthetic_examples(n=..., seed=<anything but seed>)``.
    """
    if steps is None:
        steps = 400 if max_shots else 200
    name = f"trained-tiny-llama-s{seed}-{steps}" + (f"-shots{max_shots}" if max_shots else "")
    folder = Path(cache_dir) / name
    done = folder / "TRAINED"
    if done.exists():
        return TrainedModel(folder, SYNTHETIC_LABELS, 0.0)
    start = time.perf_counter()
    tokenizer = byte_level_bpe_tokenizer(folder / "tokenizer")
    trained_tiny_llama(folder, tokenizer, synthetic_examples(n=2000, seed=seed), steps=steps, seed=seed, max_shots=max_shots)
    seconds = time.perf_counter() - start
    done.write_text(f"{seconds:.2f}\n")
    return TrainedModel(folder, SYNTHETIC_LABELS, seconds)


# A prompt template in the shape the trained tiny model learned ("Text: ...\nLabels: [...]"),
# for `labeldist run` tests.
RUN_TEMPLATE = """\
system: ""
instruction: "Labels: {labels}. {answer_format}"
demonstration: "Text: {text}\\nLabels: {label}"
query: "Text: {text}\\nLabels:"
"""


def tiny_run_argv(trained: TrainedModel, data_dir: Path, split: str, template_dir: Path) -> list[str]:
    """`labeldist run` arguments for the trained tiny model over a generic table whose
    ``labels`` column lists each row's labels (zero-shot, plain prompts)."""
    template = Path(template_dir) / "template.yaml"
    template.write_text(RUN_TEMPLATE)
    labels = "[" + ", ".join(trained.labels) + "]"
    return [
        "run",
        "--dataset",
        "table",
        "--data-dir",
        str(data_dir),
        "--split",
        split,
        "--option",
        "label_list_column=labels",
        "--option",
        f"labels={labels}",
        "--model",
        str(trained.path),
        "--shots",
        "0",
        "--template",
        str(template),
        "--max-new-tokens",
        "24",
        "--no-chat",
        "--quiet",
    ]


def write_label_tables(data_dir: Path, splits: Sequence[tuple[str, int, int]]) -> None:
    """One generic table per split (``data_dir/SPLIT.csv``: id, text, labels) of
    ``synthetic_examples(n, seed)`` for each (split, seed, n); load with the table option
    ``label_list_column=labels``."""
    import pandas as pd

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for split, seed, n in splits:
        rows = [
            {"id": f"{split}{i:03d}", "text": ex.text, "labels": ",".join(ex.labels)}
            for i, ex in enumerate(synthetic_examples(n=n, seed=seed))
        ]
        pd.DataFrame(rows).to_csv(Path(data_dir) / f"{split}.csv", index=False)


def write_vote_tables(data_dir: Path, labels: Sequence[str], splits: Sequence[tuple[str, int, int]]) -> None:
    """One generic table per split (``data_dir/SPLIT.csv``: id, text, annotator, labels) of
    ``synthetic_examples(n, seed)`` for each (split, n, seed), with three annotators: two give
    the cue words' labels, the third adds or drops one label drawn from ``labels`` (one seeded
    generator across the splits, in order). Load with the table options
    ``label_list_column=labels``, ``annotator_column=annotator``."""
    import pandas as pd

    rng = random.Random(0)
    for split, n, seed in splits:
        rows = []
        for i, example in enumerate(synthetic_examples(n=n, seed=seed)):
            for annotator in ("a1", "a2", "a3"):
                chosen = set(example.labels)
                if annotator == "a3":
                    chosen ^= {rng.choice(labels)}
                rows.append(
                    {"id": f"{split}{i:02d}", "text": example.text, "annotator": annotator, "labels": ",".join(sorted(chosen))}
                )
        pd.DataFrame(rows).to_csv(Path(data_dir) / f"{split}.csv", index=False)


def with_positions(model: str | Path, folder: str | Path, positions: int = 1024) -> Path:
    """A copy of a tiny Llama folder declaring ``positions`` positions (made once). Its positions
    are rotary (no table of positions), so the copy reads longer prompts, untrained past the
    trained length: enough where a test needs numbers that are exact, not good (a run refuses a
    prompt past the declared context)."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        shutil.copytree(model, folder, dirs_exist_ok=True)
        config = json.loads((folder / "config.json").read_text())
        config["max_position_embeddings"] = positions
        (folder / "config.json").write_text(json.dumps(config))
    return folder
