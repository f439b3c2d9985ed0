"""experiments/results_tables.py (docs/results.md's tables) on small real runs of the tiny model."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from labeldist.cli import main
from labeldist.evaluation import evaluate
from labeldist.runs.arrays import RunArrays
from labeldist.workflows.probe_report import later_label_scores

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "results_tables.py"


def _tables():
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def test_results_tables_are_the_evaluations_and_rebuild_byte_for_byte(tiny, tmp_path, capsys):
    tables = _tables()
    data = tiny.tables((("train", 16, 21), ("dev", 16, 22)))
    generation = tiny.run(data, "dev", "--save-hidden")  # the paper stage keeps slot 1's hidden states
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("hx-seed0-qwen05", "tw-seed0-qwen05", "varierr-seed0-qwen05"):
        shutil.copytree(generation, runs / name)
    # one run's records out of id order (a resumed run's are): the tables must still bootstrap in id order
    for part in sorted((runs / "varierr-seed0-qwen05" / "records").glob("*.parquet")):
        records = pq.read_table(part)
        pq.write_table(records.take(list(reversed(range(records.num_rows)))), part)
    assert RunArrays.load(runs / "varierr-seed0-qwen05").ids != sorted(RunArrays.load(runs / "varierr-seed0-qwen05").ids)
    argv = tiny.argv(data, "dev")
    at = argv.index("--template")
    argv = argv[:at] + argv[at + 2 :]  # unary and pairwise use their own default templates
    for method in ("unary", "pairwise"):
        assert main([*argv, "--method", method, "--limit", "100", "--out", str(runs / f"tw-{method}-qwen05")]) == 0
    # an attempt killed before labeldist kept a cut-off attempt's time: 6 of its 16 items untimed
    unary_manifest = runs / "tw-unary-qwen05" / "run.json"
    manifest = json.loads(unary_manifest.read_text(encoding="utf-8"))
    manifest["attempts"][0]["items_labelled"] = 10
    unary_seconds, unary_model = manifest["timings"]["model_seconds_total"], manifest["config"]["model"]
    unary_manifest.write_text(json.dumps(manifest), encoding="utf-8")
    # the exact marginal on every item (the tiny set has fewer than 100)
    assert main([*tiny.argv(data, "dev"), "--marginal", "--limit", "100", "--out", str(runs / "hx-marginal-qwen15")]) == 0
    # a run stopped part way (3 of its 16 items): in no table, and named as unfinished in the costs
    assert main([*tiny.argv(data, "dev"), "--limit", "3", "--out", str(runs / "se-seed0-qwen05")]) == 0
    manifest = json.loads((runs / "se-seed0-qwen05" / "run.json").read_text(encoding="utf-8"))
    del manifest["counts"]  # as a run cut off leaves it: counts are written when an attempt ends
    (runs / "se-seed0-qwen05" / "run.json").write_text(json.dumps(manifest), encoding="utf-8")

    text = tables.build(runs)
    assert text == tables.build(runs)  # nothing but the runs goes in: the same bytes every time
    out = tmp_path / "results.md"
    assert tables.main([str(runs), str(out)]) == 0 and out.read_text(encoding="utf-8") == text
    # no runs folder at all: nothing is written over the document
    assert tables.main([str(tmp_path / "no-runs"), str(out)]) == 2 and out.read_text(encoding="utf-8") == text

    # the paper's table holds the evaluation's numbers (cross-fitted, 1,000 id-order resamples)
    run = RunArrays.load(runs / "hx-seed0-qwen05")
    specs = [*tables.PAPER_ROWS, *tables.EXACT_ROWS]
    expected = evaluate(run, specs, cross_fit=5, n_resamples=1000)["estimators"]
    section = text.split("### HateXplain")[1].split("###")[0]
    for spec in [*specs, "oracle", "prior"]:
        row = next(line for line in section.splitlines() if line.startswith(f"| {spec} |"))
        assert row == "| " + " | ".join([spec, *(_cell(expected[spec][m]) for m in tables.COLUMNS)]) + " |", spec
    # and the paired differences the sentences rest on
    paired = evaluate(run, ["max"], cross_fit=5, n_resamples=1000, versus="first")["estimators"]["max"]["difference"]
    row = next(line for line in section.splitlines() if line.startswith("| max - first |"))
    assert _cell(paired["mamd"]) in row and _cell(paired["bce"]) in row
    assert "- max - first (the paper's finding with exact slots): macro_f1:" in section

    # the seeds table: the paper's finding read both ways for each seed made, counted on macro-F1
    seeds = text.split("## 2.")[1].split("## 3.")[0]
    token = evaluate(run, ["max@first-token"], cross_fit=5, n_resamples=1000, versus="first@first-token")
    for reading, difference in (("first-token", token["estimators"]["max@first-token"]["difference"]), ("exact", paired)):
        row = next(line for line in seeds.splitlines() if line.startswith(f"| hx | qwen05 | 0 | {reading} |"))
        assert _cell(difference["macro_f1"]) in row and _cell(difference["mamd"]) in row, reading
    assert "- hx, qwen05, first-token:" in seeds and "- hx, qwen05, exact:" in seeds and "(of 1)\n" in seeds
    assert "Not made yet: hx-seed1-qwen05, hx-seed2-qwen05" in seeds
    bullet = next(line for line in seeds.splitlines() if line.startswith("- hx, qwen05, exact:"))
    assert f"- every set, model and seed, exact: {bullet.split(': ', 1)[1]}" in seeds  # one run made: its count

    # unary and pairwise beside the slot estimators on the same items, paired against max
    tweets = text.split("## 3.")[1].split("## 4.")[0].split("### Tweet annotation sensitivity")[1]
    for name in ("unary", "pairwise", "first", "max"):
        assert f"| {name} |" in tweets
    assert "| unary - max |" in tweets and "| pairwise - max |" in tweets and "| platt[base=unary] |" in tweets
    # the section's reading: one row per set and model, the paired cells of the tables below it
    reading = text.split("## 3.")[1].split("### ")[0]
    row = next(line for line in reading.splitlines() if line.startswith("| tw | qwen05 |"))
    for name in ("unary", "pairwise"):
        cell = next(line for line in tweets.splitlines() if line.startswith(f"| {name} - max |")).split(" | ")[2]
        assert f"{float(cell.split()[0]):+.3f}" in row, name  # macro-F1, the first cell of each
    unary = RunArrays.load(runs / "tw-unary-qwen05")
    assert sorted(unary.ids) == sorted(run.ids) and np.isfinite(unary.answer_logprobs).all()

    # the LeWiDi section: the shared task's metric, the same numbers as evaluate (cross-fitted rows too)
    lewidi = text.split("## 5.")[1].split("### VariErrNLI")[1].split("###")[0]
    for spec in tables.LEWIDI_ROWS:
        row = next(line for line in lewidi.splitlines() if line.startswith(f"| {spec} |"))
        assert row.split(" | ")[2] == _cell(expected[spec]["mamd"]), spec
    assert "| prior - max |" in lewidi and "Published: mamd 0.31" in lewidi
    # its reading: the soft metric of each row and the paired cells of the table, per set and model
    reading = text.split("## 5.")[1].split("### ")[0]
    row = next(line for line in reading.splitlines() if line.startswith("| varierr | qwen05 | mamd |")).split(" | ")
    assert row[3:6] == [f"{expected[spec]['mamd']['value']:.3f}" for spec in ("max", "platt-shared", "prior")]
    for spec, cell in zip(("platt-shared", "prior"), row[6:8]):
        paired = next(line for line in lewidi.splitlines() if line.startswith(f"| {spec} - max |")).split(" | ")[2]
        assert cell.startswith(f"{float(paired.split()[0]):+.3f}"), spec
    assert row[-1] == "0.31 |" and len(row) == 10
    assert "Not made yet: `brexit-seed0-qwen05` (`STAGES=lewidi MODELS=qwen05" in text

    # what is not made yet is named with the command that makes it, never left out silently
    assert "Not made yet: `ge-seed0-qwen05` (`STAGES=paper MODELS=qwen05 bash experiments/results.sh`" in text
    marginal = RunArrays.load(runs / "hx-marginal-qwen15")
    section = text.split("## 4.")[1].split("## 5.")[0]
    assert f"{len(marginal)} items. Where the mass went" in section
    assert f"off the format (a label outside the set, or not JSON) {marginal.marginal_off_format.mean():.3f}" in section
    expected = evaluate(marginal, ["marginal"], cross_fit=5, n_resamples=1000, versus="max")["estimators"]["marginal"]
    row = next(line for line in section.splitlines() if line.startswith("| marginal |"))
    assert _cell(expected["mamd"]) in row and _cell(expected["macro_f1"]) in row
    row = next(line for line in section.splitlines() if line.startswith("| marginal - max |"))
    assert _cell(expected["difference"]["mamd"]) in row

    def side(cell: dict, higher_is_better: bool) -> str:
        if cell["low"] <= 0 <= cell["high"]:
            return "no difference at 95%"
        return "A better" if (cell["low"] > 0) == higher_is_better else "B better"

    difference = expected["difference"]
    words = (("macro_f1", True), ("mamd", False), ("bce", False))
    reading = "; ".join(f"{m}: {side(difference[m], better)}" for m, better in words)
    assert f"- marginal - max: {reading}" in section.splitlines()
    assert sum(line.startswith("- marginal") for line in section.splitlines()) == 4  # and its three other readings
    # the first slot's hidden state: the later-label AUC is the probe workflow's (its own pair
    # builder), of the cross-fitted probe; the annotator probe's row is evaluate's
    probe = text.split("## 6.")[1].split("## Runs")[0].split("### HateXplain")[1].split("###")[0]
    ordered = tables.restrict(run, sorted(run.ids))
    later = later_label_scores(tables.predict(ordered, tables.LATER_PROBE), ordered)
    first = later_label_scores(tables.predict(ordered, "first"), ordered)
    assert later["items_with_later_labels"] > 0 and later["later_label_auc"] is not None
    assert f"`{tables.LATER_PROBE}` {later['later_label_auc']:.3f} [" in probe
    assert f"`first` {first['later_label_auc']:.3f} [" in probe
    assert f"; {later['items_with_later_labels']} answers name two or more labels" in probe
    expected = evaluate(run, list(tables.PROBE_ROWS), cross_fit=5, n_resamples=1000, versus="max")["estimators"]
    row = next(line for line in probe.splitlines() if line.startswith("| probe |"))
    assert row == "| " + " | ".join(["probe", *(_cell(expected["probe"][m]) for m in tables.COLUMNS)]) + " |"
    row = next(line for line in probe.splitlines() if line.startswith("| probe - max |"))
    assert _cell(expected["probe"]["difference"]["bce"]) in row
    reading = text.split("## 6.")[1].split("### ")[0]
    row = next(line for line in reading.splitlines() if line.startswith("| hx | qwen05 |")).split(" | ")
    assert row[2] == str(later["items_with_later_labels"]) and row[3].startswith(f"{later['later_label_auc']:.3f} [")
    assert f"{later['later_label_auc'] - first['later_label_auc']:+.3f}" in row[5]

    costs = text.split("## Runs and their cost")[1]
    assert "| hx-seed0-qwen05 |" in costs
    minutes, rate = unary_seconds / 60, unary_seconds / 10
    unary_row = f"| tw-unary-qwen05 | {unary_model} | unary | 16 (10 timed) | {minutes:.1f} | {rate:.2f} |"
    assert unary_row in costs
    assert "| se-seed0-qwen05 |" not in costs
    spent = json.loads((runs / "se-seed0-qwen05" / "run.json").read_text(encoding="utf-8"))["timings"]["model_seconds_total"]
    unfinished = f"se-seed0-qwen05 (3 items so far, {spent / 60:.1f} model minutes recorded, in no table)."
    assert f"Unfinished on this machine, so not in the cost table: {unfinished}" in costs
    assert "Not made yet: `se-seed0-qwen05` (`STAGES=paper MODELS=qwen05" in text
    # a run made over several sittings (the marginal's hours) says how far it got where its table goes
    assert "then `make results`): 3 of 16 items recorded so far; the same command goes on from there." in text
    assert "Tables carried" not in text

    # the marginal (hours, made over sittings) part way: an interim table on the items recorded so
    # far, named as such, with the numbers of those items; too few of them, only its progress
    partial = tmp_path / "partial"
    partial.mkdir()
    for limit, target in ((12, partial / "hx-marginal-qwen15"), (9, tmp_path / "shorter")):
        assert main([*tiny.argv(data, "dev"), "--marginal", "--limit", str(limit), "--out", str(target)]) == 0
    interim = tables.build(partial).split("## 4.")[1].split("## 5.")[0]
    assert "Interim: 12 of 16 items recorded so far, and the table is on those (in id order); `STAGES=marginal" in interim
    twelve = RunArrays.load(partial / "hx-marginal-qwen15")
    expected = evaluate(twelve, ["marginal"], cross_fit=5, n_resamples=1000, versus="max")["estimators"]["marginal"]
    assert len(twelve) == 12 and "12 items. Where the mass went" in interim
    row = next(line for line in interim.splitlines() if line.startswith("| marginal |"))
    assert _cell(expected["mamd"]) in row and _cell(expected["bce"]) in row
    # a sitting cut off: its time as of its last stored batch (attempt_in_progress) counts
    manifest = json.loads((partial / "hx-marginal-qwen15" / "run.json").read_text(encoding="utf-8"))
    spent = manifest["timings"]["model_seconds_total"] + 60.0
    manifest["attempt_in_progress"] = {"items_labelled": 0, "seconds": 70.0, "model_seconds": 60.0}
    (partial / "hx-marginal-qwen15" / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    costs = tables.build(partial).split("## Runs and their cost")[1]
    assert f"hx-marginal-qwen15 (12 items so far, {spent / 60:.1f} model minutes recorded, in an interim table)." in costs
    shutil.rmtree(partial / "hx-marginal-qwen15")
    shutil.move(tmp_path / "shorter", partial / "hx-marginal-qwen15")  # 9 items: fewer than 2 folds' worth
    section = tables.build(partial).split("## 4.")[1].split("## 5.")[0]
    assert "Interim" not in section and "| marginal |" not in section
    assert "then `make results`): 9 of 16 items recorded so far; the same command goes on from there." in section

    # runs gone with their machine: their tables, reading rows, seed rows and costs are carried from
    # the document being replaced, byte for byte, and the cost section names them
    gone = tmp_path / "gone"
    gone.mkdir()
    lost = ("hx-seed0-qwen05", "tw-unary-qwen05", "hx-marginal-qwen15", "varierr-seed0-qwen05")
    for name in lost:
        shutil.move(runs / name, gone / name)
    carried = tables.build(runs, text)
    note = (
        "Tables carried verbatim from the build before this one, their runs not being on the machine\n"
        f"that wrote this file (runs may not outlive their machine): {', '.join(sorted(lost))}.\n\n"
    )
    assert note in carried and carried.replace(note, "") == text
    assert tables.build(runs, carried) == carried  # a second build on the same runs: the same bytes
    assert "Not made yet: `hx-seed0-qwen05`" in tables.build(runs)  # carrying nothing, as before
    # the script carries from the document it overwrites, unless told --fresh
    assert tables.main([str(runs), str(out)]) == 0 and out.read_text(encoding="utf-8") == carried
    assert tables.main([str(runs), str(out), "--fresh"]) == 0 and out.read_text(encoding="utf-8") == tables.build(runs)
    # a carried cell that cannot be read back: one line naming the document, which is left as it is
    row = next(line for line in carried.splitlines() if line.startswith("| hx | qwen05 | 0 | exact |"))
    broken = carried.replace(row, "| hx | qwen05 | 0 | exact | 0.1 | broken | " + row.split(" | ", 6)[6])
    out.write_text(broken, encoding="utf-8")
    assert tables.main([str(runs), str(out)]) == 2 and out.read_text(encoding="utf-8") == broken
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"error: {out}: not a table cell of value [low, high]: 'broken'")
    # a run back on the machine is read again, not carried
    shutil.move(gone / "varierr-seed0-qwen05", runs / "varierr-seed0-qwen05")
    again = tables.build(runs, carried)
    lewidi = again.split("## 5.")[1].split("## Runs")[0]
    assert lewidi == text.split("## 5.")[1].split("## Runs")[0]  # built from the run, the same numbers
    assert f"their machine): {', '.join(sorted(set(lost) - {'varierr-seed0-qwen05'}))}.\n" in again
