"""`labeldist sweep` on the trained tiny model: one run per share of multi-label
demonstrations, every other setting shared (proved from the run files), the share really
taken (counted in the recorded demonstrations), numbers that match the records, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from analysis_runs import SWEEP_SHARES, SWEEP_SHOTS, analysis_runs, sweep_argv
from PIL import Image

from labeldist.cli import main
from labeldist.report.browser import blank
from labeldist.runs import RunStore
from labeldist.workflows.sweep import differing_settings, parse_shares


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return analysis_runs(tmp_path_factory.getbasetemp())


def manifests(sweep):
    summary = json.loads((sweep / "sweep.json").read_text())
    return summary, [json.loads((sweep / r["run"] / "run.json").read_text()) for r in summary["runs"]]


def test_runs_share_every_setting_but_the_share(runs):
    summary, found = manifests(runs["sweep"])
    assert [r["run"] for r in summary["runs"]] == ["share-0", "share-0.5", "share-1"]
    configs = [m["config"] for m in found]
    assert [c["multilabel_share"] for c in configs] == list(SWEEP_SHARES)
    # every key of every config, compared one by one: only the share differs
    keys = set().union(*configs)
    assert len(keys) > 15
    for key in keys - {"multilabel_share"}:
        values = {json.dumps(c.get(key), sort_keys=True) for c in configs}
        assert len(values) == 1, (key, values)
    assert configs[0]["seed"] == 0 and configs[0]["shots"] == SWEEP_SHOTS
    assert summary["shared_config"] == {k: v for k, v in configs[0].items() if k != "multilabel_share"}
    # same items, in the same order, in every run
    ids = [RunStore(runs["sweep"] / r["run"]).read()["id"].tolist() for r in summary["runs"]]
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 12 and summary["same_items"] is True


def test_the_share_is_taken(runs):
    """Each prompt's demonstrations hold round(share x shots) items with 2+ gold labels."""
    # gold of the generic table: labels chosen by at least half of the annotators
    votes = pd.read_csv(runs["data"] / "train.csv")
    gold_size = {}
    for item_id, group in votes.groupby("id"):
        counts = pd.Series([x for s in group["labels"].fillna("") for x in s.split(",") if x]).value_counts()
        gold_size[item_id] = int((counts >= len(group) / 2).sum())
    assert len(gold_size) == 24
    summary, _ = manifests(runs["sweep"])
    for share, row in zip(SWEEP_SHARES, summary["by_share"]):
        records = RunStore(runs["sweep"] / row["run"]).read()
        multi = [sum(gold_size[d] >= 2 for d in demos) for demos in records["demonstration_ids"]]
        assert set(multi) == {int(np.floor(share * SWEEP_SHOTS + 0.5))}, (share, multi)
        assert row["multilabel_demonstrations"] == pytest.approx(np.mean(multi))


def test_summary_numbers_match_the_records(runs):
    summary, _ = manifests(runs["sweep"])
    for row in summary["by_share"]:
        records = RunStore(runs["sweep"] / row["run"]).read()
        counts = [len(set(labels)) for labels in records["labels"]]
        assert row["labels_per_answer"]["mean"] == pytest.approx(np.mean(counts), abs=1e-4)
        assert row["answers_with_2plus"] == pytest.approx(np.mean([c >= 2 for c in counts]), abs=1e-4)
        entropy = [slots[0]["entropy"] for slots in records["slots"]]
        assert row["slot1_entropy"]["mean"] == pytest.approx(np.mean(entropy), abs=1e-4)
        # micro-F1 of the written labels, computed here from scratch
        pairs = [(set(written), set(gold)) for written, gold in zip(records["labels"], records["gold"])]
        tp = sum(len(w & g) for w, g in pairs)
        fp = sum(len(w - g) for w, g in pairs)
        fn = sum(len(g - w) for w, g in pairs)
        assert row["f1"]["output"]["micro"]["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    # with only multi-label demonstrations the tiny model writes more labels than with none
    by_share = {r["share"]: r for r in summary["by_share"]}
    assert by_share[1.0]["labels_per_answer"]["mean"] > by_share[0.0]["labels_per_answer"]["mean"]
    with Image.open(runs["sweep"] / "sweep.png") as image:
        assert image.width > 800 and not blank(image.convert("RGB"))
    assert (runs["sweep"] / "sweep.pdf").read_bytes()[:5] == b"%PDF-"


def test_rerunning_resumes_and_refuses_a_changed_setting(runs, capsys):
    before = {p.name: RunStore(p).done_ids() for p in runs["sweep"].glob("share-*")}
    assert main(sweep_argv(runs["argv"], runs["sweep"])) == 0
    after = {p.name: RunStore(p).done_ids() for p in runs["sweep"].glob("share-*")}
    assert before == after
    capsys.readouterr()
    assert main([*sweep_argv(runs["argv"], runs["sweep"]), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "share-0" in err and "seed" in err


def test_share_list_errors(runs, tmp_path, capsys):
    assert parse_shares("0, 0.25,1") == [0.0, 0.25, 1.0]
    for bad, message in (
        ("0,2", "outside [0, 1]"),
        ("0,x", "'x' is not a number"),
        ("0.5,0.5", "given twice"),
        (",", "no shares"),
    ):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_shares(bad)
    argv = [*sweep_argv(runs["argv"], tmp_path / "s")]
    argv[argv.index("--multilabel-share") + 1] = "0,1.5"
    assert main(argv) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert differing_settings([{"a": 1, "multilabel_share": 0}, {"a": 2, "multilabel_share": 1}]) == {"a": [1, 2]}
