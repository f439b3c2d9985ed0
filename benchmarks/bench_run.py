"""Benchmark: labeldist's run path against the original research code's path, on CPU.

Three paths, in one process, on the same prompts and the same loaded model:

(a) labeldist   ``HFBackend.generate`` in batches of ``--batch-size``: greedy answers with the
                exact per-slot label distributions and the first-token approximation.
(b) original    batch size 1, ``model.generate`` with output_scores, output_attentions and
                output_hidden_states at every step (eager attention), stopping at EOS only,
                then "first token only": at each generated label's start, the softmax over
                the labels' first-token scores.
(c) plain       ``model.generate`` on left-padded batches of ``--batch-size``, greedy, no
                scores, ``max_new_tokens`` = the longest answer (a) produced: the floor of what
                any recording can cost.

Each path is warmed up once on one item (not timed). Peak memory is the peak RSS (sampled
from /proc/self/statm every 10 ms in a background thread) minus the RSS before the path.
Also checks that (a)'s first-token approximation agrees with (b)'s first-token probabilities
at slot 1 wherever both generated the same first label (eager vs sdpa numerics only).

Run from the repository root:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_run.py
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import inspect
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from labeldist.data import load_dataset
from labeldist.models.hf import HFBackend
from labeldist.prompts import Prompt, PromptTemplate, build_prompts, get_answer_format, make_sampler
from labeldist.slots.locate import plan_slots

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "goemotions"
BUNDLED_DATA = REPO / "src" / "labeldist" / "resources" / "goemotions_subset"
# build_prompts knows shared demonstrations itself (then the script needs no workaround)
BUILTIN_SHARED = "shared_demonstrations" in inspect.signature(build_prompts).parameters


# -- prompts ---------------------------------------------------------------------------------


def make_prompts(args, dataset, pool, template, fmt) -> list[Prompt]:
    """The benchmark prompts. "shared": every item gets the same demonstrations (the original
    code reseeded before each query); "per-item": build_prompts' draw per item."""
    sampler = make_sampler(args.sampler, pool, args.seed)
    shared = args.demonstrations == "shared"
    if shared and args.shared_source == "builtin":
        if not BUILTIN_SHARED:
            raise SystemExit("this labeldist's build_prompts has no shared_demonstrations; use --shared-source first-item")
        return build_prompts(dataset, pool, template, fmt, sampler, args.shots, args.items, shared_demonstrations=True)
    prompts = build_prompts(dataset, pool, template, fmt, sampler, args.shots, args.items)
    return share_first_demonstrations(prompts, dataset, pool, template, fmt) if shared else prompts


def share_first_demonstrations(prompts, dataset, pool, template, fmt) -> list[Prompt]:
    """Every prompt rebuilt with the first prompt's demonstrations (same order)."""
    by_id = {item.id: item for item in pool.items}
    demos = [by_id[i] for i in prompts[0].demonstration_ids]
    solved = [(d.text, fmt.format([label for label in dataset.labels if label in d.gold])) for d in demos]
    items = {item.id: item for item in dataset.items}
    rebuilt = []
    for prompt in prompts:
        text = items[prompt.item_id].text
        rebuilt.append(
            Prompt(
                item_id=prompt.item_id,
                messages=template.chat_messages(text, solved, dataset.labels, fmt),
                text=template.plain_text(text, solved, dataset.labels, fmt, prompt.answer_prefix),
                demonstration_ids=prompts[0].demonstration_ids,
                answer_prefix=prompt.answer_prefix,
            )
        )
    return rebuilt


# -- measuring -------------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def release_memory() -> None:
    gc.collect()
    try:  # hand freed heap back to the OS so every path starts from a comparable RSS
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak RSS during a with-block, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval

    def __enter__(self):
        self.before = rss_bytes()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.extra_mb = (self.peak - self.before) / 2**20


def timed(function, *args):
    """(result, seconds, peak extra MB) of one call, memory released before it (host memory;
    on a GPU the work queued by the call is waited for before the clock stops)."""
    release_memory()
    with PeakRSS() as memory:
        started = time.perf_counter()
        result = function(*args)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return result, seconds, memory.extra_mb


# -- the three paths -------------------------------------------------------------------------


def path_labeldist(backend: HFBackend, prompts, labels, fmt, batch_size, save_hidden=False):
    """(a); with ``save_hidden`` (d), what every paper run (saved states for the probe) costs."""
    generations = []
    for start in range(0, len(prompts), batch_size):
        generations.extend(backend.generate(prompts[start : start + batch_size], labels, fmt, save_hidden=save_hidden))
    return generations


def path_original(backend: HFBackend, prompts, labels, fmt, max_new_tokens):
    """Batch size 1, everything output at every step, EOS as the only stop, then first token
    only at every generated label."""
    model, texts = backend.model, backend.texts
    results = []
    for prompt in prompts:
        ids = torch.tensor([backend.encode(backend.render(prompt))], device=backend.device)
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            output_scores=True,
            output_attentions=True,
            output_hidden_states=True,
            return_dict_in_generate=True,
            eos_token_id=backend.eos,
            pad_token_id=backend.pad_id,
        )
        prompt_ids = ids[0].tolist()
        generated = out.sequences[0, len(prompt_ids) :].tolist()
        answer_ids = [t for t in generated if t not in backend.eos]
        prefix_length = len(prompt.answer_prefix)
        answer = prompt.answer_prefix + texts.text(answer_ids)
        boundaries = [prefix_length] + [prefix_length + b for b in texts.char_boundaries(answer_ids)]
        slots = []
        for plan in plan_slots(answer, prefix_length, fmt, labels):
            if plan.label_start is None:
                continue
            j = max(i for i, b in enumerate(boundaries) if b <= plan.label_start)
            residual = answer[boundaries[j] : plan.label_start]
            context = prompt_ids + answer_ids[:j]
            first_ids = [backend.scorer.tokenize_in_context(context, residual + label)[0] for label in labels]
            probs = torch.softmax(out.scores[j][0, first_ids].float(), dim=0).cpu().numpy().astype(np.float64)
            slots.append({"index": plan.index, "chosen": plan.chosen, "first_token_probs": probs})
        results.append({"answer": answer, "generated_tokens": len(generated), "slots": slots})
        del out
    return results


def left_padded(backend: HFBackend, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts' token ids as one left-padded batch, and its attention mask."""
    encoded = [backend.encode(backend.render(p)) for p in prompts]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e) :] = torch.tensor(e)
        mask[i, width - len(e) :] = 1
    return ids, mask


def path_plain(backend: HFBackend, prompts, batch_size, max_new_tokens):
    """Left-padded batched greedy generation without any outputs but the tokens."""
    model = backend.model
    counts = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = left_padded(backend, prompts[start : start + batch_size])
        width = ids.shape[1]
        sequences = model.generate(
            input_ids=ids.to(backend.device),
            attention_mask=mask.to(backend.device),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=backend.eos,
            pad_token_id=backend.pad_id,
        )
        for row in sequences[:, width:].tolist():
            n = len(row)
            for k, token in enumerate(row):
                if token in backend.eos:
                    n = k + 1
                    break
            counts.append(n)
    return counts


# -- main ------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model name or alias (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: %(default)s)")
    parser.add_argument("--dtype", default=None, help="model dtype (default: float32)")
    parser.add_argument("--items", type=int, default=16, help="dev items (default: %(default)s)")
    parser.add_argument("--shots", type=int, default=10, help="demonstrations per prompt (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of (a) and (c) (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="for (a) and (b) (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="random", help="demonstration sampler (default: %(default)s)")
    parser.add_argument("--answer-format", default="json", choices=["json", "comma", "and"])
    parser.add_argument("--demonstrations", default="shared", choices=["shared", "per-item"])
    parser.add_argument(
        "--shared-source",
        default="builtin" if BUILTIN_SHARED else "first-item",
        choices=["builtin", "first-item"],
        help="shared demonstrations from build_prompts(shared_demonstrations=True), or every\n"
        "item gets the first item's demonstrations (default: %(default)s)",
    )
    default_data = SHARED_DATA if SHARED_DATA.is_dir() else BUNDLED_DATA
    parser.add_argument("--data-dir", type=Path, default=default_data, help="GoEmotions folder (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers to this file")
    parser.add_argument(
        "--chat",
        default="auto",
        choices=["auto", "yes", "no"],
        help="use the chat template (auto: when the model has one); 'no' is the original code's setup, which "
        "concatenated plain text: a chat model then does not end its turn after the list",
    )
    parser.add_argument("--smoke", action="store_true", help="2 items, 2 shots, 16 new tokens: does it run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.shots, args.batch_size, args.max_new_tokens = 2, 2, 2, 16
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = os.cpu_count() or 1
    if args.device == "cpu":
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, threads: torch.set_num_threads({threads}) -> {torch.get_num_threads()}")

    dataset = load_dataset("goemotions", args.data_dir, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", args.data_dir, "train", grouping="paper-7")
    fmt = get_answer_format(args.answer_format)
    template = PromptTemplate()
    prompts = make_prompts(args, dataset, pool, template, fmt)
    labels = dataset.labels
    if len(prompts) < 2:
        raise SystemExit("need at least 2 items (one is also used for warm-up)")

    chat = {"auto": None, "yes": True, "no": False}[args.chat]
    backend = HFBackend(args.model, device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens, chat=chat)
    model = backend.model
    lengths = [len(backend.encode(backend.render(p))) for p in prompts]
    demonstrations = "per-item" if args.demonstrations == "per-item" else f"shared ({args.shared_source})"
    print(
        f"model {args.model} ({model.config.model_type}, {model.dtype}, attention {model.config._attn_implementation}, "
        f"chat template {backend.chat}), loaded in {backend.load_seconds:.1f}s"
    )
    print(
        f"data {args.data_dir} (dev, paper-7: {len(labels)} labels); {len(prompts)} items, {args.shots} shots, "
        f"demonstrations {demonstrations}, seed {args.seed}, "
        f"format {args.answer_format}; prompt tokens mean {np.mean(lengths):.0f} (min {min(lengths)}, max {max(lengths)})"
    )

    results: dict[str, dict] = {}
    warm = prompts[:1]

    # (a) labeldist
    path_labeldist(backend, warm, labels, fmt, args.batch_size)
    backend._prefix_cache = None  # the timed run computes its shared prefix itself
    generations, seconds, mb = timed(path_labeldist, backend, prompts, labels, fmt, args.batch_size)
    tokens_a = [g.generated_tokens for g in generations]
    results["a"] = {"seconds": seconds, "peak_extra_mb": mb, "generated_tokens": tokens_a}

    # (d) labeldist saving hidden states (it once recomputed every prompt whole: 2x slower)
    path_labeldist(backend, warm, labels, fmt, args.batch_size, True)
    backend._prefix_cache = None
    hidden_generations, seconds, mb = timed(path_labeldist, backend, prompts, labels, fmt, args.batch_size, True)
    results["d"] = {"seconds": seconds, "peak_extra_mb": mb, "generated_tokens": [g.generated_tokens for g in hidden_generations]}
    # saving the states must change no slot number
    hidden_same = all(
        [(s.label_probs.tolist(), s.stop_prob) for s in g.slots] == [(s.label_probs.tolist(), s.stop_prob) for s in h.slots]
        for g, h in zip(generations, hidden_generations)
    )

    # (b) original: the same model switched to eager attention
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
        original_model_note = "same model, set_attn_implementation('eager')"
    else:  # pragma: no cover - older transformers
        raise SystemExit("this transformers has no set_attn_implementation; load a second eager copy instead")
    print(f"(b) attention: {model.config._attn_implementation}")
    try:
        path_original(backend, warm, labels, fmt, args.max_new_tokens)
        originals, seconds, mb = timed(path_original, backend, prompts, labels, fmt, args.max_new_tokens)
    finally:
        model.set_attn_implementation("sdpa")
    tokens_b = [o["generated_tokens"] for o in originals]
    results["b"] = {"seconds": seconds, "peak_extra_mb": mb, "generated_tokens": tokens_b}

    # (c) plain batched generation, as long as (a)'s longest answer
    longest = max(tokens_a)
    path_plain(backend, warm, args.batch_size, longest)
    tokens_c, seconds, mb = timed(path_plain, backend, prompts, args.batch_size, longest)
    results["c"] = {"seconds": seconds, "peak_extra_mb": mb, "generated_tokens": tokens_c}

    n = len(prompts)
    names = {
        "a": f"(a) labeldist, batch {args.batch_size}",
        "b": "(b) original, batch 1, eager",
        "c": f"(c) plain generate, batch {args.batch_size}",
        "d": f"(d) labeldist + hidden, batch {args.batch_size}",
    }
    print()
    print(f"{'path':34} {'items':>5} {'seconds':>9} {'items/s':>8} {'peak extra MB':>14} {'mean gen tokens':>16}")
    for key, r in results.items():
        r["items"] = n
        r["items_per_second"] = n / r["seconds"]
        r["mean_generated_tokens"] = float(np.mean(r["generated_tokens"]))
        print(
            f"{names[key]:34} {n:5d} {r['seconds']:9.2f} {r['items_per_second']:8.3f} "
            f"{r['peak_extra_mb']:14.0f} {r['mean_generated_tokens']:16.1f}"
        )
    speedup = results["a"]["items_per_second"] / results["b"]["items_per_second"]
    overhead = results["a"]["seconds"] / results["c"]["seconds"]
    print()
    print(f"speed-up over the original path (a)/(b) items/s:        {speedup:.2f}x")
    print(f"overhead over plain batched generation seconds(a)/(c): {overhead:.2f}x")
    hidden_cost = results["d"]["seconds"] / results["a"]["seconds"]
    print(f"cost of saving hidden states seconds(d)/(a):           {hidden_cost:.2f}x (slot numbers identical: {hidden_same})")

    # agreement of the first-token probabilities at slot 1
    diffs, same_first, same_answer = [], 0, 0
    for generation, original in zip(generations, originals):
        if original["answer"].startswith(generation.answer):
            same_answer += 1
        if not generation.slots or not original["slots"]:
            continue
        a_slot, b_slot = generation.slots[0], original["slots"][0]
        if a_slot.chosen is None or a_slot.chosen != b_slot["chosen"] or b_slot["index"] != 1:
            continue
        same_first += 1
        diffs.append(float(np.max(np.abs(a_slot.first_token_probs - b_slot["first_token_probs"]))))
    max_diff = max(diffs) if diffs else float("nan")
    print(
        f"agreement: {same_answer}/{n} answers of (b) start with (a)'s answer; {same_first}/{n} items with the "
        f"same first label; first-token probs at slot 1, (a) vs (b): max abs diff {max_diff:.2e}"
    )
    print()
    print("notes:")
    print(f"- (b) uses the {original_model_note}; sdpa restored afterwards.")
    print(
        f"- (b) stops at EOS only (the original did not stop at ']'), max_new_tokens {args.max_new_tokens} as (a): "
        f"it generated {np.mean(tokens_b):.1f} tokens on average vs {np.mean(tokens_a):.1f} for (a) "
        f"({sum(t >= args.max_new_tokens for t in tokens_b)}/{n} hit the limit)."
    )
    print(f"- (c) max_new_tokens = longest (a) answer = {longest}; it stops at EOS (no ']' stop), no scores.")
    where = f"CPU, {threads} threads" if backend.device.type == "cpu" else str(backend.device)
    print(f"- each path warmed up once on item {prompts[0].item_id} (not timed); {where}.")

    if args.json:
        report = {
            "settings": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"},
                "threads": threads,
                "torch": torch.__version__,
                "model_type": model.config.model_type,
                "chat_template": backend.chat,
                "prompt_tokens": lengths,
                "item_ids": [p.item_id for p in prompts],
                "plain_max_new_tokens": longest,
            },
            "paths": {names[k]: {"key": k, **v} for k, v in results.items()},
            "speedup_a_over_b": speedup,
            "overhead_a_over_c": overhead,
            "hidden_d_over_a": hidden_cost,
            "hidden_same_slots": hidden_same,
            "agreement": {
                "same_answer_prefix": same_answer,
                "same_first_label": same_first,
                "slot1_first_token_max_abs_diff": max_diff if diffs else None,
                "slot1_first_token_abs_diffs": diffs,
            },
            "answers": [
                {"item_id": p.item_id, "a": g.answer, "b": o["answer"]} for p, g, o in zip(prompts, generations, originals)
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
