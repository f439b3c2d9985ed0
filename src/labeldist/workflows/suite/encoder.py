"""The suite's own encoder per dataset: fine-tuned on held-out pool items, reused by every model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from labeldist import atomic
from labeldist.errors import ConfigError
from labeldist.workflows.suite.config import Suite, SuiteDataset, settings_digest
from labeldist.workflows.suite.samples import SplitLoader, sample_ids, sampled_ids


def train_suite_encoder(
    suite: Suite, ds: SuiteDataset, out: Path, log: Callable[[str], None] = print, splits: SplitLoader | None = None
) -> Path:
    """The dataset's encoder folder, trained now unless an earlier call trained it with the same
    items and settings. Training items: a seeded sample of ``pool_split`` without any item of
    the configured (uncapped) eval and calibration samples, so a quick ``--max-items`` pass and
    the full pass share one encoder; validation: the calibration sample (best epoch kept)."""
    from labeldist.estimators.encoder import MANIFEST
    from labeldist.training.encoder import train_encoder

    splits = splits or SplitLoader()
    eval_ids, cal_ids = sampled_ids(suite, ds, None, splits)
    held_out = set(eval_ids) | set(cal_ids)
    settings = suite.encoder
    pool = splits(ds, ds.pool_split)
    train_ids = sample_ids(
        [i for i in pool.ids if i not in held_out], settings["train_items"], f"{suite.sample_seed}:{ds.id}:encoder"
    )
    if not train_ids:
        problem = f"pool split {ds.pool_split} has no item left to train the encoder on"
        raise ConfigError(suite.source, f"dataset {ds.id}", problem)
    folder = out / "encoders" / ds.id
    identity = {
        "train_ids": train_ids,
        "validation_ids": cal_ids,
        "settings": settings,
        "dataset": ds.dataset,
        "data_dir": str(ds.data_dir),
        "pool_split": ds.pool_split,
        "common": ds.loader_options,
    }
    digest = settings_digest(identity)
    stamp = folder / "suite-encoder.json"
    if stamp.is_file() and (folder / MANIFEST).is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("sha") == digest:
        return folder
    train = pool.restrict(train_ids, source=f"{ds.id} encoder sample")
    validation = splits(ds, ds.calibration_split).restrict(cal_ids, source=f"{ds.id} calibration sample")
    log(f"{ds.id}: training the encoder on {len(train)} {ds.pool_split} items (validation: {len(validation)})")
    manifest = train_encoder(
        train,
        folder,
        validation=validation,
        encoder=settings["base"],
        label_names=bool(settings["label_names"]),
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        max_length=settings["max_length"],
        seed=settings["seed"],
        device=_encoder_device(suite.run.get("device")),
        source={"name": ds.dataset, "data_dir": str(ds.data_dir), "split": ds.pool_split, "suite": suite.source},
    )
    log(f"{ds.id}: encoder trained in {manifest['seconds']:.0f} s, kept epoch {manifest['kept_epoch']}")
    atomic.write_json(stamp, {"sha": digest, "training_sha256": manifest["training_ids_sha256"]}, indent=None)
    return folder


def _encoder_device(device: str | None) -> str:
    """The suite's run device for the encoder too ("auto": CUDA when there is one)."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def encoder_spec(folder: Path) -> str:
    """The estimator spec that reads the encoder trained into ``folder``."""
    return f"encoder[model={folder}]"
