"""What text each vocabulary token stands for, in context.

``tokenizer.decode([id])`` is not that: SentencePiece decoders drop the leading space of a lone
token, and byte-level BPE tokens that hold part of a UTF-8 character decode to U+FFFD. Slot
scoring needs the exact bytes of every token (to find where generated labels start, and which
tokens begin with a terminator such as ``"``), so they are derived here from the vocabulary
itself, for the two token families in use: byte-level BPE (GPT-2, Llama 3, SmolLM, Qwen) and
SentencePiece-style metaspace tokens with byte fallback (Llama 2, Gemma, Mistral).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from labeldist.slots.requests import CONTEXT_TAIL_TOKENS

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
METASPACE = "\u2581"  # "▁"


@lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes -> printable unicode table (a fact of the format: printable
    Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onward, in byte order)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {chr(b): b for b in printable}
    shift = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + shift)] = b
            shift += 1
    return table


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return decoder is not None and "ByteLevel" in repr(decoder)


class TokenTexts:
    """Bytes of every token id, and boolean masks over the vocabulary built from them."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.size = max(len(tokenizer), (max(tokenizer.get_vocab().values()) + 1) if tokenizer.get_vocab() else 0)
        pieces = tokenizer.convert_ids_to_tokens(list(range(self.size)))
        special = set(tokenizer.all_special_ids)
        decoder = _byte_level_decoder() if _is_byte_level(tokenizer) else None
        self.bytes: list[bytes] = []
        for token_id, piece in enumerate(pieces):
            if piece is None or token_id in special:
                self.bytes.append(b"")
            elif decoder is not None:
                try:
                    self.bytes.append(bytes(decoder[ch] for ch in piece))
                except KeyError:  # added (non-byte-level) tokens are plain text
                    self.bytes.append(piece.encode("utf-8"))
            else:
                match = _BYTE_FALLBACK.match(piece)
                if match:
                    self.bytes.append(bytes([int(match.group(1), 16)]))
                else:
                    self.bytes.append(piece.replace(METASPACE, " ").encode("utf-8"))
        # for finding the tokens that begin a string, or that a string begins with
        self._by_bytes: dict[bytes, list[int]] = {}
        for token_id, data in enumerate(self.bytes):
            if data:
                self._by_bytes.setdefault(data, []).append(token_id)
        self._sorted = sorted(self._by_bytes)
        self.special = np.zeros(self.size, dtype=bool)
        self.special[[i for i in special if i < self.size]] = True
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    def text(self, ids: Iterable[int]) -> str:
        """The text of a token sequence as it reads in context (leading spaces kept)."""
        return b"".join(self.bytes[i] for i in ids).decode("utf-8", errors="replace")

    def char_boundaries(self, ids: list[int]) -> list[int]:
        """Character offset where each token ends, as the text would be cut after it.

        A token that ends inside a multi-byte character gets the offset of the last complete
        character before it, so offsets never split a character.
        """
        out = []
        data = b""
        for i in ids:
            data += self.bytes[i]
            out.append(len(data.decode("utf-8", errors="ignore")))
        return out

    def prefixes_of(self, data: bytes) -> list[tuple[int, int]]:
        """(token id, byte length) of every token whose text is a proper prefix of ``data``."""
        out = []
        for length in range(1, len(data)):
            for token_id in self._by_bytes.get(data[:length], ()):
                out.append((token_id, length))
        return out

    def extending(self, data: bytes) -> list[int]:
        """Ids of every token whose text starts with ``data`` (equal included)."""
        start = bisect.bisect_left(self._sorted, data)
        out = []
        for key in self._sorted[start:]:
            if not key.startswith(data):
                break
            out.extend(self._by_bytes[key])
        return out

    def starting_with(self, *prefixes: str) -> np.ndarray:
        """Mask of tokens whose text starts with any of ``prefixes`` (special tokens excluded)."""
        key = tuple(sorted(prefixes))
        if key not in self._masks:
            encoded = tuple(p.encode("utf-8") for p in key)
            self._masks[key] = np.array([bool(b) and b.startswith(encoded) for b in self.bytes], dtype=bool)
        return self._masks[key]


def eos_ids(tokenizer, model_config=None, generation_config=None) -> list[int]:
    """Every token id that ends generation: the tokenizer's EOS and the generation config's
    (chat models often end turns with another token, e.g. ``<|im_end|>``, ``<end_of_turn>``)."""
    ids: set[int] = set()
    for source in (generation_config, model_config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for name in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(name) if name in tokenizer.get_vocab() else None
        if token_id is not None and getattr(tokenizer, "chat_template", None) and name in tokenizer.chat_template:
            ids.add(int(token_id))
    return sorted(ids)


class ContextTokenizer:
    """Canonical tokens of a text where it follows given context tokens, remembered: the same
    label strings recur after the same few tokens in every item."""

    def __init__(self, tokenizer, texts: TokenTexts):
        self.tokenizer = tokenizer
        self.texts = texts
        self._known: dict[tuple, tuple[int, ...]] = {}

    def tokenize(self, prefix_ids: Sequence[int], text: str) -> list[int]:
        """Canonical tokens of ``text`` when it follows the tokens ``prefix_ids``.

        The last few context tokens are re-tokenised alone and with the text appended; when the
        first reproduces itself at the front of the second, the rest is the text's tokens. When
        the tokenizer merges across the boundary, the text is tokenised after a line break
        instead, which keeps SentencePiece tokenizers from adding a word-initial marker.
        """
        if not text:
            return []
        # the result depends on the last context tokens and the text alone
        key = (tuple(prefix_ids[-CONTEXT_TAIL_TOKENS:]), text)
        tokens = self._known.get(key)
        if tokens is None:
            if len(self._known) > 200_000:
                self._known.clear()
            tokens = self._known[key] = tuple(self._tokenize(prefix_ids, text))
        return list(tokens)

    def _tokenize(self, prefix_ids: Sequence[int], text: str) -> list[int]:
        tail_text = self.texts.text(prefix_ids[-CONTEXT_TAIL_TOKENS:])
        alone = self._encode(tail_text)
        together = self._encode(tail_text + text)
        if together[: len(alone)] == alone:
            return together[len(alone) :]
        anchor = self._encode("\n")
        together = self._encode("\n" + text)
        if together[: len(anchor)] == anchor:
            return together[len(anchor) :]
        return self._encode(text)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def follow_mask(texts: TokenTexts, eos: Sequence[int], terminators: tuple[str, ...], end: bool) -> np.ndarray:
    """The tokens that may follow a continuation: those starting with one of ``terminators``,
    and with ``end`` (the answer may end there) a line break or an end-of-sequence token."""
    mask = texts.starting_with(*terminators, *(("\n",) if end else ())) if (terminators or end) else None
    mask = np.zeros(texts.size, dtype=bool) if mask is None else mask.copy()
    if end:
        mask[[i for i in eos if i < texts.size]] = True
    return mask
