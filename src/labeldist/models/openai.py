"""A backend that talks to an OpenAI-compatible HTTP server: vLLM, llama.cpp's server
(``llama-cpp-python[server]``), TGI, SGLang, or a hosted API.

Such a server reports, per generated position, only the top-k next tokens (k <= 20 on most),
so per-slot label probabilities are bounded from them (:mod:`labeldist.models.topk`) and made
exact where the server lets us look further:

1. the answer is generated greedily with ``logprobs``; each generated token gives the top-k at
   one node of the text tree;
2. on the completions endpoint, every node a label still needs (the text after a label's first
   token, or after a whole label, where its terminator is decided) is *expanded*: one request
   for that exact text with ``max_tokens=1`` returns the top-k there. With a prefix cache
   (vLLM ``--enable-prefix-caching``, llama.cpp's prompt reuse) each such request costs a
   handful of tokens. Rounds repeat until every label's bounds are within ``tolerance`` or
   nothing more can be learnt;
3. a label whose first token is outside the top-k can only be bounded by the unreported mass;
   with ``exact_tails`` such labels are scored by echoing the prompt with ``logprobs``
   (``echo``), which returns the log-probability of every prompt token whatever its rank.
   Echo is costly on llama-cpp-python (it ranks the whole vocabulary at every prompt token, ~30
   ms a token on 2 cores), cheap on vLLM, and absent on chat-only APIs; each echo is checked
   against the probabilities already known before it is trusted.

The chat endpoint (no client-side chat template) allows step 1 only: bounds from the
generated path, the rest recorded as upper bounds (``coverage`` < 1 in the run).

Text, not token ids, crosses the wire: the server tokenises ``prompt + text`` itself, which may
segment a context differently from the tokens it generated. The numbers are then those of the
same text in another segmentation, a difference documented in docs/scale.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labeldist.errors import ModelError
from labeldist.models.base import Backend, Generation, SlotDistribution
from labeldist.models.hf import _answer_closed
from labeldist.models.http import RequestFailed, ServerClient, ServerUnavailable
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
    walk,
)
from labeldist.prompts import AnswerFormat, Prompt
from labeldist.slots.locate import SlotPlan, plan_slots

log = logging.getLogger("labeldist")

ENDPOINTS = ("completions", "chat")
# How far an echoed log-probability may stray from the one generation reported for the same
# token before the echo is called misaligned (llama-cpp-python shifts echoes by one position
# for prompts without a BOS token).
ECHO_AGREEMENT = 0.05
MAX_ROUNDS = 64  # rounds of expansion; each goes one token deeper


@dataclass
class ServerSettings:
    """How to reach the server and what to ask of it (the CLI's --base-url and friends)."""

    base_url: str
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
        }


@dataclass
class _Item:
    prompt: Prompt
    text: str | None  # the completions prompt (None on the chat endpoint)
    nodes: dict[str, Step] = field(default_factory=dict)  # key: generated text so far
    ended: set[str] = field(default_factory=set)  # nodes where the server stopped at once (EOS)
    failed: set[str] = field(default_factory=set)


class OpenAIBackend(Backend):
    """Greedy generation and continuation scoring through an OpenAI-compatible server."""

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
            self.tokenizer = _load_tokenizer(settings.tokenizer)
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
            s.base_url,
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

    def _body(self, **fields) -> dict:
        return {"model": self.settings.model, "temperature": 0, **self.settings.extra, **fields}

    async def _probe(self) -> None:
        """Check at the start that the server answers, serves the model, and returns logprobs,
        so a wrong URL, model or server fails in one line before any item is sent."""
        try:
            listed = await self._client.get("/models")
            self.served = [m.get("id") for m in listed.get("data", []) if isinstance(m, dict)]
        except RequestFailed:
            self.served = None  # servers without /models
        except ServerUnavailable as err:
            if "answered 404" not in str(err):
                raise
            self.served = None
        if self.served and self.settings.model not in self.served:
            raise ModelError(
                f"{self.settings.base_url} does not serve model {self.settings.model!r}; it serves: {', '.join(self.served)}"
            )
        try:
            if self.endpoint == "completions":
                body = await self._client.post(
                    "/completions", self._body(prompt="Hello", max_tokens=1, logprobs=self.settings.top_logprobs), "probe"
                )
                choice = _choice(body, "probe")
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
                choice = _choice(body, "probe")
                steps = steps_from_chat(
                    (choice.get("logprobs") or {}).get("content"),
                    (choice.get("message") or {}).get("content") or "",
                    where="probe",
                )
        except (RequestFailed, LogprobError) as err:
            raise ModelError(
                f"{self.settings.base_url} cannot give what labeldist needs on /{self.endpoint}"
                f"{'/completions' if self.endpoint == 'chat' else ''} with logprobs "
                f"(top {self.settings.top_logprobs}): {err}"
            ) from None
        if steps:
            self.top_seen = max(self.top_seen, max(len(s.top) for _, s in steps))

    # -- prompts -----------------------------------------------------------------------------

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
            "base_url": s.base_url,
            "endpoint": self.endpoint,
            "served_models": self.served,
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
    ) -> list[Generation]:
        """Greedy answers and their slots. An item the server fails on (after retries) comes
        back with ``error`` set and no slots; a server that is down raises ModelError."""
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
        item = _Item(prompt, self.render(prompt) if self.endpoint == "completions" else None)
        shown = self.render(prompt)
        try:
            generated, steps, finish = await self._complete(item)
            return await self._slots(item, shown, generated, steps, finish, labels, fmt)
        except (RequestFailed, LogprobError) as err:
            return _gap(prompt, shown, f"{type(err).__name__}: {err}" if isinstance(err, LogprobError) else str(err))

    async def _complete(self, item: _Item) -> tuple[str, list[tuple[int, Step]], str]:
        k = self.settings.top_logprobs
        where = f"item {item.prompt.item_id}"
        if self.endpoint == "completions":
            body = await self._client.post(
                "/completions", self._body(prompt=item.text, max_tokens=self.max_new_tokens, logprobs=k), "generate"
            )
            choice = _choice(body, where)
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
            choice = _choice(body, where)
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
            if _answer_closed(fmt, prefix + generated[:end]):
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
            key, residual = _anchor(generated, boundaries, plan.decision - len(prefix))
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
            key, residual = _anchor(generated, boundaries, plan.label_start - prefix_length)
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

    # -- the tree of nodes -------------------------------------------------------------------

    async def _resolve(self, item: _Item, requests: list[tuple[str, Target]]) -> list[Bounds]:
        """Bounds for every (start node, target), expanding nodes (completions) and echoing
        tails (``exact_tails``) until they are within the tolerance or nothing is left to ask."""
        tol = self.settings.tolerance
        # a gap above the tolerance can be the sum of many small branches: follow every branch
        # that could move a number by a hundredth of it
        branch = tol / 100
        can_expand = self.endpoint == "completions"
        echoed: set[int] = set()
        for _ in range(MAX_ROUNDS):
            results = [walk(item.nodes, key, target, min_branch=branch, vocabulary=self.vocabulary) for key, target in requests]
            if not can_expand:
                break
            wanted: dict[str, float] = {}
            for result in results:
                if result.bounds.gap > tol:
                    for key, reach in result.wanted.items():
                        if reach > branch and key not in item.failed and key not in item.ended:
                            wanted[key] = max(wanted.get(key, 0.0), reach)
            if wanted:
                await asyncio.gather(*(self._expand(item, key) for key in wanted))
                continue
            tails = [
                i
                for i, result in enumerate(results)
                if self.settings.exact_tails and self.echo_state != "disabled" and result.bounds.gap > tol and i not in echoed
            ]
            if not tails:
                break
            echoed.update(tails)
            await asyncio.gather(*(self._echo(item, *requests[i]) for i in tails))
        return [result.bounds for result in results]

    async def _expand(self, item: _Item, key: str) -> None:
        """The top-k after ``prompt + key``: one max_tokens=1 completion."""
        where = f"item {item.prompt.item_id}, expanding {key[-30:]!r}"
        body = await self._client.post(
            "/completions",
            self._body(prompt=item.text + key, max_tokens=1, logprobs=self.settings.top_logprobs),
            "expand",
        )
        choice = _choice(body, where)
        text = choice.get("text")
        logprobs = choice.get("logprobs")
        if text == "" and isinstance(logprobs, dict) and logprobs.get("tokens") == [] and choice.get("finish_reason") == "stop":
            # llama.cpp ends without reporting the distribution when its greedy token is an
            # end-of-generation token: nothing is learnt here, and asking again will not help
            item.ended.add(key)
            return
        steps = steps_from_completion(logprobs, text if isinstance(text, str) else "", where=where)
        if not steps or steps[0][0] != 0:
            raise LogprobError(f"{where}: the response reports no distribution for its first token")
        self._check_vocabulary(steps[:1])
        item.nodes.setdefault(key, steps[0][1])

    async def _echo(self, item: _Item, key: str, target: Target) -> None:
        """Score ``key + target.text`` by echoing it: every echoed token's log-probability joins
        the nodes it belongs to. The echo is trusted only if it agrees with what generation and
        expansion reported for the same tokens."""
        where = f"item {item.prompt.item_id}, echo"
        full = item.text + key + target.text
        try:
            body = await self._client.post(
                "/completions",
                self._body(prompt=full, max_tokens=1, logprobs=self.settings.top_logprobs, echo=True),
                "echo",
            )
            choice = _choice(body, where)
            text = choice.get("text")
            if not isinstance(text, str) or not text.startswith(full):
                raise LogprobError(f"{where}: the echoed text does not start with the prompt")
            steps = steps_from_completion(choice.get("logprobs"), text, where=where)
        except (RequestFailed, LogprobError) as err:
            self._disable_echo(f"echo failed: {err}")
            return
        base = len(item.text)
        checked = False
        new = {}
        for offset, step in steps:
            if offset < base:
                continue
            node = key_of = text[base:offset]
            known = item.nodes.get(key_of)
            if known is not None and step.taken in known.top and step.taken_logprob is not None:
                if abs(known.top[step.taken] - step.taken_logprob) > ECHO_AGREEMENT:
                    self._disable_echo(
                        f"echoed log-probability of {step.taken!r} ({step.taken_logprob:.4f}) disagrees with the generated "
                        f"one ({known.top[step.taken]:.4f}): the server misaligns echoes"
                    )
                    return
                checked = True
            new[node] = step
        if not checked and self.echo_state == "untested":
            # nothing to compare with yet: keep the numbers out rather than trust them blindly
            return
        self.echo_state = "checked"
        for node, step in new.items():
            if node in item.nodes:
                item.nodes[node].merge(step)
            else:
                item.nodes[node] = step

    def _disable_echo(self, reason: str) -> None:
        if self.echo_state != "disabled":
            log.warning("exact tails disabled: %s; labels outside the top-k keep upper bounds", reason)
            self.echo_state = "disabled"
            self.echo_reason = reason

    # -- continuation scoring (unary, pairwise) ----------------------------------------------

    def score(self, prefix: str, continuations: Sequence[str]) -> list[float]:
        """log P(continuation | prefix) for each continuation (the point estimate; see
        :meth:`score_bounds`)."""
        return [math.log(b.estimate) if b.estimate > 0 else -math.inf for b in self.score_bounds(prefix, continuations)]

    def score_bounds(self, prefix: str, continuations: Sequence[str]) -> list[Bounds]:
        """Lower, estimate and upper bounds of P(continuation | prefix) from top-k log-probabilities (completions only)."""
        if self.endpoint == "chat":
            raise ModelError(
                "continuations of a text prefix cannot be scored through the chat endpoint; give --tokenizer "
                "(or --no-chat) so requests go to /v1/completions"
            )
        item = _Item(Prompt("score", [], prefix, (), ""), prefix)
        return self._run(self._score_item(item, list(continuations)), 1)

    async def _score_item(self, item: _Item, continuations: list[str]) -> list[Bounds]:
        bounds = await self._resolve(item, [("", Target(text, exact=True)) for text in continuations])
        self.inexact_scores += sum(b.gap > self.settings.tolerance for b in bounds)
        return bounds

    def score_answers(self, prompts) -> list[np.ndarray]:
        """For each unary/pairwise prompt (holding the fill marker once), log P(answer | prompt
        with fill) for every fill x answer: the point estimates, exact within the tolerance
        where the server allows (see :attr:`scoring`)."""
        from labeldist.prompts.judgements import FILL

        try:
            return self._run(self._score_answers(prompts, FILL), len(prompts))
        except (RequestFailed, LogprobError) as err:
            # the judgement methods record whole batches; rerunning resumes after the last one
            raise ModelError(f"{err}; rerun the same command to resume") from None

    async def _score_answers(self, prompts, fill_marker: str) -> list[np.ndarray]:
        async def one(judgement) -> np.ndarray:
            answers = judgement.answer_texts(self.chat)
            rows = await asyncio.gather(*(self._score_fill(judgement, fill, answers, fill_marker) for fill in judgement.fills))
            return np.array(rows)

        return list(await asyncio.gather(*(one(p) for p in prompts)))

    async def _score_fill(self, judgement, fill: str, answers, marker: str) -> list[float]:
        prompt = judgement.prompt
        where = f"item {judgement.item_id}"
        if self.endpoint == "completions":
            rendered = self.render(prompt)
            if rendered.count(marker) != 1:
                raise ModelError(f"{where}: its prompt must hold the fill marker once")
            item = _Item(prompt, rendered.replace(marker, fill))
            bounds = await self._resolve(item, [("", Target(a, exact=True)) for a in answers])
        else:
            messages = [dict(m, content=m["content"].replace(marker, fill)) for m in prompt.messages]
            body = await self._client.post(
                "/chat/completions",
                self._body(messages=messages, max_tokens=1, logprobs=True, top_logprobs=self.settings.top_logprobs),
                "score",
            )
            choice = _choice(body, where)
            content = (choice.get("message") or {}).get("content") or ""
            steps = steps_from_chat((choice.get("logprobs") or {}).get("content"), content, where=where)
            item = _Item(prompt, None, nodes={"": steps[0][1]} if steps else {})
            bounds = [walk(item.nodes, "", Target(a, exact=True), vocabulary=self.vocabulary).bounds for a in answers]
        self.inexact_scores += sum(b.gap > self.settings.tolerance for b in bounds)
        return [math.log(b.estimate) if b.estimate > 0 else -math.inf for b in bounds]


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    from labeldist.models.resolve import resolve_model

    resolved = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(resolved.path)
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load tokenizer {name!r}: {str(err).strip().splitlines()[0] if str(err).strip() else err}"
        ) from err


def _choice(body: dict, where: str) -> dict:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LogprobError(f"{where}: the response has no choices")
    return choices[0]


def _anchor(generated: str, boundaries: list[int], offset: int) -> tuple[str, str]:
    """The node at the last token boundary at or before ``offset`` (in the generated text),
    and the generated text between it and ``offset``."""
    start = 0
    for boundary in boundaries:
        if boundary <= offset:
            start = boundary
        else:
            break
    return generated[:start], generated[start:offset]


def _gap(prompt: Prompt, shown: str, error: str) -> Generation:
    from labeldist.prompts import ParsedAnswer

    return Generation(
        prompt_text=shown,
        answer="",
        generated_tokens=0,
        parsed=ParsedAnswer(labels=(), parsed=False, complete=False),
        slots=[],
        finished=False,
        error=error,
    )
