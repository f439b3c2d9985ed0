"""Prompts for the unary and pairwise methods: the model judges candidates instead of writing labels.

- ``unary``: for each label (and "none"), "is this label reasonable for this text?", answered
  ``yes`` or ``no``;
- ``pairwise``: for each ordered pair of labels (and "none"), "which fits the text better, a or
  b?", answered ``a`` or ``b``; both orders of every pair are asked, so position bias can be
  measured and averaged out.

All of one item's questions share one prompt: instruction, demonstrations and the text, then the
candidate part (the label, or the pair) and the answer. The prompt holds :data:`FILL` where the
candidate part goes; a backend computes the shared part once and scores every candidate's answers
as continuations of it.

Demonstrations are solved questions about pool items: unary demonstrations alternate a label
that applies (answer yes) with one that does not (answer no); pairwise demonstrations pair a
label that applies with one that does not, the right one at position a in half of them.
"no label applies" is the candidate ``none`` (yes for a text without labels).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from labeldist.data.schema import Dataset, Item
from labeldist.errors import TemplateError
from labeldist.prompts.builder import Prompt, choose_demonstrations, resolve_sampler
from labeldist.prompts.methods import JUDGEMENT_METHODS, RunMethod
from labeldist.prompts.samplers import DemonstrationSampler, item_rng
from labeldist.prompts.templates import read_template_yaml

FILL = "\ue000"  # a private-use character: where each candidate's text goes

_UNARY = dict(
    system=(
        "You are an expert annotator. You read a text and a candidate label and judge whether the "
        "label is a reasonable label for the text."
    ),
    instruction=(
        "The possible labels are: {labels}; the label {none} means that no other label applies. "
        "Is the candidate label a reasonable label for the text? Answer yes or no."
    ),
    query="Text: {text}\nCandidate label: {candidate}",
    candidate="{label}",
    answers=("yes", "no"),
)
_PAIRWISE = dict(
    system=(
        "You are an expert annotator. You read a text and two candidate labels and judge which of the two fits the text better."
    ),
    instruction=(
        "The possible labels are: {labels}; the label {none} means that no other label applies. "
        "Which candidate label fits the text better, a or b? Answer a or b."
    ),
    query="Text: {text}\n{candidate}",
    candidate="a: {first}\nb: {second}",
    answers=("a", "b"),
)
_PLACEHOLDERS = {
    "system": frozenset(),
    "instruction": frozenset({"labels", "none"}),
    "query": frozenset({"text", "candidate"}),
}


@dataclass(frozen=True)
class JudgementTemplate:
    """The words of a unary or pairwise prompt (Python format strings).

    ``query`` is a user turn: ``{text}`` then ``{candidate}``, which must come last (it is what
    differs between an item's questions); ``candidate`` is ``{label}`` (unary) or ``{first}`` and
    ``{second}`` (pairwise). ``answers``: the (positive, negative) answer words — (yes, no) or
    (a, b). Chat form: demonstrations are user turns answered by assistant turns; plain form:
    blocks separated by blank lines, each question followed by ``answer_lead`` and the answer.
    """

    method: str
    system: str
    instruction: str
    query: str
    candidate: str
    answers: tuple[str, str]
    answer_lead: str = "Answer:"
    none_label: str = "none"
    label_separator: str = ", "

    def __post_init__(self) -> None:
        if self.method not in JUDGEMENT_METHODS:
            raise TemplateError(f"method must be one of {', '.join(JUDGEMENT_METHODS)}, not {self.method!r}")
        object.__setattr__(self, "answers", tuple(self.answers))
        if len(self.answers) != 2 or not all(isinstance(a, str) and a.strip() for a in self.answers):
            raise TemplateError("template field 'answers' must be two non-empty words (positive, negative)")
        if self.answers[0] == self.answers[1]:
            raise TemplateError("template field 'answers' must be two different words")
        wanted = {"candidate": frozenset({"label"}) if self.method == RunMethod.UNARY else frozenset({"first", "second"})}
        for name, required in {**_PLACEHOLDERS, **wanted}.items():
            used = _placeholders(name, getattr(self, name))
            if used != required:
                shown = ", ".join("{" + p + "}" for p in sorted(required)) or "no placeholders"
                raise TemplateError(f"template field {name!r} must use exactly {shown}, not {sorted(used)}")
        if not self.query.rstrip().endswith("{candidate}"):
            raise TemplateError("template field 'query' must end with {candidate}: it is what differs between questions")

    @classmethod
    def default(cls, method: str) -> JudgementTemplate:
        """The built-in template for ``method`` (unary or pairwise); a ValueError for any other method."""
        if method == RunMethod.UNARY:
            return cls(method=RunMethod.UNARY, **_UNARY)
        if method == RunMethod.PAIRWISE:
            return cls(method=RunMethod.PAIRWISE, **_PAIRWISE)
        raise ValueError(f"method must be one of {', '.join(JUDGEMENT_METHODS)}, not {method!r}")

    @classmethod
    def from_yaml(cls, path: str | Path, method: str) -> JudgementTemplate:
        """A YAML mapping overriding any of the default template's fields for ``method``."""
        path = Path(path)
        raw = read_template_yaml(path)
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: a {method} template must be a YAML mapping")
        known = {f.name for f in fields(cls)} - {"method"}
        unknown = sorted(str(key) for key in raw if key not in known)
        if unknown:
            raise TemplateError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "answers" in raw and not isinstance(raw["answers"], list):
            raise TemplateError(f"{path}: 'answers' must be a list of two words")
        try:
            return replace(cls.default(method), **{k: ("" if v is None and k == "system" else v) for k, v in raw.items()})
        except TemplateError as err:
            raise TemplateError(f"{path}: {err}") from None

    def candidates(self, labels: Sequence[str]) -> list[str]:
        """The label set plus the none candidate (last)."""
        if self.none_label in labels:
            raise ValueError(f"the none candidate {self.none_label!r} is also a label: set none_label in the template")
        return [*labels, self.none_label]

    def pairs(self, labels: Sequence[str]) -> list[tuple[int, int]]:
        """Ordered candidate pairs (i, j), i != j, over labels + none, row-major: both orders."""
        m = len(labels) + 1
        return [(i, j) for i in range(m) for j in range(m) if i != j]

    def candidate_text(self, candidates: Sequence[str], question: int | tuple[int, int]) -> str:
        """The ``candidate`` field for one question: the candidate at index ``question`` (unary) or the index pair (pairwise)."""
        if self.method == RunMethod.UNARY:
            return self.candidate.format_map({"label": candidates[question]})
        first, second = question
        return self.candidate.format_map({"first": candidates[first], "second": candidates[second]})


@dataclass(frozen=True)
class JudgementPrompt:
    """One item's questions: ``prompt`` (messages and text) holds :data:`FILL` once, where each
    of ``fills`` goes; each question is answered with one of ``answers``."""

    prompt: Prompt
    fills: tuple[str, ...]
    answers: tuple[str, str]
    answer_separator: str = " "  # before the answer in the plain form (chat: none)

    @property
    def item_id(self) -> str:
        """The id of the item these questions are about."""
        return self.prompt.item_id

    def answer_texts(self, chat: bool) -> tuple[str, str]:
        """The (positive, negative) answer texts: the words alone in chat form, after ``answer_separator`` in plain form."""
        return self.answers if chat else tuple(self.answer_separator + a for a in self.answers)


def build_judgement_prompts(
    dataset: Dataset,
    pool: Dataset,
    template: JudgementTemplate,
    sampler: DemonstrationSampler | str,
    shots: int,
    *,
    seed: int | None = None,
    sampler_options: dict | None = None,
    shared_demonstrations: bool = True,
) -> list[JudgementPrompt]:
    """Unary or pairwise prompts for every item of ``dataset`` with ``shots`` solved questions
    about pool items (chosen as :func:`build_prompts` chooses demonstrations)."""
    sampler = resolve_sampler(sampler, pool, seed, sampler_options)
    if set(pool.labels) != set(dataset.labels):
        raise ValueError(
            f"demonstration pool {pool.name}/{pool.split} has labels {list(pool.labels)}, not {list(dataset.labels)}"
        )
    labels = dataset.labels
    candidates = template.candidates(labels)
    questions = list(range(len(candidates))) if template.method == RunMethod.UNARY else template.pairs(labels)
    instruction = template.instruction.format_map(
        {"labels": template.label_separator.join(candidates), "none": template.none_label}
    )
    chosen = choose_demonstrations(list(dataset.items), sampler, shots, shared_demonstrations)
    solved_cache: dict[tuple[str, int], tuple[str, str]] = {}
    prompts = []
    for item, demonstrations in zip(dataset.items, chosen):
        solved = []
        for position, demo in enumerate(demonstrations):
            key = (demo.id, position)
            if key not in solved_cache:
                solved_cache[key] = _solved(demo, position, template, candidates, labels, sampler.seed)
            solved.append(solved_cache[key])
        head = _query_head(template, item.text)
        fills = tuple(_query(template, item.text, template.candidate_text(candidates, q))[len(head) :] for q in questions)
        messages, text = _render(template, instruction, solved, head + FILL)
        prompts.append(
            JudgementPrompt(
                prompt=Prompt(item.id, messages, text, tuple(d.id for d in demonstrations), answer_prefix=""),
                fills=fills,
                answers=template.answers,
            )
        )
    return prompts


def _solved(demo: Item, position: int, template, candidates, labels, seed: int) -> tuple[str, str]:
    """A demonstration question and its answer: alternately positive and negative (unary) or
    with the right label first and second (pairwise), by position in the prompt."""
    rng = item_rng(seed, demo.id, purpose=f"{template.method} candidate")
    none = len(candidates) - 1
    applies = [i for i, label in enumerate(labels) if label in demo.gold] or [none]
    wrong = [i for i in range(len(candidates)) if i not in applies]
    right, other = int(rng.choice(applies)), int(rng.choice(wrong))
    positive = position % 2 == 0
    if template.method == RunMethod.UNARY:
        question, answer = (right, template.answers[0]) if positive else (other, template.answers[1])
    else:
        question, answer = ((right, other), template.answers[0]) if positive else ((other, right), template.answers[1])
    return _query(template, demo.text, template.candidate_text(candidates, question)), answer


def _query(template: JudgementTemplate, text: str, candidate: str) -> str:
    return template.query.format_map({"text": text, "candidate": candidate})


def _query_head(template: JudgementTemplate, text: str) -> str:
    """The query up to where the candidate starts (the same for all of an item's questions)."""
    marked = _query(template, text, FILL)
    return marked[: marked.index(FILL)]


def _render(template: JudgementTemplate, instruction: str, solved, final_query: str) -> tuple[list[dict], str]:
    messages = [{"role": "system", "content": template.system}] if template.system else []
    turns = [*solved, (final_query, None)]
    for index, (question, answer) in enumerate(turns):
        content = f"{instruction}\n\n{question}" if index == 0 else question
        messages.append({"role": "user", "content": content})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    blocks = [template.system] if template.system else []
    blocks.append(instruction)
    blocks.extend(f"{question}\n{template.answer_lead} {answer}" for question, answer in solved)
    blocks.append(f"{final_query}\n{template.answer_lead}")
    return messages, "\n\n".join(blocks)


def _placeholders(field_name: str, template: str) -> set[str]:
    if not isinstance(template, str):
        raise TemplateError(f"template field {field_name!r} must be a string")
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise TemplateError(f"template field {field_name!r} is not a valid format string ({err})") from None
