"""``labeldist encoder train | predict``: the fine-tuned encoder baseline."""

from __future__ import annotations

from pathlib import Path

import click

from labeldist import atomic
from labeldist.cli.main import cli
from labeldist.cli.options import (
    dataset_options,
    load_from_cli,
    load_training_split,
)
from labeldist.errors import DataError


@cli.group("encoder")
def encoder_group():
    """A fine-tuned encoder baseline (estimator `encoder[model=FOLDER]` in `labeldist evaluate`)."""


@encoder_group.command("train")
@dataset_options(name_as="option", split=None, ids=False)
@click.option("--split", default="train", show_default=True, help="Split to train on.")
@click.option("--ids", default=None, type=click.Path(path_type=Path), help="Train only on the ids listed in this file.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Train on the first N items only.")
@click.option("--val-split", default=None, help="Validation split: the epoch with the lowest soft BCE on it is kept.")
@click.option("--val-limit", default=None, type=click.IntRange(min=1), help="Validate on the first N items only.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder to write (models/NAME).")
@click.option("--encoder", default=None, help="HF encoder folder or id (default: the offline all-MiniLM-L6-v2).")
@click.option("--label-names", is_flag=True, help="Demux's input: label names first, each label read from its name's tokens.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", default=5e-5, show_default=True, type=float, help="Encoder learning rate.")
@click.option("--max-length", default=128, show_default=True, type=click.IntRange(min=8), help="Tokens per input.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
def encoder_train_command(
    name,
    data_dir,
    grouping,
    task,
    options,
    split,
    ids,
    limit,
    val_split,
    val_limit,
    out,
    encoder,
    label_names,
    epochs,
    batch_size,
    learning_rate,
    max_length,
    seed,
    device,
):
    """Fine-tune an encoder with soft binary cross-entropy on the vote fractions of one split."""
    from labeldist.training.encoder import train_encoder

    train, source = load_training_split(name, data_dir, split, grouping, task, ids, options, limit)
    validation = None
    if val_split:
        validation = load_from_cli(name, data_dir, val_split, grouping, task, None, options)
        if val_limit:
            validation = validation.restrict(validation.ids[:val_limit], source=f"first {val_limit}")
    manifest = train_encoder(
        train,
        out,
        validation=validation,
        encoder=encoder,
        label_names=label_names,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        seed=seed,
        device=device,
        progress=True,
        source=source,
    )
    for row in manifest["history"]:
        shown = f", validation soft BCE {row['validation_bce']:.4f}" if "validation_bce" in row else ""
        click.echo(f"epoch {row['epoch']}: training loss {row['train_loss']:.4f}{shown}")
    click.echo(
        f"{out}: trained on {manifest['training_items']} items in {manifest['seconds']} s, kept epoch {manifest['kept_epoch']}",
        err=True,
    )


@encoder_group.command("predict")
@dataset_options(name_as="option", split=None, ids=False)
@click.option("--split", default="dev", show_default=True, help="Split to predict.")
@click.option("--ids", default=None, type=click.Path(path_type=Path), help="Only the ids listed in this file.")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path), help="Folder from encoder train.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="CSV to write: id, then one column per label.")
def encoder_predict_command(name, data_dir, grouping, task, options, split, ids, model_dir, out):
    """Per-label probabilities of a trained encoder for one split."""
    import pandas as pd

    from labeldist.estimators.encoder import load_encoder

    dataset = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    model, manifest = load_encoder(model_dir)
    if tuple(manifest["labels"]) != tuple(dataset.labels):
        raise DataError(str(model_dir), None, f"was trained on labels {manifest['labels']}, the split has {list(dataset.labels)}")
    probs = model.predict([item.text for item in dataset.items])
    frame = pd.DataFrame(probs, columns=list(dataset.labels))
    frame.insert(0, "id", dataset.ids)
    with atomic.atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    overlap = len(set(manifest["training_ids"]) & set(dataset.ids))
    if overlap:
        click.echo(f"note: {overlap} of these items were in the model's training data", err=True)
    click.echo(f"written to {out}: {len(frame)} items x {len(dataset.labels)} labels", err=True)
