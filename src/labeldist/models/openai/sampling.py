"""Sampled answers through the server (``labeldist run --samples``): one seeded request per draw."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from labeldist.errors import ModelError
from labeldist.models.base import draw_seed
from labeldist.models.http import RequestFailed
from labeldist.models.openai.settings import first_choice
from labeldist.models.topk import LogprobError
from labeldist.prompts import AnswerFormat, Prompt
from labeldist.prompts.formats import answer_closed


class Sampling:
    """Part of :class:`OpenAIBackend`: answers drawn at a temperature."""

    def sample_answers(
        self, prompts: Sequence[Prompt], answer_format: AnswerFormat, n: int, *, temperature: float = 1.0, seed: int = 0
    ) -> list[list[str]]:
        """``n`` answers per prompt, one request each at ``temperature`` with the seed of (seed,
        item, draw): servers that honour a request's seed (vLLM, llama.cpp, OpenAI's best
        effort) give the same draws again; one that ignores it draws anew on a resumed run. Each
        answer is the answer prefix plus the completion, cut where the format closes (as the hf
        backend stops). A draw that fails after retries stops the run (rerun to resume)."""
        if n < 1:
            raise ValueError(f"samples must be at least 1, not {n}")
        if not temperature > 0:
            raise ValueError(f"temperature must be above 0, not {temperature}")
        if self.endpoint == "chat" and any(p.answer_prefix for p in prompts):
            raise ModelError("the chat endpoint cannot continue an answer prefix; use --tokenizer (completions) instead")
        drawn = self._run(self._sample_all(prompts, answer_format, n, temperature, seed), len(prompts) * n)
        return [drawn[i * n : (i + 1) * n] for i in range(len(prompts))]

    async def _sample_all(self, prompts, fmt, n, temperature, seed) -> list[str]:
        tasks = [self._sample_one(p, fmt, draw, temperature, seed) for p in prompts for draw in range(n)]
        return list(await asyncio.gather(*tasks))

    async def _sample_one(self, prompt: Prompt, fmt: AnswerFormat, draw: int, temperature: float, seed: int) -> str:
        where = f"item {prompt.item_id}, sampled answer {draw + 1}"
        fields = {"max_tokens": self.max_new_tokens, "temperature": temperature, "seed": draw_seed(seed, prompt.item_id, draw)}
        try:
            if self.endpoint == "completions":
                body = await self._client.post("/completions", self._body(prompt=self.render(prompt), **fields), "sample")
                text = first_choice(body, where).get("text")
            else:
                body = await self._client.post("/chat/completions", self._body(messages=prompt.messages, **fields), "sample")
                text = (first_choice(body, where).get("message") or {}).get("content")
        except (RequestFailed, LogprobError) as err:
            raise ModelError(f"{where}: {err}") from None
        if not isinstance(text, str):
            raise ModelError(f"{where}: the response has no text")
        answer = prompt.answer_prefix + text
        # cut where the format closes, as decoding stops there on the hf backend
        for end in range(len(prompt.answer_prefix) + 1, len(answer) + 1):
            if answer_closed(fmt, answer[:end]):
                return answer[:end]
        return answer
