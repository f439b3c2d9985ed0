"""Benchmark: what a labeldist run costs over plain batched generation of the same tokens.

The GPU question (does recording exact per-slot label distributions cost much more than just
generating the answers?) measured on any machine:

(a) labeldist  ``HFBackend.generate`` with **forced answers** (each item's gold labels in the
               answer format, so every label slot is really scored), in batches.
(c) plain      ``model.generate``, greedy, no scores, left-padded batches of the same prompts,
               exactly as many new tokens per batch as (a) fed (``min_new_tokens`` =
               ``max_new_tokens``): the floor any recording can cost.

Reported: seconds of each, the ratio (a)/(c) (target on a GPU: <= 1.5), (a)'s split into decode
and slot scoring, and the tree pass's size: tree tokens per item and per slot against the
prompt + answer tokens per item (what costs FLOPs on a large model).

The model:
- ``--model NAME`` (an alias or a folder): its weights, or
- ``--random-weights tiny|1b|8b``: a randomly initialised Llama of that shape (tiny: 2 layers of
  64; 1b: Llama-3.2-1B's; 8b: Llama-3.1-8B's) built on ``--device`` with NAME's tokenizer. No
  weights travel: the regime of a real 8B model on a GPU, and, with ``tiny``, the CPU proxy of
  labeldist's own overhead (the model costs nearly nothing, what remains is labeldist's work).

Run from the repository root, e.g.
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_overhead.py --random-weights tiny
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_overhead.py --random-weights 8b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_run import left_padded

from labeldist.data import load_dataset
from labeldist.models.hf import HFBackend
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "goemotions"
BUNDLED_DATA = REPO / "src" / "labeldist" / "resources" / "goemotions_subset"

# Llama shapes (hidden, layers, heads, kv heads, intermediate); the vocabulary is the tokenizer's
SHAPES = {
    "tiny": (64, 2, 4, 2, 128),
    "1b": (2048, 16, 32, 8, 8192),
    "8b": (4096, 32, 32, 8, 14336),
}


def random_llama(tokenizer, shape: str, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, LlamaConfig

    hidden, layers, heads, kv_heads, intermediate = SHAPES[shape]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=8192,
        tie_word_embeddings=shape != "8b",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def path_labeldist(backend, prompts, labels, fmt, answers, batch_size):
    generations = []
    for start in range(0, len(prompts), batch_size):
        generations.extend(
            backend.generate(prompts[start : start + batch_size], labels, fmt, forced_answers=answers[start : start + batch_size])
        )
    synchronize(backend.device)
    return generations


def path_plain(backend, prompts, batch_size, new_tokens):
    model = backend.model
    for start in range(0, len(prompts), batch_size):
        ids, mask = left_padded(backend, prompts[start : start + batch_size])
        n = new_tokens[start // batch_size]
        model.generate(
            input_ids=ids.to(backend.device),
            attention_mask=mask.to(backend.device),
            do_sample=False,
            min_new_tokens=n,
            max_new_tokens=n,
            pad_token_id=backend.pad_id,
        )
    synchronize(backend.device)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="alias or folder: weights, or only the tokenizer with --random-weights"
    )
    parser.add_argument(
        "--random-weights", choices=sorted(SHAPES), default=None, help="a random Llama of this shape instead of the weights"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--answer-format", default="json", choices=["json", "comma", "and"])
    parser.add_argument("--repeats", type=int, default=3, help="time each path this many times, keep the fastest")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="the slot scorer's pruning tolerance (default: the scorer's, 1e-6)"
    )
    default_data = SHARED_DATA if SHARED_DATA.is_dir() else BUNDLED_DATA
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--json", type=Path, default=None, help="write all numbers to this file")
    parser.add_argument("--smoke", action="store_true", help="a tiny random Llama, 4 items, 2 shots: does it run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.random_weights = args.random_weights or "tiny"
        args.items, args.shots, args.batch_size, args.repeats = 4, 2, 2, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    dtype = getattr(torch, args.dtype)
    dataset = load_dataset("goemotions", args.data_dir, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", args.data_dir, "train", grouping="paper-7")
    fmt = get_answer_format(args.answer_format)
    prompts = build_prompts(
        dataset, pool, PromptTemplate(), fmt, "random", args.shots, args.items, seed=0, shared_demonstrations=True
    )
    labels = dataset.labels
    by_id = {item.id: item for item in dataset.items}
    # gold answers, at least one label (an empty answer has only the closing slot)
    answers = []
    for prompt in prompts:
        gold = [label for label in labels if label in by_id[prompt.item_id].gold] or [labels[0]]
        text = fmt.format(gold)
        answers.append(text[len(prompt.answer_prefix) :] if text.startswith(prompt.answer_prefix) else text)

    started = time.perf_counter()
    if args.random_weights:
        from transformers import AutoTokenizer

        from labeldist.models.resolve import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model).path)
        model = random_llama(tokenizer, args.random_weights, args.device, dtype)
        backend = HFBackend.from_objects(model, tokenizer, name=f"random-llama-{args.random_weights}")
    else:
        backend = HFBackend(args.model, device=args.device, dtype=args.dtype)
    load_seconds = time.perf_counter() - started
    if args.tolerance is not None:
        backend.scorer.tolerance = args.tolerance
    parameters = sum(p.numel() for p in backend.model.parameters())
    print(
        f"torch {torch.__version__}; model {backend.name} ({parameters / 1e6:.1f}M parameters, {backend.model.dtype}, "
        f"{backend.device}), ready in {load_seconds:.1f}s; chat template {backend.chat}"
    )

    # warm up both paths on one batch (kernels, allocator, the shared-prefix cache)
    path_labeldist(backend, prompts[: args.batch_size], labels, fmt, answers[: args.batch_size], args.batch_size)
    runs_a, runs_c = [], []
    generations = None
    for _ in range(args.repeats):
        backend._prefix_cache = None  # each timed run computes its shared prefix itself
        before = dict(backend.scorer.stats)
        generations, seconds = timed(path_labeldist, backend, prompts, labels, fmt, answers, args.batch_size)
        tree = {k: backend.scorer.stats[k] - before[k] for k in before}
        runs_a.append(seconds)
    fed = [g.generated_tokens for g in generations]
    new_tokens = [max(fed[s : s + args.batch_size]) for s in range(0, len(fed), args.batch_size)]
    path_plain(backend, prompts[: args.batch_size], args.batch_size, new_tokens[:1])
    for _ in range(args.repeats):
        _, seconds = timed(path_plain, backend, prompts, args.batch_size, new_tokens)
        runs_c.append(seconds)

    n = len(prompts)
    seconds_a, seconds_c = min(runs_a), min(runs_c)
    decode = sum(g.timings.get("decode", 0.0) for g in generations)
    slots = sum(g.timings.get("slots", 0.0) for g in generations)
    prompt_tokens = [len(backend.encode(backend.render(p))) for p in prompts]
    slot_count = sum(len(g.slots) for g in generations)
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"},
        "torch": torch.__version__,
        "parameters": parameters,
        "items": n,
        "labels": len(labels),
        "seconds_labeldist": seconds_a,
        "seconds_plain": seconds_c,
        "runs_labeldist": runs_a,
        "runs_plain": runs_c,
        "ratio_labeldist_over_plain": seconds_a / seconds_c,
        "labeldist_decode_share": decode / (decode + slots) if decode + slots else None,
        "labeldist_slot_share": slots / (decode + slots) if decode + slots else None,
        "prompt_tokens_per_item": float(np.mean(prompt_tokens)),
        "answer_tokens_per_item": float(np.mean(fed)),
        "slots_per_item": slot_count / n,
        "tolerance": backend.scorer.tolerance,
        # tree passes per batch: on a GPU each costs about one read of the weights
        "tree_passes_per_batch": tree["passes"] / max(1, -(-n // args.batch_size)),
        "tree_tokens_per_item": tree["tree_tokens"] / n,
        # positions fed, padding included: each row of a pass is as wide as the widest
        "tree_positions_fed_per_item": tree["fed"] / n,
        "tree_tokens_per_slot": tree["tree_tokens"] / max(slot_count, 1),
        "tree_tokens_over_context_tokens": tree["tree_tokens"] / (sum(prompt_tokens) + sum(fed)),
    }
    r = report
    print(f"{n} items, {len(labels)} labels, batch {args.batch_size}, forced gold answers ({args.answer_format})")
    print(f"best of {args.repeats} runs each")
    shares = f"decode {r['labeldist_decode_share']:.0%}, slots {r['labeldist_slot_share']:.0%}"
    print(f"(a) labeldist   {seconds_a:8.3f} s  ({n / seconds_a:7.2f} items/s; {shares})")
    print(f"(c) plain       {seconds_c:8.3f} s  ({n / seconds_c:7.2f} items/s)")
    print(f"ratio (a)/(c):  {r['ratio_labeldist_over_plain']:.2f}x")
    print(
        f"tokens per item: prompt {r['prompt_tokens_per_item']:.0f}, answer {r['answer_tokens_per_item']:.1f}, "
        f"tree {r['tree_tokens_per_item']:.1f} ({r['slots_per_item']:.2f} slots, "
        f"{r['tree_tokens_per_slot']:.1f} tree tokens per slot; "
        f"tree / (prompt + answer) = {r['tree_tokens_over_context_tokens']:.3f}); "
        f"{r['tree_passes_per_batch']:.1f} tree passes per batch (tolerance {r['tolerance']:g}), "
        f"{r['tree_positions_fed_per_item']:.1f} positions fed per item with padding"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
