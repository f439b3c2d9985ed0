"""Prompt templates: the words around the texts, rendered as chat messages or as plain text.

Template fields are Python format strings; write ``{{`` and ``}}`` for literal braces.

- ``system``: the system message (may be empty: then there is none). No placeholders.
- ``instruction``: the task; ``{labels}`` (the label set, joined by ``label_separator``) and
  ``{answer_format}`` (the answer format's one-sentence instruction). The format placeholder is
  required so that a template cannot describe one answer format while the run parses another.
- ``demonstration``: one solved example in the plain-text form; ``{text}`` and ``{label}``
  (the demonstration's answer, written in the answer format).
- ``query``: a text to label; ``{text}``. It is each user turn of the chat form and the end of
  the plain-text form.

Chat form: the system message, then one user turn per demonstration (its ``query``) answered
by an assistant turn (its answer), then the final user turn. The instruction opens the *first*
user turn only, so the chat form says the same things as the plain form, where the instruction
also appears once; repeating it per turn would make prompts grow by K instructions.

Plain form: system, instruction, demonstrations and query separated by blank lines, then the
answer prefix (joined by ``answer_prefix_separator``, a space by default, mirroring
``Labels: {label}``). When the prefix is empty nothing follows the query: a trailing space
would make byte-pair tokenizers start the answer with a bare space token instead of their usual
" word" tokens.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from labeldist.errors import TemplateError
from labeldist.prompts.formats import AnswerFormat

DEFAULT_SYSTEM = (
    "You are an expert annotator. You read a text and decide which labels from a fixed label set "
    "apply to it. Several labels can apply at once, and it is possible that none applies."
)
DEFAULT_INSTRUCTION = "Classify the following text into zero or more of these labels: {labels}. {answer_format}"
DEFAULT_DEMONSTRATION = "Text: {text}\nLabels: {label}"
DEFAULT_QUERY = "Text: {text}\nLabels:"

# field -> placeholders it must contain (and the only ones it may contain)
_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "instruction": frozenset({"labels", "answer_format"}),
    "demonstration": frozenset({"text", "label"}),
    "query": frozenset({"text"}),
}
_YAML_REQUIRED = tuple(_PLACEHOLDERS)

Message = dict[str, str]


def read_template_yaml(path: Path):
    """The parsed content of a template YAML file; a missing or unreadable file is a
    TemplateError naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"{path}: template file does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise TemplateError(f"{path}: not a readable YAML file ({err})") from None


@dataclass(frozen=True)
class PromptTemplate:
    """The words of a generation prompt: system message, instruction, demonstration and query format strings."""

    system: str = DEFAULT_SYSTEM
    instruction: str = DEFAULT_INSTRUCTION
    demonstration: str = DEFAULT_DEMONSTRATION
    query: str = DEFAULT_QUERY
    # how the label set is listed in the instruction
    label_separator: str = ", "
    # between the plain-form query and a non-empty answer prefix
    answer_prefix_separator: str = " "

    def __post_init__(self) -> None:
        for name in ("label_separator", "answer_prefix_separator"):
            if not isinstance(getattr(self, name), str):
                raise TemplateError(f"template field {name!r} must be a string")
        for name, required in _PLACEHOLDERS.items():
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TemplateError(f"template field {name!r} must be a string, not {type(value).__name__}")
            used = _placeholders(name, value)
            unknown = sorted(used - required)
            if unknown:
                allowed = ", ".join("{" + p + "}" for p in sorted(required)) or "none"
                raise TemplateError(
                    f"template field {name!r} uses unknown placeholder(s) "
                    f"{', '.join('{' + p + '}' for p in unknown)}; allowed: {allowed}"
                )
            missing = sorted(required - used)
            if missing:
                raise TemplateError(f"template field {name!r} lacks placeholder(s) {', '.join('{' + p + '}' for p in missing)}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PromptTemplate:
        """Read a template from a YAML mapping with keys system, instruction, demonstration,
        query (all required; system may be empty) and optionally label_separator and
        answer_prefix_separator."""
        path = Path(path)
        raw = read_template_yaml(path)
        if not isinstance(raw, dict):
            raise TemplateError(f"{path}: a template must be a YAML mapping with keys {', '.join(_YAML_REQUIRED)}")
        missing = [key for key in _YAML_REQUIRED if key not in raw]
        if missing:
            raise TemplateError(f"{path}: missing key(s) {', '.join(map(repr, missing))}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in raw if key not in known)
        if unknown:
            raise TemplateError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}")
        values = {key: ("" if value is None and key == "system" else value) for key, value in raw.items()}
        try:
            return cls(**values)
        except TemplateError as err:
            raise TemplateError(f"{path}: {err}") from None

    def instruction_text(self, labels: Sequence[str], answer_format: AnswerFormat) -> str:
        """The instruction with the labels (joined by ``label_separator``) and the answer format's instruction filled in."""
        return self.instruction.format_map(
            {"labels": self.label_separator.join(labels), "answer_format": answer_format.instruction}
        )

    def chat_messages(
        self,
        query_text: str,
        demonstrations: Sequence[tuple[str, str]],
        labels: Sequence[str],
        answer_format: AnswerFormat,
    ) -> list[Message]:
        """Messages for a chat model; ``demonstrations`` are (text, written answer) pairs.

        The answer prefix is not in the messages: a chat backend adds the generation prompt
        and then the prefix as the start of the assistant turn.
        """
        messages: list[Message] = []
        system = self.system.format_map({})
        if system:
            messages.append({"role": "system", "content": system})
        instruction = self.instruction_text(labels, answer_format)
        turns = [*demonstrations, (query_text, None)]
        for index, (text, answer) in enumerate(turns):
            user = self.query.format_map({"text": text})
            if index == 0:
                user = f"{instruction}\n\n{user}"
            messages.append({"role": "user", "content": user})
            if answer is not None:
                messages.append({"role": "assistant", "content": answer})
        return messages

    def plain_text(
        self,
        query_text: str,
        demonstrations: Sequence[tuple[str, str]],
        labels: Sequence[str],
        answer_format: AnswerFormat,
        answer_prefix: str = "",
    ) -> str:
        """One string for models without a chat template; it ends where the model continues."""
        blocks = []
        system = self.system.format_map({})
        if system:
            blocks.append(system)
        blocks.append(self.instruction_text(labels, answer_format))
        blocks.extend(self.demonstration.format_map({"text": text, "label": answer}) for text, answer in demonstrations)
        blocks.append(self.query.format_map({"text": query_text}))
        prompt = "\n\n".join(blocks)
        if answer_prefix:
            prompt += self.answer_prefix_separator + answer_prefix
        return prompt


def _placeholders(field_name: str, template: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise TemplateError(
            f"template field {field_name!r} is not a valid format string ({err}); write {{{{ and }}}} for literal braces"
        ) from None
    names = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TemplateError(f"template field {field_name!r}: placeholder {{{shown}}} must be a plain name")
        names.add(name)
    return names
