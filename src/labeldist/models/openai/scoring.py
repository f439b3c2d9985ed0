"""Continuation scoring through the server: ``score`` and the unary/pairwise ``score_answers``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np

from labeldist.errors import ModelError
from labeldist.models.http import RequestFailed
from labeldist.models.openai.settings import (
    ItemState,
    first_choice,
)
from labeldist.models.topk import (
    Bounds,
    LogprobError,
    Target,
    steps_from_chat,
    walk,
)
from labeldist.prompts import Prompt


class Scoring:
    """Part of :class:`OpenAIBackend`: log-probabilities of given continuations."""

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
        item = ItemState(Prompt("score", [], prefix, (), ""), prefix)
        return self._run(self._score_item(item, list(continuations)), 1)

    async def _score_item(self, item: ItemState, continuations: list[str]) -> list[Bounds]:
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
            item = ItemState(prompt, rendered.replace(marker, fill))
            bounds = await self._resolve(item, [("", Target(a, exact=True)) for a in answers])
        else:
            messages = [dict(m, content=m["content"].replace(marker, fill)) for m in prompt.messages]
            body = await self._client.post(
                "/chat/completions",
                self._body(messages=messages, max_tokens=1, logprobs=True, top_logprobs=self.settings.top_logprobs),
                "score",
            )
            choice = first_choice(body, where)
            content = (choice.get("message") or {}).get("content") or ""
            steps = steps_from_chat((choice.get("logprobs") or {}).get("content"), content, where=where)
            item = ItemState(prompt, None, nodes={"": steps[0][1]} if steps else {})
            bounds = [walk(item.nodes, "", Target(a, exact=True), vocabulary=self.vocabulary).bounds for a in answers]
        self.inexact_scores += sum(b.gap > self.settings.tolerance for b in bounds)
        return [math.log(b.estimate) if b.estimate > 0 else -math.inf for b in bounds]
