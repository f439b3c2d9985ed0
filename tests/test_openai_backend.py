"""The OpenAI-compatible HTTP backend against a real HTTP server on loopback whose model's full
distributions are known (tests/openai_fake.py): exact label probabilities when the server
reports everything, bounds that hold when it reports the top-k only, and what errors, truncated
bodies and missing logprobs turn into. The llama.cpp server with the real SmolLM2 is in
test_openai_llamacpp.py."""

from __future__ import annotations

import json
import logging
import math
import time

import numpy as np
import pandas as pd
import pytest
from openai_fake import LABELS, FakeServer, ToyLM

from labeldist.cli import main
from labeldist.errors import ModelError
from labeldist.models.openai import OpenAIBackend, ServerSettings
from labeldist.models.topk import (
    LogprobError,
    Step,
    Target,
    Vocabulary,
    first_token_share,
    steps_from_completion,
    walk,
)
from labeldist.prompts import Prompt, get_answer_format
from labeldist.runs import RunStore
from labeldist.slots.locate import plan_slots

FMT = get_answer_format("json")
TEXTS = ["I am so happy today", "the storm scared me", "why would they do that", "nothing much", "lost my keys again"]


def prompt_of(i: int, text: str) -> Prompt:
    plain = f"Labels: {', '.join(LABELS)}. Answer as a JSON list.\nText: {text}\nLabels:"
    messages = [{"role": "user", "content": f"Text: {text}\nLabels:"}]
    return Prompt(f"item{i}", messages, plain, (), "")


def backend_for(server: FakeServer, **overrides) -> OpenAIBackend:
    settings = dict(base_url=server.url, model="toy", top_logprobs=len(server.lm.vocab), retries=2, backoff=0.01)
    settings.update(overrides)
    chat = settings.pop("chat", False)
    return OpenAIBackend(ServerSettings(**settings), chat=chat, max_new_tokens=24)


def expected_slots(lm: ToyLM, context: str, answer: str):
    """Brute-force (labels, stop) probabilities of every slot of ``answer`` after ``context``.

    As in the hf backend, a slot's strings are scored from the last generated-token boundary
    at or before its decision point, the generated text between them included (greedy
    decoding here writes the answer's longest-match tokens)."""
    boundaries = np.cumsum([0] + [len(t) for t in lm.tokenize(answer)])
    out = []
    for plan in plan_slots(answer, 0, FMT, LABELS):
        anchor = int(boundaries[boundaries <= plan.decision].max())
        base, residual = context + answer[:anchor], answer[anchor : plan.decision]
        # disjoint surface forms: an event's probability is the sum over its forms
        labels = [sum(lm.exact(base, residual + f.text, f.terminators, f.end) for f in plan.forms_of(label)) for label in LABELS]
        stop = sum(lm.exact(base, residual + f.text, f.terminators, f.end) for f in plan.close_forms)
        out.append((np.array(labels), stop))
    return out


# -- the bounds, without a server ------------------------------------------------------------


def full_nodes(lm: ToyLM, context: str, k: int):
    """Nodes filled on demand from the toy model's top-k, as a server would report them."""

    class Nodes(dict):
        def get(self, key, default=None):
            if key not in self:
                logp = lm.distribution(context + key)
                order = np.argsort(-logp)[:k]
                self[key] = Step({lm.vocab[i]: float(logp[i]) for i in order})
            return dict.get(self, key)

    return Nodes()


@pytest.mark.parametrize("k", [3, 8, 200])
def test_walk_bounds_hold_and_are_exact_with_everything_reported(k):
    lm = ToyLM()
    vocabulary = Vocabulary([t.encode() for t in lm.vocab if t], end_ids=[0])
    context = prompt_of(0, "some text").text
    checked = 0
    for generated in ("", '["joy', '["joy", "', '["sad'):
        for label in LABELS:
            for target in (
                Target('["' + label if not generated else label, ('"',)),
                Target(label + '"]'),
                Target(label, exact=True),
            ):
                truth = lm.exact(context + generated, target.text, target.terminators, target.end, target.exact)
                nodes = full_nodes(lm, context, k)
                plain = walk(nodes, generated, target, min_branch=0).bounds
                tight = walk(nodes, generated, target, min_branch=0, vocabulary=vocabulary).bounds
                for bounds in (plain, tight):
                    assert bounds.lower - 1e-12 <= truth <= bounds.upper + 1e-12, (generated, target, truth, bounds)
                    assert bounds.lower - 1e-12 <= bounds.estimate <= bounds.upper + 1e-12
                # the served vocabulary only ever tightens the upper bound
                assert tight.upper <= plain.upper + 1e-12 and tight.lower == pytest.approx(plain.lower)
                if k >= len(lm.vocab):
                    assert plain.lower == pytest.approx(truth, rel=1e-9, abs=1e-15)
                    assert plain.upper == pytest.approx(truth, rel=1e-9, abs=1e-12)
                checked += 1
    assert checked == 4 * 4 * 3


def test_label_outside_the_top_k_gets_an_upper_bound_not_zero():
    # "anger" is not among the two reported tokens: estimate 0, upper = what was left unreported
    step = Step({"joy": math.log(0.6), "fear": math.log(0.3)}, "joy", math.log(0.6))
    result = walk({"": step}, "", Target("anger", exact=True))
    assert result.bounds.estimate == 0 and result.bounds.lower == 0
    assert result.bounds.upper == pytest.approx(0.1)
    # with the vocabulary: at most (consistent unreported tokens) x (the smallest reported)
    vocabulary = Vocabulary([b"joy", b"fear", b"anger", b"an", b"a", b"x"])
    tight = walk({"": step}, "", Target("anger", exact=True), vocabulary=vocabulary).bounds
    assert tight.upper == pytest.approx(0.1)  # 3 tokens could start "anger": 3 x 0.3 > 0.1
    step = Step({"joy": math.log(0.9), "fear": math.log(0.09)}, "joy", math.log(0.9))
    assert walk({"": step}, "", Target("x", exact=True), vocabulary=vocabulary).bounds.upper == pytest.approx(0.01)
    assert walk({"": step}, "", Target("zzz", exact=True), vocabulary=vocabulary).bounds.upper == 0


def test_first_token_share_reads_the_tokenizer_first_token():
    # "fear" is f + ear for the served tokenizer; the top-k also holds "fe": the original
    # method's number is that of "f", not of the longest reported piece
    step = Step({"f": math.log(0.4), "fe": math.log(0.1), "joy": math.log(0.3), "[": math.log(0.1)})
    assert first_token_share(step, ["fear", "joy"], ["f", "joy"]) == pytest.approx([0.4 / 0.7, 0.3 / 0.7])
    assert first_token_share(step, ["fear", "joy"]) == pytest.approx([0.1 / 0.4, 0.3 / 0.4])  # no tokenizer
    assert first_token_share(step, ["fear", "anger"], ["f", "anger"]) == pytest.approx([1.0, 0.0])  # outside the top-k
    assert all(math.isnan(v) for v in first_token_share(None, ["fear"]))


@pytest.mark.parametrize(
    "logprobs, text, message",
    [
        (None, "x", "no logprobs"),
        ({"tokens": ["a"], "token_logprobs": [-0.1]}, "a", "lack tokens"),
        ({"tokens": ["a"], "token_logprobs": [-0.1], "top_logprobs": [None]}, "a", "has no top_logprobs"),
        ({"tokens": ["a"], "token_logprobs": [0.5], "top_logprobs": [{"a": 0.5}]}, "a", "is not a log-probability"),
        ({"tokens": ["a"], "token_logprobs": [-0.1], "top_logprobs": [{"a": -0.1, "b": -0.2}]}, "a", "> 1"),
        (
            {"tokens": ["a", "b"], "token_logprobs": [-0.1, -0.1], "top_logprobs": [{"a": -0.1}, {"b": -0.1}]},
            "ab!",
            "do not add up",
        ),
        ({"tokens": ["a", "b"], "token_logprobs": [-0.1], "top_logprobs": [{"a": -0.1}]}, "ab", "different lengths"),
    ],
)
def test_inconsistent_logprobs_are_refused(logprobs, text, message):
    with pytest.raises(LogprobError, match=message):
        steps_from_completion(logprobs, text, where="test")


# -- against the loopback server -------------------------------------------------------------


def test_exact_probabilities_when_the_server_reports_every_token():
    # vLLM-style: the end token is reported like any other (llama.cpp ends without a report
    # when it is the greedy choice, which leaves bounds; see the top-k test)
    with FakeServer(eos_entry=True) as server:
        prompts = [prompt_of(i, t) for i, t in enumerate(TEXTS)]
        # tolerance ~0: every branch is followed to its end
        generations = backend_for(server, tolerance=1e-15).generate(prompts, LABELS, FMT)
        assert len(server.requests) > len(prompts)  # expansions were asked for
        # the default tolerance stops following branches once they cannot move a number by 1e-4
        backend = backend_for(server)
        requests = len(server.requests)
        near = backend.generate(prompts, LABELS, FMT)
        checked = 0
        for prompt, generation, close in zip(prompts, generations, near):
            assert generation.error is None and generation.finished
            assert generation.answer == server.lm.intended(prompt.text)
            assert generation.prompt_text == prompt.text
            for slot, other, (labels, stop) in zip(
                generation.slots, close.slots, expected_slots(server.lm, prompt.text, generation.answer)
            ):
                np.testing.assert_allclose(slot.label_probs, labels, rtol=1e-7, atol=1e-14)
                assert slot.stop_prob == pytest.approx(stop, rel=1e-7, abs=1e-14)
                np.testing.assert_allclose(slot.label_probs_lower, slot.label_probs_upper, atol=1e-12)
                assert slot.coverage == pytest.approx(1.0, abs=1e-9)
                np.testing.assert_allclose(other.label_probs, labels, atol=1e-4)
                assert other.stop_prob == pytest.approx(stop, abs=1e-4)
                assert np.all(other.label_probs_lower <= labels + 1e-12) and np.all(labels <= other.label_probs_upper + 1e-12)
                checked += 1
        assert checked >= 2 * len(prompts)
        assert len(server.requests) - requests < requests - 1  # and asks for fewer nodes
        # what the run records about the backend
        description = backend.describe()
        assert description["backend"] == "openai" and description["endpoint"] == "completions"
        assert description["requests"]["by_kind"]["generate"] == len(prompts)


def test_top_k_bounds_contain_the_truth_and_coverage_says_how_much_was_seen():
    with FakeServer() as server:
        backend = backend_for(server, top_logprobs=3)
        prompts = [prompt_of(i, t) for i, t in enumerate(TEXTS)]
        generations = backend.generate(prompts, LABELS, FMT)
        coverages = []
        for prompt, generation in zip(prompts, generations):
            assert generation.answer == server.lm.intended(prompt.text)  # greedy needs only the top 1
            for slot, (labels, stop) in zip(generation.slots, expected_slots(server.lm, prompt.text, generation.answer)):
                assert np.all(slot.label_probs_lower <= labels + 1e-12) and np.all(labels <= slot.label_probs_upper + 1e-12)
                assert slot.stop_prob_lower <= stop + 1e-12 <= slot.stop_prob_upper + 2e-12
                assert np.all(slot.label_probs_lower <= slot.label_probs + 1e-12)
                assert np.all(slot.label_probs <= slot.label_probs_upper + 1e-12)
                coverages.append(slot.coverage)
        assert min(coverages) < 0.999 and max(coverages) <= 1.0 + 1e-9
        assert all(len(r.get("logprobs") and [1] or []) for r in server.requests)


def test_chat_endpoint_gives_bounds_from_the_generated_path():
    with FakeServer() as server:
        backend = backend_for(server, chat=True)
        assert backend.endpoint == "chat" and "chat" in backend.scoring
        prompts = [prompt_of(i, t) for i, t in enumerate(TEXTS[:3])]
        generations = backend.generate(prompts, LABELS, FMT)
        # one request per item: no expansion is possible through the chat endpoint
        assert [r.get("max_tokens") for r in server.requests[1:]] == [24] * 3
        for prompt, generation in zip(prompts, generations):
            context = server.chat_prompt(prompt.messages)
            assert json.loads(generation.prompt_text) == prompt.messages
            for slot, (labels, stop) in zip(generation.slots, expected_slots(server.lm, context, generation.answer)):
                assert np.all(slot.label_probs_lower <= labels + 1e-12) and np.all(labels <= slot.label_probs_upper + 1e-12)
                assert slot.stop_prob_lower <= stop + 1e-12 <= slot.stop_prob_upper + 2e-12
        with pytest.raises(ModelError, match="chat endpoint"):
            backend.score("x", ["y"])


def test_exact_tails_by_echo_and_a_misaligned_echo_is_not_trusted(caplog):
    with FakeServer(eos_entry=True) as server:
        prompts = [prompt_of(i, t) for i, t in enumerate(TEXTS[:3])]
        # the served vocabulary, as --tokenizer would give it, bounds what the top-2 left out
        vocabulary = Vocabulary([t.encode() for t in server.lm.vocab if t], end_ids=[0])
        plain = backend_for(server, top_logprobs=2)
        plain.vocabulary = vocabulary
        bounded = plain.generate(prompts, LABELS, FMT)
        tails = backend_for(server, top_logprobs=2, exact_tails=True)
        tails.vocabulary = vocabulary
        exact = tails.generate(prompts, LABELS, FMT)
        assert tails.echo_state == "checked"
        assert any(r.get("echo") for r in server.requests)

        def total(generations, field):
            return sum(float(np.sum(getattr(s, field))) for g in generations for s in g.slots)

        # the echoed labels are now seen: more mass observed, narrower bounds
        assert total(exact, "label_probs_lower") > total(bounded, "label_probs_lower")
        gaps_before = total(bounded, "label_probs_upper") - total(bounded, "label_probs_lower")
        gaps_after = total(exact, "label_probs_upper") - total(exact, "label_probs_lower")
        assert gaps_after < 0.7 * gaps_before
        for prompt, generation in zip(prompts, exact):
            for slot, (labels, _) in zip(generation.slots, expected_slots(server.lm, prompt.text, generation.answer)):
                assert np.all(slot.label_probs_lower <= labels + 1e-12) and np.all(labels <= slot.label_probs_upper + 1e-12)
        # an echo shifted by one position (llama-cpp-python without BOS) disagrees with the
        # generated numbers: echo is switched off with a warning, the bounds stay true
        shifted = backend_for(server, top_logprobs=2, exact_tails=True)
        server.fault_when["Labels:"] = ("shift_echo",)  # only echoes are affected
        with caplog.at_level(logging.WARNING, logger="labeldist"):
            generations = shifted.generate(prompts, LABELS, FMT)
        assert shifted.echo_state == "disabled" and "exact tails disabled" in caplog.text
        for prompt, generation in zip(prompts, generations):
            for slot, (labels, _) in zip(generation.slots, expected_slots(server.lm, prompt.text, generation.answer)):
                assert np.all(slot.label_probs_lower <= labels + 1e-12) and np.all(labels <= slot.label_probs_upper + 1e-12)


def test_score_matches_brute_force():
    with FakeServer(eos_entry=True) as server:
        backend = backend_for(server, tolerance=1e-15)
        prefix = "Is joy reasonable? Labels:"
        continuations = [" yes", " no", "joy", '["fear"]']
        scores = backend.score(prefix, continuations)
        for text, score in zip(continuations, scores):
            assert math.exp(score) == pytest.approx(server.lm.exact(prefix, text, exact_end=True), rel=1e-7)


class Judgement:
    """The shape of labeldist.prompts.judgements.JudgementPrompt the backend relies on."""

    def __init__(self, prompt, fills, answers):
        self.prompt, self.fills, self.answers = prompt, fills, answers

    @property
    def item_id(self):
        return self.prompt.item_id

    def answer_texts(self, chat):
        return self.answers if chat else tuple(" " + a for a in self.answers)


def test_score_answers_for_the_judgement_methods():
    from labeldist.prompts.judgements import FILL

    with FakeServer(eos_entry=True) as server:
        backend = backend_for(server, tolerance=1e-15)
        prompt = Prompt("q1", [{"role": "user", "content": f"Is {FILL} right? Labels:"}], f"Is {FILL} right? Labels:", (), "")
        tables = backend.score_answers([Judgement(prompt, ("joy", "fear"), ("yes", "no"))])
        assert tables[0].shape == (2, 2)
        for row, fill in enumerate(("joy", "fear")):
            for column, answer in enumerate((" yes", " no")):
                expected = server.lm.exact(f"Is {fill} right? Labels:", answer, exact_end=True)
                assert math.exp(tables[0][row, column]) == pytest.approx(expected, rel=1e-7)


# -- failures --------------------------------------------------------------------------------


def test_retries_on_429_and_5xx_then_succeeds():
    with FakeServer() as server:
        backend = backend_for(server, retries=3)
        server.faults = [("status", 503), ("status", 429), ("truncate",)]
        generation = backend.generate([prompt_of(0, TEXTS[0])], LABELS, FMT)[0]
        assert generation.error is None and generation.answer == server.lm.intended(prompt_of(0, TEXTS[0]).text)
        assert backend.stats.retries == 3


@pytest.mark.parametrize(
    "fault, message",
    [
        (("status", 400), "answered 400: injected 400"),
        (("status", 500), "answered 500"),
        (("truncate",), "not valid JSON"),
        (("no_logprobs",), "no logprobs"),
        (("bad_logprob",), "> 1"),
    ],
)
def test_an_item_the_server_fails_on_becomes_a_gap(fault, message):
    with FakeServer() as server:
        backend = backend_for(server, retries=1)
        server.fault_when["storm"] = fault
        generations = backend.generate([prompt_of(i, t) for i, t in enumerate(TEXTS[:3])], LABELS, FMT)
        assert generations[0].error is None and generations[2].error is None
        assert generations[1].slots == [] and message in generations[1].error


def test_a_server_that_is_down_or_wrong_stops_with_one_clear_error():
    with FakeServer() as server:
        url = server.url
        with pytest.raises(ModelError, match="does not serve model 'other'; it serves: toy"):
            OpenAIBackend(ServerSettings(url, "other"), chat=False)
        server.faults = [("no_logprobs",)] * 2
        with pytest.raises(ModelError, match="cannot give what labeldist needs.*no logprobs"):
            OpenAIBackend(ServerSettings(url, "toy"), chat=False)
        server.faults = [("status", 401)]
        with pytest.raises(ModelError, match="answered 401"):
            OpenAIBackend(ServerSettings(url, "toy"), chat=False)
        backend = backend_for(server, retries=1, timeout=0.3)
        server.faults = [("hang", 1.0), ("hang", 1.0)]
        with pytest.raises(ModelError, match="no answer within 0.3 s.*gave up after 2 attempts"):
            backend.generate([prompt_of(0, TEXTS[0])], LABELS, FMT)
    started = time.perf_counter()
    with pytest.raises(ModelError, match="cannot connect"):
        OpenAIBackend(ServerSettings(url, "toy", retries=2, backoff=0.01), chat=False)
    assert time.perf_counter() - started < 10
    with pytest.raises(ModelError, match="needs the chat template on this side"):
        OpenAIBackend(ServerSettings(url, "toy", endpoint="completions"), chat=True)


# -- labeldist run ---------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": f"d{i}", "text": text, "labels": "joy"} for i, text in enumerate(TEXTS)]
    pd.DataFrame(rows).to_csv(data / "dev.csv", index=False)
    template = tmp_path / "template.yaml"
    template.write_text(
        'system: ""\ninstruction: "Labels: {labels}. {answer_format}"\n'
        'demonstration: "Text: {text}\\nLabels: {label}"\nquery: "Text: {text}\\nLabels:"\n'
    )
    return [
        "run",
        "--dataset",
        "table",
        "--data-dir",
        str(data),
        "--split",
        "dev",
        "--option",
        "label_list_column=labels",
        "--option",
        f"labels=[{', '.join(LABELS)}]",
        "--shots",
        "0",
        "--template",
        str(template),
        "--no-chat",
        "--quiet",
        "--backend",
        "openai",
        "--model",
        "toy",
        "--retries",
        "1",
        "--top-logprobs",
        "4",
    ]


def test_run_records_bounds_and_gaps_and_a_rerun_fills_them(table, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeServer() as server:
        argv = [*table, "--base-url", server.url, "--batch-size", "2", "--out", str(out)]
        server.fault_when["storm"] = ("status", 400)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "1 items not labelled" in err and "d1: " in err and "answered 400" in err
        manifest = json.loads((out / "run.json").read_text())
        assert list(manifest["gaps"]) == ["d1"] and manifest["counts"]["items_recorded"] == 4
        assert manifest["config"]["backend"] == "openai" and manifest["config"]["backend_settings"]["backend"] == "openai"
        assert manifest["model"]["backend"] == "openai"
        records = RunStore(out).read()
        assert sorted(records["id"]) == ["d0", "d2", "d3", "d4"]
        slot = records.iloc[0]["slots"][0]
        assert 0 < slot["coverage"] <= 1 and len(slot["label_probs_upper"]) == len(LABELS)
        del server.fault_when["storm"]
        assert main(argv) == 0
        assert json.loads((out / "run.json").read_text())["gaps"] == {}
        assert sorted(RunStore(out).read()["id"]) == [f"d{i}" for i in range(5)]
        # the arrays estimators read still load, with the new slot fields present
        from labeldist.runs.arrays import RunArrays

        arrays = RunArrays.load(out)
        assert arrays.slot_probs.shape[0] == 5
        # a changed server setting is refused on resume, naming it
        assert main([*table, "--base-url", server.url, "--top-logprobs", "5", "--out", str(out)]) == 2
        assert "top_logprobs" in capsys.readouterr().err


def test_server_options_need_the_server_backend(table, tmp_path, capsys):
    argv = [a for a in table if a not in ("--backend", "openai")]
    assert main([*argv, "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "x")]) == 2
    assert "--base-url only apply to --backend openai" in capsys.readouterr().err
    assert main([*table, "--out", str(tmp_path / "y")]) == 2
    assert "needs --base-url" in capsys.readouterr().err


def test_sampled_answers_through_the_server():
    """--samples on the HTTP backend: one seeded request per draw; a vanishing temperature gives
    the greedy answer, the same seed the same draws, and the share of draws whose first label is
    L agrees with slot 1's brute-force probability of L."""
    with FakeServer(eos_entry=True) as server:
        prompts = [prompt_of(i, t) for i, t in enumerate(TEXTS[:2])]
        backend = backend_for(server)
        greedy = [g.answer for g in backend.generate(prompts, LABELS, FMT)]
        assert [a[0] for a in backend.sample_answers(prompts, FMT, 1, temperature=1e-6, seed=1)] == greedy
        draws = 300
        sampled = backend.sample_answers(prompts, FMT, draws, seed=4)
        assert sampled == backend.sample_answers(prompts, FMT, draws, seed=4)
        sent = [r for r in server.requests if r.get("temperature") == 1.0]
        assert len(sent) == 2 * 2 * draws and len({r["seed"] for r in sent}) == 2 * draws
        within = []
        for prompt, answer, answers in zip(prompts, greedy, sampled):
            labels, stop = expected_slots(server.lm, prompt.text, answer)[0]
            exact = np.append(labels, stop)
            counts = np.zeros(len(LABELS) + 1)
            for drawn in answers:
                written = FMT.parse(drawn, LABELS).labels
                counts[LABELS.index(written[0]) if written else len(LABELS)] += 1
            se = np.sqrt(np.clip(exact * (1 - exact), 1 / draws, None) / draws)
            # labels only: the toy model writes off-format text now and then, which the exact slot
            # leaves out and the parser reads as no label (or, leniently, as some label)
            within.extend((np.abs(counts / draws - exact) <= 3 * se)[: len(LABELS)])
        assert sum(within) >= len(within) - 1
        with pytest.raises(ValueError, match="temperature"):
            backend.sample_answers(prompts, FMT, 1, temperature=0)


def test_marginal_needs_the_hf_backend_and_writes_nothing(table, tmp_path, capsys):
    """--marginal scores forced answers, which a server cannot: one line, before anything is written."""
    out = tmp_path / "run"
    with FakeServer() as server:
        assert main([*table, "--base-url", server.url, "--marginal", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--marginal" in err[0] and "--backend hf" in err[0]
    assert not (out / "run.json").exists()
