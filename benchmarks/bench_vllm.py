"""Benchmark: a labeldist run through vLLM against vLLM's own plain greedy generation of the same
prompts and tokens, and against the hf backend, in one process (run it with .venv-vllm's python).

On the same prompts (10 shared demonstrations), after one untimed warm-up batch per path:

  (a) vllm-plain      vLLM generating the greedy answers, nothing else (``LLM.generate``, the
                      prompts as token ids, ``max_tokens`` as a run's): the engine's own speed
  (b) labeldist-vllm  ``VLLMBackend.generate``: the same answers and every slot exact
  (c) labeldist-hf    ``HFBackend.generate`` on the same prompts

Reported as seconds and as ratios against (a) measured in this run (the issue's goal for (b):
at most 1.5x), with the slots' distribution requests per item, and the largest difference
between (b) and (c) (answers must be equal, slots within 1e-4 in float32).

    HF_HUB_OFFLINE=1 .venv-vllm/bin/python benchmarks/bench_vllm.py --dataset goemotions --items 16
    HF_HUB_OFFLINE=1 .venv-vllm/bin/python benchmarks/bench_vllm.py --smoke   # seconds: the bundled subset, 2 items

On a GPU machine without the weights (benchmarks/gpu_check.sh): ``--random-weights 1b --answers
gold --bundled --hf-device cuda --dtype float32``: a random Llama of that shape with SmolLM2's
tokenizer, each item's gold labels scored as its answer (a random model writes no slots), against
vLLM generating as many tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BUNDLED = ROOT / "src" / "labeldist" / "resources" / "goemotions_subset"
DATASETS = {
    # name: (loader, folder, split, pool split, loader settings, id list)
    "goemotions": ("goemotions", "goemotions", "dev", "train", {"grouping": "paper-7"}, "GoEmotions/main_test_set.txt"),
    "hatexplain": ("hatexplain", "hatexplain", "test", "dev", {"task": "target"}, "Hatexplain/main_test_set.txt"),
}


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _timed(function, prompts, batch_size):
    started = time.perf_counter()
    out = []
    for batch in _batches(prompts, batch_size):
        out.extend(function(batch))
    return time.perf_counter() - started, out


def _largest_difference(first, second) -> float:
    worst = 0.0
    for a, b in zip(first, second, strict=True):
        if a.answer != b.answer:
            return float("inf")
        for x, y in zip(a.slots, b.slots, strict=True):
            worst = max(worst, float(np.abs(x.label_probs - y.label_probs).max()), abs(x.stop_prob - y.stop_prob))
    return worst


def _random_model(tokenizer_name: str, shape: str, folder: Path) -> str:
    """A randomly initialised Llama of ``shape`` (bench_overhead's shapes) with ``tokenizer_name``'s
    tokenizer, saved to ``folder`` as a model vLLM and transformers both load (float32 weights)."""
    import torch
    from transformers import AutoTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_overhead import random_llama

    from labeldist.models.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer_name).path)
    model = random_llama(tokenizer, shape, "cpu", torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="goemotions", choices=sorted(DATASETS))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-hf", action="store_true", help="leave out (c)")
    parser.add_argument("--smoke", action="store_true", help="2 items of the bundled GoEmotions subset: does it run")
    parser.add_argument("--bundled", action="store_true", help="the bundled GoEmotions subset (where ../shared is absent)")
    parser.add_argument("--dtype", default=None, help="vLLM's and hf's dtype (default: vLLM's, float32 on CPU)")
    parser.add_argument("--hf-device", default="cpu", help="where (c) runs (cuda on a GPU machine)")
    parser.add_argument(
        "--random-weights", default=None, help="a random Llama of this shape (bench_overhead's) with --model's tokenizer"
    )
    parser.add_argument(
        "--answers",
        choices=("greedy", "gold"),
        default="greedy",
        help="gold: score each item's gold labels as its answer (a random model's greedy answers hold no slots), "
        "against plain generation of as many tokens",
    )
    parser.add_argument("--json", type=Path, default=None, help="write all numbers to this file")
    args = parser.parse_args(argv)

    import tempfile

    from labeldist.data import load_dataset
    from labeldist.models.vllm import VLLMBackend, VLLMSettings
    from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format

    loader, folder, split, pool_split, settings, id_list = DATASETS[args.dataset]
    data_dir, ids = SHARED / folder, SHARED / "paper_eval_ids" / id_list
    if args.smoke:
        args.items, args.batch_size = 2, 2
    if args.smoke or args.bundled:
        loader, split, pool_split, settings, data_dir, ids = "goemotions", "dev", "train", {"grouping": "paper-7"}, BUNDLED, None
    elif not data_dir.exists():
        print(f"{data_dir} is not there: this benchmark reads the real corpora (or --bundled, --smoke)", file=sys.stderr)
        return 2
    dataset = load_dataset(loader, data_dir, split, ids=ids if ids is not None and ids.exists() else None, **settings)
    pool = load_dataset(loader, data_dir, pool_split, **settings)
    fmt = get_answer_format("json")
    prompts = build_prompts(dataset, pool, PromptTemplate(), fmt, "random", args.shots, seed=0, shared_demonstrations=True)
    prompts = prompts[: args.items + args.batch_size]
    warm, prompts = prompts[: args.batch_size], prompts[args.batch_size :][: args.items]
    labels = tuple(dataset.labels)
    gold = {item.id: sorted(item.gold) for item in dataset}
    # the gold labels as the answer, after the whitespace an answer prefix is followed by
    forced = {}
    for p in warm + prompts:
        lead = "" if p.answer_prefix[-1:] in ("", " ", "\n") else " "
        forced[p.item_id] = lead + fmt.write([label for label in labels if label in gold[p.item_id]])

    scratch = tempfile.TemporaryDirectory(prefix="bench-vllm-")
    model = args.model
    if args.random_weights:
        model = _random_model(args.model, args.random_weights, Path(scratch.name) / f"random-{args.random_weights}")
    backend = VLLMBackend(model, VLLMSettings(dtype=args.dtype), chat=None, max_new_tokens=64, progress=False)
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    def answer_of(prompt):
        return forced[prompt.item_id] if args.answers == "gold" else None

    def plain(batch):
        requests = [TokensPrompt(prompt_token_ids=backend.encode_prompt(p)[1]) for p in batch]
        if args.answers == "greedy":
            params = SamplingParams(
                temperature=0.0, max_tokens=backend.max_new_tokens, stop_token_ids=backend.eos, detokenize=False
            )
            return backend.llm.generate(requests, params, use_tqdm=False)
        # as many tokens as the answer scored, whatever the model would write
        params = []
        for p, request in zip(batch, requests):
            n = len(backend.context_tokenizer.tokenize(request["prompt_token_ids"], answer_of(p))) or 1
            params.append(SamplingParams(temperature=0.0, min_tokens=n, max_tokens=n, ignore_eos=True, detokenize=False))
        return backend.llm.generate(requests, params, use_tqdm=False)

    def exact(batch):
        if args.answers == "gold":
            return backend.generate(batch, labels, fmt, forced_answers=[answer_of(p) for p in batch])
        return backend.generate(batch, labels, fmt)

    plain(warm), exact(warm)
    results = {
        "dataset": "goemotions (bundled subset)" if (args.smoke or args.bundled) else args.dataset,
        "model": args.model if not args.random_weights else f"random {args.random_weights} Llama, {args.model}'s tokenizer",
        "device": "cpu" if backend.on_cpu else "cuda",
        "dtype": backend.dtype,
        "answers": args.answers,
        "items": len(prompts),
        "batch_size": args.batch_size,
    }
    seconds_plain, _ = _timed(plain, prompts, args.batch_size)
    before = dict(backend.engine.requests)
    seconds_exact, got_vllm = _timed(exact, prompts, args.batch_size)
    requests = {k: v - before.get(k, 0) for k, v in backend.engine.requests.items()}
    results.update(
        {
            "vllm_plain_seconds": round(seconds_plain, 3),
            "labeldist_vllm_seconds": round(seconds_exact, 3),
            "labeldist_vllm_ratio": round(seconds_exact / seconds_plain, 2),
            "distribution_requests_per_item": round(requests.get("distributions", 0) / len(prompts), 1),
            "full_distribution_requests": requests.get("full", 0),
            "slots": sum(len(g.slots) for g in got_vllm),
        }
    )
    if not args.no_hf:
        from labeldist.models.hf import HFBackend

        hf = HFBackend(model, device=args.hf_device, dtype=args.dtype or backend.dtype)

        def by_hf(batch):
            if args.answers == "gold":
                return hf.generate(batch, labels, fmt, forced_answers=[answer_of(p) for p in batch])
            return hf.generate(batch, labels, fmt)

        by_hf(warm)
        seconds_hf, got_hf = _timed(by_hf, prompts, args.batch_size)
        results.update(
            {
                "labeldist_hf_seconds": round(seconds_hf, 3),
                "labeldist_hf_ratio": round(seconds_hf / seconds_plain, 2),
                "largest_difference_vllm_hf": _largest_difference(got_hf, got_vllm),
            }
        )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    backend.close()
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
