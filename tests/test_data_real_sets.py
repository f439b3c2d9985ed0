"""Loaders of the real per-annotator corpora (LeWiDi 2023/2025, ConvAbuse, ToLD-Br, tweet
annotation sensitivity, VariErr NLI): hand-written fixtures in each official layout (own texts)
with every known defect, counted; and, when ../shared/data is present, the counts of
data/SOURCES.md on the real files."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from conftest import FIXTURES, shared
from labeldist.cli import main
from labeldist.data import describe, load_dataset
from labeldist.errors import DataError


def votes(item) -> dict[str, set[str]]:
    return {annotator: set(labels) for annotator, labels in item.votes.items()}


def by_id(dataset):
    return {item.id: item for item in dataset}


def ratings(dataset) -> int:
    return sum(len(item.votes) for item in dataset)


# ---------------------------------------------------------------- fixtures: LeWiDi 2023


def test_hs_brexit_multilabel_votes_no_for_zero_and_split_ids():
    data = load_dataset("lewidi2023", FIXTURES / "lewidi2023" / "HS-Brexit_dataset", "train")
    assert (data.name, data.split, data.labels) == ("hs-brexit", "train", ("hate", "aggressive", "offensive"))
    assert data.ids == ["train-1", "train-2", "train-3"]
    item = by_id(data)["train-2"]
    assert votes(item) == {
        "Ann1": {"hate", "aggressive", "offensive"},
        "Ann2": {"hate", "aggressive", "offensive"},
        "Ann3": {"aggressive"},  # offensive "No" read as 0
        "Ann4": {"hate", "aggressive", "offensive"},
        "Ann5": set(),
        "Ann6": set(),
    }
    assert set(item.gold) == {"hate", "aggressive", "offensive"}  # 3 of 6 is at least half
    assert votes(by_id(data)["train-3"])["Ann6"] == {"offensive"}
    assert data.info["repairs"] == {"no_for_0": 1, "ids_reused_dev": 2, "ids_reused_test": 2}
    assert "1 values written 'No' instead of 0: read as 0" in data.notes
    summary = describe(data)
    assert summary["votes_per_item_distribution"] == {"6": 3}
    assert summary["disagreement_share"] == pytest.approx(2 / 3)
    assert summary["repairs"]["no_for_0"] == 1
    # ids restart in every file; prefixed, the splits join
    joined = load_dataset("lewidi2023", FIXTURES / "lewidi2023" / "HS-Brexit_dataset", "train+dev+test")
    assert len(joined) == 7


def test_convabuse_lewidi_types_and_dialogue_text():
    data = load_dataset("lewidi2023", FIXTURES / "lewidi2023", "train", set="ConvAbuse")
    assert data.name == "convabuse-lewidi" and len(data.labels) == 7
    item = by_id(data)["train-2"]
    assert votes(item) == {"Ann2": {"sexist", "intellectual"}, "Ann3": {"sexist"}, "Ann5": set()}
    assert item.text == (
        "Prev agent: Please go on.\nPrev user: you are useless\nAgent: Why do you say that?\nUser: shut up you stupid girl bot"
    )
    assert set(item.gold) == {"sexist"}
    fractions = data.vote_fractions()[data.ids.index("train-2")]
    assert fractions[data.label_index()["intellectual"]] == pytest.approx(1 / 3)


def test_md_agreement_repeated_annotator_kept_once():
    data = load_dataset("lewidi2023", FIXTURES / "lewidi2023" / "MD-Agreement_dataset", "test")
    assert data.labels == ("offensive",)
    item = by_id(data)["test-2"]
    assert list(item.votes) == ["Ann20", "Ann25", "Ann26", "Ann27"]
    assert data.info["repairs"]["repeated_annotator"] == 1
    assert data.vote_fractions()[0, 0] == pytest.approx(0.4) and not by_id(data)["test-1"].gold


def test_lewidi_errors_name_file_and_item(tmp_path):
    with pytest.raises(DataError, match="several sets here"):
        load_dataset("lewidi2023", FIXTURES / "lewidi2023", "train")
    with pytest.raises(DataError, match="unknown LeWiDi 2023 set 'Nope'"):
        load_dataset("lewidi2023", FIXTURES / "lewidi2023", "train", set="Nope")
    with pytest.raises(DataError, match=r"MD-Agreement_dev\.json: split file does not exist \(splits present: test, train\)"):
        load_dataset("lewidi2023", FIXTURES / "lewidi2023" / "MD-Agreement_dataset", "dev")
    folder = tmp_path / "HS-Brexit_dataset"
    shutil.copytree(FIXTURES / "lewidi2023" / "HS-Brexit_dataset", folder)
    path = folder / "HS-Brexit_dev.json"
    data = json.loads(path.read_text())
    data["2"]["annotations"] = "1,1,1,0,0"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"HS-Brexit_dev\.json, item 2: 6 annotators but 5 annotations"):
        load_dataset("lewidi2023", folder, "dev")
    data["2"]["annotations"] = "1,1,1,0,0,maybe"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"item 2: annotations values must be 0 or 1, found 'maybe'"):
        load_dataset("lewidi2023", folder, "dev")


# ---------------------------------------------------------------- fixtures: LeWiDi 2025


def test_varierr_lewidi2025_sets_ids_meta_and_repeated_keys():
    folder = FIXTURES / "lewidi2025" / "VariErrNLI"
    train = load_dataset("lewidi2025", folder, "train")
    assert train.name == "varierrnli" and train.labels == ("entailment", "neutral", "contradiction")
    assert votes(by_id(train)["train-10001"])["Ann2"] == {"entailment", "neutral"}
    assert by_id(train)["train-10001"].text == (
        "Context: The bakery on the corner closes at noon on Sundays.\nStatement: The bakery is open on Sunday mornings."
    )
    assert describe(train)["votes_per_item_distribution"] == {"1": 1, "3": 1, "4": 1}
    # 10001 is in test too, with another statement; the metadata has 3 trailing commas and no Ann4
    assert train.info["repairs"] == {"ids_reused_test": 1, "meta_trailing_commas": 3, "annotators_without_meta": 1}
    assert train.info["annotator_meta"] == {"entries": 3, "annotators_without_meta": 1}
    test = load_dataset("lewidi2025", folder, "test")
    assert test.info["repairs"]["repeated_json_keys"] == 1
    item = by_id(test)["test-10005"]
    assert votes(item) == {"Ann1": {"contradiction"}, "Ann2": {"contradiction", "neutral"}, "Ann3": {"contradiction"}}
    row = test.vote_fractions()[test.ids.index("test-10005")]
    assert row.tolist() == pytest.approx([0.0, 1 / 3, 1.0])
    # the same id in train and test stays two items
    assert len(load_dataset("lewidi2025", folder, "train+test")) == 5


def test_mp_binary_and_numeric_meta_keys():
    data = load_dataset("lewidi2025", FIXTURES / "lewidi2025", "dev", set="MP")
    assert data.labels == ("irony",) and data.ids == ["dev-7", "dev-8"]
    assert data.vote_fractions()[:, 0].tolist() == pytest.approx([2 / 3, 0.0])
    assert set(by_id(data)["dev-7"].gold) == {"irony"}
    assert data.info["repairs"] == {"meta_numeric_keys": 4}
    assert data.info["annotator_meta"]["annotators_without_meta"] == 0
    with pytest.raises(DataError, match=r"MP_train\.json: split file does not exist \(splits present: dev, test\)"):
        load_dataset("lewidi2025", FIXTURES / "lewidi2025" / "MP", "train")


# ---------------------------------------------------------------- fixtures: ConvAbuse original


def test_convabuse_original_blocks_repeats_and_misnamed_columns():
    data = load_dataset("convabuse", FIXTURES / "convabuse_original", "train")
    assert data.ids == ["11", "12", "13"]
    items = by_id(data)
    assert votes(items["11"]) == {"Annotator1": set(), "Annotator4": set(), "Annotator7": set()}
    # "1, 1" keeps 1; "0, 1" keeps 0; Annotator8's transphobic sits under a column headed Annotator6_transphobic
    assert votes(items["12"]) == {
        "Annotator2": {"intellectual"},
        "Annotator3": {"intellectual", "ableist"},
        "Annotator8": {"intellectual", "transphobic"},
    }
    assert votes(items["13"])["Annotator5"] == {"sexist"}  # types on a not-abusive rating: kept, counted
    assert [set(items[i].gold) for i in ("11", "12", "13")] == [set(), {"intellectual"}, {"sexist"}]
    assert data.info["repairs"] == {
        "misnamed_columns": 2,
        "repeated_cells": 3,
        "disagreeing_repeats": 1,
        "types_without_abuse": 1,
        "ratings_with_repeats": 2,
    }
    assert items["12"].text.startswith("Prev agent: _\nPrev user: _\nAgent: Hi there.\nUser: you dumb tin can")
    assert load_dataset("convabuse", FIXTURES / "convabuse_original", "val").split == "dev"


def test_convabuse_original_errors(tmp_path):
    folder = tmp_path / "convabuse"
    shutil.copytree(FIXTURES / "convabuse_original", folder)
    path = folder / "ConvAbuseEMNLPtest.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",0,0,1,", ",0,0,2,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"ConvAbuseEMNLPtest\.csv, row 1 \(example 31\): Annotator3_\S+ must be 0 or 1, found '2'"
    ):
        load_dataset("convabuse", folder, "test")
    header = lines[0].split(",")
    header[10] = "Annotator9_is_abuse.1"
    path.write_text(",".join(header) + "\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match=r"line 1: column 11 should be 'Annotator1_is_abuse.-2'"):
        load_dataset("convabuse", folder, "test")


# ---------------------------------------------------------------- fixtures: ToLD-Br


def test_told_br_slots_annotators_and_hashed_splits():
    folder = FIXTURES / "told_br"
    data = load_dataset("told_br", folder, "all")
    assert len(data) == 6 and data.labels[0] == "homophobia"
    items = by_id(data)
    assert votes(items["2"]) == {"A3": {"obscene"}, "A4": {"obscene", "insult"}, "A5": set()}
    assert set(items["5"].gold) == {"xenophobia", "insult"}
    summary = describe(data)
    assert summary["annotators"] == 6 and summary["votes_per_item_distribution"] == {"3": 6}
    assert data.info["repairs"] == {"repeated_texts": 1}
    parts = [load_dataset("told_br", folder, split).ids for split in ("train", "dev", "test")]
    assert sorted(i for part in parts for i in part) == sorted(data.ids)
    assert len({i for part in parts for i in part}) == 6
    with pytest.raises(DataError, match="ships no splits"):
        load_dataset("told_br", folder, "validation-2")


def test_told_br_without_identities_and_count_mismatch(tmp_path):
    folder = tmp_path / "told"
    shutil.copytree(FIXTURES / "told_br", folder)
    (folder / "agreement_files" / "insult_alpha.csv").unlink()
    data = load_dataset("told_br", folder, "all")
    assert list(by_id(data)["2"].votes) == ["slot1", "slot2", "slot3"]
    assert any("not found: annotators are the slots" in note for note in data.notes)
    counts = folder / "ToLD-BR.csv"
    lines = counts.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 6)[0] + ",0.0,1.0,1.0,0.0,0.0,0.0"
    counts.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ToLD-BR\.csv, row 2: obscene = 1, but the slots sum to 2"):
        load_dataset("told_br", folder, "all")


# ---------------------------------------------------------------- fixtures: tweet sensitivity


def test_tweet_sensitivity_groups_by_tweet_and_counts_drops():
    folder = FIXTURES / "tweet_annotation_sensitivity"
    data = load_dataset("tweet_sensitivity", folder, "train")
    assert data.labels == ("hate speech", "offensive language") and data.ids == ["5", "6", "7", "8"]
    items = by_id(data)
    assert votes(items["6"]) == {"101": {"offensive language"}, "105": {"offensive language"}}
    assert votes(items["8"]) == {
        "104": {"hate speech", "offensive language"},
        "105": {"hate speech", "offensive language"},
        "106": {"hate speech"},
    }
    assert data.info["repairs"] == {
        "missing_hate.speech": 1,
        "repeated_ratings": 1,
        "missing_offensive.language": 1,
        "shared_texts": 1,
    }
    assert describe(data)["votes_per_item_distribution"] == {"1": 1, "2": 1, "3": 2}
    test = load_dataset("tweet_sensitivity", folder, "test")  # other column order
    assert test.vote_fractions().tolist() == [pytest.approx([1 / 3, 2 / 3])]
    only_a = load_dataset("tweet_sensitivity", folder, "train", versions="A")
    assert only_a.ids == ["5", "6", "8"]
    assert only_a.info["repairs"] == {"other_versions": 8, "repeated_ratings": 1, "items_without_votes": 1}
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_dataset("tweet_sensitivity", folder, "dev")


# ---------------------------------------------------------------- fixtures: VariErr original


def test_varierr_original_votes_idk_and_chaosnli():
    folder = FIXTURES / "varierr_nli"
    data = load_dataset("varierr_nli", folder, "all")
    items = by_id(data)
    assert votes(items["501e"]) == {"Ann1": {"entailment"}, "Ann2": {"entailment"}, "Ann3": {"entailment", "neutral"}}
    assert votes(items["502c"]) == {"Ann1": {"contradiction"}, "Ann2": {"contradiction"}, "Ann4": {"neutral", "contradiction"}}
    assert data.info["repairs"] == {"idk_no_vote": 2}
    chaos = load_dataset("varierr_nli", folder, "all", votes="chaosnli")
    assert chaos.vote_fractions().tolist() == [pytest.approx([0.9, 0.1, 0.0]), pytest.approx([0.01, 0.24, 0.75])]
    assert describe(chaos)["votes_per_item_distribution"] == {"100": 2}
    with pytest.raises(DataError, match="votes must be 'varierr' or 'chaosnli'"):
        load_dataset("varierr_nli", folder, "all", votes="both")


def test_describe_cli_shows_repairs(capsys):
    folder = FIXTURES / "lewidi2023" / "HS-Brexit_dataset"
    assert main(["data", "describe", "lewidi2023", "--data-dir", str(folder), "--split", "train", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["repairs"]["no_for_0"] == 1 and summary["items"] == 3
    assert main(["data", "describe", "convabuse", "--data-dir", str(FIXTURES / "convabuse_original"), "--split", "train"]) == 0
    out = capsys.readouterr()
    assert "repaired/dropped" in out.out and "ratings_with_repeats 2" in out.out
    assert "items by votes       3: 3" in out.out


# ---------------------------------------------------------------- real files (../shared/data)


def label_set_sizes(dataset) -> dict[int, int]:
    return dict(sorted(Counter(len(v) for item in dataset for v in item.votes.values()).items()))


@pytest.mark.parametrize(
    ("split", "items", "n_ratings", "repeats", "multi_type_items"),
    [("train", 2501, 7421, 222, 58), ("dev", 831, 2443, 58, 20), ("test", 853, 2547, 65, 24)],
)
def test_real_convabuse_original(split, items, n_ratings, repeats, multi_type_items):
    data = load_dataset("convabuse", shared("convabuse_original"), split)
    assert len(data) == items and ratings(data) == n_ratings
    assert data.info["repairs"]["ratings_with_repeats"] == repeats
    assert data.info["repairs"]["misnamed_columns"] == 2
    assert sum(any(len(v) > 1 for v in item.votes.values()) for item in data) == multi_type_items
    if split == "train":
        assert describe(data)["votes_per_item_distribution"] == {"2": 653, "3": 1458, "4": 232, "5": 136, "6": 21, "7": 1}
        assert {k: v for k, v in label_set_sizes(data).items() if k >= 2} == {2: 71, 3: 4}


@pytest.mark.parametrize(
    ("split", "items", "sizes", "no_for_0"),
    [
        ("train", 784, {0: 3513, 1: 555, 2: 369, 3: 267}, 2),
        ("dev", 168, {0: 783, 1: 75, 2: 78, 3: 72}, 0),
        ("test", 168, {0: 668, 1: 179, 2: 103, 3: 58}, 1),
    ],
)
def test_real_hs_brexit(split, items, sizes, no_for_0):
    data = load_dataset("lewidi2023", shared("lewidi2023", "HS-Brexit_dataset"), split)
    assert len(data) == items and ratings(data) == 6 * items
    assert label_set_sizes(data) == sizes
    assert data.info["repairs"].get("no_for_0", 0) == no_for_0


def test_real_lewidi2023_convabuse_md_agreement_armis():
    root = shared("lewidi2023")
    conv = {s: load_dataset("lewidi2023", root, s, set="ConvAbuse") for s in ("train", "dev", "test")}
    assert [len(conv[s]) for s in conv] == [2398, 812, 840]
    assert [ratings(conv[s]) for s in conv] == [7144, 2414, 2610]
    assert describe(conv["train"])["votes_per_item_distribution"] == {"2": 629, "3": 1382, "4": 223, "5": 137, "6": 26, "7": 1}
    md = {s: load_dataset("lewidi2023", root, s, set="MD-Agreement") for s in ("train", "dev", "test")}
    assert [len(md[s]) for s in md] == [6592, 1104, 3057]
    assert [describe(md[s])["annotators"] for s in md] == [670, 534, 246]
    assert ratings(md["test"]) == 15285 - 1 and md["test"].info["repairs"]["repeated_annotator"] == 1
    assert len(by_id(md["test"])["test-2038"].votes) == 4
    armis = {s: load_dataset("lewidi2023", root, s, set="ArMIS") for s in ("train", "dev", "test")}
    assert [(len(armis[s]), ratings(armis[s])) for s in armis] == [(657, 1971), (141, 423), (145, 435)]


def test_real_lewidi2025():
    root = shared("lewidi2025")
    ve = {s: load_dataset("lewidi2025", root, s, set="VariErrNLI") for s in ("train", "dev", "test")}
    assert [(len(ve[s]), ratings(ve[s])) for s in ve] == [(388, 1443), (50, 181), (50, 192)]
    assert describe(ve["train"])["votes_per_item_distribution"] == {"1": 3, "2": 23, "3": 54, "4": 308}
    assert describe(ve["dev"])["votes_per_item_distribution"] == {"2": 6, "3": 7, "4": 37}
    assert describe(ve["test"])["votes_per_item_distribution"] == {"3": 8, "4": 42}
    reused = ve["train"].info["repairs"]
    assert reused["ids_reused_dev"] + reused["ids_reused_test"] == 8  # SOURCES: 8 ids in two splits
    assert reused["meta_trailing_commas"] == 4
    # multi-label ratings: train 36 + 20 + 6, dev 6, test 7
    assert [label_set_sizes(ve[s]).get(2, 0) for s in ve] == [62, 6, 7]
    para = load_dataset("lewidi2025", root, "train", set="Paraphrase")
    assert (len(para), ratings(para)) == (400, 1600) and para.info["repairs"]["meta_trailing_commas"] == 4
    csc = load_dataset("lewidi2025", root, "dev+test", set="CSC")
    assert (len(csc), ratings(csc), describe(csc)["annotators"]) == (1408, 3186 + 3224, 872)
    mp = {s: load_dataset("lewidi2025", root, s, set="MP") for s in ("dev", "test")}
    assert [(len(mp[s]), ratings(mp[s])) for s in mp] == [(3005, 15178), (3756, 18693)]
    assert mp["dev"].info["repairs"]["meta_numeric_keys"] == 506
    assert mp["dev"].info["annotator_meta"]["annotators_without_meta"] == 0


def test_real_told_br():
    data = load_dataset("told_br", shared("told_br"), "all")
    assert len(data) == 21000 and describe(data)["annotators"] == 42
    assert label_set_sizes(data) == {0: 47821, 1: 12594, 2: 2321, 3: 252, 4: 10, 5: 2}
    assert describe(data)["label_vote_frequency"] == {
        "homophobia": 594,
        "obscene": 9667,
        "insult": 6771,
        "racism": 177,
        "misogyny": 625,
        "xenophobia": 208,
    }
    assert sum(any(item.votes.values()) for item in data) == 9255
    assert data.info["repairs"]["repeated_texts"] == 21000 - 20813
    per_annotator = Counter(a for item in data for a in item.votes)
    assert set(per_annotator.values()) == {1500}


@pytest.mark.parametrize(
    ("split", "tweets", "kept", "na"), [("train", 2250, 33683 - 231 - 33, (231, 33)), ("test", 750, 11217 - 80 - 6, (80, 6))]
)
def test_real_tweet_sensitivity(split, tweets, kept, na):
    data = load_dataset("tweet_sensitivity", shared("tweet_annotation_sensitivity"), split)
    assert len(data) == tweets and ratings(data) == kept
    assert (data.info["repairs"]["missing_hate.speech"], data.info["repairs"]["missing_offensive.language"]) == na
    assert set(describe(data)["votes_per_item_distribution"]) == {"14", "15"}
    # SOURCES counts 916 / 911 annotators in the files; 9 / 8 of them gave only NA ratings
    assert describe(data)["annotators"] == {"train": 907, "test": 903}[split]
    counts = Counter(frozenset(v) for item in data for v in item.votes.values())
    if split == "train":
        assert counts[frozenset()] == 12521 and counts[frozenset({"hate speech", "offensive language"})] == 7818


def test_real_varierr_original():
    folder = shared("varierr_nli")
    data = load_dataset("varierr_nli", folder, "all")
    assert len(data) == 500
    assert describe(data)["votes_per_item_distribution"] == {"1": 4, "2": 31, "3": 70, "4": 395}
    assert label_set_sizes(data) == {1: 1779, 2: 77}
    assert sum(any(len(v) > 1 for v in item.votes.values()) for item in data) == 73
    chaos = load_dataset("varierr_nli", folder, "all", votes="chaosnli")
    assert describe(chaos)["votes_per_item_distribution"] == {"100": 500}
