"""Few-shot prompts for every item of a dataset."""

from __future__ import annotations

from dataclasses import dataclass

from labeldist.data.schema import Dataset, Item
from labeldist.prompts.formats import AnswerFormat, get_answer_format
from labeldist.prompts.samplers import DemonstrationSampler, item_rng, make_sampler
from labeldist.prompts.templates import Message, PromptTemplate

# The id under which shared demonstrations are drawn (no dataset uses it).
SHARED_ANCHOR = "<shared demonstrations>"


@dataclass(frozen=True)
class Prompt:
    """One item's prompt in both forms.

    ``text`` (plain form) already ends with ``answer_prefix``; ``messages`` (chat form) do
    not: a chat backend applies the chat template with a generation prompt and appends
    ``answer_prefix`` as the start of the assistant turn. Either way the model continues
    right after the prefix, and its answer for parsing is ``answer_prefix + generated``.
    """

    item_id: str
    messages: list[Message]
    text: str
    demonstration_ids: tuple[str, ...]
    answer_prefix: str


def build_prompts(
    dataset: Dataset,
    pool: Dataset,
    template: PromptTemplate,
    answer_format: AnswerFormat | str,
    sampler: DemonstrationSampler | str,
    shots: int,
    limit: int | None = None,
    *,
    seed: int | None = None,
    sampler_options: dict | None = None,
    prefill: bool = False,
    shared_demonstrations: bool = False,
) -> list[Prompt]:
    """Prompts for the first ``limit`` items of ``dataset`` (all when None), each with
    ``shots`` demonstrations from ``pool``.

    ``sampler`` is a sampler over ``pool`` (its own seed is used; ``seed`` must then be None
    or the same), or a sampler name made with ``seed`` (required) and ``sampler_options``.
    Demonstration answers name the item's gold labels in dataset label order; the
    demonstrations are shuffled per item with :func:`item_rng` (purpose "order"), so one seed
    gives identical prompts and an item's prompt does not depend on the other items.

    ``shared_demonstrations``: every item gets the same demonstrations in the same order (the
    original research code's protocol: it reseeded before each query), drawn once from
    (seed, sampler); an item that is itself one of them gets its own draw instead. Prompts
    then differ only in the query, so a backend can compute the shared part once.
    Not available for the similarity sampler, whose choice depends on the query.

    ``prefill``: put the answer format's opener (``[`` for json) into the prompt as the answer
    prefix. Off by default: byte-level BPE tokenizers write ``["`` as ONE token, so a model
    handed a lone ``[`` is off its training distribution (SmolLM2-135M then gives the quote
    that must follow about 0.001 probability and answers ``[]`` almost always). Without it the
    model writes the opener itself and slot 1 is scored from the start of the answer.
    """
    if isinstance(answer_format, str):
        answer_format = get_answer_format(answer_format)
    sampler = resolve_sampler(sampler, pool, seed, sampler_options)
    if set(pool.labels) != set(dataset.labels):
        raise ValueError(
            f"demonstration pool {pool.name}/{pool.split} has labels {list(pool.labels)}, "
            f"but dataset {dataset.name}/{dataset.split} has {list(dataset.labels)}"
        )
    answer_format.check_labels(dataset.labels)

    items = dataset.items if limit is None else dataset.items[:limit]
    answer_prefix = answer_format.opener if prefill else ""
    chosen = choose_demonstrations(items, sampler, shots, shared_demonstrations)
    prompts = []
    for item, demonstrations in zip(items, chosen):
        solved = [(demo.text, _answer(demo, dataset.labels, answer_format)) for demo in demonstrations]
        prompts.append(
            Prompt(
                item_id=item.id,
                messages=template.chat_messages(item.text, solved, dataset.labels, answer_format),
                text=template.plain_text(item.text, solved, dataset.labels, answer_format, answer_prefix),
                demonstration_ids=tuple(demo.id for demo in demonstrations),
                answer_prefix=answer_prefix,
            )
        )
    return prompts


def choose_demonstrations(
    items: list[Item], sampler: DemonstrationSampler, shots: int, shared_demonstrations: bool
) -> list[list[Item]]:
    """Each item's demonstrations, in prompt order (see :func:`build_prompts`)."""
    if shots > 0:
        sampler.prepare(items)
    shared = None
    if shared_demonstrations and shots > 0:
        if sampler.name == "similarity":
            raise ValueError("the similarity sampler chooses per query: it cannot share demonstrations")
        anchor = Item(SHARED_ANCHOR, "")
        drawn = sampler.for_item(anchor, shots)
        order = item_rng(sampler.seed, SHARED_ANCHOR, purpose="order").permutation(len(drawn))
        shared = [drawn[i] for i in order]
    out = []
    for item in items:
        if shared is not None and all(demo.id != item.id for demo in shared):
            out.append(shared)
            continue
        demonstrations = sampler.for_item(item, shots)
        order = item_rng(sampler.seed, item.id, purpose="order").permutation(len(demonstrations))
        out.append([demonstrations[i] for i in order])
    return out


def _answer(item: Item, labels: tuple[str, ...], answer_format: AnswerFormat) -> str:
    return answer_format.format([label for label in labels if label in item.gold])


def resolve_sampler(
    sampler: DemonstrationSampler | str, pool: Dataset, seed: int | None, options: dict | None
) -> DemonstrationSampler:
    """``sampler`` itself, or the registered sampler of that name over ``pool`` (seeded)."""
    if isinstance(sampler, str):
        if seed is None:
            raise ValueError(f"sampler {sampler!r} given by name: pass seed= as well")
        return make_sampler(sampler, pool, seed, **(options or {}))
    if options:
        raise ValueError("sampler_options apply only when the sampler is given by name")
    if sampler.pool is not pool:
        raise ValueError(f"the sampler draws from pool {sampler.pool_name}, not from the pool given ({pool.name}/{pool.split})")
    if seed is not None and seed != sampler.seed:
        raise ValueError(f"seed={seed} differs from the sampler's seed {sampler.seed}")
    return sampler
