"""Prompts as token ids on this side, for every backend that holds the model's tokenizer (hf,
vLLM): the chat template applied, and the prompt's own text encoded as text, so that a
special-token string in an item (``<|im_end|>`` in a scraped post) never becomes a turn marker.
Backends that encode the same way give the model the same tokens, which is what lets their
numbers be compared."""

from __future__ import annotations

import dataclasses
import re

from labeldist.errors import ModelError
from labeldist.prompts import Prompt
from labeldist.prompts.judgements import FILL


class PromptEncoding:
    """Rendering and encoding of prompts; the class using it sets ``tokenizer``, ``chat`` and
    ``_specials`` (:func:`special_token_strings` of the tokenizer)."""

    tokenizer: object
    chat: bool
    _specials: tuple[str, ...]

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads: the chat template with a generation prompt and the
        answer prefix, or the plain-text prompt."""
        if self.chat:
            text = self.tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
            return text + prompt.answer_prefix
        return prompt.text

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; a plain prompt gets the tokenizer's special tokens (BOS), a chat-rendered one does not."""
        # the chat template writes its own special tokens; a plain prompt gets BOS if the model uses one
        return self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]

    def prompt_length(self, prompt: Prompt) -> int:
        """How many tokens the model reads for ``prompt`` (its :meth:`encode_prompt` ids)."""
        return len(self.encode_prompt(prompt)[1])

    def judgement_length(self, prompt) -> int:
        """How many tokens the model reads for a unary/pairwise item's longest question (the
        prompt with its longest fill) and longest answer, tokenised as one text (within a token
        or two of how the questions are scored: enough to tell whether it fits the context)."""
        guarded, markers = self._guard(prompt.prompt)
        rendered = self.render(guarded)
        fill = max(prompt.fills, key=len)
        answer = max(prompt.answer_texts(self.chat), key=len)
        return len(self._encode_guarded(rendered.replace(FILL, fill, 1) + answer, markers))

    def encode_prompt(self, prompt: Prompt) -> tuple[str, list[int]]:
        """The rendered prompt and its token ids, with the prompt's own text (item text,
        demonstrations, instructions) encoded as text: a special-token string in it, such as
        ``<|im_end|>`` in a scraped post, becomes ordinary characters, never a turn marker.
        A prompt without such strings is encoded exactly as :meth:`encode` encodes it."""
        guarded, markers = self._guard(prompt)
        rendered = self.render(guarded)
        return restore_specials(rendered, markers), self._encode_guarded(rendered, markers)

    def _guard(self, prompt: Prompt) -> tuple[Prompt, dict[str, str]]:
        """``prompt`` with each special-token string in its texts replaced by a private-use
        placeholder (which the chat template passes through as text), and the placeholders."""
        texts = [m["content"] for m in prompt.messages] + [prompt.text, prompt.answer_prefix]
        found = [s for s in self._specials if any(s in t for t in texts)]
        if not found:
            return prompt, {}
        # supplementary private use area B: no tokenizer's special token, and not labeldist's FILL
        unused = (chr(c) for c in range(0x100000, 0x10FFFE) if not any(chr(c) in t for t in texts))
        markers = {next(unused): s for s in found}

        def hide(text: str) -> str:
            for placeholder, special in markers.items():  # longest first (see special_token_strings)
                text = text.replace(special, placeholder)
            return text

        messages = [{**m, "content": hide(m["content"])} for m in prompt.messages]
        guarded = dataclasses.replace(prompt, messages=messages, text=hide(prompt.text), answer_prefix=hide(prompt.answer_prefix))
        return guarded, markers

    def _encode_guarded(self, text: str, markers: dict[str, str]) -> list[int]:
        if not markers:
            return self.encode(text)
        as_text = {"add_special_tokens": False, "split_special_tokens": True}
        if not self.chat:  # a plain prompt is all text: no special token in it is real
            plain = restore_specials(text, markers)
            return self.tokenizer(plain, add_special_tokens=True, split_special_tokens=True)["input_ids"]
        ids: list[int] = []
        for piece in re.split("(" + "|".join(markers) + ")", text):
            if piece in markers:
                ids += self.tokenizer(markers[piece], **as_text)["input_ids"]
            elif piece:
                ids += self.encode(piece)
        return ids

    def encode_judgements(self, prompts, context_tokenizer) -> tuple[list[list[int]], list[tuple[list, list]]]:
        """Unary/pairwise prompts as tokens: per prompt, the ids up to its fill marker (the item
        text lies before it, see prompts.judgements), and per fill its tokens (with the
        template's tail) and each answer's tokens after them."""
        encoded, tails = [], []
        for prompt in prompts:
            guarded, markers = self._guard(prompt.prompt)
            rendered = self.render(guarded)
            if rendered.count(FILL) != 1:
                raise ModelError(f"item {prompt.item_id}: its prompt must hold the fill marker once (the text contains U+E000?)")
            head, tail = rendered.split(FILL)
            # the item text lies before the fill (see prompts.judgements); the tail is the template's
            encoded.append(self._encode_guarded(head, markers))
            tails.append(restore_specials(tail, markers))
        contexts = []
        for prompt, ids, tail in zip(prompts, encoded, tails):
            fills, answers = [], []
            answer_texts = prompt.answer_texts(self.chat)
            for fill in prompt.fills:
                fill_ids = context_tokenizer.tokenize(ids, fill + tail)
                per_answer = []
                for answer in answer_texts:
                    both = context_tokenizer.tokenize(ids, fill + tail + answer)
                    if both[: len(fill_ids)] != fill_ids or len(both) == len(fill_ids):
                        raise ModelError(
                            f"item {prompt.item_id}: the answer {answer!r} merges with the text before it in this "
                            "tokenizer; end the question (or the template's answer lead) with a space or line break"
                        )
                    per_answer.append(both[len(fill_ids) :])
                fills.append(fill_ids)
                answers.append(per_answer)
            contexts.append((fills, answers))
        return encoded, contexts


def special_token_strings(tokenizer) -> tuple[str, ...]:
    """The texts a tokenizer reads as special tokens (``<|im_start|>``, ``<eos>``, ...), longest
    first so that one containing another is replaced whole."""
    specials = {token.content for token in getattr(tokenizer, "added_tokens_decoder", {}).values() if token.special}
    specials |= set(getattr(tokenizer, "all_special_tokens", []))
    return tuple(sorted((s for s in specials if s), key=lambda s: (-len(s), s)))


def restore_specials(text: str, markers: dict[str, str]) -> str:
    """``text`` with each placeholder of :meth:`PromptEncoding._guard` turned back into its special-token string."""
    for placeholder, special in markers.items():
        text = text.replace(placeholder, special)
    return text
