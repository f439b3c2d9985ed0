"""Half precision says what it does to the numbers: run.json records the dtype, the run ends
with a warning, and --precision-check N measures the difference from float32 on N items; the
model comes back from the float32 rescoring exactly as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import get_trained_tiny_llama, synthetic_examples, tiny_run_argv, write_label_tables

from labeldist.cli import main
from labeldist.runs import RunStore


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    trained = get_trained_tiny_llama(tmp_path_factory.getbasetemp() / "tiny-model-cache")
    data = root / "data"
    write_label_tables(data, (("train", 11, 20), ("dev", 12, 16)))
    return root, tiny_run_argv(trained, data, "dev", root), trained


def test_float32_run_is_marked_exact_and_ends_without_warning(setup, capsys):
    root, base, _ = setup
    out = root / "float32"
    assert main([*base, "--device", "cpu", "--limit", "6", "--precision-check", "3", "--out", str(out)]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"]["dtype"] == "float32"
    assert manifest["precision"]["dtypes"] == ["float32"] and manifest["precision"]["exact_dtype"] is True
    # nothing to compare in float32: the check says so instead of reporting zeros
    assert manifest["precision"]["check"]["skipped"] == "the model runs in float32 already"
    assert "warning" not in capsys.readouterr().err
    breakdown = manifest["attempts"][-1]["breakdown"]
    assert set(breakdown) >= {"data_seconds", "load_seconds", "prompt_seconds", "decode_seconds", "slot_seconds", "store_seconds"}
    assert breakdown["decode_seconds"] > 0 and breakdown["slot_seconds"] > 0


def test_bfloat16_run_records_its_dtype_warns_and_measures_the_drift(setup, capsys):
    root, base, _ = setup
    out = root / "bfloat16"
    argv = [*base, "--device", "cpu", "--dtype", "bfloat16", "--limit", "6", "--batch-size", "4"]
    assert main([*argv, "--precision-check", "5", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"]["dtype"] == "bfloat16"
    assert manifest["precision"]["dtypes"] == ["bfloat16"] and manifest["precision"]["exact_dtype"] is False
    check = manifest["precision"]["check"]
    assert check["items"] == 5 and check["dtype"] == "bfloat16"
    # the trained tiny model answers with 1-3 labels, each slot compared label by label
    assert check["slots"] >= 5
    # bfloat16 keeps 8 bits of mantissa: the probabilities move, but not by much
    assert 1e-5 < check["max_abs_label_prob_diff"] < 0.2
    assert 0 < check["mean_abs_label_prob_diff"] <= check["max_abs_label_prob_diff"]
    assert 0 <= check["answers_differing_in_float32"] <= 5
    # the run's last line is the warning, with the measured difference
    assert err[-1].startswith("warning: records made in bfloat16; label probabilities are exact only in float32")
    largest = f"{check['max_abs_label_prob_diff']:.3g}"
    assert f"precision check on 5 items: label probabilities differ from float32 by up to {largest}" in err[-1]

    # resuming in float32 mixes dtypes: the run is not exact, and says so
    assert main([*base, "--device", "cpu", "--limit", "8", "--out", str(out)]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["precision"]["dtypes"] == ["bfloat16", "float32"] and manifest["precision"]["exact_dtype"] is False
    assert "check" not in manifest["precision"]  # that check described the earlier attempt
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("warning: records made in bfloat16, float32")
    assert len(RunStore(out).read()) == 8


def test_precision_check_restores_the_model_exactly(setup):
    from labeldist.models.hf import HFBackend
    from labeldist.prompts import Prompt, get_answer_format

    _, _, trained = setup
    backend = HFBackend(str(trained.path), device="cpu", dtype="bfloat16", chat=False)
    before = {name: t.detach().clone() for name, t in backend.model.state_dict().items()}
    dtypes = {name: t.dtype for name, t in [*backend.model.named_parameters(), *backend.model.named_buffers()]}
    fmt = get_answer_format("json")
    prompts = [
        Prompt(item_id=str(i), messages=[], text=f"Text: {ex.text}\nLabels:", demonstration_ids=(), answer_prefix="")
        for i, ex in enumerate(synthetic_examples(n=3, seed=5))
    ]
    first = backend.generate(prompts, trained.labels, fmt)
    result = backend.precision_check(prompts, trained.labels, fmt, [g.answer for g in first])
    assert result["items"] == 3 and result["max_abs_label_prob_diff"] > 0
    after = backend.model.state_dict()
    assert all(torch.equal(before[name], after[name]) and before[name].dtype == after[name].dtype for name in before)
    assert {name: t.dtype for name, t in [*backend.model.named_parameters(), *backend.model.named_buffers()]} == dtypes
    again = backend.generate(prompts, trained.labels, fmt)
    for a, b in zip(first, again):
        assert a.answer == b.answer
        for slot_a, slot_b in zip(a.slots, b.slots):
            np.testing.assert_array_equal(slot_a.label_logprobs, slot_b.label_logprobs)
