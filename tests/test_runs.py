"""`labeldist run` end to end on a real (tiny, trained) model: the run store, resume after
kill -9, config checks, hidden states, `labeldist show`, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from labeldist.cli import main
from labeldist.runs import RunStore


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny):
    data = tiny.tables((("train", 30, 11), ("dev", 60, 12)), votes=False)
    return tmp_path_factory.mktemp("runs"), tiny.argv(data, "dev"), tiny.trained


def records_by_id(path: Path) -> pd.DataFrame:
    return RunStore(path).read().set_index("id").sort_index()


def test_run_records_and_manifest(setup, capsys):
    root, base, trained = setup
    out = root / "plain"
    assert main([*base, "--batch-size", "4", "--limit", "12", "--out", str(out)]) == 0
    # --quiet (in base) hides every bar, transformers' "Loading weights" too: the summary line is all
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "items recorded" in err
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["labels"] == list(trained.labels)
    assert manifest["config"]["shots"] == 0 and manifest["config"]["model"] == str(trained.path)
    assert manifest["model"]["model_type"] == "llama" and manifest["versions"]["torch"]
    assert manifest["counts"]["items_recorded"] == 12
    records = RunStore(out).read()
    assert len(records) == 12 and len(list((out / "records").glob("part-*.parquet"))) == 3
    # the trained model answers in the format: parsed answers with slots, sum <= 1 at each slot
    assert records["parsed"].all()
    assert manifest["counts"]["unparseable_answers"] == 0
    for _, record in records.iterrows():
        slots = record["slots"]
        # one slot per written label (repeats included), then the close
        assert slots[-1]["chosen"] == "<stop>"
        assert {slot["chosen"] for slot in slots[:-1]} == set(record["labels"])
        for slot in slots:
            assert np.sum(slot["label_probs"]) + slot["stop_prob"] <= 1 + 1e-6
            assert len(slot["label_probs"]) == len(trained.labels)
        # greedy decoding closed the list here: closing is the slot's most likely choice
        assert slots[-1]["stop_prob"] > max(slots[-1]["label_probs"])
    # vote fractions of aggregate-only data are gold 0/1, and marked as such
    assert not records["votes_available"].any()
    assert manifest["dataset"]["vote_source"] == "gold"


def test_show_prints_slot_tables(setup, capsys):
    root, base, trained = setup
    out = root / "shown"
    assert main([*base, "--limit", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["show", str(out), "--limit", "2"]) == 0
    text = capsys.readouterr().out
    assert text.count("=== ") == 2 and "<stop>" in text and "slot 1" in text and "entropy" in text
    for label in trained.labels:
        assert label in text
    # where each slot was decided and the surface forms scored there (json, "[" generated)
    assert "slot 1: decided after generated token 0; labels <L> scored as" in text
    assert ' ["<L>{"} | ' in text and " [<L>{,|]}" in text and "close as  []... |  [ ]..." in text


def rederived_probability(model, texts, context, entry, label, eos_ids, tolerance) -> float:
    """A label's (or the close's) probability at a slot from a record alone: for the form
    ``entry`` (as stored), P(text, then a token starting with one of ``then``, or an EOS / line
    break when ``end``) summed over every tokenisation of the text, each prefix by a full forward
    pass over the whole sequence (no cache, no tree); prefixes below ``tolerance`` dropped."""
    text = entry["label"] + label if "label" in entry else entry["close"]
    data = text.encode()
    starts = tuple(t.encode() for t in entry["then"]) + ((b"\n",) if entry["end"] else ())
    terminated = bool(starts)
    total = 0.0

    def distribution(path):
        with torch.no_grad():
            logits = model(torch.tensor([context + path])).logits[0, -1].double()
        return torch.softmax(logits, dim=-1).numpy()

    def walk(path, offset, p):
        nonlocal total
        probs = distribution(path)
        rest = data[offset:]
        if not rest:
            follow = [i for i, b in enumerate(texts.bytes) if b and b.startswith(starts)]
            total += p * (probs[follow].sum() + (probs[eos_ids].sum() if entry["end"] else 0.0))
            return
        for token_id, piece in enumerate(texts.bytes):
            if not piece:
                continue
            q = p * probs[token_id]
            if rest.startswith(piece):
                if len(piece) == len(rest) and not terminated:
                    total += q
                elif q >= tolerance:
                    walk(path + [token_id], offset + len(piece), q)
            elif piece.startswith(rest) and (not terminated or piece[len(rest) :].startswith(starts)):
                total += q

    walk([], 0, 1.0)
    return total


def test_records_hold_what_makes_them_checkable(setup, capsys):
    """Record format 3: the generated token ids, each slot's decision position and every
    surface form scored there; the ids decode to the answer, the written text is one of the
    chosen label's forms, and a slot's numbers are re-derived from the record and run.json
    alone by full forward passes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labeldist.slots.tokens import TokenTexts

    root, base, trained = setup
    out = root / "checkable"
    assert main([*base, "--limit", "6", "--out", str(out)]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["record_format"] == 3 and manifest["model"]["prune_tolerance"] == 1e-6
    tokenizer = AutoTokenizer.from_pretrained(trained.path)
    records = RunStore(out).read()
    for _, record in records.iterrows():
        ids = [int(t) for t in record["token_ids"]]
        assert len(ids) == record["generated_tokens"]
        text = tokenizer.decode(ids, skip_special_tokens=True)
        assert text.strip() == record["answer"].strip()
        slots, decisions, forms = record["slots"], record["slot_decisions"], record["slot_forms"]
        assert len(decisions) == len(forms) == len(slots)
        for slot, decision, scored in zip(slots, decisions, forms):
            entries = [json.loads(entry) for entry in scored]
            label_forms = [e for e in entries if "label" in e]
            # json: three quotings, with and without a space (or comma variants), and the close
            assert 0 <= decision <= len(ids) and len(label_forms) >= 6 and len(entries) - len(label_forms) >= 2
            # the answer's text from the decision token on starts with one of the chosen
            # label's forms (the form written)
            written = tokenizer.decode(ids[decision:], skip_special_tokens=True)
            if slot["chosen"] in trained.labels:
                assert any(written.startswith(e["label"] + slot["chosen"]) for e in label_forms), written
            # bounds: the pruned mass sits between lower and upper, both around the number
            assert np.all(np.asarray(slot["label_probs_lower"]) <= np.asarray(slot["label_probs_upper"]))
            np.testing.assert_allclose(slot["label_probs_lower"], slot["label_probs"])
    # re-derive the first record's slots 1 and 2 from the record and run.json only
    record = records.iloc[0]
    model = AutoModelForCausalLM.from_pretrained(trained.path, dtype=torch.float32).eval()
    texts = TokenTexts(tokenizer)
    prompt_ids = tokenizer(record["prompt"], add_special_tokens=not manifest["model"]["chat_template"])["input_ids"]
    eos_ids = manifest["model"]["eos_ids"]
    tolerance = manifest["model"]["prune_tolerance"]
    ids = [int(t) for t in record["token_ids"]]
    for slot, decision, scored in list(zip(record["slots"], record["slot_decisions"], record["slot_forms"]))[:2]:
        context = prompt_ids + ids[:decision]
        entries = [json.loads(entry) for entry in scored]
        for label, recorded in zip(trained.labels, slot["label_probs"]):
            value = sum(
                rederived_probability(model, texts, context, e, label, eos_ids, tolerance)
                for e in entries
                if "label" in e and label not in e.get("skips", [])
            )
            assert abs(value - recorded) < 1e-6, (slot["index"], label, value, recorded)
        stop = sum(rederived_probability(model, texts, context, e, "", eos_ids, tolerance) for e in entries if "close" in e)
        assert abs(stop - slot["stop_prob"]) < 1e-6, (slot["index"], stop, slot["stop_prob"])
    # no label is written at a closing slot: its first-token values are stored as null, not NaN
    for slots in RunStore(out).read_table(["slots"]).column("slots").to_pylist():
        for slot in slots:
            values = slot["first_token_probs"]
            if slot["chosen"] == "<stop>":
                assert all(x is None for x in values)
            else:
                assert all(x is not None and np.isfinite(x) for x in values)


def test_empty_answers_count_only_answers_written_empty():
    from labeldist.runs.run import _explicitly_empty

    records = pd.DataFrame(
        {
            "parsed": [True, True, True, False, True],
            "complete": [True, True, True, False, False],
            "labels": [[], ["joy"], [], [], []],
            "unknown": [[], [], ["happiness"], [], []],
        }
    )
    # "[]", ["joy"], ["happiness"], unreadable, cut off: only the first was written empty
    assert _explicitly_empty(records).tolist() == [True, False, False, False, False]


def test_old_records_without_format_2_columns_still_read_and_show(setup, tmp_path, capsys):
    """A run written before record format 2 (no token ids, decisions or forms) reads, with nulls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labeldist.runs.store import RECORD_SCHEMA

    root, base, _ = setup
    out = root / "old-format"
    assert main([*base, "--limit", "2", "--out", str(out)]) == 0
    part = next((out / "records").glob("part-*.parquet"))
    table = pq.read_table(part)
    old = table.drop_columns(["token_ids", "slot_decisions", "slot_forms"])
    pq.write_table(old, part)
    manifest = json.loads((out / "run.json").read_text())
    del manifest["record_format"]
    (out / "run.json").write_text(json.dumps(manifest))
    records = RunStore(out).read()
    assert len(records) == 2 and records["token_ids"].isna().all()
    assert RunStore(out).read_table().schema == RECORD_SCHEMA and isinstance(table, pa.Table)
    capsys.readouterr()
    assert main(["show", str(out), "--limit", "1"]) == 0
    assert "not recorded, a run made before record format 2" in capsys.readouterr().out


def test_resume_after_kill_equals_uninterrupted_run(setup):
    root, base, _ = setup
    whole, killed = root / "whole", root / "killed"
    argv = [*base, "--batch-size", "1"]
    assert main([*argv, "--out", str(whole)]) == 0
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "labeldist", *argv, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if len(list((killed / "records").glob("part-*.parquet"))) >= 5:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = RunStore(killed).read()
    assert 5 <= len(partial) < 60
    assert partial["id"].is_unique
    assert not list((killed / "records").glob(".*.tmp")) or True  # a temp file may remain; never read
    # the killed attempt's cost as far as its last stored batch (its entry is written after each
    # batch's part, so a kill between the two leaves it one batch behind the records)
    cut = json.loads((killed / "run.json").read_text())["attempt_in_progress"]
    assert len(partial) - 1 <= cut["items_labelled"] <= len(partial) and cut["model_seconds"] > 0
    assert main([*argv, "--out", str(killed)]) == 0
    a, b = records_by_id(whole), records_by_id(killed)
    assert list(a.index) == list(b.index) and len(a) == 60
    assert (a["answer"] == b["answer"]).all()
    for (_, x), (_, y) in zip(a.iterrows(), b.iterrows()):
        for sx, sy in zip(x["slots"], y["slots"]):
            np.testing.assert_allclose(sx["label_probs"], sy["label_probs"], atol=1e-7)
            assert sx["stop_prob"] == pytest.approx(sy["stop_prob"], abs=1e-7)
    manifest = json.loads((killed / "run.json").read_text())
    assert manifest["counts"]["items_recorded"] == 60
    # both attempts are timed: the cut-off one counts in the totals, and none is left in progress
    first, second = manifest["attempts"]
    assert first == {**cut, "cut_off": True} and "cut_off" not in second
    assert first["items_labelled"] + second["items_labelled"] in (59, 60)
    assert second["items_labelled"] == 60 - len(partial) and "attempt_in_progress" not in manifest
    assert manifest["timings"]["model_seconds_total"] == pytest.approx(first["model_seconds"] + second["model_seconds"], abs=2e-3)


def test_resume_refuses_a_different_config(setup, capsys):
    root, base, _ = setup
    out = root / "config"
    assert main([*base, "--limit", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*base, "--limit", "2", "--seed", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different config" in err and "seed: 0 -> 3" in err


def test_hidden_states_saved_for_each_item(setup, monkeypatch):
    root, base, trained = setup
    out = root / "hidden"
    assert main([*base, "--limit", "5", "--batch-size", "2", "--save-hidden", "--out", str(out)]) == 0
    ids, states = RunStore(out).read_hidden()
    assert ids == [f"dev{i:03d}" for i in range(5)]
    config = json.loads((trained.path / "config.json").read_text())
    assert states.shape == (5, config["num_hidden_layers"] + 1, config["hidden_size"])
    assert np.isfinite(states).all() and np.abs(states).sum() > 0
    # saving hidden states changes no number of the run: the prompts' shared prefix is computed
    # once either way (before, --save-hidden recomputed every prompt whole: about 2x slower)
    plain = root / "hidden-plain"
    assert main([*base, "--limit", "5", "--batch-size", "2", "--out", str(plain)]) == 0

    def slot_numbers(path):
        records = RunStore(path).read()
        return [[[*slot["label_probs"].tolist(), slot["stop_prob"]] for slot in slots] for slots in records["slots"]]

    assert slot_numbers(out) == slot_numbers(plain)
    # and the states do not hang on the batch: one prompt at a time gives the same, to float noise
    single = root / "hidden-single"
    assert main([*base, "--limit", "5", "--batch-size", "1", "--save-hidden", "--out", str(single)]) == 0
    np.testing.assert_allclose(RunStore(single).read_hidden()[1], states, rtol=1e-4, atol=1e-4)
    # nor on the shared prefix: every prompt computed whole (no prefix is long enough) gives the same
    monkeypatch.setattr("labeldist.models.hf.backend.MIN_SHARED_PREFIX", 10**9)
    whole = root / "hidden-whole"
    assert main([*base, "--limit", "5", "--batch-size", "2", "--save-hidden", "--out", str(whole)]) == 0
    np.testing.assert_allclose(RunStore(whole).read_hidden()[1], states, rtol=1e-4, atol=1e-4)


def test_config_file_and_bad_model(setup, tmp_path, capsys):
    root, base, _ = setup
    config = tmp_path / "run.yaml"
    config.write_text(f"limit: 3\nbatch_size: 3\nmodel: {base[base.index('--model') + 1]}\n")
    argv = [a for a in base if a != "--model"]
    argv.remove(base[base.index("--model") + 1])
    assert main([*argv, "--config", str(config), "--out", str(tmp_path / "from-yaml")]) == 0
    assert RunStore(tmp_path / "from-yaml").read().shape[0] == 3
    capsys.readouterr()
    assert main([*argv, "--model", "no-such-model", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown model 'no-such-model'") and len(err.splitlines()) == 1
    assert main([*argv, "--model", str(tmp_path), "--out", str(tmp_path / "bad2")]) == 2
    assert "has no config.json" in capsys.readouterr().err
    config.write_text("limt: 3\n")
    assert main([*argv, "--model", "x/y", "--config", str(config), "--out", str(tmp_path / "bad3")]) == 2
    assert "unknown setting 'limt'" in capsys.readouterr().err


def test_run_arrays_feed_the_estimators(setup):
    from labeldist.estimators import make_estimator
    from labeldist.runs.arrays import RunArrays

    root, base, trained = setup
    out = root / "arrays"
    assert main([*base, "--batch-size", "4", "--limit", "8", "--out", str(out)]) == 0
    run = RunArrays.load(out)
    records = RunStore(out).read()
    assert run.ids == list(records["id"]) and run.labels == tuple(trained.labels)
    assert run.slot_probs.shape[0] == 8 and run.slot_probs.shape[2] == len(trained.labels)
    for row, record in enumerate(records.itertuples()):
        assert run.n_slots[row] == len(record.slots)
        np.testing.assert_allclose(run.slot_probs[row, 0], record.slots[0]["label_probs"])
        assert set(np.flatnonzero(run.generated[row])) == {trained.labels.index(label) for label in record.labels}
    first, top = make_estimator("first").predict_proba(run), make_estimator("max").predict_proba(run)
    assert first.shape == (8, len(trained.labels)) and (top >= first).all()
    # the model's own labels are likely somewhere in its slots: max is high where it wrote them
    assert top[run.generated > 0].mean() > 0.5


def test_prune_tolerance_trades_tree_size_for_recorded_bounds(setup, capsys):
    """A larger --prune-tolerance extends fewer tokenisation prefixes: the numbers can only go
    down, by no more than the bounds now recorded; run.json says which tolerance was used."""
    root, base, _ = setup
    exact, loose = root / "tolerance-exact", root / "tolerance-loose"
    assert main([*base, "--limit", "4", "--out", str(exact)]) == 0
    assert main([*base, "--limit", "4", "--prune-tolerance", "1e-2", "--out", str(loose)]) == 0
    manifest = json.loads((loose / "run.json").read_text())
    assert manifest["model"]["prune_tolerance"] == 1e-2 and manifest["attempts"][-1]["prune_tolerance"] == 1e-2
    widest = 0.0
    for (_, a), (_, b) in zip(records_by_id(exact).iterrows(), records_by_id(loose).iterrows()):
        for x, y in zip(a["slots"], b["slots"]):
            lower, upper = np.asarray(y["label_probs_lower"]), np.asarray(y["label_probs_upper"])
            # the exact number lies within the loose run's bounds (up to float32 numerics: the trees differ)
            assert np.all(lower <= np.asarray(x["label_probs"]) + 1e-5)
            assert np.all(np.asarray(x["label_probs"]) <= upper + 1e-5)
            widest = max(widest, float((upper - lower).max()))
    assert widest > 1e-4  # the looser tolerance did prune something
    capsys.readouterr()
    assert main([*base, "--limit", "1", "--prune-tolerance", "1.5", "--out", str(root / "bad-tolerance")]) == 2
    assert "--prune-tolerance" in capsys.readouterr().err


def test_a_run_in_an_older_record_format_is_not_resumed(setup, capsys):
    """Finishing a run made under an earlier definition of a slot's probability would mix two
    definitions in one folder: refused in one line, nothing written."""
    root, base, _ = setup
    out = root / "format-2"
    assert main([*base, "--limit", "2", "--out", str(out)]) == 0
    manifest = json.loads((out / "run.json").read_text())
    manifest["record_format"] = 2
    (out / "run.json").write_text(json.dumps(manifest))
    parts = sorted(p.name for p in (out / "records").iterdir())
    capsys.readouterr()
    assert main([*base, "--limit", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds records in format 2" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (out / "records").iterdir()) == parts


def test_run_config_checks_itself_wherever_it_is_built(tmp_path):
    """One place checks a run's settings (issue 31): a RunConfig that cannot be run is a
    ConfigError naming the setting, whether built directly, by labeldist.run or by a sweep/suite."""
    from labeldist import api
    from labeldist.errors import ConfigError
    from labeldist.runs import RunConfig

    base = {"dataset": "table", "data_dir": str(tmp_path), "split": "dev", "model": "m"}
    RunConfig(**base)  # the defaults are a valid run
    bad = {
        "shots": -1,
        "seed": 1.5,
        "sampler": "nearest",
        "multilabel_share": 1.2,
        "demonstrations": "some",
        "answer_format": "xml",
        "chat": "yes",
        "max_new_tokens": 0,
        "method": "ranking",
        "samples": -2,
        "temperature": 0.0,
        "marginal_tolerance": 1.0,
        "marginal_nodes": 0,
        "marginal_batch": 0,
        "backend": "tgi",
        "options": ["a=b"],
        "model": "",
    }
    for key, value in bad.items():
        with pytest.raises(ConfigError, match=rf"^run config, {key}: ") as error:
            RunConfig(**{**base, key: value})
        assert repr(value) in str(error.value) or key in ("model", "options"), key
    # combinations: what only generated answers have, asked of a judging method
    for key, value in (("save_hidden", True), ("samples", 4), ("marginal", True)):
        with pytest.raises(ConfigError, match=rf"run config, {key}: .*the unary method generates none"):
            RunConfig(**{**base, "method": "unary", key: value})
    # labeldist.run refuses before it writes anything; so do an attempt's own settings
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="temperature: must be above 0"):
        api.run("table", "m", out, data_dir=tmp_path, split="dev", temperature=-1.0)
    with pytest.raises(ConfigError, match="batch_size: must be a whole number"):
        api.run("table", "m", out, data_dir=tmp_path, split="dev", batch_size=0)
    assert not out.exists()
