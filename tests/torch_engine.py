"""A :class:`labeldist.models.exact.NextTokenModel` over a transformers model by plain full
forward passes (no cache, no padding, no tree mask): the engine the exact backend's shared
code is tested with where vLLM is not installed, and an independent check of the hf backend's
tree passes."""

from __future__ import annotations

import numpy as np
import torch

from labeldist.models.exact import ExactBackend, NextTokenModel


class TorchNextTokenModel(NextTokenModel):
    """Next-token distributions of ``model`` (float64 log-probabilities), one full pass each."""

    def __init__(self, model):
        self.model = model
        self.vocab_size = model.config.vocab_size
        self.calls = {"greedy": 0, "distributions": 0, "sample": 0}

    @torch.no_grad()
    def _logits(self, ids) -> torch.Tensor:
        return self.model(input_ids=torch.tensor([list(ids)])).logits[0, -1].double()

    def greedy(self, prompts, max_tokens, stop_ids):
        self.calls["greedy"] += len(prompts)
        out = []
        for ids in prompts:
            tokens: list[int] = []
            for _ in range(max_tokens):
                tokens.append(int(self._logits(list(ids) + tokens).argmax()))
                if tokens[-1] in stop_ids:
                    break
            out.append(tokens)
        return out

    def distributions(self, prefixes, wanted):
        self.calls["distributions"] += len(prefixes)
        out = []
        for prefix, ids in zip(prefixes, wanted):
            full = torch.log_softmax(self._logits(prefix), dim=-1).numpy()
            if ids is not None:  # as an engine sending only the ids asked for: anything else read is NaN
                full, values = np.full_like(full, np.nan), full
                full[ids] = values[ids]
            out.append(full)
        return out

    def sample(self, prompts, max_tokens, stop_ids, temperature, seeds):
        self.calls["sample"] += len(prompts)
        out = []
        for ids, seed in zip(prompts, seeds):
            generator = torch.Generator().manual_seed(seed)
            tokens: list[int] = []
            for _ in range(max_tokens):
                probs = torch.softmax(self._logits(list(ids) + tokens) / temperature, dim=-1)
                tokens.append(int(torch.multinomial(probs, 1, generator=generator)))
                if tokens[-1] in stop_ids:
                    break
            out.append(tokens)
        return out


class TorchExactBackend(ExactBackend):
    """The exact backend over :class:`TorchNextTokenModel`, with an hf backend's tokenizer and EOS ids."""

    name = "torch-exact"

    def __init__(self, hf_backend, *, tolerance: float | None = None):
        self.name = hf_backend.name
        self.engine_model = hf_backend.model
        tolerance = hf_backend.scorer.tolerance if tolerance is None else tolerance
        self._setup_exact(
            TorchNextTokenModel(hf_backend.model),
            hf_backend.tokenizer,
            hf_backend.eos,
            hf_backend.chat,
            hf_backend.max_new_tokens,
            tolerance,
        )

    @classmethod
    def create(cls, model, settings, *, chat, max_new_tokens, progress):
        raise NotImplementedError("made from an hf backend in the tests")

    def describe(self) -> dict:
        return {"backend": "torch-exact", "model": self.name}


def slot_arrays(generation) -> list[np.ndarray]:
    """Every number of every slot of a generation, for comparisons."""
    out = []
    for slot in generation.slots:
        out.append(
            np.concatenate(
                [
                    np.exp(slot.label_logprobs),
                    [slot.stop_prob],
                    slot.label_probs_upper - slot.label_probs_lower,
                    [slot.stop_prob_upper - slot.stop_prob_lower],
                    np.nan_to_num(slot.first_token_probs, nan=-1.0),
                    [np.exp(slot.given_logprob) if slot.given_logprob is not None else -1.0],
                ]
            )
        )
    return out
