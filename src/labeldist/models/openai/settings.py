"""The server settings, the per-item request state and small helpers of the HTTP backend."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from labeldist.errors import ModelError
from labeldist.models.topk import (
    LogprobError,
    Step,
)
from labeldist.prompts import Prompt

log = logging.getLogger("labeldist")


ENDPOINTS = ("completions", "chat")


# How far an echoed log-probability may stray from the one generation reported for the same
# token before the echo is called misaligned (llama-cpp-python shifts echoes by one position
# for prompts without a BOS token).
ECHO_AGREEMENT = 0.05


MAX_ROUNDS = 64  # rounds of expansion; each goes one token deeper


@dataclass
class ServerSettings:
    """How to reach the server and what to ask of it (the CLI's --base-url and friends).
    ``base_url``: one server, or a tuple of replicas serving the same model (requests are
    spread over them by load; see models.http.ServerClient)."""

    base_url: str | tuple[str, ...]
    model: str
    api_key_env: str | None = None
    endpoint: str | None = None  # completions | chat | None: completions with a tokenizer or --no-chat
    tokenizer: str | None = None  # model alias/folder/hub id whose chat template renders prompts
    top_logprobs: int = 20
    concurrency: int = 8
    timeout: float = 120.0
    retries: int = 5
    backoff: float = 0.5
    tolerance: float = 1e-4
    exact_tails: bool = False
    extra: dict = field(default_factory=dict)  # added to every request body (repeat_penalty=1.0 ...)
    # exact slots through a server that takes token ids and returns every log-probability
    # (vllm serve --max-logprobs -1; models/openai/exact.py): None uses them where the server
    # can (asked at the start; needs --tokenizer), True requires them, False keeps the top-k path
    exact: bool | None = None

    @property
    def urls(self) -> list[str]:
        """The server's URL, or each replica's."""
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @property
    def where(self) -> str:
        """The server (or the replicas) in words, for messages."""
        urls = self.urls
        return urls[0] if len(urls) == 1 else f"the replicas {', '.join(urls)}"

    def identity(self) -> dict:
        """What decides the records (a resumed run must match): not the URL, key or pacing."""
        return {
            "backend": "openai",
            "endpoint": self.endpoint,
            "tokenizer": self.tokenizer,
            "top_logprobs": self.top_logprobs,
            "tolerance": self.tolerance,
            "exact_tails": self.exact_tails,
            "extra": dict(sorted(self.extra.items())),
            "exact": self.exact,
        }


@dataclass
class ItemState:
    """One item's requests in flight: its prompt, the tree nodes learnt so far, and where the
    server ended or failed."""

    prompt: Prompt
    text: str | None  # the completions prompt (None on the chat endpoint)
    nodes: dict[str, Step] = field(default_factory=dict)  # key: generated text so far
    ended: set[str] = field(default_factory=set)  # nodes where the server stopped at once (EOS)
    failed: set[str] = field(default_factory=set)


def load_tokenizer(name: str):
    """The tokenizer ``name`` names (an alias, folder or hub id), with the folder it was read from
    as ``tokenizer.labeldist_path``."""
    from transformers import AutoTokenizer

    from labeldist.models.resolve import resolve_model

    resolved = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        tokenizer.labeldist_path = resolved.path
        return tokenizer
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load tokenizer {name!r}: {str(err).strip().splitlines()[0] if str(err).strip() else err}"
        ) from err


def first_choice(body: dict, where: str) -> dict:
    """The response's first choice (a LogprobError naming ``where`` when it has none)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LogprobError(f"{where}: the response has no choices")
    return choices[0]


def anchor_at(generated: str, boundaries: list[int], offset: int) -> tuple[str, str]:
    """The node at the last token boundary at or before ``offset`` (in the generated text),
    and the generated text between it and ``offset``."""
    start = 0
    for boundary in boundaries:
        if boundary <= offset:
            start = boundary
        else:
            break
    return generated[:start], generated[start:offset]
