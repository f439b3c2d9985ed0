"""Training the encoder baseline (``labeldist encoder train`` and the suite's per-dataset encoder):
soft binary cross-entropy against the vote fractions, best epoch on a validation split; the model
folder it writes is what the estimator ``encoder[model=...]`` (``labeldist.estimators.encoder``) loads."""

from __future__ import annotations

import hashlib
import math
import random
import time
from pathlib import Path

import numpy as np

from labeldist import atomic
from labeldist.data.schema import Dataset
from labeldist.errors import DataError
from labeldist.estimators.encoder import HEAD, MANIFEST, EncoderModel, default_encoder


def _targets(dataset: Dataset) -> np.ndarray:
    # vote fractions; items without votes give their gold labels as 0/1
    return dataset.vote_fractions().astype(np.float32)


def _soft_bce(model: EncoderModel, texts, targets, batch_size: int) -> float:
    import torch

    model.train(False)
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            logits = model.logits(texts[start : start + batch_size])
            t = torch.as_tensor(targets[start : start + batch_size], device=logits.device)
            total += float(torch.nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="sum"))
    return total / max(1, targets.size)


def train_encoder(
    train: Dataset,
    out: str | Path,
    *,
    validation: Dataset | None = None,
    encoder: str | None = None,
    label_names: bool = False,
    epochs: int = 3,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    head_learning_rate: float = 1e-3,
    max_length: int = 128,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    source: dict | None = None,
) -> dict:
    """Fine-tune ``encoder`` on ``train`` (soft BCE on vote fractions); write the model folder."""
    import torch
    from tqdm.auto import tqdm

    if not len(train):
        raise DataError(train.name, None, f"split {train.split} has no items to train on")
    if validation is not None and validation.labels != train.labels:
        raise DataError(validation.name, None, f"validation labels {validation.labels} differ from {train.labels}")
    if validation is not None and {i.id for i in validation.items} & {i.id for i in train.items}:
        raise DataError(validation.name, None, "the validation split shares items with the training split")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    encoder_dir = encoder or default_encoder()
    model = EncoderModel(encoder_dir, train.labels, label_names, max_length, device)
    texts = [item.text for item in train.items]
    targets = _targets(train)
    optimiser = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": learning_rate},
            {"params": model.head.parameters(), "lr": head_learning_rate},
        ],
        weight_decay=0.01,
    )
    steps = epochs * math.ceil(len(texts) / batch_size)
    # linear warm-up over the first 10% of steps, then linear decay to 0
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    order_rng = np.random.default_rng(seed)
    history, best, best_state = [], math.inf, None
    started = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, unit="step", dynamic_ncols=True)
    for epoch in range(1, epochs + 1):
        model.train(True)
        order = order_rng.permutation(len(texts))
        running = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits = model.logits([texts[i] for i in rows])
            t = torch.as_tensor(targets[rows], device=logits.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, t)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            running += float(loss.detach()) * len(rows)
            bar.update(1)
        record = {"epoch": epoch, "train_loss": running / len(texts)}
        if validation is not None:
            record["validation_bce"] = _soft_bce(model, [i.text for i in validation.items], _targets(validation), 64)
            if record["validation_bce"] < best:
                best = record["validation_bce"]
                best_state = _state(model)
        history.append(record)
    bar.close()
    if best_state is not None:
        model.encoder.load_state_dict(best_state[0])
        model.head.load_state_dict(best_state[1])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out / "encoder")
    model.tokenizer.save_pretrained(out / "encoder")
    with atomic.atomic_path(out / HEAD) as tmp:
        torch.save(model.head.state_dict(), tmp)
    ids = sorted(item.id for item in train.items)
    manifest = {
        "labels": list(train.labels),
        "label_names": label_names,
        "max_length": max_length,
        "base_encoder": str(encoder_dir),
        "dataset": source or {"name": train.name, "split": train.split},
        "validation_split": validation.split if validation is not None else None,
        "settings": {
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "head_learning_rate": head_learning_rate,
            "seed": seed,
        },
        "history": history,
        "kept_epoch": (min(history, key=lambda r: r["validation_bce"])["epoch"] if validation is not None else epochs),
        "training_items": len(ids),
        "training_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "training_ids": ids,
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic.write_json(out / MANIFEST, manifest)
    return manifest


def _state(model: EncoderModel):
    return (
        {k: v.detach().clone() for k, v in model.encoder.state_dict().items()},
        {k: v.detach().clone() for k, v in model.head.state_dict().items()},
    )
