"""The GPU check of issue 15 in one call: exactness across devices, half-precision drift,
unary/pairwise, and what a run costs over plain generation at real model sizes.

Needs no model weights (a GPU machine may take only a small upload): the models are the tests'
tiny Llama, trained here in seconds, and randomly initialised Llamas of 1B and 8B shapes built
on the device with SmolLM2's tokenizer (``--tokenizer``: a folder holding its tokenizer files
and config.json; ``benchmarks/gpu_prepare.sh`` puts one in .gpu/). Each step's numbers, or its
error, go into ``OUT/gpu_check.json``; a failing step does not stop the others.

Steps:
1. exactness: the trained tiny Llama's greedy run and a random 1B-shape Llama's forced gold
   answers, on ``--device`` against the CPU, float32 both: answers equal, largest label
   probability difference; batch 1 against batch 8 on the device.
2. half precision: ``HFBackend.precision_check`` (bfloat16 and float16 against float32) on the
   random 1B Llama's forced answers, and ``labeldist run --dtype bfloat16 --precision-check``
   on the trained tiny Llama.
3. unary and pairwise: ``labeldist run --method unary|pairwise`` on the device.
4. overhead: ``bench_overhead.py`` (forced answers vs plain ``generate``) for each shape in
   ``--shapes`` and dtype, and ``bench_run.py`` with the trained tiny Llama on the device.

Run:  python benchmarks/gpu_check.py --out DIR   (``--device cpu --shapes tiny`` tries it on a CPU)
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_overhead  # noqa: E402
from tiny_models import get_trained_tiny_llama, synthetic_examples, tiny_run_argv, write_label_tables  # noqa: E402

from labeldist.cli import main as cli  # noqa: E402
from labeldist.data import load_dataset  # noqa: E402
from labeldist.models.hf import HFBackend  # noqa: E402
from labeldist.prompts import Prompt, PromptTemplate, build_prompts, get_answer_format  # noqa: E402

BUNDLED = REPO / "src" / "labeldist" / "resources" / "goemotions_subset"


def step(summary: dict, name: str):
    """Decorator: run a step, store its result or its error under ``name``, time it."""

    def wrap(function):
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            summary[name] = function()
        except Exception as err:  # a failed step is a finding, not the end of the check
            summary[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}
        summary[name]["seconds"] = round(time.perf_counter() - started, 2)
        print(json.dumps({k: v for k, v in summary[name].items() if k != "traceback"}, default=str)[:2000], flush=True)
        return function

    return wrap


def slot_diff(first, second) -> tuple[float, int, int]:
    """(largest label/stop probability difference, answers differing, slots compared)."""
    largest, differing, slots = 0.0, 0, 0
    for a, b in zip(first, second):
        if a.answer != b.answer:
            differing += 1
            continue
        for slot_a, slot_b in zip(a.slots, b.slots):
            slots += 1
            largest = max(largest, float(np.max(np.abs(slot_a.label_probs - slot_b.label_probs))))
            largest = max(largest, abs(slot_a.stop_prob - slot_b.stop_prob))
    return largest, differing, slots


def goemotions_prompts(items: int):
    dataset = load_dataset("goemotions", BUNDLED, "dev", grouping="paper-7")
    pool = load_dataset("goemotions", BUNDLED, "train", grouping="paper-7")
    fmt = get_answer_format("json")
    prompts = build_prompts(dataset, pool, PromptTemplate(), fmt, "random", 10, items, seed=0, shared_demonstrations=True)
    by_id = {item.id: item for item in dataset.items}
    answers = []
    for prompt in prompts:
        gold = [label for label in dataset.labels if label in by_id[prompt.item_id].gold] or [dataset.labels[0]]
        answers.append(fmt.format(gold)[len(prompt.answer_prefix) :])
    return prompts, answers, dataset.labels, fmt


def tiny_prompts(n: int = 16) -> list[Prompt]:
    return [
        Prompt(item_id=str(i), messages=[], text=f"Text: {ex.text}\nLabels:", demonstration_ids=(), answer_prefix="")
        for i, ex in enumerate(synthetic_examples(n=n, seed=5))
    ]


def generate_in_batches(backend, prompts, labels, fmt, batch, answers=None):
    out = []
    for start in range(0, len(prompts), batch):
        forced = None if answers is None else answers[start : start + batch]
        out.extend(backend.generate(prompts[start : start + batch], labels, fmt, forced_answers=forced))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_check")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tokenizer", default=str(REPO / ".gpu" / "smollm2-tokenizer"), help="folder or alias")
    parser.add_argument("--shapes", default="1b,8b", help="random-weight shapes to time (tiny, 1b, 8b)")
    parser.add_argument("--items", type=int, default=64, help="items per overhead benchmark")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not Path(args.tokenizer).is_dir():
        args.tokenizer = "smollm2-135m-instruct"  # the alias (needs its GGUF package)
    summary: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}
    import transformers

    summary["environment"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    print(json.dumps(summary["environment"]), flush=True)
    trained = get_trained_tiny_llama(args.out / "tiny-model-cache")
    exact_shape = "1b" if args.device != "cpu" else "tiny"
    prompts, answers, labels, fmt = goemotions_prompts(16)

    @step(summary, "exactness")
    def _():
        result = {}
        plain = tiny_prompts()
        tiny_labels = list(trained.labels)
        on_cpu = HFBackend(str(trained.path), device="cpu", chat=False)
        on_device = HFBackend(str(trained.path), device=args.device, chat=False)
        a = generate_in_batches(on_cpu, plain, tiny_labels, fmt, 8)
        b = generate_in_batches(on_device, plain, tiny_labels, fmt, 8)
        c = generate_in_batches(on_device, plain, tiny_labels, fmt, 1)
        largest, differing, slots = slot_diff(a, b)
        result["tiny_trained_device_vs_cpu"] = {
            "items": len(plain),
            "answers_differing": differing,
            "slots": slots,
            "max_abs_prob_diff": largest,
        }
        largest, differing, slots = slot_diff(b, c)
        result["tiny_trained_batch8_vs_batch1"] = {"answers_differing": differing, "max_abs_prob_diff": largest}
        from transformers import AutoTokenizer

        from labeldist.models.resolve import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer).path)
        model = bench_overhead.random_llama(tokenizer, exact_shape, "cpu", torch.float32)
        cpu_backend = HFBackend.from_objects(model, tokenizer, name=f"random-{exact_shape}")
        device_backend = HFBackend.from_objects(copy.deepcopy(model).to(args.device), tokenizer, name=f"random-{exact_shape}")
        n = 8
        a = generate_in_batches(cpu_backend, prompts[:n], labels, fmt, 8, answers[:n])
        b = generate_in_batches(device_backend, prompts[:n], labels, fmt, 8, answers[:n])
        largest, differing, slots = slot_diff(a, b)
        result[f"random_{exact_shape}_forced_device_vs_cpu"] = {"items": n, "slots": slots, "max_abs_prob_diff": largest}
        return result

    @step(summary, "half_precision")
    def _():
        from transformers import AutoTokenizer

        from labeldist.models.resolve import resolve_model

        result = {}
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer).path)
        for dtype in (torch.bfloat16, torch.float16):
            model = bench_overhead.random_llama(tokenizer, exact_shape, args.device, dtype)
            backend = HFBackend.from_objects(model, tokenizer, name=f"random-{exact_shape}")
            name = str(dtype).removeprefix("torch.")
            result[f"random_{exact_shape}_{name}"] = backend.precision_check(prompts, labels, fmt, answers)
            del model, backend
        data = args.out / "tiny-data"
        write_label_tables(data, (("train", 11, 20), ("dev", 12, 32)))
        base = tiny_run_argv(trained, data, "dev", args.out)
        run_dir = args.out / "tiny-bf16-run"
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, so that the check runs
        code = cli([*base, "--device", args.device, "--dtype", "bfloat16", "--precision-check", "32", "--out", str(run_dir)])
        manifest = json.loads((run_dir / "run.json").read_text())
        result["tiny_trained_bfloat16_run"] = {"exit": code, "precision": manifest.get("precision")}
        return result

    @step(summary, "unary_pairwise")
    def _():
        result = {}
        data = args.out / "tiny-data"
        base = tiny_run_argv(trained, data, "dev", args.out)
        at = base.index("--template")  # the judgement methods have their own default template
        base = base[:at] + base[at + 2 :]
        for method in ("unary", "pairwise"):
            run_dir = args.out / f"tiny-{method}"
            shutil.rmtree(run_dir, ignore_errors=True)
            code = cli([*base, "--device", args.device, "--method", method, "--limit", "16", "--out", str(run_dir)])
            manifest = json.loads((run_dir / "run.json").read_text())
            result[method] = {"exit": code, "counts": manifest.get("counts"), "timings": manifest.get("timings")}
        return result

    for shape in [s for s in args.shapes.split(",") if s]:
        for dtype in ("bfloat16", "float32") if shape != "8b" else ("bfloat16",):

            @step(summary, f"overhead_{shape}_{dtype}")
            def _(shape=shape, dtype=dtype):
                path = args.out / f"overhead_{shape}_{dtype}.json"
                bench_overhead.main(
                    [
                        "--model",
                        args.tokenizer,
                        "--random-weights",
                        shape,
                        "--device",
                        args.device,
                        "--dtype",
                        dtype,
                        "--items",
                        str(args.items),
                        "--batch-size",
                        str(args.batch_size),
                        "--repeats",
                        "2",
                        "--json",
                        str(path),
                    ]
                )
                report = json.loads(path.read_text())
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
                return {k: report[k] for k in report if k not in ("settings", "runs_labeldist", "runs_plain")}

    @step(summary, "bench_run_tiny")
    def _():
        import bench_run

        path = args.out / "bench_run_tiny.json"
        bench_run.main(["--model", str(trained.path), "--device", args.device, "--items", "16", "--json", str(path)])
        report = json.loads(path.read_text())
        return {k: report[k] for k in ("speedup_a_over_b", "overhead_a_over_c")}

    (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {args.out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
