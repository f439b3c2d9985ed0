"""Benchmark: the unary and pairwise methods the labeldist way against the original way, on CPU.

In one process, with one loaded model (default SmolLM2-135M-Instruct) and the same GoEmotions
items (paper-7 grouping: K = 7 labels, so 8 candidates with none; ``--shots`` demonstrations):

(g) generate        ``HFBackend.generate`` in batches of ``--batch-size``: one generation run
                    of the items (the reference: unary should cost at most 1.5x this, pairwise 3x)
(u) unary           ``HFBackend.score_answers``: all K+1 questions of an item scored as
                    continuations of its prompt, the demonstrations computed once per run
                    (shared) or once per item (``--demonstrations per-item``), batched
(p) pairwise        the same with all (K+1)K ordered pairs (both orders)
(u0) unary, original    one full prompt per question (K+1 per item), batch size 1, no cache;
                    the answer's probability read from the last position's logits
(p0) pairwise, original one full prompt per unordered pair (C(K+1, 2) per item, one order)

The original sampled fresh demonstrations for each question; the same number of
demonstrations of the same pool costs the same, so (u0)/(p0) reuse the item's prompt text
(this times the pattern of computation, not a different prompt). (u0)/(p0) run on the first
``--original-items`` items only (they are slow) and are reported per item.

Then Bradley–Terry: ``bradley_terry`` (batched Newton) on ``--bt-items`` random soft-outcome
items against the original's fit, 5,000 Adam steps (lr 0.01) of the same likelihood in a
Python loop per item (timed on ``--bt-adam-items`` items), for K = 8 and K = 12 labels.

Run from the repository root:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_breakdown.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from labeldist.data import load_dataset
from labeldist.data.schema import Dataset
from labeldist.estimators import bradley_terry
from labeldist.models.hf import HFBackend
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format
from labeldist.prompts.judgements import FILL, JudgementTemplate, build_judgement_prompts

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "goemotions"
BUNDLED_DATA = REPO / "src" / "labeldist" / "resources" / "goemotions_subset"


def per_item(seconds: float, items: int) -> float:
    return seconds / max(items, 1)


def time_generate(backend, dataset, pool, args) -> float:
    fmt = get_answer_format("json")
    prompts = build_prompts(
        dataset, pool, PromptTemplate(), fmt, "random", args.shots, seed=0, shared_demonstrations=args.demonstrations == "shared"
    )
    backend.generate(prompts[:1], dataset.labels, fmt)  # warm-up
    backend._prefix_cache = None
    started = time.perf_counter()
    for start in range(0, len(prompts), args.batch_size):
        backend.generate(prompts[start : start + args.batch_size], dataset.labels, fmt)
    return time.perf_counter() - started


def judgement_prompts(method, dataset, pool, args):
    return build_judgement_prompts(
        dataset,
        pool,
        JudgementTemplate.default(method),
        "random",
        args.shots,
        seed=0,
        shared_demonstrations=args.demonstrations == "shared",
    )


def time_labeldist(backend, prompts, args) -> float:
    backend.score_answers(prompts[:1])  # warm-up
    backend._prefix_cache = None
    started = time.perf_counter()
    for start in range(0, len(prompts), args.batch_size):
        backend.score_answers(prompts[start : start + args.batch_size])
    return time.perf_counter() - started


@torch.no_grad()
def time_original(backend, prompts, method, k) -> float:
    """One full forward pass per question (unary: K+1; pairwise: one order of each pair)."""
    started = time.perf_counter()
    for prompt in prompts:
        head, tail = backend.render(prompt.prompt).split(FILL)
        if method == "unary":
            fills = prompt.fills
        else:
            fills = [fill for fill, (i, j) in zip(prompt.fills, JudgementTemplate.default("pairwise").pairs(range(k))) if i < j]
        answers = [backend.encode(a)[-1] for a in prompt.answer_texts(backend.chat)]
        for fill in fills:
            ids = torch.tensor([backend.encode(head + fill + tail)])
            logits = backend.model(ids).logits[0, -1].float()
            torch.log_softmax(logits, dim=-1)[answers]
    return time.perf_counter() - started


def adam_bradley_terry(wins: np.ndarray, steps: int = 5000, lr: float = 0.01) -> np.ndarray:
    """The original's way: Adam on the negative log-likelihood, one item, a Python loop."""
    w = torch.tensor(wins, dtype=torch.float32)
    s = torch.zeros(len(wins), requires_grad=True)
    optimiser = torch.optim.Adam([s], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        d = s[:, None] - s[None, :]
        loss = -(w * torch.nn.functional.logsigmoid(d)).sum()
        loss.backward()
        optimiser.step()
    out = s.detach().numpy().astype(float)
    return out - out.mean()


def bench_bradley_terry(k: int, items: int, adam_items: int) -> dict:
    rng = np.random.default_rng(k)
    m = k + 1
    wins = rng.random((items, m, m))
    wins = wins / (wins + wins.transpose(0, 2, 1))
    started = time.perf_counter()
    ours = bradley_terry(wins, ridge=0.0)
    ours_seconds = per_item(time.perf_counter() - started, items)
    started = time.perf_counter()
    adam = [adam_bradley_terry(wins[i]) for i in range(adam_items)]
    adam_seconds = per_item(time.perf_counter() - started, adam_items)
    difference = float(max(np.abs(a - ours[i]).max() for i, a in enumerate(adam)))
    return {
        "k": k,
        "newton_seconds_per_item": ours_seconds,
        "adam_seconds_per_item": adam_seconds,
        "speedup": adam_seconds / ours_seconds,
        "max_strength_difference": difference,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--original-items", type=int, default=2)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--demonstrations", choices=["shared", "per-item"], default="shared")
    parser.add_argument("--chat", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--bt-items", type=int, default=2000)
    parser.add_argument("--bt-adam-items", type=int, default=3)
    parser.add_argument("--skip-models", action="store_true", help="Only the Bradley–Terry part.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--smoke", action="store_true", help="2 items, 2 shots, small Bradley–Terry sizes: does it run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.original_items, args.shots, args.batch_size, args.bt_items, args.bt_adam_items = 2, 1, 2, 2, 50, 1
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch threads: {torch.get_num_threads()}")
    figures: dict = {"settings": vars(args) | {"json": str(args.json) if args.json else None}}

    if not args.skip_models:
        data_dir = SHARED_DATA if SHARED_DATA.is_dir() else BUNDLED_DATA
        dev = load_dataset("goemotions", data_dir, "dev", grouping="paper-7")
        pool = load_dataset("goemotions", data_dir, "train", grouping="paper-7")
        dataset = Dataset(dev.name, dev.labels, dev.split, dev.items[: args.items])
        k = len(dataset.labels)
        chat = {"auto": None, "yes": True, "no": False}[args.chat]
        backend = HFBackend(args.model, chat=chat)
        rows = {}
        rows["generate"] = per_item(time_generate(backend, dataset, pool, args), len(dataset))
        for method in ("unary", "pairwise"):
            prompts = judgement_prompts(method, dataset, pool, args)
            rows[method] = per_item(time_labeldist(backend, prompts, args), len(prompts))
            few = prompts[: args.original_items]
            rows[f"{method}_original"] = per_item(time_original(backend, few, method, k), len(few))
        figures["seconds_per_item"] = rows
        figures["ratios"] = {
            "unary_over_generate": rows["unary"] / rows["generate"],
            "pairwise_over_generate": rows["pairwise"] / rows["generate"],
            "unary_original_over_generate": rows["unary_original"] / rows["generate"],
            "pairwise_original_over_generate": rows["pairwise_original"] / rows["generate"],
            "unary_speedup": rows["unary_original"] / rows["unary"],
            "pairwise_speedup": rows["pairwise_original"] / rows["pairwise"],
        }
        print(
            f"\n{args.model}, {len(dataset)} GoEmotions dev items (paper-7, K={k}), {args.shots} shots, "
            f"{args.demonstrations} demonstrations, chat template: {backend.chat}"
        )
        print(f"{'path':28s} {'s/item':>8s} {'x generate':>11s}")
        for name, seconds in rows.items():
            print(f"{name:28s} {seconds:8.3f} {seconds / rows['generate']:11.2f}")
        print(
            f"speed-up over the original way: unary {figures['ratios']['unary_speedup']:.1f}x, "
            f"pairwise {figures['ratios']['pairwise_speedup']:.1f}x"
        )

    figures["bradley_terry"] = [bench_bradley_terry(k, args.bt_items, args.bt_adam_items) for k in (8, 12)]
    print("\nBradley–Terry per item: batched Newton vs 5,000 Adam steps")
    for row in figures["bradley_terry"]:
        print(
            f"K={row['k']:2d}: Newton {row['newton_seconds_per_item'] * 1e6:8.1f} us, Adam "
            f"{row['adam_seconds_per_item']:.3f} s, speed-up {row['speedup']:,.0f}x, "
            f"max |strength difference| {row['max_strength_difference']:.2e}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
