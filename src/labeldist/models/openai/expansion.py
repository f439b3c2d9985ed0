"""Top-k expansion and echo scoring: how the HTTP backend makes label probabilities exact where the
server allows (the module docstring of ``labeldist.models.openai``, steps 2 and 3)."""

from __future__ import annotations

import asyncio

from labeldist.models.http import RequestFailed
from labeldist.models.openai.settings import (
    ECHO_AGREEMENT,
    MAX_ROUNDS,
    ItemState,
    first_choice,
    log,
)
from labeldist.models.topk import (
    Bounds,
    LogprobError,
    Target,
    steps_from_completion,
    walk,
)


class Expansion:
    """Part of :class:`OpenAIBackend`: expand the nodes labels still need, and echo the tails."""

    async def _resolve(self, item: ItemState, requests: list[tuple[str, Target]]) -> list[Bounds]:
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

    async def _expand(self, item: ItemState, key: str) -> None:
        """The top-k after ``prompt + key``: one max_tokens=1 completion."""
        where = f"item {item.prompt.item_id}, expanding {key[-30:]!r}"
        body = await self._client.post(
            "/completions",
            self._body(prompt=item.text + key, max_tokens=1, logprobs=self.settings.top_logprobs),
            "expand",
        )
        choice = first_choice(body, where)
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

    async def _echo(self, item: ItemState, key: str, target: Target) -> None:
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
            choice = first_choice(body, where)
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
