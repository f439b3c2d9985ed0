"""Few-shot prompts for multi-label classification: answer formats (writing, reading and
locating labels in answers), templates, demonstration samplers and the prompt builder."""

from labeldist.errors import TemplateError
from labeldist.prompts.builder import Prompt, build_prompts
from labeldist.prompts.formats import (
    ANSWER_FORMATS,
    AndFormat,
    AnswerFormat,
    CommaFormat,
    JsonFormat,
    LabelMatcher,
    LabelSpan,
    MatchMode,
    ParsedAnswer,
    get_answer_format,
)
from labeldist.prompts.samplers import (
    SAMPLERS,
    BalancedSampler,
    CoveringSampler,
    DemonstrationSampler,
    MiniLMEmbedder,
    RandomSampler,
    SimilaritySampler,
    default_embedder,
    item_rng,
    make_sampler,
    minilm_model_dir,
    multilabel_count,
)
from labeldist.prompts.templates import PromptTemplate

__all__ = [
    "ANSWER_FORMATS",
    "SAMPLERS",
    "AndFormat",
    "AnswerFormat",
    "BalancedSampler",
    "CommaFormat",
    "CoveringSampler",
    "DemonstrationSampler",
    "JsonFormat",
    "LabelMatcher",
    "LabelSpan",
    "MatchMode",
    "MiniLMEmbedder",
    "ParsedAnswer",
    "Prompt",
    "PromptTemplate",
    "RandomSampler",
    "SimilaritySampler",
    "TemplateError",
    "build_prompts",
    "default_embedder",
    "get_answer_format",
    "item_rng",
    "make_sampler",
    "minilm_model_dir",
    "multilabel_count",
]
