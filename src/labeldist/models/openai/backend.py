"""The HTTP backend: the client, its probe of the server, rendering, description and greedy generation
with per-slot bounds; expansion and scoring come from its two parts, exact slots from ``exact``.

Why one file: the client's plumbing (sessions, request bodies), the probe and the greedy path
all read and write the same per-run state (what the server reported, request counts); what
could stand alone (expansion, scoring, sampling, the exact path) already does."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from labeldist.errors import ModelError
from labeldist.models.base import Backend, Capabilities, Generation, SlotDistribution
from labeldist.models.http import RequestFailed, ServerClient, ServerUnavailable
from labeldist.models.openai.expansion import Expansion
from labeldist.models.openai.sampling import Sampling
from labeldist.models.openai.scoring import Scoring
from labeldist.models.openai.settings import (
    ENDPOINTS,
    ItemState,
    ServerSettings,
    anchor_at,
    first_choice,
    load_tokenizer,
)
from labeldist.models.topk import (
    ZERO,
    Bounds,
    LogprobError,
    Step,
    Target,
    Vocabulary,
    first_token_share,
    steps_from_chat,
    steps_from_completion,
)
from labeldist.prompts import AnswerFormat, Prompt
from labeldist.prompts.formats import answer_closed
from labeldist.slots.locate import SlotPlan, plan_slots


class OpenAIBackend(Expansion, Scoring, Sampling, Backend):
    """Greedy generation and continuation scoring through an OpenAI-compatible server."""

    # slots bounded from the top-k the server reports (exact where expansion closed them: the
    # run records each slot's coverage); a server scores only the answers it wrote itself
    capabilities = Capabilities(samples=True, judgements=True)
    instead = {
        "ray": "a served model spreads over replicas instead: --base-url once per replica",
        "marginal": "or exact slots from a server that takes token ids: vllm serve --max-logprobs -1, --tokenizer and "
        "--backend-option exact=true",
    }
    settings_class = ServerSettings

    @classmethod
    def create(cls, model: str, settings: ServerSettings, *, chat: bool | None, max_new_tokens: int, progress: bool):
        """A client of the server(s) in ``settings``, which serve ``model`` (checked at once)."""
        if settings.model != model:
            settings = dataclasses.replace(settings, model=model)
        client = cls(settings, chat=chat, max_new_tokens=max_new_tokens, progress=progress)
        if settings.exact is False:
            return client
        from labeldist.models.openai.exact import exact_or_top_k

        return exact_or_top_k(client, max_new_tokens)

    @classmethod
    def capabilities_for(cls, settings: dict | None) -> Capabilities:
        """The top-k path's capabilities, or the exact path's where exact slots are required
        (``exact=true``: the run stops at the start if the server cannot give them)."""
        if (settings or {}).get("exact") is True:
            from labeldist.models.openai.exact import EXACT_CAPABILITIES

            return EXACT_CAPABILITIES
        return cls.capabilities

    def __init__(
        self,
        settings: ServerSettings,
        *,
        chat: bool | None = None,
        max_new_tokens: int = 64,
        progress: bool = False,
    ):
        self.settings = settings
        self.name = settings.model
        self.max_new_tokens = max_new_tokens
        self.progress = progress
        if settings.top_logprobs < 1:
            raise ModelError(f"--top-logprobs must be at least 1, not {settings.top_logprobs}")
        self.api_key = None
        if settings.api_key_env:
            self.api_key = os.environ.get(settings.api_key_env)
            if not self.api_key:
                raise ModelError(f"--api-key-env {settings.api_key_env}: that environment variable is not set")
        self.tokenizer = None
        self.vocabulary: Vocabulary | None = None
        if settings.tokenizer:
            self.tokenizer = load_tokenizer(settings.tokenizer)
            # the served model's token texts tighten the bounds (see topk.walk); a tokenizer
            # that is not the served model's is caught when a reported token is not in it
            self.vocabulary = Vocabulary.from_tokenizer(self.tokenizer)
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat and self.tokenizer is not None and not has_template:
            raise ModelError(f"tokenizer {settings.tokenizer!r} has no chat template; run without --chat")
        endpoint = settings.endpoint
        if endpoint is None:
            endpoint = "completions" if (self.tokenizer is not None or chat is False) else "chat"
        if endpoint not in ENDPOINTS:
            raise ModelError(f"--endpoint must be one of {', '.join(ENDPOINTS)}, not {endpoint!r}")
        self.endpoint = endpoint
        # the chat template applies on our side (completions + tokenizer) or on the server's
        self.chat = (has_template if chat is None else chat) if endpoint == "completions" else True
        if endpoint == "completions" and self.chat and self.tokenizer is None:
            raise ModelError(
                "the completions endpoint with a chat model needs the chat template on this side: give "
                "--tokenizer (a model alias, folder or hub id with the template), or --no-chat for plain prompts"
            )
        self.served: list[str] | None = None
        self.exact_refused: str | None = None  # why the server cannot give exact slots (asked by create)
        self.top_seen = 0
        self.echo_state = "unused" if not settings.exact_tails else "untested"
        self.inexact_scores = 0
        self._client: ServerClient | None = None
        self._bar = None
        self.stats = None
        asyncio.run(self._session(self._probe()))

    # -- plumbing ----------------------------------------------------------------------------

    async def _session(self, coroutine):
        """Run one coroutine with a fresh client (one event loop per call from sync code)."""
        s = self.settings
        client = ServerClient(
            s.urls,
            api_key=self.api_key,
            timeout=s.timeout,
            retries=s.retries,
            concurrency=s.concurrency,
            backoff=s.backoff,
        )
        if self.stats is not None:
            client.stats = self.stats
        self.stats = client.stats
        client.on_request = self._tick
        async with client:
            self._client = client
            try:
                return await coroutine
            finally:
                self._client = None

    def _tick(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _check_vocabulary(self, steps: list[tuple[int, Step]]) -> None:
        if self.vocabulary is None:
            return
        for _, step in steps:
            for text in step.top:
                # only plain ASCII is compared: servers show a token that ends inside a
                # character as garbage or nothing
                if text.isascii() and text.isprintable() and not self.vocabulary.known(text):
                    raise ModelError(
                        f"--tokenizer {self.settings.tokenizer!r} is not the tokenizer of the served model: the server "
                        f"reported the token {text!r}, which it does not have"
                    )

    def body(self, **fields) -> dict:
        """A request body for the served model: ``fields`` over the settings' ``extra``."""
        return {"model": self.settings.model, **self.settings.extra, **fields}

    def _body(self, **fields) -> dict:
        """:meth:`body`, greedy unless ``extra`` or ``fields`` say otherwise."""
        return {"temperature": 0, **self.body(**fields)}

    async def post(self, path: str, body: dict, kind: str) -> dict:
        """POST ``body`` to ``path`` within :meth:`run_requests` (retries, concurrency, counts)."""
        return await self._client.post(path, body, kind)

    def run_requests(self, coroutine):
        """Run ``coroutine`` (which calls :meth:`post`) with a fresh connection to the server(s)."""
        return asyncio.run(self._session(coroutine))

    @property
    def tokenizer_path(self) -> str | None:
        """The folder the client-side tokenizer was read from (None without --tokenizer)."""
        return getattr(self.tokenizer, "labeldist_path", None)

    async def _probe(self) -> None:
        """Check at the start that the server answers, serves the model, and returns logprobs,
        so a wrong URL, model or server fails in one line before any item is sent."""
        # every replica is asked: one serving another model is a mistake to stop at
        listings = await self._client.get_each("/models")
        refused = [error for kind, error in listings.values() if kind == "refused"]
        if refused:
            raise refused[0]
        if all(kind == "down" for kind, _ in listings.values()):
            # none answered yet (starting up?): ask again with the retries and their backoff
            try:
                listings = {self.settings.urls[0]: ("ok", await self._client.get("/models"))}
            except RequestFailed:
                listings = {}  # servers without /models
            except ServerUnavailable as err:
                if "answered 404" not in str(err):
                    raise
                listings = {}
        self.served = None  # servers without /models
        for url, (kind, body) in listings.items():
            if kind != "ok":
                continue
            served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
            if served and self.settings.model not in served:
                raise ModelError(f"{url} does not serve model {self.settings.model!r}; it serves: {', '.join(served)}")
            self.served = self.served or served
            for entry in body.get("data", []):
                # vLLM and SGLang say how long a context they serve (the smallest replica's counts)
                if isinstance(entry, dict) and entry.get("id") == self.settings.model:
                    length = entry.get("max_model_len") or entry.get("context_length")
                    if isinstance(length, int) and length > 0:
                        self.context_length = min(self.context_length or length, length)
        try:
            if self.endpoint == "completions":
                body = await self._client.post(
                    "/completions", self._body(prompt="Hello", max_tokens=1, logprobs=self.settings.top_logprobs), "probe"
                )
                choice = first_choice(body, "probe")
                steps = steps_from_completion(choice.get("logprobs"), choice.get("text", ""), where="probe")
            else:
                body = await self._client.post(
                    "/chat/completions",
                    self._body(
                        messages=[{"role": "user", "content": "Hello"}],
                        max_tokens=1,
                        logprobs=True,
                        top_logprobs=self.settings.top_logprobs,
                    ),
                    "probe",
                )
                choice = first_choice(body, "probe")
                steps = steps_from_chat(
                    (choice.get("logprobs") or {}).get("content"),
                    (choice.get("message") or {}).get("content") or "",
                    where="probe",
                )
        except (RequestFailed, LogprobError) as err:
            raise ModelError(
                f"{self.settings.where} cannot give what labeldist needs on /{self.endpoint}"
                f"{'/completions' if self.endpoint == 'chat' else ''} with logprobs "
                f"(top {self.settings.top_logprobs}): {err}"
            ) from None
        if steps:
            self.top_seen = max(self.top_seen, max(len(s.top) for _, s in steps))

    # -- prompts -----------------------------------------------------------------------------

    def prompt_length(self, prompt: Prompt) -> int | None:
        """The completions prompt's tokens, counted with --tokenizer (None without, or on the chat endpoint)."""
        if self.endpoint != "completions" or self.tokenizer is None:
            return None
        return len(self.tokenizer(self.render(prompt), add_special_tokens=not self.chat)["input_ids"])

    def render(self, prompt: Prompt) -> str:
        """The completions prompt: the chat template (on this side) with a generation prompt and
        the answer prefix, or the plain-text prompt."""
        if self.endpoint == "chat":
            # the server renders the messages; what it reads exactly is not known here
            return json.dumps(prompt.messages, ensure_ascii=False)
        if self.chat:
            text = self.tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
            return text + prompt.answer_prefix
        return prompt.text

    def describe(self) -> dict:
        """The server, endpoint, template side, top-k and scoring settings, echo support and request counts."""
        s = self.settings
        return {
            "backend": "openai",
            "model": s.model,
            "base_url": s.base_url if isinstance(s.base_url, str) else list(s.base_url),
            "endpoint": self.endpoint,
            "served_models": self.served,
            "context_length": self.context_length,
            "chat_template": self.chat,
            "template_side": "server" if self.endpoint == "chat" else ("client" if self.chat else None),
            "tokenizer": s.tokenizer,
            "top_logprobs": s.top_logprobs,
            "top_logprobs_returned": self.top_seen,
            "tolerance": s.tolerance,
            "exact_tails": s.exact_tails,
            "scoring": self.scoring,
            "expansion": self.endpoint == "completions",
            "concurrency": s.concurrency,
            "timeout": s.timeout,
            "retries": s.retries,
            "extra": s.extra,
            "max_new_tokens": self.max_new_tokens,
            "api_key_env": s.api_key_env,
            "exact_slots": False,
            "exact_refused": self.exact_refused,
            "echo": self.echo_state,
            "echo_note": getattr(self, "echo_reason", None),
            "inexact_answer_scores": self.inexact_scores,
            "requests": self.stats.as_dict() if self.stats is not None else None,
        }

    @property
    def scoring(self) -> str:
        """How continuations are scored here, in words (for the unary/pairwise methods)."""
        if self.endpoint == "chat":
            return (
                "first token only: the chat endpoint reports the top-k of the answer's first token; answers of "
                "several tokens or outside the top-k get bounds, not exact scores"
            )
        tails = "echo (exact)" if self.settings.exact_tails else "bounded by the unreported mass (no --exact-tails)"
        return (
            f"exact within {self.settings.tolerance:g} through top-{self.settings.top_logprobs} expansions; "
            f"tokens outside the top-k: {tails}"
        )

    # -- generation --------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Prompt],
        labels: Sequence[str],
        answer_format: AnswerFormat,
        *,
        save_hidden: bool = False,
        forced_answers: Sequence[str] | None = None,
        last_slot_only: bool = False,
        answer_weights: Sequence[float] | None = None,  # pruning here is per slot (see Backend.generate)
    ) -> list[Generation]:
        """Greedy answers and their slots. An item the server fails on (after retries) comes
        back with ``error`` set and no slots; a server that is down raises ModelError."""
        if forced_answers is not None:
            raise ModelError("scoring given answers (--marginal) needs the hf backend: a server scores only its own answers")
        if save_hidden:
            raise ModelError("an HTTP server does not return hidden states; run --save-hidden with the hf backend")
        if self.endpoint == "chat" and any(p.answer_prefix for p in prompts):
            raise ModelError("the chat endpoint cannot continue an answer prefix; use --tokenizer (completions) instead")
        labels = tuple(labels)
        started = time.perf_counter()
        results = self._run(self._generate_all(prompts, labels, answer_format), len(prompts))
        seconds = time.perf_counter() - started
        for generation in results:
            generation.timings = {"server": seconds / max(1, len(prompts))}
        return results

    def _run(self, coroutine, items: int):
        if self.progress:
            from tqdm import tqdm

            self._bar = tqdm(desc="requests", unit="req", leave=False, dynamic_ncols=True, position=1)
        try:
            return asyncio.run(self._session(coroutine))
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    async def _generate_all(self, prompts, labels, fmt) -> list[Generation]:
        tasks = [self._generate_one(p, labels, fmt) for p in prompts]
        return list(await asyncio.gather(*tasks))

    async def _generate_one(self, prompt: Prompt, labels: tuple[str, ...], fmt: AnswerFormat) -> Generation:
        item = ItemState(prompt, self.render(prompt) if self.endpoint == "completions" else None)
        shown = self.render(prompt)
        try:
            generated, steps, finish = await self._complete(item)
            return await self._slots(item, shown, generated, steps, finish, labels, fmt)
        except (RequestFailed, LogprobError) as err:
            return Generation.failed(shown, f"{type(err).__name__}: {err}" if isinstance(err, LogprobError) else str(err))

    async def _complete(self, item: ItemState) -> tuple[str, list[tuple[int, Step]], str]:
        k = self.settings.top_logprobs
        where = f"item {item.prompt.item_id}"
        if self.endpoint == "completions":
            body = await self._client.post(
                "/completions", self._body(prompt=item.text, max_tokens=self.max_new_tokens, logprobs=k), "generate"
            )
            choice = first_choice(body, where)
            text = choice.get("text")
            if not isinstance(text, str):
                raise LogprobError(f"{where}: the response has no text")
            steps = steps_from_completion(choice.get("logprobs"), text, where=where)
        else:
            body = await self._client.post(
                "/chat/completions",
                self._body(messages=item.prompt.messages, max_tokens=self.max_new_tokens, logprobs=True, top_logprobs=k),
                "generate",
            )
            choice = first_choice(body, where)
            text = (choice.get("message") or {}).get("content")
            if not isinstance(text, str):
                raise LogprobError(f"{where}: the response has no message content")
            steps = steps_from_chat((choice.get("logprobs") or {}).get("content"), text, where=where)
        if steps:
            self.top_seen = max(self.top_seen, max(len(s.top) for _, s in steps))
        self._check_vocabulary(steps)
        return text, steps, str(choice.get("finish_reason"))

    async def _slots(self, item, shown, generated, steps, finish, labels, fmt) -> Generation:
        prefix = item.prompt.answer_prefix
        # the answer ends where the format closes, as the hf backend stops decoding there
        cut, closed = len(generated), False
        for offset, step in steps:
            end = offset + len(step.taken or "")
            if answer_closed(fmt, prefix + generated[:end]):
                cut, closed = end, True
                break
        kept = [(offset, step) for offset, step in steps if offset < cut]
        generated = generated[:cut]
        for offset, step in kept:
            item.nodes[generated[:offset]] = step
        answer = prefix + generated
        plans = plan_slots(answer, len(prefix), fmt, labels)
        boundaries = [offset for offset, _ in kept] + [len(generated)]
        requests = []  # (plan index, event: 0 for the close, 1 + label index, start key, target)
        for p, plan in enumerate(plans):
            key, residual = anchor_at(generated, boundaries, plan.decision - len(prefix))
            for event, forms in enumerate((plan.close_forms, *(plan.forms_of(label) for label in labels))):
                for form in forms:
                    requests.append((p, event, key, Target(residual + form.text, form.terminators, form.end)))
        bounds = await self._resolve(item, [(key, target) for _, _, key, target in requests])
        # an event's bounds are the sums over its surface forms (disjoint strings)
        events = [[ZERO] * (len(labels) + 1) for _ in plans]
        for (p, event, _, _), b in zip(requests, bounds):
            events[p][event] = events[p][event] + b
        slots = []
        for plan, (stop, *per_label) in zip(plans, events):
            per_label = [b.capped() for b in per_label]
            slots.append(self._slot(plan, stop.capped(), per_label, item, generated, boundaries, len(prefix), labels))
        finished = closed or finish == "stop"
        return Generation(
            prompt_text=shown,
            answer=answer,
            generated_tokens=len(kept) + (1 if finish == "stop" and not closed else 0),
            parsed=fmt.parse(answer, labels),
            slots=slots,
            finished=finished,
        )

    def _slot(self, plan: SlotPlan, stop: Bounds, per_label: list[Bounds], item, generated, boundaries, prefix_length, labels):
        estimate = np.array([b.estimate for b in per_label])
        lower = np.array([b.lower for b in per_label])
        upper = np.array([b.upper for b in per_label])
        observed = float(lower.sum() + stop.lower)
        possible = min(1.0, float(upper.sum() + stop.upper))
        if plan.label_start is None:
            first = np.full(len(labels), np.nan)
        else:
            key, residual = anchor_at(generated, boundaries, plan.label_start - prefix_length)
            texts = [residual + label for label in labels]
            first = np.array(first_token_share(item.nodes.get(key), texts, self._first_pieces(texts)))
        with np.errstate(divide="ignore"):
            return SlotDistribution(
                index=plan.index,
                chosen=plan.chosen,
                raw=plan.raw,
                label_logprobs=np.log(estimate),
                stop_logprob=float(np.log(stop.estimate)) if stop.estimate > 0 else -math.inf,
                first_token_probs=first,
                label_probs_lower=lower,
                label_probs_upper=upper,
                stop_prob_lower=stop.lower,
                stop_prob_upper=stop.upper,
                coverage=observed / possible if possible > 0 else 1.0,
            )

    def _first_pieces(self, texts: list[str]) -> list[str | None] | None:
        """Each text's first token as the served model's tokenizer splits it (None without
        --tokenizer, or where the token is not whole text)."""
        if self.tokenizer is None:
            return None
        pieces = []
        for text in texts:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            piece = self.tokenizer.decode(ids[:1]) if ids else ""
            pieces.append(piece if piece and text.startswith(piece) else None)
        return pieces
