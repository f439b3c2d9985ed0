"""Next-token distributions from a ``vllm.LLM``: greedy continuations with the distribution
before each token, the distribution after any token ids (one-token requests, which vLLM's
prefix cache makes a few tokens' work each), and seeded samples.

Every request asks for all log-probabilities (``logprobs=-1``, the engine started with
``max_logprobs=-1``) in vLLM's flat layout, without detokenisation: the token texts are
labeldist's own. vLLM returns the raw model's log-probabilities (before temperature or
penalties), plus the sampled token once more, which writes the same value twice here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeldist.models.exact import NextTokenModel


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
        self.requests["greedy"] += len(prompts)
        params = self._params(
            temperature=0.0, max_tokens=max_tokens, logprobs=-1, flat_logprobs=True, stop_token_ids=list(stop_ids)
        )
        out = []
        for result in self._run(prompts, params):
            completion = result.outputs[0]
            tokens = list(completion.token_ids)
            out.append((tokens, [self._dense(completion.logprobs, k) for k in range(len(tokens))]))
        return out

    def distributions(self, prefixes):
        self.requests["distributions"] += len(prefixes)
        params = self._params(temperature=0.0, max_tokens=1, logprobs=-1, flat_logprobs=True)
        return [self._dense(result.outputs[0].logprobs, 0) for result in self._run(prefixes, params)]

    def sample(self, prompts, max_tokens, stop_ids, temperature, seeds):
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
