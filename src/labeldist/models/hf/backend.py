"""Hugging Face transformers backend (CPU and CUDA).

Generation is a plain greedy loop over a left-padded batch with a key/value cache, so that
everything later scoring needs is kept from the one pass: the next-token log-distribution
at every step and the cache of every generated token. The label slots of each answer are then
scored against that cache in one extra "tree" forward pass per item
(:mod:`labeldist.models.hf.scoring`); no prompt is ever encoded twice.

Why one file: generation, slot scoring, the float32 precision check and the unary/pairwise
answer scoring all run on the same key/value cache and decoding state that this class owns.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from labeldist.errors import ModelError
from labeldist.models.base import Backend, Capabilities, Generation, answer_log_weights, draw_seed
from labeldist.models.encoding import PromptEncoding, special_token_strings
from labeldist.models.hf.scoring import (
    AnswerContext,
    ContinuationScorer,
    ItemContext,
    at_least_float32,
    sliding_window,
)
from labeldist.models.hf.settings import HFSettings
from labeldist.models.precision import precision_report
from labeldist.models.resolve import ResolvedModel, resolve_model
from labeldist.models.slot_plans import PreparedAnswer, first_token_ids, prepare_answer, slot_distributions
from labeldist.prompts import AnswerFormat, Prompt
from labeldist.prompts.formats import answer_closed
from labeldist.prompts.judgements import JudgementPrompt
from labeldist.slots.locate import SlotPlan
from labeldist.slots.requests import PRUNE_TOLERANCE, ScoreRequest
from labeldist.slots.tokens import TokenTexts, eos_ids

log = logging.getLogger("labeldist")

# Prompts sharing at least this many leading tokens get those computed once per batch.
MIN_SHARED_PREFIX = 16
# a shared prefix's key/values are computed in chunks of this many tokens, and only whole chunks
# are reused by the next prompt (see _shared_prefix)
PREFIX_CHUNK = 32


@dataclass
class _PreparedItem:
    prepared: PreparedAnswer
    context: ItemContext


def pick_device(device: str | None) -> torch.device:
    """The torch device for ``device``; None or ``"auto"`` picks CUDA when available, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def context_length(config) -> int | None:
    """The most positions ``config``'s model reads (its text model's, for a multimodal one)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class HFBackend(PromptEncoding, Backend):
    """A causal LM from transformers, greedy, batched with left padding.

    ``chat``: use the tokenizer's chat template (None: when it has one). ``quantization``:
    "4bit" or "8bit" through bitsandbytes, CUDA only.
    """

    capabilities = Capabilities(
        exact_slots=True, marginal=True, samples=True, hidden_states=True, judgements=True, precision_check=True, ray=True
    )
    settings_class = HFSettings

    @classmethod
    def create(cls, model: str, settings: HFSettings, *, chat: bool | None, max_new_tokens: int, progress: bool) -> HFBackend:
        """The model loaded under ``settings`` (``progress``: transformers' loading bar)."""
        with _transformers_bars(progress):  # --quiet also hides transformers' "Loading weights" bar
            return cls(
                model,
                device=settings.device,
                dtype=settings.dtype,
                chat=chat,
                max_new_tokens=max_new_tokens,
                quantization=settings.quantization,
                prune_tolerance=settings.prune_tolerance,
            )

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        chat: bool | None = None,
        max_new_tokens: int = 64,
        quantization: str | None = None,
        prune_tolerance: float = PRUNE_TOLERANCE,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not 0.0 <= prune_tolerance < 1.0:
            raise ModelError(f"the prune tolerance must be in [0, 1), not {prune_tolerance!r}")

        self.resolved: ResolvedModel = resolve_model(model)
        self.name = model
        self.device = pick_device(device)
        self.max_new_tokens = max_new_tokens
        started = time.perf_counter()
        load_kwargs: dict = {}
        if dtype and dtype != "auto":
            load_kwargs["dtype"] = getattr(torch, dtype)
        elif self.device.type == "cpu":
            load_kwargs["dtype"] = torch.float32  # exact probabilities: no half precision on CPU
        if quantization:
            if self.device.type != "cuda":
                raise ModelError(f"--quantization {quantization} needs a CUDA GPU (bitsandbytes)")
            try:
                from transformers import BitsAndBytesConfig
            except ImportError as err:
                raise ModelError("quantization needs bitsandbytes: pip install bitsandbytes") from err
            load_kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=quantization == "4bit", load_in_8bit=quantization == "8bit"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.resolved.path)
            loaded = AutoModelForCausalLM.from_pretrained(self.resolved.path, **load_kwargs)
        except (OSError, ValueError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"cannot load model {model!r}: {first_line}") from err
        if not quantization:
            loaded.to(self.device)
        self.load_seconds = time.perf_counter() - started
        self.quantization = quantization
        self._setup(loaded, tokenizer, chat)
        self.scorer.tolerance = prune_tolerance

    @classmethod
    def from_objects(cls, model, tokenizer, *, name: str, chat: bool | None = None, max_new_tokens: int = 64) -> HFBackend:
        """A backend over a model and tokenizer already in memory (a randomly initialised model
        of a real size in the benchmarks, a model just trained in the tests); the model stays
        on its device and dtype."""
        self = cls.__new__(cls)
        self.resolved = ResolvedModel(name=name, path="<in memory>", source="objects")
        self.name = name
        self.device = model.device
        self.max_new_tokens = max_new_tokens
        self.load_seconds = 0.0
        self.quantization = None
        self._setup(model, tokenizer, chat)
        return self

    def _setup(self, model, tokenizer, chat: bool | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model.eval()
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat and not has_template:
            raise ModelError(f"model {self.name!r} has no chat template; run without --chat")
        self.chat = has_template if chat is None else chat
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.texts = TokenTexts(self.tokenizer)
        self._specials = special_token_strings(self.tokenizer)
        self.eos = eos_ids(self.tokenizer, self.model.config, getattr(self.model, "generation_config", None))
        self.context_length = context_length(self.model.config)
        parameters = inspect.signature(self.model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
        # only the last position's logits are needed while decoding: the full prompt's logits
        # would be (batch x prompt length x vocabulary) floats, most of the prefill's cost
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        self._prefix_cache = None  # (token ids, cache) of the last shared prompt prefix
        self._sliding = sliding_window(self.model.config)[0] is not None
        self.scorer = ContinuationScorer(self.model, self.tokenizer, self.texts, self.eos, self.cache_kwarg)

    # -- prompts -----------------------------------------------------------------------------

    def describe(self) -> dict:
        """The hf backend's model source and type, tokenizer, device, dtype, quantization, EOS ids and pruning tolerance."""
        return {
            "backend": "hf",
            "model": self.name,
            "path": self.resolved.path,
            "source": self.resolved.source,
            "upstream": self.resolved.upstream,
            "model_type": self.model.config.model_type,
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": self.texts.size,
            "chat_template": self.chat,
            "device": str(self.device),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "quantization": self.quantization,
            "eos_ids": self.eos,
            "max_new_tokens": self.max_new_tokens,
            # slot probabilities sum every tokenisation; prefixes below this are bounded, not extended
            "prune_tolerance": self.scorer.tolerance,
        }

    # -- generation --------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Prompt],
        labels: Sequence[str],
        answer_format: AnswerFormat,
        *,
        save_hidden: bool = False,
        forced_answers: Sequence[str] | None = None,
        last_slot_only: bool = False,
        answer_weights: Sequence[float] | None = None,
    ) -> list[Generation]:
        """Greedy answers with their label slots. ``forced_answers`` (text after the answer
        prefix) replaces greedy choice by these answers, to score given answers (gold labels,
        another model's output) exactly as if the model had written them. ``last_slot_only``:
        score only each answer's last slot (the marginal's trie needs nothing else).
        ``answer_weights``: tokenisations are pruned when their probability times the answer's
        weight is below the tolerance (:meth:`Backend.generate`)."""
        log_weights = answer_log_weights(answer_weights, len(prompts))
        labels = tuple(labels)
        rendered, encoded = map(list, zip(*(self.encode_prompt(p) for p in prompts)))
        forced = None
        if forced_answers is not None:
            if len(forced_answers) != len(prompts):
                raise ValueError(f"{len(forced_answers)} forced answers for {len(prompts)} prompts")
            forced = [self.scorer.tokenize_in_context(ids, text) for ids, text in zip(encoded, forced_answers)]
            if not save_hidden and len({tuple(ids) for ids in encoded}) < len(encoded):  # several answers to a prompt
                given = (rendered, encoded, forced, log_weights)
                return self._given_answers(prompts, *given, labels, answer_format, last_slot_only)
        started = time.perf_counter()
        state = self._decode(encoded, [p.answer_prefix for p in prompts], answer_format, save_hidden, forced)
        decode_seconds = time.perf_counter() - started
        started = time.perf_counter()
        items = [
            self._prepare(i, prompt, encoded[i], state, labels, answer_format, last_slot_only, log_weights[i])
            for i, prompt in enumerate(prompts)
        ]
        contexts = [item.context for item in items]
        scored = self.scorer.score_batch_bounded(contexts, state["cache"], self._key_positions(state, encoded))
        results = [
            self._assemble(i, item, logprobs, pruned, rendered[i], state, labels, save_hidden)
            for i, (item, (logprobs, pruned)) in enumerate(zip(items, scored))
        ]
        slot_seconds = time.perf_counter() - started
        for generation in results:
            generation.timings = {"decode": decode_seconds / len(prompts), "slots": slot_seconds / len(prompts)}
        return results

    def _given_answers(self, prompts, rendered, encoded, forced, log_weights, labels, fmt, last_slot_only) -> list[Generation]:
        """Given answers, several to a prompt (the marginal's nodes, of one item or of several):
        each distinct prompt once in the batch cache, its answers as one trie, each answer's
        slots hanging off its own path (:meth:`ContinuationScorer.score_given_answers`); the
        same numbers as a row per answer, without a row per answer repeating its prompt."""
        started = time.perf_counter()
        row_of: dict[tuple[int, ...], int] = {}
        rows = [row_of.setdefault(tuple(ids), len(row_of)) for ids in encoded]
        unique = [list(ids) for ids in row_of]
        prefixes = [""] * len(unique)
        state = self._decode(unique, prefixes, fmt, False, forced=[[] for _ in unique])
        prepared = [
            prepare_answer(prompt.answer_prefix, tokens, self.eos, self.texts, labels, fmt, last_slot_only)
            for prompt, tokens in zip(prompts, forced)
        ]
        decode_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scored, contexts = self.scorer.score_given_answers(
            unique,
            state["cache"],
            self._key_positions(state, unique),
            state["steps"][0],
            rows,
            [p.answer_ids for p in prepared],
            [p.requests for p in prepared],
            log_weights,
        )
        done = {"finished": [len(tokens) > 0 for tokens in forced], "generated": forced, "hidden": []}
        results = []
        for i, (answer, (logprobs, pruned), context) in enumerate(zip(prepared, scored, contexts)):
            results.append(self._assemble(i, _PreparedItem(answer, context), logprobs, pruned, rendered[i], done, labels, False))
        slot_seconds = time.perf_counter() - started
        for generation in results:
            generation.timings = {"decode": decode_seconds / len(prompts), "slots": slot_seconds / len(prompts)}
        return results

    def _forward(self, input_ids, attention_mask, position_ids, cache, hidden: bool, every_position: bool = False):
        keep = {} if every_position else self._last_logits_only
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            output_hidden_states=hidden,
            **{self.cache_kwarg: cache},
            **keep,
        )

    def _decode(
        self, encoded: list[list[int]], prefixes: list[str], fmt: AnswerFormat, save_hidden: bool, forced=None, choose=None
    ) -> dict:
        """Decode the batch: greedy, the ``forced`` token ids, or each next token from
        ``choose(step log-probabilities (batch x vocabulary))`` (sampling)."""

        batch = len(encoded)
        shared, cache = self._shared_prefix(encoded)
        suffixes = [ids[shared:] for ids in encoded]
        width = max(len(e) for e in suffixes)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        suffix_mask = torch.zeros((batch, width), dtype=torch.long)
        for i, ids in enumerate(suffixes):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            suffix_mask[i, width - len(ids) :] = 1
        # each row: [shared prefix][left padding][its own suffix]; padding is masked out and
        # positions continue from the shared prefix, so every row computes as if unpadded
        # the mask and positions live on the device and grow there, one column a step
        attention = torch.cat([torch.ones((batch, shared), dtype=torch.long), suffix_mask], dim=1).to(self.device)
        positions = (shared + (suffix_mask.cumsum(-1) - 1).clamp(min=0)).to(self.device)
        out = self._forward(input_ids.to(self.device), attention, positions, cache, save_hidden)
        one_column = torch.ones((batch, 1), dtype=torch.long, device=self.device)
        # step distributions stay on the device: slot scoring gathers from them there
        steps = [torch.log_softmax(at_least_float32(out.logits[:, -1]), dim=-1)]
        hidden_steps = [self._last_hidden(out)] if save_hidden else []
        generated: list[list[int]] = [[] for _ in range(batch)]
        active = torch.ones(batch, dtype=torch.bool)
        finished = [False] * batch
        eos = set(self.eos)
        if forced is not None:
            active = torch.tensor([len(f) > 0 for f in forced])
        limit = self.max_new_tokens if forced is None else max(len(f) for f in forced)
        if forced is not None and not save_hidden and limit > 0:
            # given answers go through in one pass: the same columns, positions and attention
            # as feeding them a token a step (a row past its end is fed padding, attended, as
            # there), the causal mask standing in for the steps
            block = torch.full((batch, limit), self.pad_id, dtype=torch.long)
            for i, tokens in enumerate(forced):
                block[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            attention = torch.cat([attention, torch.ones((batch, limit), dtype=torch.long, device=self.device)], dim=1)
            positions = positions[:, -1:] + torch.arange(1, limit + 1, device=self.device)
            out = self._forward(block.to(self.device), attention, positions, cache, False, every_position=True)
            steps.extend(torch.log_softmax(at_least_float32(out.logits), dim=-1).unbind(1))
            generated = [list(tokens) for tokens in forced]
            finished = [len(tokens) > 0 for tokens in forced]
            limit = 0
        for _ in range(limit):
            # one transfer of the batch's greedy tokens per step (none when the answers are given)
            if forced is not None:
                next_tokens = [0] * batch
            else:
                next_tokens = steps[-1].argmax(-1).tolist() if choose is None else choose(steps[-1])
            ending = torch.zeros(batch, dtype=torch.bool)
            for i in torch.nonzero(active).flatten().tolist():
                if forced is not None:
                    next_tokens[i] = forced[i][len(generated[i])]
                    generated[i].append(next_tokens[i])
                    if len(generated[i]) == len(forced[i]):
                        finished[i] = ending[i] = True
                    continue
                token = next_tokens[i]
                generated[i].append(token)
                if token in eos or answer_closed(fmt, prefixes[i] + self.texts.text(generated[i])):
                    finished[i] = True
                    ending[i] = True
                elif len(generated[i]) >= self.max_new_tokens:
                    ending[i] = True
            # every generated token is fed once, also the last one of a row, so the cache and
            # the step distributions cover each answer to its end
            feed = torch.where(active, torch.tensor(next_tokens), torch.full((batch,), self.pad_id))
            attention = torch.cat([attention, one_column], dim=1)
            positions = positions[:, -1:] + 1
            out = self._forward(feed[:, None].to(self.device), attention, positions, cache, save_hidden)
            steps.append(torch.log_softmax(at_least_float32(out.logits[:, -1]), dim=-1))
            if save_hidden:
                hidden_steps.append(self._last_hidden(out))
            active &= ~ending
            if not active.any():
                break
        return {
            "cache": cache,
            "shared": shared,
            "pad": [width - len(e) for e in suffixes],
            "steps": torch.stack(steps),  # (steps, batch, vocabulary), on the device
            "hidden": hidden_steps,
            "generated": generated,
            "finished": finished,
        }

    def _shared_prefix(self, encoded: list[list[int]]):
        """The key/values of the prompts' longest common token prefix, computed once and kept
        for the next batch (prompts with the same demonstrations share almost everything but
        the query), expanded to the batch without copying."""
        from transformers.cache_utils import DynamicCache

        shared = _common_prefix_length(encoded)
        # keep one token of each prompt for the prefill, which yields the first distribution;
        # a short common prefix is not worth a separate pass
        shared = min(shared, min(len(e) for e in encoded) - 1)
        # sliding-window layers count cache slots, so padding between the shared prefix and a
        # row's suffix would shrink that row's window: such models get a plain left-padded batch,
        # unless every row's suffix has the same length (no padding at all: one prompt given
        # several answers, as the marginal's nodes and the sampled answers are)
        padded = len({len(e) - shared for e in encoded}) > 1
        # (saved hidden states need no whole-prompt pass: they are read at the answer's decode
        # steps and at the prefill's last position, which every row's suffix keeps)
        if shared < MIN_SHARED_PREFIX or (self._sliding and padded):
            return 0, DynamicCache()
        key = tuple(encoded[0][:shared])
        if self._prefix_cache is None or self._prefix_cache[0] != key:
            # the part this prefix shares with the last one (the demonstrations, when the
            # marginal or the sampler walks prompts one at a time) is taken from it, not
            # recomputed; whole chunks only, and every prefix is computed chunk by chunk, so a
            # reused chunk holds the very bits a fresh computation gives (the same shapes over
            # the same inputs): a prompt's numbers do not depend on the prompt before it (a Ray
            # worker or a resumed run meets other neighbours than an uninterrupted run)
            known = _common_prefix_length([self._prefix_cache[0], key]) if self._prefix_cache else 0
            known = min(known, shared - 1) // PREFIX_CHUNK * PREFIX_CHUNK
            base = DynamicCache()
            if known:
                for layer_index, layer in enumerate(self._prefix_cache[1].layers):
                    base.update(layer.keys[:, :, :known], layer.values[:, :, :known], layer_index)
            for start in range(known, shared, PREFIX_CHUNK):
                end = min(start + PREFIX_CHUNK, shared)
                ids = torch.tensor([key[start:end]], device=self.device)
                attention = torch.ones((1, end), dtype=torch.long, device=self.device)
                self._forward(ids, attention, torch.arange(start, end, device=self.device)[None], base, False)
            self._prefix_cache = (key, base)
        base = self._prefix_cache[1]
        cache = DynamicCache()
        batch = len(encoded)
        for layer_index, layer in enumerate(base.layers):
            shape = (batch, *layer.keys.shape[1:])
            cache.update(layer.keys.expand(shape), layer.values.expand(shape), layer_index)
        return shared, cache

    @staticmethod
    def _last_hidden(out) -> torch.Tensor:
        # (layers + 1, batch, hidden) at the last position
        return torch.stack([h[:, -1].float() for h in out.hidden_states]).cpu()

    def _key_positions(self, state: dict, encoded: list[list[int]]) -> torch.Tensor:
        """Each batch cache slot's position in its row's own sequence (-1: padding).

        Row i is laid out as [shared prefix][padding][its suffix][its generated tokens], then
        padding fed after it finished; slot s past the padding holds position s - pad_i.
        """
        slots = state["cache"].get_seq_length()
        shared = state["shared"]
        index = torch.arange(slots)
        rows = []
        for i, ids in enumerate(encoded):
            pad = state["pad"][i]
            positions = torch.where(index < shared, index, index - pad)
            fed = len(ids) + len(state["generated"][i])
            invalid = ((index >= shared) & (index < shared + pad)) | (positions >= fed)
            rows.append(torch.where(invalid, torch.full_like(index, -1), positions))
        return torch.stack(rows)

    def _prepare(self, i, prompt, encoded, state, labels, fmt, last_slot_only: bool = False, log_weight=0.0) -> _PreparedItem:
        """An answer's slots and the continuations to score for them (``log_weight``: the log of
        the answer's weight, see :meth:`generate`)."""
        prepared = prepare_answer(prompt.answer_prefix, state["generated"][i], self.eos, self.texts, labels, fmt, last_slot_only)
        steps = state["steps"][: len(prepared.answer_ids) + 1, i]
        context = ItemContext(list(encoded) + prepared.answer_ids, len(encoded), steps, prepared.requests, log_weight)
        return _PreparedItem(prepared, context)

    def _assemble(self, i, item: _PreparedItem, logprobs, pruned, rendered, state, labels, save_hidden) -> Generation:
        prepared, ctx = item.prepared, item.context

        def first_token(plan: SlotPlan) -> np.ndarray:
            # the original method: each label's first token at the label's start, softmax over
            # the label set (labels sharing a first token get the same share)
            found = first_token_ids(plan, prepared, ctx.context_ids, ctx.prompt_length, self.scorer.context_tokenizer, labels)
            if found is None:
                return np.full(len(labels), np.nan)
            j, first_ids = found
            logits = ctx.step_logprobs[j][torch.tensor(first_ids, device=ctx.step_logprobs.device)]
            return torch.softmax(logits, dim=0).cpu().numpy().astype(np.float64)

        slots = slot_distributions(prepared, logprobs, pruned, labels, first_token)
        hidden = None
        if save_hidden:
            hidden = state["hidden"][prepared.hidden_step()][:, i].numpy()
        return Generation(
            prompt_text=rendered,
            answer=prepared.answer,
            generated_tokens=prepared.generated_tokens,
            parsed=prepared.parsed,
            slots=slots,
            hidden=hidden,
            finished=state["finished"][i],
            token_ids=list(state["generated"][i]),
        )

    # -- precision ---------------------------------------------------------------------------

    def precision_check(self, prompts: Sequence[Prompt], labels: Sequence[str], fmt: AnswerFormat, answers) -> dict:
        """How far this model's dtype moves the numbers from float32, on these prompts.

        ``answers``: the answers recorded for the prompts (text after the answer prefix). Each is
        scored again with the model in float32 (its slots then hold the same labels, so every
        label and stop probability can be compared), and the prompts are answered greedily again
        in float32 (how many answers change). The model is cast back to its own dtypes tensor by
        tensor afterwards: bfloat16 -> float32 -> bfloat16 is exact, so nothing is lost."""
        dtype = str(self.model.dtype).removeprefix("torch.")
        if self.quantization:
            return {"items": 0, "dtype": dtype, "skipped": f"{self.quantization} quantized weights cannot be cast to float32"}
        if self.model.dtype == torch.float32:
            return {"items": 0, "dtype": dtype, "skipped": "the model runs in float32 already"}
        started = time.perf_counter()
        # the run's own numbers are not reused: a forced answer is re-tokenised from its text,
        # which may split it otherwise than greedy decoding did, so both sides go the same way
        low = self.generate(prompts, labels, fmt, forced_answers=answers)
        saved = _cast_floating(self.model, torch.float32)
        self._prefix_cache = None
        try:
            high = self.generate(prompts, labels, fmt, forced_answers=answers)
            greedy = self.generate(prompts, labels, fmt)
        finally:
            _restore_dtypes(self.model, saved)
            self._prefix_cache = None
        return precision_report(low, high, greedy, answers, [p.answer_prefix for p in prompts], dtype, started)

    # -- scoring -----------------------------------------------------------------------------

    @torch.no_grad()
    def score_answers(self, prompts: Sequence[JudgementPrompt]) -> list[np.ndarray]:
        """For each unary/pairwise prompt, log P(answer | prompt with fill) for every fill x
        answer (exact: every token of the answer, in context).

        The prompts' common part (shared demonstrations) is computed once and kept across
        batches, each prompt's own part once; all fills and answers of the batch then go
        through the model in one tree pass."""
        encoded, contexts = self.encode_judgements(prompts, self.scorer.context_tokenizer)
        state = self._decode(encoded, [""] * len(prompts), None, False, forced=[[] for _ in prompts])
        items = [
            AnswerContext(ids, state["steps"][0:1, i], fills, answers)
            for i, (ids, (fills, answers)) in enumerate(zip(encoded, contexts))
        ]
        out = self.scorer.answer_logprobs(items, state["cache"], self._key_positions(state, encoded))
        return out

    # -- sampling (labeldist run --samples) ----------------------------------------------------

    @torch.no_grad()
    def sample_answers(
        self, prompts: Sequence[Prompt], answer_format: AnswerFormat, n: int, *, temperature: float = 1.0, seed: int = 0
    ) -> list[list[str]]:
        """``n`` answers per prompt drawn token by token from the model's distribution at
        ``temperature`` (ancestral sampling, no top-k or top-p), each the answer prefix plus what
        was drawn, stopping where a greedy answer would (end of turn, the answer closed, or
        max_new_tokens). Every draw has its own generator, seeded by (seed, item id, draw), so
        the answers do not depend on the batch they were drawn in."""
        if n < 1:
            raise ValueError(f"samples must be at least 1, not {n}")
        if not temperature > 0:
            raise ValueError(f"temperature must be above 0, not {temperature}")
        encoded = [self.encode_prompt(p)[1] for p in prompts]
        rows = [(i, draw) for i in range(len(prompts)) for draw in range(n)]
        answers: list[list[str]] = [[] for _ in prompts]
        # rows go through the model in chunks: every draw of an item is a row of its own
        chunk = max(n, 32)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            generators = [torch.Generator().manual_seed(draw_seed(seed, prompts[i].item_id, draw)) for i, draw in part]

            def choose(step: torch.Tensor, generators=generators) -> list[int]:
                probs = torch.softmax(step.float() / temperature, dim=-1).cpu()
                return [int(torch.multinomial(probs[r], 1, generator=g)) for r, g in enumerate(generators)]

            state = self._decode(
                [encoded[i] for i, _ in part],
                [prompts[i].answer_prefix for i, _ in part],
                answer_format,
                False,
                choose=choose,
            )
            for (i, _), generated in zip(part, state["generated"]):
                answers[i].append(prompts[i].answer_prefix + self.texts.text([t for t in generated if t not in self.eos]))
        return answers

    # -- attention (labeldist analyze --attention) -------------------------------------------

    def use_eager_attention(self) -> None:
        """Switch the model to eager attention, the only implementation that returns attention weights."""
        try:
            self.model.set_attn_implementation("eager")
        except (AttributeError, ValueError):
            self.model.config._attn_implementation = "eager"

    def answer_tokens(self, prompt_text: str, generated: str) -> tuple[list[int], list[int], list[int]]:
        """The token ids of ``prompt_text`` (exactly as rendered), those of ``generated`` tokenised in
        its context, and the character offset in ``generated`` where each answer token ends."""
        prompt_ids = self.encode(prompt_text)
        answer_ids = self.scorer.tokenize_in_context(prompt_ids, generated)
        return prompt_ids, answer_ids, self.texts.char_boundaries(answer_ids)

    def attention_rows(self, ids: Sequence[int], rows: Sequence[int]) -> np.ndarray:
        """Layers x heads x len(rows) x positions: the attention weights of the query positions
        ``rows`` over ``ids`` in one forward pass (eager attention needed)."""
        import torch

        tensor = torch.tensor([list(ids)], device=self.device)
        with torch.no_grad():
            # logits only for the last position: the attention is what is read here, and a large
            # vocabulary's head over every position would cost more than the layers (Gemma 3)
            out = self.model(input_ids=tensor, output_attentions=True, use_cache=False, logits_to_keep=1)
        # only the rows asked for (the full matrices are large)
        return torch.stack([a[0][:, list(rows), :] for a in out.attentions]).float().cpu().numpy()

    def score(self, prefix: str, continuations: Sequence[str]) -> list[float]:
        """log P(continuation | prefix) for each continuation (exact tokens, tokenised in the
        context of the prefix); the prefix is encoded once."""
        from transformers.cache_utils import DynamicCache

        ids = self.encode(prefix)
        cache = DynamicCache()
        n = len(ids)
        tensor = torch.tensor([ids], device=self.device)
        out = self._forward(tensor, torch.ones_like(tensor), torch.arange(n, device=self.device)[None], cache, False)
        steps = torch.log_softmax(at_least_float32(out.logits[0, -1:]), dim=-1)
        requests = [ScoreRequest(0, text, exact_tokens=True) for text in continuations]
        return self.scorer.score(ids, n, cache, steps, requests).tolist()


@contextmanager
def _transformers_bars(shown: bool):
    from transformers.utils import logging as transformers_logging

    before = transformers_logging.is_progress_bar_enabled()
    if not shown:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if before and not shown:
            transformers_logging.enable_progress_bar()


def _cast_floating(model, dtype: torch.dtype) -> dict[str, torch.dtype]:
    """Cast every floating parameter and buffer to ``dtype`` in place; returns their dtypes before."""
    saved = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and tensor.dtype != dtype:
            saved[name] = tensor.dtype
            tensor.data = tensor.data.to(dtype)
    return saved


def _restore_dtypes(model, saved: dict[str, torch.dtype]) -> None:
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name in saved:
            tensor.data = tensor.data.to(saved[name])


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for j in range(n):
        token = first[j]
        if any(s[j] != token for s in sequences[1:]):
            return j
    return n
