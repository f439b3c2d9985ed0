"""Next-token distributions from a ``vllm.LLM``: greedy continuations, the distribution after any
token ids (one-token requests, which vLLM's prefix cache makes a few tokens' work each), and
seeded samples.

A distribution request asks for the token ids read there (``logprob_token_ids``) or, when they
are many, for every log-probability (``logprobs=-1``, the engine started with
``max_logprobs=-1``), in vLLM's flat layout, without detokenisation: the token texts are
labeldist's own. vLLM returns the raw model's log-probabilities (before temperature or
penalties), plus the sampled token once more, which writes the same value twice here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeldist.models.exact import NextTokenModel

# the most ids one request may ask for by id (vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS, 128 in
# vLLM 0.32), less one for the sampled token vLLM adds
MAX_TOKEN_IDS = 127


class VLLMNextTokenModel(NextTokenModel):
    """The three calls of :class:`NextTokenModel` on ``llm`` (a ``vllm.LLM``)."""

    def __init__(self, llm, vocab_size: int):
        self.llm = llm
        self.vocab_size = vocab_size
        self.requests = {"greedy": 0, "distributions": 0, "sample": 0}

    def _params(self, **settings):
        from vllm import SamplingParams

        return SamplingParams(detokenize=False, skip_special_tokens=False, **settings)

    def _run(self, prompts: Sequence[Sequence[int]], params) -> list:
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompts]
        return self.llm.generate(requests, params, use_tqdm=False)

    def _dense(self, logprobs, position: int) -> np.ndarray:
        out = np.full(self.vocab_size, -np.inf, dtype=np.float32)
        if hasattr(logprobs, "start_indices"):  # FlatLogprobs
            start, end = logprobs.start_indices[position], logprobs.end_indices[position]
            ids = np.asarray(logprobs.token_ids[start:end], dtype=np.int64)
            values = np.asarray(logprobs.logprobs[start:end], dtype=np.float32)
        else:  # a dict of Logprob per position (vLLM without the flat layout)
            entry = logprobs[position]
            ids = np.fromiter(entry.keys(), dtype=np.int64, count=len(entry))
            values = np.fromiter((v.logprob for v in entry.values()), dtype=np.float32, count=len(entry))
        if len(ids) and ids.max() >= self.vocab_size:
            grown = np.full(int(ids.max()) + 1, -np.inf, dtype=np.float32)
            grown[: self.vocab_size] = out
            out = grown
        out[ids] = values
        return out

    def greedy(self, prompts, max_tokens, stop_ids):
        """Greedy continuations, the prompts as one vLLM batch (no log-probabilities: those are
        asked for where the slots read them)."""
        self.requests["greedy"] += len(prompts)
        params = self._params(temperature=0.0, max_tokens=max_tokens, stop_token_ids=list(stop_ids))
        return [list(result.outputs[0].token_ids) for result in self._run(prompts, params)]

    def distributions(self, prefixes, wanted):
        """One one-token request per prefix: for the few ids read there when they are few
        (``logprob_token_ids``: a handful of numbers cross from the engine instead of the whole
        vocabulary), else every log-probability. The two kinds go to the engine in separate
        calls: in one batch, vLLM 0.32 applies the by-id layout to every request of the step,
        and a whole-vocabulary request beside by-id ones came back wrong (by up to 2.6e-3 on
        SmolLM2: HateXplain, slot 1)."""
        self.requests["distributions"] += len(prefixes)
        out: list[np.ndarray | None] = [None] * len(prefixes)
        full = [i for i, ids in enumerate(wanted) if ids is None or len(ids) > MAX_TOKEN_IDS]
        by_id = [i for i, ids in enumerate(wanted) if not (ids is None or len(ids) > MAX_TOKEN_IDS)]
        if full:
            self.requests["full"] = self.requests.get("full", 0) + len(full)
            params = self._params(temperature=0.0, max_tokens=1, logprobs=-1, flat_logprobs=True)
            for i, result in zip(full, self._run([prefixes[i] for i in full], params)):
                out[i] = self._dense(result.outputs[0].logprobs, 0)
        if by_id:
            params = [
                self._params(temperature=0.0, max_tokens=1, logprob_token_ids=[int(t) for t in wanted[i]], flat_logprobs=True)
                for i in by_id
            ]
            for i, result in zip(by_id, self._run([prefixes[i] for i in by_id], params)):
                out[i] = self._dense(result.outputs[0].logprobs, 0)
        return out

    def sample(self, prompts, max_tokens, stop_ids, temperature, seeds):
        """One continuation per prompt at ``temperature``, each request seeded by its own seed."""
        self.requests["sample"] += len(prompts)
        from vllm import SamplingParams

        params = [
            SamplingParams(
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed,
                stop_token_ids=list(stop_ids),
                detokenize=False,
                skip_special_tokens=False,
            )
            for seed in seeds
        ]
        return [list(result.outputs[0].token_ids) for result in self._run(prompts, params)]
