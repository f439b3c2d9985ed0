"""From a generated answer's tokens to the continuations its slots score, and from their scores
to the slots: the part of exact slot scoring that only needs the tokenizer, shared by every
backend that scores slots exactly (hf, vLLM), so that they ask the same questions and assemble
the same numbers; only how the continuations are scored differs.

Slot k's events (the close, then each label) are each the sum over their surface forms, all
scored from the last token boundary at or before the slot's decision point (the residual text
between the boundary and the decision point is prepended to every form).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from labeldist.models.base import SlotDistribution
from labeldist.prompts import AnswerFormat, ParsedAnswer
from labeldist.slots.locate import SlotPlan, plan_slots, record_forms
from labeldist.slots.requests import ScoreRequest
from labeldist.slots.tokens import ContextTokenizer, TokenTexts


@dataclass
class PreparedAnswer:
    """One answer's slots and the requests that score them."""

    answer: str  # answer prefix + the generated text (EOS left out)
    parsed: ParsedAnswer
    plans: list[SlotPlan]
    groups: list[list[list[int]]]  # per plan, the requests of each event: the close, then every label
    boundaries: list[int]  # character offset in the answer where each generated-token prefix ends
    requests: list[ScoreRequest]
    answer_ids: list[int]  # the generated tokens without EOS
    generated_tokens: int  # EOS included
    # per plan (last_slot_only), the request of what the slot is conditioned on (None: certain)
    givens: list[int | None] | None = None

    def hidden_step(self) -> int:
        """The generated-token boundary of the first label slot's start (where hidden states are read)."""
        if not self.plans:
            return 0
        first = self.plans[0]
        anchor = first.label_start if first.label_start is not None else first.decision
        return boundary_before(self.boundaries, anchor)


def prepare_answer(
    answer_prefix: str,
    generated: Sequence[int],
    eos: Sequence[int],
    texts: TokenTexts,
    labels: tuple[str, ...],
    fmt: AnswerFormat,
    last_slot_only: bool = False,
) -> PreparedAnswer:
    """The slots of the answer ``generated`` (token ids after the prompt) and the continuations
    to score for them; ``last_slot_only``: the last slot alone, with what it is conditioned on."""
    answer_ids = [t for t in generated if t not in eos]
    prefix_length = len(answer_prefix)
    answer = answer_prefix + texts.text(answer_ids)
    plans = plan_slots(answer, prefix_length, fmt, labels)
    if last_slot_only:
        plans = plans[-1:]
    boundaries = [prefix_length] + [prefix_length + b for b in texts.char_boundaries(answer_ids)]
    requests: list[ScoreRequest] = []
    groups, givens = [], []
    for plan in plans:
        plan_requests, plan_groups = slot_requests(plan, answer, boundaries, labels, len(requests))
        requests.extend(plan_requests)
        groups.append(plan_groups)
        if last_slot_only:
            given = given_request(plan, answer, boundaries)
            givens.append(None if given is None else len(requests))
            requests.extend([given] if given is not None else [])
    return PreparedAnswer(
        answer,
        fmt.parse(answer, labels),
        plans,
        groups,
        boundaries,
        requests,
        answer_ids,
        len(generated),
        givens if last_slot_only else None,
    )


def slot_requests(
    plan: SlotPlan, answer: str, boundaries: list[int], labels, offset: int
) -> tuple[list[ScoreRequest], list[list[int]]]:
    """Every form of the close, then of each label, all from the slot's decision point (from
    the last token boundary before it); and which requests (numbered from ``offset``) make up
    each event: the close first, then the labels in order."""
    j = boundary_before(boundaries, plan.decision)
    residual = residual_before(answer, boundaries, plan.decision)
    requests: list[ScoreRequest] = []
    groups: list[list[int]] = []
    for forms in (plan.close_forms, *(plan.forms_of(label) for label in labels)):
        groups.append(list(range(offset + len(requests), offset + len(requests) + len(forms))))
        requests.extend(ScoreRequest(j, residual + f.text, f.terminators, f.end) for f in forms)
    return requests, groups


def given_request(plan: SlotPlan, answer: str, boundaries: list[int]) -> ScoreRequest | None:
    """What the slot's events are conditioned on, from the same token boundary: the text from
    there to the decision point (the end of the previous label, its closing quote), followed by
    the previous label's terminator where its event required one. The slot's events are all
    inside it, so dividing by its probability gives P(event | the answer so far), and a chain of
    slots counts each terminator once. None: nothing to condition on."""
    residual = residual_before(answer, boundaries, plan.decision)
    if plan.given is None and not residual:
        return None
    terminators, end = plan.given or ((), False)
    return ScoreRequest(boundary_before(boundaries, plan.decision), residual, terminators, end)


def first_token_ids(
    plan: SlotPlan,
    prepared: PreparedAnswer,
    context_ids: Sequence[int],
    prompt_length: int,
    context_tokenizer: ContextTokenizer,
    labels: Sequence[str],
) -> tuple[int, list[int]] | None:
    """For the original method: the generated-token step at the label's start and each label's
    first token there (None at a closing slot, where no label was written)."""
    if plan.label_start is None:
        return None
    j = boundary_before(prepared.boundaries, plan.label_start)
    residual = prepared.answer[prepared.boundaries[j] : plan.label_start]
    prefix_ids = list(context_ids[: prompt_length + j])
    return j, [context_tokenizer.tokenize(prefix_ids, residual + label)[0] for label in labels]


def slot_distributions(
    prepared: PreparedAnswer,
    logprobs: np.ndarray,
    pruned: np.ndarray,
    labels: Sequence[str],
    first_token: Callable[[SlotPlan], np.ndarray],
) -> list[SlotDistribution]:
    """The slots of ``prepared`` from its requests' log-probabilities and pruned masses;
    ``first_token(plan)`` gives the original method's numbers of a slot."""
    slots = []
    for plan_index, (plan, groups) in enumerate(zip(prepared.plans, prepared.groups)):
        # an event's probability is the sum over its surface forms (disjoint strings), and so
        # is what pruning left out of it
        event_logprobs = np.array([np.logaddexp.reduce(logprobs[g]) if g else -np.inf for g in groups])
        event_pruned = np.array([pruned[g].sum() for g in groups])
        lower = np.exp(event_logprobs)
        upper = np.minimum(lower + event_pruned, 1.0)
        given = None
        if prepared.givens is not None:
            request = prepared.givens[plan_index]
            given = 0.0 if request is None else float(logprobs[request])
        slots.append(
            SlotDistribution(
                index=plan.index,
                chosen=plan.chosen,
                raw=plan.raw,
                label_logprobs=event_logprobs[1:],
                stop_logprob=float(event_logprobs[0]),
                # the sum over tokenisations leaves out prefixes below the tolerance: at most this much
                label_probs_lower=lower[1:],
                label_probs_upper=upper[1:],
                stop_prob_lower=float(lower[0]),
                stop_prob_upper=float(upper[0]),
                decision_token=prepared.requests[groups[0][0]].boundary,
                forms=record_forms(plan, residual_before(prepared.answer, prepared.boundaries, plan.decision), labels),
                given_logprob=given,
                first_token_probs=first_token(plan),
            )
        )
    return slots


def residual_before(answer: str, boundaries: list[int], offset: int) -> str:
    """The text from the last token boundary at or before ``offset`` up to it."""
    return answer[boundaries[boundary_before(boundaries, offset)] : offset]


def boundary_before(boundaries: list[int], offset: int) -> int:
    """Index of the last token boundary at or before a character offset."""
    j = 0
    for index, boundary in enumerate(boundaries):
        if boundary <= offset:
            j = index
        else:
            break
    return j
