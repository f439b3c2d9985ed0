"""Label groupings: built-in ones (GoEmotions paper-7, Ekman, sentiment) or a JSON file.

A grouping maps group name -> member labels. Group order is the order given here, which
becomes the dataset's label order.
"""

from __future__ import annotations

import json
from pathlib import Path

from labeldist.data.io import utf8_errors
from labeldist.errors import DataError

# The 7 emotion clusters of "Large Language Models Do Multi-Label Classification Differently"
# (EMNLP 2025), from the README of its code ("emotion_clustering.json"); each cluster is named
# after one of its members.
GOEMOTIONS_PAPER7: dict[str, list[str]] = {
    "joy": ["amusement", "excitement", "joy", "love"],
    "optimism": ["desire", "optimism", "caring"],
    "admiration": ["pride", "admiration", "gratitude", "relief", "approval", "realization"],
    "surprise": ["surprise", "confusion", "curiosity"],
    "fear": ["fear", "nervousness"],
    "sadness": ["remorse", "embarrassment", "disappointment", "sadness", "grief"],
    "anger": ["anger", "disgust", "annoyance", "disapproval"],
}

# Ekman's six basic emotions, as in the GoEmotions release (data/ekman_mapping.json).
GOEMOTIONS_EKMAN: dict[str, list[str]] = {
    "anger": ["anger", "annoyance", "disapproval"],
    "disgust": ["disgust"],
    "fear": ["fear", "nervousness"],
    "joy": [
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ],
    "sadness": ["sadness", "disappointment", "embarrassment", "grief", "remorse"],
    "surprise": ["surprise", "realization", "confusion", "curiosity"],
}

# Sentiment groups, as in the GoEmotions release (data/sentiment_dict.json).
GOEMOTIONS_SENTIMENT: dict[str, list[str]] = {
    "positive": [
        "amusement",
        "excitement",
        "joy",
        "love",
        "desire",
        "optimism",
        "caring",
        "pride",
        "admiration",
        "gratitude",
        "relief",
        "approval",
    ],
    "negative": [
        "fear",
        "nervousness",
        "remorse",
        "embarrassment",
        "disappointment",
        "sadness",
        "grief",
        "disgust",
        "anger",
        "annoyance",
        "disapproval",
    ],
    "ambiguous": ["realization", "surprise", "curiosity", "confusion"],
}

BUILTIN_GROUPINGS: dict[str, dict[str, dict[str, list[str]]]] = {
    "goemotions": {
        "paper-7": GOEMOTIONS_PAPER7,
        "ekman": GOEMOTIONS_EKMAN,
        "sentiment": GOEMOTIONS_SENTIMENT,
    },
}


def read_grouping_file(path: Path) -> dict[str, list[str]]:
    """A JSON object ``{group: [member, ...]}``."""
    try:
        with utf8_errors(path):
            raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(str(path), err.lineno, f"invalid JSON: {err.msg}") from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v) for k, v in raw.items()
    ):
        raise DataError(str(path), None, "a grouping must be a JSON object mapping group names to lists of labels")
    return raw


def resolve_grouping(dataset: str, grouping: str, data_dir: Path | None = None) -> dict[str, list[str]]:
    """A built-in grouping by name, or a JSON grouping file (absolute or in the data dir)."""
    builtin = BUILTIN_GROUPINGS.get(dataset.lower(), {})
    if grouping in builtin:
        return builtin[grouping]
    candidates = [Path(grouping)]
    if data_dir is not None and data_dir.is_dir():
        candidates.append(data_dir / grouping)
    for path in candidates:
        if path.is_file():
            return read_grouping_file(path)
    known = ", ".join(builtin) or "none built in"
    raise DataError(dataset, None, f"unknown grouping {grouping!r} (known: {known}; or give a JSON file)")
