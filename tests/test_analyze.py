"""`labeldist analyze` on real runs of the trained tiny model: every statistic checked against
the records as the run wrote them, every figure written as a non-blank PNG and a PDF, label
attention read from a real eager forward pass, and clear errors for bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.stats
from analysis_runs import analysis_runs
from PIL import Image

from labeldist.cli import main
from labeldist.metrics.summary import wilson
from labeldist.report.analyses import paired_differences, ranks_of
from labeldist.report.browser import blank
from labeldist.runs import RunStore
from labeldist.runs.arrays import RunArrays
from labeldist.runs.view import load_view

FIGURES = ("spikiness", "entropy", "label_order", "first_vs_output")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return analysis_runs(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def analysed(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    assert main(["analyze", str(runs["dev"]), str(runs["train"]), "--out", str(out)]) == 0
    return out, json.loads((out / "analyses.json").read_text())


def written_labels(record) -> list[str]:
    out = []
    for slot in record["slots"]:
        if slot["chosen"] not in (None, "<stop>") and slot["chosen"] not in out:
            out.append(slot["chosen"])
    return out


def test_figures_are_png_and_pdf_and_not_blank(analysed):
    out, stats = analysed
    assert sorted(stats["figures"]) == sorted(FIGURES)
    for name in FIGURES:
        with Image.open(out / f"{name}.png") as image:
            assert image.width > 400 and image.height > 250
            assert not blank(image.convert("RGB")), name
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_statistics_match_the_records(runs, analysed):
    _, stats = analysed
    records = RunStore(runs["dev"]).read()
    labels = json.loads((runs["dev"] / "run.json").read_text())["labels"]
    run = stats["runs"]["run-dev"]
    assert run["summary"]["items"] == len(records) == 20

    # entropy: the analyses recompute it from the probabilities; the backend recorded its own
    recorded = [r["slots"][0]["entropy"] for _, r in records.iterrows()]
    assert run["entropy"]["slot1"]["mean"] == pytest.approx(np.mean(recorded), abs=1e-4)
    second = [r["slots"][1]["entropy"] for _, r in records.iterrows() if len(r["slots"]) > 1]
    assert run["entropy"]["by_slot"][1]["all"]["n"] == len(second)
    assert run["entropy"]["by_slot"][1]["all"]["mean"] == pytest.approx(np.mean(second), abs=1e-4)

    # the same over the labels alone (renormalised, stop left out)
    def labels_only(probs):
        q = np.array(probs) / sum(probs)
        return float(-(q[q > 0] * np.log(q[q > 0])).sum())

    only = [labels_only(r["slots"][0]["label_probs"]) for _, r in records.iterrows()]
    assert run["entropy"]["slot1_labels_only"]["mean"] == pytest.approx(np.mean(only), abs=1e-4)
    assert run["entropy"]["slot1_labels_only"]["max_entropy"] == pytest.approx(np.log(len(labels)), abs=1e-4)

    # spikiness: top label's share of slot 1's label mass
    top = [max(r["slots"][0]["label_probs"]) / sum(r["slots"][0]["label_probs"]) for _, r in records.iterrows()]
    assert run["spikiness"]["top1_mean"] == pytest.approx(np.mean(top), abs=1e-4)
    assert sum(row["mean"] for row in run["spikiness"]["by_rank"]) == pytest.approx(1.0, abs=1e-3)

    # label order: the k-th written label of answers with 2+ labels against gold
    multi = [(written_labels(r), set(r["gold"])) for _, r in records.iterrows() if len(written_labels(r)) >= 2]
    assert multi, "the tiny model writes several labels for texts with several cue words"
    assert run["label_order"]["answers_with_2plus"] == len(multi)
    for row in run["label_order"]["by_position"]:
        k = row["position"] - 1
        hits = [w[k] in g for w, g in multi if len(w) > k]
        assert row["n"] == len(hits) and row["value"] == pytest.approx(np.mean(hits), abs=1e-4)
        low, high = wilson(sum(hits), len(hits))
        assert row["low"] == pytest.approx(low, abs=1e-4) and row["high"] == pytest.approx(high, abs=1e-4)

    # slot 1's top label against the first written label; later labels' ranks at slot 1
    agree, later = [], []
    for _, r in records.iterrows():
        written = written_labels(r)
        if not written:
            continue
        p1 = np.array(r["slots"][0]["label_probs"])
        agree.append(labels[int(np.argmax(p1))] == written[0])
        later += [int((p1 > p1[labels.index(label)]).sum()) + 1 for label in written[1:]]
    first = run["first_vs_output"]
    assert first["top_label_is_first_written"]["n"] == len(agree)
    assert first["top_label_is_first_written"]["value"] == pytest.approx(np.mean(agree), abs=1e-4)
    assert first["later_labels"] == len(later)
    assert first["later_label_mean_rank"] == pytest.approx(np.mean(later), abs=1e-4)
    counts = np.array(first["position_rank_counts"])
    assert counts[1:].sum() == len(later) and counts[0].sum() == len(agree)


def test_paired_entropy_over_the_same_items(runs, tmp_path):
    """Runs over the same items (the sweep's) are compared item by item; runs over other items
    (dev and train) are not."""
    out = tmp_path / "paired"
    first, second = runs["sweep"] / "share-0", runs["sweep"] / "share-1"
    assert main(["analyze", str(first), str(second), "--out", str(out)]) == 0
    stats = json.loads((out / "analyses.json").read_text())
    (row,) = stats["paired"]
    assert (row["first"], row["second"], row["items"]) == ("share-0", "share-1", 12)
    h = [np.array([slots[0]["entropy"] for slots in RunStore(p).read()["slots"]]) for p in (first, second)]
    diff = h[1] - h[0]
    cell = row["slot1_entropy"]
    assert cell["difference"] == pytest.approx(diff.mean(), abs=1e-4) and cell["n"] == 12
    assert cell["low"] <= cell["difference"] <= cell["high"] and cell["high"] - cell["low"] > 0
    assert cell["second_higher_share"] == pytest.approx((diff > 0).mean(), abs=1e-4)
    # spikiness (slot 1's top label, renormalised over labels) and Spearman with the votes, item by item
    arrays = [RunArrays.load(p) for p in (first, second)]
    top = [a.slot_probs[:, 0].max(axis=1) / a.slot_probs[:, 0].sum(axis=1) for a in arrays]
    assert row["slot1_top_label"]["difference"] == pytest.approx(np.mean(top[1] - top[0]), abs=1e-4)
    rho = [np.array([scipy.stats.spearmanr(p, t).statistic for p, t in zip(a.slot_probs[:, 0], a.targets)]) for a in arrays]
    diff = rho[1] - rho[0]
    cell = row["slot1_spearman"]
    assert cell["n"] == np.isfinite(diff).sum() and cell["n"] > 0
    assert cell["difference"] == pytest.approx(np.nanmean(diff), abs=1e-4)


def test_paired_differences_match_items_by_id(runs, tmp_path):
    """The second run's records in another order pair the same items: the same numbers."""
    import pyarrow.parquet as pq

    first, second = runs["sweep"] / "share-0", runs["sweep"] / "share-1"
    shuffled = tmp_path / "share-1"
    shutil.copytree(second, shuffled)
    parts = sorted((shuffled / "records").glob("part-*.parquet"))
    tables = [pq.read_table(part) for part in parts]
    for part, table in zip(parts, reversed(tables)):  # parts swapped, rows reversed within each
        pq.write_table(table.take(list(range(table.num_rows))[::-1]), part)
    assert RunArrays.load(shuffled).ids != RunArrays.load(second).ids
    direct = paired_differences([load_view(first), load_view(second)])
    reordered = paired_differences([load_view(first), load_view(shuffled)])
    assert len(direct) == len(reordered) == 1
    for key in ("slot1_entropy", "slot1_labels_only", "slot1_top_label", "slot1_spearman"):
        assert direct[0][key] == reordered[0][key], key
    # a run that holds only part of the items (still running) is compared on the shared ones
    import pyarrow as pa

    everything = pa.concat_tables([pq.read_table(part) for part in parts])
    pq.write_table(everything.slice(0, 9), parts[0])  # 9 of the 12 items
    for other in parts[1:]:
        other.unlink()
    held = RunArrays.load(shuffled).ids
    assert len(held) == 9 and len(RunArrays.load(second).ids) == 12
    partial = paired_differences([load_view(first), load_view(shuffled)])
    assert partial[0]["items"] == len(held) and partial[0]["slot1_entropy"]["n"] == len(held)
    h_first = load_view(first).entropy()[:, 0]
    h_part = load_view(shuffled).entropy()[:, 0]
    where = {item_id: i for i, item_id in enumerate(RunArrays.load(first).ids)}
    expected = np.mean([h_part[j] - h_first[where[item_id]] for j, item_id in enumerate(held)])
    assert partial[0]["slot1_entropy"]["difference"] == pytest.approx(expected, abs=1e-4)


def test_ranks_share_ties():
    assert ranks_of(np.array([0.5, 0.2, 0.5, 0.1])).tolist() == [1, 3, 1, 4]


def test_runs_side_by_side_have_their_own_numbers(analysed):
    _, stats = analysed
    assert set(stats["runs"]) == {"run-dev", "run-train"}
    assert stats["paired"] == []  # other items: nothing to pair
    assert stats["runs"]["run-train"]["summary"]["items"] == 24
    assert stats["runs"]["run-dev"]["entropy"]["slot1"] != stats["runs"]["run-train"]["entropy"]["slot1"]


def test_label_attention_from_an_eager_pass(runs, tmp_path):
    from labeldist.prompts import get_answer_format
    from labeldist.runs.attention import answer_prefix, label_attention, load_attention_backend, query_parts
    from labeldist.slots.locate import plan_slots

    view = load_view(runs["dev"])
    backend = load_attention_backend(view, "cpu")
    assert backend.model.config._attn_implementation == "eager"
    result = label_attention(view, items=12, backend=backend)
    assert result["items"] == 12
    rows = {row["slot"]: row for row in result["by_slot"]}
    for row in rows.values():
        # every query's attention sums to 1 over what it sees, so the four shares do too
        assert sum(row["mass"].values()) == pytest.approx(1.0, abs=1e-3)
        assert all(0 <= v <= 1 for v in row["mass"].values())
        assert len(row["by_layer"]["input"]) == backend.model.config.num_hidden_layers
    assert rows[1]["mass"]["previous_labels"] == 0.0 and rows[1]["tokens_mean"]["previous_labels"] == 0
    assert 2 in rows and rows[2]["mass"]["previous_labels"] > 0 and rows[2]["tokens_mean"]["previous_labels"] >= 1

    # the token positions behind "earlier labels" spell exactly the earlier labels
    fmt = get_answer_format("json")
    records = RunStore(runs["dev"]).read()
    checked = 0
    for _, record in records.iterrows():
        written = written_labels(record)
        if len(written) < 2:
            continue
        prefix = answer_prefix(record["prompt"], record["answer"], fmt.opener)
        prompt_ids = backend.encode(record["prompt"])
        answer_ids = backend.scorer.tokenize_in_context(prompt_ids, record["answer"][len(prefix) :])
        plans = plan_slots(record["answer"], len(prefix), fmt, view.labels)
        queries = query_parts(len(prompt_ids), backend.texts.char_boundaries(answer_ids), len(prefix), plans, view.labels)
        ids = prompt_ids + answer_ids
        second = queries[1]
        assert backend.tokenizer.decode([ids[p] for p in second["previous"]]).strip(' "') == written[0]
        # the query is the token just before the second label: after it comes the label's text
        after = backend.tokenizer.decode(ids[second["query"] + 1 :])
        assert after.startswith(written[1]), (after, written)
        checked += 1
    assert checked >= 2


def test_analyze_with_attention_writes_its_figure(runs, tmp_path):
    out = tmp_path / "with-attention"
    assert main(["analyze", str(runs["dev"]), "--out", str(out), "--attention", "--attention-items", "6"]) == 0
    stats = json.loads((out / "analyses.json").read_text())
    assert "attention" in stats["runs"]["run-dev"] and "attention" in stats["figures"]
    with Image.open(out / "attention.png") as image:
        assert not blank(image.convert("RGB"))
    assert (out / "attention.pdf").exists()


def test_bad_input_names_the_folder(runs, tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "not a run folder" in err
    judged = tmp_path / "judged"
    shutil.copytree(runs["dev"], judged)
    manifest = json.loads((judged / "run.json").read_text())
    manifest["config"]["method"] = "unary"
    (judged / "run.json").write_text(json.dumps(manifest))
    assert main(["analyze", str(judged), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "judged" in err and "unary run" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(runs["dev"] / "run.json", empty / "run.json")
    assert main(["analyze", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no records" in capsys.readouterr().err
