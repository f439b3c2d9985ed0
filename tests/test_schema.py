import numpy as np
import pytest

from labeldist.data import Dataset, Item
from labeldist.data.ids import read_id_list
from labeldist.data.schema import disagreement
from labeldist.errors import DataError


def make(items, labels=("a", "b", "c")):
    return Dataset("toy", labels, "dev", items)


def test_vote_fractions_share_of_annotators():
    ds = make(
        [
            Item("1", "x", {"r1": frozenset({"a"}), "r2": frozenset({"a", "b"}), "r3": frozenset()}, frozenset({"a"})),
            Item("2", "y", {}, frozenset({"c"})),
        ]
    )
    np.testing.assert_allclose(ds.vote_fractions(), [[2 / 3, 1 / 3, 0], [0, 0, 1]])
    np.testing.assert_array_equal(ds.gold_matrix(), [[1, 0, 0], [0, 0, 1]])
    assert ds.vote_source == "mixed"
    assert list(ds.votes_available()) == [True, False]


def test_aggregate_only_is_marked_gold():
    ds = make([Item("1", "x", {}, frozenset({"b"}))])
    assert ds.vote_source == "gold"
    np.testing.assert_array_equal(ds.vote_fractions(), ds.gold_matrix())


def test_unknown_label_rejected_naming_item():
    with pytest.raises(DataError, match=r"toy, item 7: labels \['z'\] not in the label set"):
        make([Item("7", "x", {"r": frozenset({"z"})}, frozenset())])


def test_duplicate_labels_rejected():
    with pytest.raises(ValueError, match="duplicate labels"):
        make([], labels=("a", "a"))


def test_grouped_votes_are_unions_clamped_to_one():
    ds = make([Item("1", "x", {"r1": frozenset({"a", "b"}), "r2": frozenset({"c"})}, frozenset({"a", "b"}))])
    grouped = ds.grouped({"ab": ["a", "b"], "c": ["c"]}, "pairs")
    assert grouped.labels == ("ab", "c")
    np.testing.assert_allclose(grouped.vote_fractions(), [[0.5, 0.5]])
    np.testing.assert_array_equal(grouped.gold_matrix(), [[1, 0]])
    with pytest.raises(ValueError, match="in two groups"):
        ds.grouped({"x": ["a", "b"], "y": ["b", "c"]}, "overlap")


def test_disagreement():
    assert not disagreement(Item("1", "x", {"r1": frozenset({"a"}), "r2": frozenset({"a"})}))
    assert disagreement(Item("1", "x", {"r1": frozenset({"a"}), "r2": frozenset({"a", "b"})}))


def test_read_id_list(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# paper ids\n a1 \n\na2\n")
    assert read_id_list(path) == ["a1", "a2"]
    path.write_text("\n")
    with pytest.raises(DataError, match="ids.txt: id list is empty"):
        read_id_list(path)
    with pytest.raises(DataError, match="missing.txt: id list file does not exist"):
        read_id_list(tmp_path / "missing.txt")
