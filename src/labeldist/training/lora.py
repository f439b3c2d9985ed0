"""LoRA supervised finetuning of a causal LM on the answer format (``labeldist finetune``).

Each training example is one item's prompt, built exactly as ``labeldist run`` builds it (same
template, answer format, demonstrations, chat template or plain text), followed by the answer
the model should write: the item's gold labels in the answer format (``answers="gold"``), or
one example per annotator with that annotator's labels (``answers="annotators"``: the model is
trained on the spread of human answers, not on their majority). In chat form the answer ends
with the end-of-turn token, as an assistant turn does. The loss is the cross-entropy of the
answer tokens only.

Low-rank adapters (peft) on every linear layer of the transformer blocks (and on the output
layer when it is not tied to the input embeddings; see :func:`adapted_modules`) are trained, then
merged into the weights, and the merged model is saved as an ordinary model folder with its
tokenizer, so ``labeldist run --model models/NAME`` uses it like any other. ``finetune.json``
beside it records the base model, data, settings, losses per epoch and the training ids.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from labeldist import atomic
from labeldist.data.schema import Dataset
from labeldist.errors import DataError
from labeldist.prompts import PromptTemplate, build_prompts, get_answer_format

MANIFEST = "finetune.json"


@dataclass(frozen=True)
class FinetuneSettings:
    """The prompts (shots, sampler, format), answers (gold or annotators) and LoRA training settings of a finetune."""

    shots: int = 0
    sampler: str = "random"
    seed: int = 0
    answer_format: str = "json"
    answers: str = "gold"  # or "annotators"
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    max_length: int = 1024


def training_examples(backend, dataset: Dataset, pool: Dataset, template: PromptTemplate, settings: FinetuneSettings):
    """(prompt token ids, answer token ids, item id) for every example."""
    fmt = get_answer_format(settings.answer_format)
    prompts = build_prompts(
        dataset,
        pool,
        template,
        fmt,
        settings.sampler,
        settings.shots,
        seed=settings.seed,
        shared_demonstrations=settings.shots > 0,
    )
    # chat: the assistant turn ends with end-of-turn; plain text: demonstrations read
    # "Labels: [...]", so the answer follows the query's last word after a space
    end = (backend.tokenizer.eos_token or "") if backend.chat else ""
    examples = []
    for item, prompt in zip(dataset.items, prompts):
        context = backend.encode_prompt(prompt)[1]
        if prompt.answer_prefix:  # the prompt already holds the format's opener
            raise ValueError("finetuning with a prefilled answer opener is not supported")
        if settings.answers == "annotators" and item.has_votes:
            answers = [labels for _, labels in sorted(item.votes.items())]
        else:
            answers = [item.gold]
        for labels in answers:
            text = fmt.format([label for label in dataset.labels if label in labels])
            rendered = backend.render(prompt)
            if not backend.chat:
                if rendered and not rendered[-1].isspace():
                    text = " " + text
                if not text.endswith(fmt.closer):  # comma and "and" lists end at a line break
                    text += fmt.closer
            answer = backend.scorer.tokenize_in_context(context, text + end)
            if len(context) + len(answer) > settings.max_length:
                raise DataError(
                    dataset.name,
                    item.id,
                    f"prompt and answer are {len(context) + len(answer)} tokens, over --max-length {settings.max_length}",
                )
            examples.append((context, answer, item.id))
    return examples


def adapted_modules(model) -> list[str]:
    """Names of the linear layers that get adapters: every linear layer of the transformer
    blocks, and the output layer too unless it shares its weights with the input embeddings.

    The output layer matters for teaching a new answer format: a format's tokens that the
    model rarely writes have small output rows that adapters inside the blocks can hardly
    lift (a small model trained on JSON answers did not learn comma lists without it). With
    tied embeddings (SmolLM2, Gemma) merging an output-layer adapter would also change the
    input embeddings, so it is left out there."""
    import torch

    output = model.get_output_embeddings()
    tied = output is not None and output.weight is model.get_input_embeddings().weight
    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (module is not output or not tied):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def finetune(
    model: str,
    train: Dataset,
    pool: Dataset,
    out: str | Path,
    *,
    template: PromptTemplate | None = None,
    settings: FinetuneSettings = FinetuneSettings(),
    chat: bool | None = None,
    device: str | None = None,
    progress: bool = False,
    source: dict | None = None,
) -> dict:
    """LoRA-finetune ``model`` on ``train``'s prompts and answers (demonstrations from ``pool``) and save the merged model.

    The model folder ``out`` gets the weights, the tokenizer and ``finetune.json``; the manifest is returned."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    from labeldist.models.hf import HFBackend

    if settings.answers not in ("gold", "annotators"):
        raise ValueError(f"answers must be gold or annotators, not {settings.answers!r}")
    if not len(train):
        raise DataError(train.name, None, f"split {train.split} has no items to train on")
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    backend = HFBackend(model, device=device, chat=chat)
    template = template or PromptTemplate()
    examples = training_examples(backend, train, pool, template, settings)
    base = backend.model
    base.train()
    targets = adapted_modules(base)
    lora = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(base, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    optimiser = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=settings.learning_rate)
    steps = settings.epochs * math.ceil(len(examples) / settings.batch_size)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    rng = np.random.default_rng(settings.seed)
    pad = backend.pad_id
    history = []
    started = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, unit="step", dynamic_ncols=True)
    for epoch in range(1, settings.epochs + 1):
        order = rng.permutation(len(examples))
        total, tokens = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            batch = [examples[i] for i in order[start : start + settings.batch_size]]
            width = max(len(c) + len(a) for c, a, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (context, answer, _) in enumerate(batch):
                sequence = list(context) + list(answer)
                ids[row, : len(sequence)] = torch.tensor(sequence)
                mask[row, : len(sequence)] = 1
                labels[row, len(context) : len(sequence)] = torch.tensor(answer)  # loss on the answer only
            logits = peft_model(input_ids=ids.to(backend.device), attention_mask=mask.to(backend.device)).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(backend.device)
            loss_sum = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            count = int((shift_labels != -100).sum())
            optimiser.zero_grad()
            (loss_sum / max(1, count)).backward()
            torch.nn.utils.clip_grad_norm_([p for p in peft_model.parameters() if p.requires_grad], 1.0)
            optimiser.step()
            scheduler.step()
            total += float(loss_sum.detach())
            tokens += count
            bar.update(1)
        history.append({"epoch": epoch, "answer_token_loss": total / max(1, tokens)})
    bar.close()
    merged = peft_model.merge_and_unload()
    merged.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    backend.tokenizer.save_pretrained(out)
    manifest = {
        "base_model": model,
        "base_model_path": str(backend.resolved.path),
        "chat": backend.chat,
        "dataset": source or {"name": train.name, "split": train.split},
        "settings": asdict(settings),
        "template": asdict(template) if hasattr(template, "__dataclass_fields__") else None,
        "examples": len(examples),
        "trainable_parameters": trainable,
        "adapted_modules": targets,
        "history": history,
        "training_ids": sorted({item.id for item in train.items}),
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic.write_json(out / MANIFEST, manifest)
    return manifest
