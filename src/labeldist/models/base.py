"""The small interface every model backend implements, and what it returns.

Two calls, after lm-evaluation-harness's ``generate_until`` / ``loglikelihood``:

- :meth:`Backend.generate`: greedy answers to prompts, with the distribution over the label set
  (plus stopping) at every label slot of each answer;
- :meth:`Backend.score`: log-probabilities of several continuations of one shared prefix, the
  prefix computed once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from labeldist.errors import ModelError
from labeldist.prompts import AnswerFormat, ParsedAnswer, Prompt
from labeldist.prompts.judgements import JudgementPrompt


@dataclass
class SlotDistribution:
    """The label distribution at one label slot.

    ``label_logprobs`` are exact: log P(the slot continues with this label's whole string and
    then a terminator), in the token context the model generated, summed over every
    tokenisation (the hf backend leaves out prefixes below its tolerance and gives their mass as
    the distance between ``label_probs_lower`` and ``label_probs_upper``). ``stop_logprob`` is the log
    probability of closing the answer there. These are probabilities of disjoint continuations,
    so ``exp`` of them sums to at most 1; what is missing went to continuations that are neither
    (other spellings, text outside the format). ``first_token_probs`` is the original method's
    approximation: the softmax of the labels' first-token logits at the label's start (NaN at
    the closing slot, where no label was generated).
    """

    index: int
    chosen: str | None
    raw: str
    label_logprobs: np.ndarray
    stop_logprob: float
    first_token_probs: np.ndarray
    # Backends that see only the top-k next tokens (HTTP servers) cannot compute every label
    # exactly: they give bounds beside the estimate above, and ``coverage``, the share of the
    # slot's possible label + stop mass that was observed completely. None: exact (hf).
    label_probs_lower: np.ndarray | None = None
    label_probs_upper: np.ndarray | None = None
    stop_prob_lower: float | None = None
    stop_prob_upper: float | None = None
    coverage: float | None = None
    # what makes the numbers re-derivable: the slot's decision position (the context is the
    # prompt + the first ``decision_token`` generated tokens) and every surface form scored
    # from there, as JSON (slots.locate.record_forms; None: not known, as over HTTP)
    decision_token: int | None = None
    forms: tuple[str, ...] | None = None
    # log P(what the slot's events are conditioned on): the text from the context's last token
    # boundary to the decision point, with the previous label's terminator where its event
    # required one (models.hf, generate(..., last_slot_only=True)); the slot's events lie
    # inside it, so exp(logprob - given_logprob) is P(event | the answer so far). None: not scored.
    given_logprob: float | None = None

    @property
    def label_probs(self) -> np.ndarray:
        """The exact label probabilities, ``exp(label_logprobs)``."""
        return np.exp(self.label_logprobs)

    @property
    def stop_prob(self) -> float:
        """The probability of closing the answer at this slot, ``exp(stop_logprob)``."""
        return float(np.exp(self.stop_logprob))

    @property
    def mass(self) -> float:
        """Total probability of the label and stop continuations (at most 1)."""
        return float(self.label_probs.sum() + self.stop_prob)

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the label + stop distribution renormalised to sum to 1."""
        p = np.append(self.label_probs, self.stop_prob)
        total = p.sum()
        if total <= 0:
            return float("nan")
        q = p[p > 0] / total
        return float(-(q * np.log(q)).sum())


@dataclass
class Generation:
    """One prompt's answer and its label slots."""

    prompt_text: str  # exactly what the model read (chat template applied)
    answer: str  # answer prefix + generated text
    generated_tokens: int
    parsed: ParsedAnswer
    slots: list[SlotDistribution]
    # hidden states (layers + embeddings, hidden size) at the first label slot, when asked
    hidden: np.ndarray | None = None
    finished: bool = True  # ended by EOS or the format's close, not by the token limit
    timings: dict[str, float] = field(default_factory=dict)
    token_ids: list[int] | None = None  # the generated tokens, EOS included (None: not known)
    # set when the backend could not label this item (a server error after retries, a response
    # without usable logprobs): the run records a gap instead of a record, and a rerun retries it
    error: str | None = None

    @classmethod
    def failed(cls, prompt_text: str, error: str) -> Generation:
        """An item the backend could not label: no answer, no slots, and why (a gap in the run)."""
        return cls(
            prompt_text=prompt_text,
            answer="",
            generated_tokens=0,
            parsed=ParsedAnswer(labels=(), parsed=False, complete=False),
            slots=[],
            finished=False,
            error=error,
        )


def answer_log_weights(answer_weights: Sequence[float] | None, count: int) -> list[float]:
    """The log of each forced answer's weight (:meth:`Backend.generate`'s ``answer_weights``;
    0.0 each when there are none), or a ValueError when they are not ``count`` probabilities in (0, 1]."""
    if answer_weights is None:
        return [0.0] * count
    if len(answer_weights) != count or not all(0 < w <= 1 for w in answer_weights):
        raise ValueError(f"answer_weights: {count} probabilities in (0, 1] expected, got {list(answer_weights)}")
    return [float(np.log(w)) for w in answer_weights]


def draw_seed(seed: int, item_id: str, draw: int) -> int:
    """The seed of one sampled answer (31 bits: what every server's ``seed`` field takes), from
    the run's seed, the item's id and the draw's number, so draws do not depend on batching."""
    import hashlib

    digest = hashlib.sha256(f"{seed}\0{item_id}\0{draw}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "little") >> 1


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared on its class, so that a run refuses what its backend
    cannot serve before anything is loaded or written (``labeldist backends`` lists them)."""

    # every slot's label and stop probabilities under the exact definition (every surface form,
    # every tokenisation, pruning bounds); False: bounded from what the model reports (top-k)
    exact_slots: bool = False
    marginal: bool = False  # scores given answers (forced_answers, last_slot_only): --marginal
    samples: bool = False  # draws answers at a temperature: --samples
    hidden_states: bool = False  # hidden states at the first label slot: --save-hidden
    judgements: bool = False  # scores unary and pairwise questions: --method unary|pairwise
    precision_check: bool = False  # rescores slots in float32: --precision-check
    ray: bool = False  # one per Ray worker: --engine ray

    def as_dict(self) -> dict[str, bool]:
        """Each capability by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# the run settings that need a capability, and how the refusal names them
NEEDS = {
    "marginal": "--marginal",
    "samples": "--samples",
    "hidden_states": "--save-hidden",
    "judgements": "--method unary/pairwise",
    "ray": "--engine ray",
}


class Backend(ABC):
    """What a run calls on a model, and nothing else (as lm-evaluation-harness's LM): a backend
    renders prompts, generates answers with their label slots, scores the answers of unary and
    pairwise questions, and describes itself for run.json. ``precision_check`` is optional: a
    backend that cannot rescore in float32 says so.

    A backend class also declares what it can do (``capabilities``), the dataclass of its
    settings (``settings_class``: its ``identity()`` is what decides records, stored in the run
    config) and how it is made from them (:meth:`create`); ``models/registry.py`` names it."""

    name: str = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()
    # what to do instead of a capability the backend lacks, said with its refusal
    instead: ClassVar[dict[str, str]] = {}
    settings_class: ClassVar[type]

    @classmethod
    def capabilities_for(cls, settings: dict | None) -> Capabilities:
        """What the backend can do under ``settings`` (their ``identity()``, as a run config
        stores them; None: not known): the class's ``capabilities`` unless a setting adds some."""
        return cls.capabilities

    @classmethod
    @abstractmethod
    def create(cls, model: str, settings: Any, *, chat: bool | None, max_new_tokens: int, progress: bool) -> Backend:
        """The backend for ``model`` under ``settings`` (an instance of ``settings_class``)."""

    @abstractmethod
    def describe(self) -> dict:
        """The model, tokenizer, dtype and settings, as recorded in run.json."""

    @abstractmethod
    def render(self, prompt: Prompt) -> str:
        """Exactly the text the model reads for ``prompt`` (chat template applied)."""

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        labels: Sequence[str],
        answer_format: AnswerFormat,
        *,
        save_hidden: bool = False,
        forced_answers: Sequence[str] | None = None,
        last_slot_only: bool = False,
        answer_weights: Sequence[float] | None = None,
    ) -> list[Generation]:
        """Each prompt's answer, its parse and the label distribution at every slot;
        ``forced_answers`` (text after the answer prefix) scores given answers instead of greedy
        ones, and ``last_slot_only`` their last slot alone (the marginal's trie; a backend that
        cannot says so). ``answer_weights``: each forced answer's probability of being reached
        (a trie node's mass): a backend that prunes tokenisations may prune relative to the
        whole answer, tokenisation x weight below its tolerance, instead of per slot (the same
        absolute precision for every node); one that ignores them only prunes less."""

    @abstractmethod
    def score_answers(self, prompts: Sequence[JudgementPrompt]) -> list[np.ndarray]:
        """For each unary/pairwise prompt: fills x answers log-probabilities of every answer."""

    @abstractmethod
    def score(self, prefix: str, continuations: Sequence[str]) -> list[float]:
        """log P(continuation | prefix) for each continuation."""

    # the most tokens the model reads at once, prompt and answer (None: not known here)
    context_length: int | None = None

    def prompt_length(self, prompt: Prompt) -> int | None:
        """How many tokens the model reads for ``prompt`` (None: not known on this side)."""
        return None

    def judgement_length(self, prompt: JudgementPrompt) -> int | None:
        """How many tokens the model reads for a unary/pairwise item's longest question with its
        longest answer (None: not known on this side)."""
        return None

    def too_long(self, prompts: Sequence, reserve: int) -> str | None:
        """Why one of ``prompts`` cannot be served, with ``reserve`` answer tokens after it,
        within the model's context (the first such item, in one line), or None. Checked before a
        run writes anything: past the context a model writes garbage, it does not fail.
        Unary/pairwise prompts (``JudgementPrompt``) are measured by their longest question and
        answer, which is all the model reads for them (``reserve`` is then 0)."""
        limit = self.context_length
        if not limit:
            return None
        for prompt in prompts:
            judging = isinstance(prompt, JudgementPrompt)
            length = self.judgement_length(prompt) if judging else self.prompt_length(prompt)
            if length is None:
                return None
            if judging and length > limit:
                return (
                    f"item {prompt.item_id}: its longest question and answer are {length} tokens, past the context of "
                    f"{self.name} ({limit} tokens); shorten the item or use fewer --shots"
                )
            if not judging and length + reserve > limit:
                return (
                    f"item {prompt.item_id}: its prompt is {length} tokens, and with up to {reserve} answer tokens "
                    f"(--max-new-tokens) that passes the context of {self.name} ({limit} tokens); shorten the item, "
                    "use fewer --shots, or lower --max-new-tokens"
                )
        return None

    def close(self) -> None:
        """Release what the backend holds beyond memory (an engine's processes); the backend is
        not used afterwards. Nothing here: most hold only memory."""

    def precision_check(self, prompts: Sequence[Prompt], labels: Sequence[str], fmt: AnswerFormat, answers) -> dict:
        """The largest differences between these slots as run and in float32 (hf only)."""
        return {"items": 0, "skipped": "this backend cannot rescore in float32"}

    def sample_answers(
        self, prompts: Sequence[Prompt], answer_format: AnswerFormat, n: int, *, temperature: float = 1.0, seed: int = 0
    ) -> list[list[str]]:
        """``n`` answers per prompt drawn from the model at ``temperature`` (each the answer prefix
        plus what was sampled), seeded per (seed, item, draw) so that batching and resuming do
        not change them. A backend that cannot sample says so."""
        raise ModelError(f"the {self.name} backend cannot sample answers (--samples)")
