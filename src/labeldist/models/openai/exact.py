"""Exact slots through a server: where an OpenAI-compatible server reads prompts as token ids and
returns every next-token log-probability by token id (vLLM's ``vllm serve --max-logprobs -1``),
the HTTP backend is the exact backend (:mod:`labeldist.models.exact`) with the server as its
engine: the same encoding, slot plans, lattice walk, pruning and bounds as the hf and vllm
backends, every number read from the server exact (``coverage`` 1.0), none bounded from a top-k.

What crosses the wire, on ``/completions``:

- greedy answers and sampled ones: the prompt's token ids, ``return_token_ids`` (the tokens the
  server generated, not a text to tokenise again), neutral sampling settings (a server's own
  defaults, a repetition penalty from the model's generation config, say, would change the
  greedy answer);
- a distribution: the prefix's token ids, ``max_tokens=1``, and either the ids read there
  (``logprob_token_ids``, a handful of numbers) or every log-probability (``logprobs=-1``),
  keyed ``token_id:N`` (``return_tokens_as_token_ids``: token texts are not unique keys). As in
  process, requests of the two kinds go in separate waves (vLLM 0.32 returns wrong
  whole-vocabulary numbers for a request batched with by-id ones).

Whether the server can do this is asked once, at the start (:func:`exact_support`): a server that
cannot (llama.cpp, hosted APIs) keeps the top-k path of :mod:`labeldist.models.openai.backend`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np

from labeldist.errors import ModelError
from labeldist.models.base import Capabilities
from labeldist.models.exact import ExactBackend, ItemFailed, NextTokenModel
from labeldist.models.http import RequestFailed
from labeldist.models.openai.settings import ServerSettings, first_choice
from labeldist.models.topk import LogprobError
from labeldist.models.vllm.engine import MAX_TOKEN_IDS
from labeldist.slots.requests import PRUNE_TOLERANCE
from labeldist.slots.tokens import eos_ids

# what a server that passes the probe can do (the class declares the top-k path's)
EXACT_CAPABILITIES = Capabilities(exact_slots=True, marginal=True, samples=True, judgements=True)

# sampling settings that leave the model's distribution as it is, sent with every request
NEUTRAL = {"top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}

PREFIX = "token_id:"
MASS_TOLERANCE = 1e-3  # a whole distribution must sum to 1 within this


def parse_distribution(top: object, size: int, where: str) -> np.ndarray:
    """A ``{"token_id:N": logprob}`` map as a dense float32 array of ``size`` (or more) entries,
    -inf where the server sent nothing."""
    if not isinstance(top, dict) or not top:
        raise ModelError(f"{where}: the response has no log-probabilities")
    by_text = next((key for key in top if not str(key).startswith(PREFIX)), None)
    if by_text is not None:
        raise ModelError(f"{where}: the server keys log-probabilities by token text ({by_text!r}), not by token id")
    ids = np.fromiter((int(key[len(PREFIX) :]) for key in top), dtype=np.int64, count=len(top))
    values = np.fromiter((float(v) if v is not None else -math.inf for v in top.values()), dtype=np.float32, count=len(top))
    out = np.full(max(size, int(ids.max()) + 1), -np.inf, dtype=np.float32)
    out[ids] = values
    return out


def _first(body: dict, where: str) -> dict:
    """The response's first choice (:func:`first_choice`); its absence stops the run here, as a
    slot cannot be left out of an item."""
    try:
        return first_choice(body, where)
    except LogprobError as err:
        raise ModelError(str(err)) from None


def _top(body: dict, where: str) -> object:
    logprobs = _first(body, where).get("logprobs") or {}
    tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    return tops[0] if isinstance(tops, list) and tops else None


class ServedNextTokenModel(NextTokenModel):
    """The three calls of :class:`NextTokenModel` as requests to ``client``'s server(s)
    (an :class:`~labeldist.models.openai.OpenAIBackend`, for its connection, retries and
    request counts). ``by_id``: the server honours ``logprob_token_ids``."""

    def __init__(self, client, vocab_size: int, *, by_id: bool):
        self.client = client
        self.vocab_size = vocab_size
        self.by_id = by_id
        self.where = client.settings.where

    def _body(self, ids: Sequence[int], **fields) -> dict:
        return self.client.body(prompt=[int(t) for t in ids], **NEUTRAL, **fields)

    def _post(self, bodies: list[dict], kind: str) -> list[dict | RequestFailed]:
        async def each():
            async def one(body):
                try:
                    return await self.client.post("/completions", body, kind)
                except RequestFailed as err:
                    return err

            return await asyncio.gather(*(one(b) for b in bodies))

        return self.client.run_requests(each())

    def _tokens(self, body: dict | RequestFailed, where: str) -> list[int] | ItemFailed:
        if isinstance(body, RequestFailed):
            return ItemFailed(str(body))
        tokens = _first(body, where).get("token_ids")
        if not isinstance(tokens, list):
            raise ModelError(f"{self.where}: {where}: the response has no token_ids (the server does not take return_token_ids)")
        return [int(t) for t in tokens]

    def greedy(self, prompts, max_tokens, stop_ids):
        """Greedy continuations, one request per prompt (the server batches them)."""
        bodies = [
            self._body(ids, max_tokens=max_tokens, temperature=0, stop_token_ids=list(stop_ids), return_token_ids=True)
            for ids in prompts
        ]
        return [self._tokens(body, "generate") for body in self._post(bodies, "generate")]

    def distributions(self, prefixes, wanted):
        """One one-token request per prefix: whole distributions first, then those asked by id
        (separate waves; see the module docstring)."""
        whole = [not self.by_id or ids is None or len(ids) > MAX_TOKEN_IDS for ids in wanted]
        out: list[np.ndarray | None] = [None] * len(prefixes)
        for by_id in (False, True):
            wave = [i for i, asks_all in enumerate(whole) if asks_all != by_id]
            if not wave:
                continue
            asked = [
                {"logprobs": 1, "logprob_token_ids": [int(t) for t in wanted[i]]} if by_id else {"logprobs": -1} for i in wave
            ]
            bodies = [
                self._body(prefixes[i], max_tokens=1, temperature=0, return_tokens_as_token_ids=True, **fields)
                for i, fields in zip(wave, asked)
            ]
            for i, body in zip(wave, self._post(bodies, "distribution")):
                if isinstance(body, RequestFailed):
                    # a slot's distribution cannot be left out of an item: the run stops, a rerun resumes
                    raise ModelError(f"{self.where}: a next-token distribution request failed: {body}")
                dist = parse_distribution(_top(body, "distribution"), self.vocab_size, f"{self.where}: distribution")
                if by_id and not np.isfinite(dist[wanted[i]]).all():
                    missing = [int(t) for t in wanted[i] if not np.isfinite(dist[t])][:5]
                    raise ModelError(f"{self.where}: the server left out token ids it was asked for ({missing})")
                out[i] = dist
        return out

    def sample(self, prompts, max_tokens, stop_ids, temperature, seeds):
        """One continuation per prompt at ``temperature``, each request seeded by its own seed."""
        bodies = [
            self._body(
                ids,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=int(seed),
                stop_token_ids=list(stop_ids),
                return_token_ids=True,
            )
            for ids, seed in zip(prompts, seeds)
        ]
        out = []
        for body in self._post(bodies, "sample"):
            tokens = self._tokens(body, "sample")
            if isinstance(tokens, ItemFailed):
                raise ModelError(f"{self.where}: a sampling request failed: {tokens.reason}")
            out.append(tokens)
        return out


async def exact_support(client, tokenizer) -> tuple[str | None, int, bool]:
    """Whether ``client``'s server can give exact slots: (why not, or None; the vocabulary's
    size as served; whether it honours ``logprob_token_ids``). Three small requests: token ids
    in and token ids out, every next-token log-probability (summing to 1), and a few by id."""
    ids = tokenizer.encode("Hello, world", add_special_tokens=False) or [0]
    body = NEUTRAL | {"prompt": ids, "max_tokens": 1, "temperature": 0}

    async def ask(**fields):
        return await client.post("/completions", client.body(**body, **fields), "probe")

    try:
        answer = await ask(logprobs=1, return_tokens_as_token_ids=True)
        top = _top(answer, "probe")
        if not isinstance(top, dict) or not top or not all(str(k).startswith(PREFIX) for k in top):
            return "it does not return log-probabilities keyed by token id (return_tokens_as_token_ids)", 0, False
        answer = await ask(logprobs=-1, return_tokens_as_token_ids=True)
        dist = parse_distribution(_top(answer, "probe"), 0, "probe")
    except (RequestFailed, ModelError, LogprobError) as err:
        return f"it refused a prompt of token ids, or one asking for every log-probability ({err})", 0, False
    returned = int(np.isfinite(dist).sum())
    mass = float(np.exp(dist[np.isfinite(dist)].astype(np.float64)).sum())
    if returned < len(tokenizer) or abs(mass - 1.0) > MASS_TOLERANCE:
        return (
            (
                f"it returned {returned} next-token log-probabilities summing to {mass:.4f}, not the whole vocabulary "
                f"({len(tokenizer)} tokens; vLLM: --max-logprobs -1)"
            ),
            0,
            False,
        )
    picked = [int(t) for t in np.argsort(dist)[:: max(1, len(dist) // 3)][:3]]
    try:
        answer = await ask(logprobs=1, logprob_token_ids=picked, return_tokens_as_token_ids=True)
        got = parse_distribution(_top(answer, "probe"), len(dist), "probe")
        by_id = bool(np.all(np.abs(got[picked] - dist[picked]) < 1e-3))
    except (RequestFailed, ModelError):
        by_id = False
    return None, len(dist), by_id


class ServedExactBackend(ExactBackend):
    """The HTTP backend with exact slots: a server that passed :func:`exact_support` as the
    engine, prompts encoded here with ``client``'s tokenizer (which must be the served model's)."""

    capabilities = EXACT_CAPABILITIES
    settings_class = ServerSettings

    @classmethod
    def create(cls, model, settings, *, chat, max_new_tokens, progress):
        """Not made by name: ``OpenAIBackend.create`` makes one where the server can give exact slots."""
        raise NotImplementedError("a ServedExactBackend is made by OpenAIBackend.create")

    def __init__(
        self, client, vocab_size: int, by_id: bool, *, chat: bool | None, max_new_tokens: int, tolerance: float = PRUNE_TOLERANCE
    ):
        from transformers import AutoConfig, GenerationConfig

        self.client = client
        self.name = client.name
        self.settings = client.settings
        path = client.tokenizer_path
        try:
            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError):
            config = None
        try:
            generation_config = GenerationConfig.from_pretrained(path)
        except (OSError, ValueError):
            generation_config = None
        self.context_length = client.context_length
        self._setup_exact(
            ServedNextTokenModel(client, vocab_size, by_id=by_id),
            client.tokenizer,
            eos_ids(client.tokenizer, config, generation_config),
            chat,
            max_new_tokens,
            tolerance,
        )

    def generate(self, prompts, labels, answer_format, **options):
        """The exact backend's answers and slots; every number was read whole from the server,
        so each slot's ``coverage`` is 1.0 (what pruning left out is in its bounds, as with hf)."""
        results = super().generate(prompts, labels, answer_format, **options)
        for generation in results:
            for slot in generation.slots:
                slot.coverage = 1.0
        return results

    def describe(self) -> dict:
        """The client's description, with how the slots were computed."""
        return {
            **self.client.describe(),
            "slots": "exact",
            "exact_slots": True,
            "exact_by_token_id": self.engine.by_id,
            "vocab_size": self.engine.vocab_size,
            "chat_template": self.chat,
            "eos_ids": self.eos,
            "prune_tolerance": self.scorer.tolerance,
            "scoring": "exact: every continuation over every tokenisation, from whole next-token distributions",
            "expansion": False,
        }


def exact_or_top_k(client, max_new_tokens: int):
    """The exact backend over ``client``'s server where the server can give exact slots, else
    ``client`` itself (the top-k path) with ``exact_refused`` saying why; a ModelError where the
    settings require exact slots (``exact=true``) and the server cannot."""
    settings = client.settings
    why = "it needs the served model's tokenizer on this side (--tokenizer)"
    if client.endpoint != "completions":
        why = "it needs the completions endpoint (--endpoint completions)"
    elif client.tokenizer is not None:
        # the question is not part of the run's request counts: a server that cannot answer it
        # (llama-cpp-python's takes no prompt of token ids) has not failed any of the run's requests
        counted, client.stats = client.stats, None
        why, vocab_size, by_id = client.run_requests(exact_support(client, client.tokenizer))
        client.stats = counted
        if why is None:
            return ServedExactBackend(client, vocab_size, by_id, chat=client.chat, max_new_tokens=max_new_tokens)
    if settings.exact:
        raise ModelError(f"exact slots through {settings.where} (--backend-option exact=true) are not possible: {why}")
    client.exact_refused = why
    return client
