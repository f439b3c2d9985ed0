"""Backends behind the registry: `labeldist backends` lists what each can do and takes; a run
asking what its backend cannot do, or a setting it does not take, is refused in one line before
anything is written; --backend-option reaches the backend; a run made before the registry
(its run.json has ``server``) resumes under the new keys."""

from __future__ import annotations

import json

import pytest

from labeldist.cli import main
from labeldist.runs import RunStore


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny):
    data = tiny.tables((("train", 11, 30), ("dev", 6, 60)), votes=False)
    return tmp_path_factory.mktemp("backends"), tiny.argv(data, "dev")


def test_backends_command_lists_each_backend(capsys):
    assert main(["backends", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == {"hf", "openai", "vllm"}
    assert all(listing[name]["capabilities"]["exact_slots"] for name in ("hf", "vllm"))
    assert not listing["openai"]["capabilities"]["exact_slots"] and not listing["openai"]["capabilities"]["marginal"]
    assert not listing["vllm"]["capabilities"]["hidden_states"]
    assert listing["hf"]["settings"]["prune_tolerance"] == 1e-6 and "gpu_memory_utilization" in listing["vllm"]["settings"]
    assert main(["backends"]) == 0
    assert "vllm: " in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--backend", "vllm", "--save-hidden"], "--backend vllm cannot serve --save-hidden (use --backend hf)"),
        (
            ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--engine", "ray"],
            "--backend openai cannot serve --engine ray (a served model spreads over replicas",
        ),
        (["--backend-option", "nope=1"], "--nope does not apply to --backend hf (its settings: device, dtype"),
        (["--backend", "vllm", "--device", "cpu"], "--device does not apply to --backend vllm"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url only apply to --backend openai"),
    ],
    ids=["capability", "engine", "unknown-option", "common-option", "server-option"],
)
def test_what_a_backend_cannot_do_is_refused_before_anything_is_written(setup, capsys, extra, says):
    root, base = setup
    out = root / "refused"
    assert main([*base, *extra, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # one line of labeldist's; click's usage errors put their usage lines before it
    assert says in err[-1] and (len(err) == 1 or err[0].startswith("Usage:")), err
    assert not out.exists()


def test_backend_options_reach_the_backend_and_old_runs_resume(setup, capsys):
    root, base = setup
    out = root / "resumed"
    assert main([*base, "--limit", "2", "--backend-option", "prune_tolerance=1e-4", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["model"]["prune_tolerance"] == 1e-4
    assert manifest["config"]["backend"] == "hf" and manifest["config"]["backend_settings"] is None
    # as written before the registry: no backend keys, the HTTP backend's settings under "server"
    for key in ("backend", "backend_settings"):
        del manifest["config"][key]
    manifest["config"]["server"] = None
    (out / "run.json").write_text(json.dumps(manifest))
    assert main([*base, "--limit", "4", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert len(RunStore(out).read()) == 4 and manifest["config"]["backend"] == "hf" and "server" not in manifest["config"]
    # a run made through a server is not resumed with another backend
    manifest["config"].pop("backend")
    manifest["config"].pop("backend_settings")
    manifest["config"]["server"] = {"backend": "openai", "endpoint": "completions"}
    (out / "run.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main([*base, "--limit", "5", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "backend: 'openai' -> 'hf'" in err


def test_the_http_backend_can_score_given_answers_only_where_exact_slots_are_required():
    from labeldist.models.registry import make_settings, refusal

    topk = make_settings("openai", "m", {"base_url": "http://127.0.0.1:9/v1"})
    exact = make_settings("openai", "m", {"base_url": "http://127.0.0.1:9/v1", "exact": True})
    assert topk.exact is None and exact.exact is True and exact.identity()["exact"] is True
    why = refusal("openai", {"marginal": True}, topk.identity())
    assert why.startswith("--backend openai cannot serve --marginal") and "exact=true" in why
    assert refusal("openai", {"marginal": True, "samples": True}, exact.identity()) is None
    assert refusal("openai", {"hidden_states": True}, exact.identity()).startswith("--backend openai cannot serve --save-hidden")
