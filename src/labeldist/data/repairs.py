"""What a loader repaired or dropped, counted, and splits for corpora that ship without any.

Every loader of a real per-annotator corpus counts each known defect it handles (a ``"No"``
written for 0, a repeated annotator, a repeated rating in one cell, ...). The counts go into
``Dataset.info["repairs"]`` (a dict, shown by ``labeldist data describe --json``) and, as
sentences, into ``Dataset.notes``.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from labeldist.errors import DataError


class Repairs:
    """Counts of repairs and drops, each with the sentence that explains it."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.messages: dict[str, str] = {}

    def add(self, key: str, message: str, n: int = 1) -> None:
        """Count ``n`` occurrences of ``key``; ``message`` says what was done, with ``{n}``."""
        if n <= 0:
            return
        self.counts[key] += n
        self.messages.setdefault(key, message)

    def notes(self) -> list[str]:
        """One sentence per counted repair, its message with the count filled in."""
        return [self.messages[key].format(n=count) for key, count in self.counts.items()]

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (repair key -> count), for ``Dataset.info``."""
        return dict(self.counts)


SPLIT_SHARES = (("train", 0.8), ("dev", 0.1), ("test", 0.1))


def hashed_split(corpus: str, item_id: str) -> str:
    """train / dev / test (80 / 10 / 10) from a hash of the corpus name and the item id: a
    stable split for a corpus that ships none, the same on every machine and for every subset."""
    digest = hashlib.sha256(f"{corpus}:{item_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, share in SPLIT_SHARES:
        edge += share
        if u < edge:
            return name
    return SPLIT_SHARES[-1][0]


HASHED_SPLITS = ("train", "dev", "test", "all")


def check_hashed_split(split: str, source: str) -> str:
    """``split`` in canonical form for a corpus without splits; a DataError unless it is train, dev, test or all."""
    from labeldist.data.splits import to_canonical_split

    canonical = to_canonical_split(split)
    if canonical not in HASHED_SPLITS:
        raise DataError(
            source,
            None,
            f"unknown split {split!r}; this corpus ships no splits: 'all', or train/dev/test (80/10/10 by a hash of the item id)",
        )
    return canonical


def render_fields(fields: dict, order: tuple[str, ...] | None = None) -> str:
    """A dict of text fields (``{"context": ..., "statement": ...}``) as ``Context: ...`` lines."""
    keys = [k for k in (order or ()) if k in fields] + [k for k in fields if not order or k not in order]
    lines = []
    for key in keys:
        value = fields[key]
        name = str(key).replace("_", " ")
        lines.append(f"{name[:1].upper()}{name[1:]}: {'' if value is None else str(value).strip()}")
    return "\n".join(lines)
