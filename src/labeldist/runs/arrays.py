"""A run folder as one reader: its records as arrays (what estimators and metrics read), the label
chosen at each slot and the answers (what the analyses read), and run.json, read once. The API's
:class:`labeldist.Run` wraps it; the report takes it as it is."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labeldist.errors import DataError
from labeldist.prompts.methods import RunMethod
from labeldist.runs.store import RunStore, manifest_method
from labeldist.slots.locate import STOP


@dataclass
class RunArrays:
    """Items x slots x labels arrays of one run (slots padded with NaN past an item's last).

    ``slot_probs`` are the exact label probabilities, ``first_token`` the first-token
    approximation (NaN at closing slots, where no label was generated), ``stop`` the stop
    probability per slot. ``generated`` marks the labels in each answer, ``targets`` the vote
    fractions (gold 0/1 where ``votes_available`` is False).
    """

    path: str
    ids: list[str]
    labels: tuple[str, ...]
    slot_probs: np.ndarray
    first_token: np.ndarray
    stop: np.ndarray
    n_slots: np.ndarray
    generated: np.ndarray
    gold: np.ndarray
    targets: np.ndarray
    votes_available: np.ndarray
    parsed: np.ndarray
    method: str = RunMethod.GENERATE
    # unary / pairwise runs: items x questions x (positive, negative) answer log-probabilities
    answer_logprobs: np.ndarray | None = None
    questions: dict | None = None
    # runs with --samples N: items x N x labels, 1 where a sampled answer names the label
    sampled: np.ndarray | None = None
    # runs with --marginal: items x labels bounds on P(label in answer) (runs.marginal)
    marginal_lower: np.ndarray | None = None
    marginal_upper: np.ndarray | None = None
    # per item: the mass that left the format, and the mass of trie nodes not expanded
    marginal_off_format: np.ndarray | None = None
    marginal_unexpanded: np.ndarray | None = None
    # run.json as load() read it: what views and evaluations read of the run's settings, so that
    # the folder's manifest is read once on the way to an analysis or an evaluation
    manifest: dict | None = None
    name: str = ""  # shown in legends and tables (the folder's name unless given)
    # per item: the label (or STOP, or None: unknown) chosen at each slot, and the answer text
    # (read by load(texts=True): the analyses need them, estimators do not)
    chosen: list[list[str | None]] | None = None
    answers: list[str] | None = None

    @property
    def config(self) -> dict:
        """The run's config from run.json ({} if absent)."""
        return (self.manifest or {}).get("config", {})

    def written(self) -> list[list[str]]:
        """Each answer's distinct known labels in the order first written."""
        if self.chosen is None:
            raise ValueError(f"{self.path}: loaded without its chosen labels (RunArrays.load(..., texts=True))")
        out = []
        for slots in self.chosen:
            seen: list[str] = []
            for label in slots:
                if label is not None and label != STOP and label not in seen:
                    seen.append(label)
            out.append(seen)
        return out

    def entropy(self) -> np.ndarray:
        """Items x slots entropy (nats) of label + stop probabilities renormalised; NaN past an
        item's last slot."""
        p = np.concatenate([self.slot_probs, self.stop[..., None]], axis=-1)
        total = p.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = p / total
            terms = np.where(q > 0, -q * np.log(q), 0.0)
        h = terms.sum(axis=-1)
        h[~np.isfinite(total[..., 0]) | (total[..., 0] <= 0)] = np.nan
        return h

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> RunArrays:
        """The items at ``index`` (positions), as a run of their own on the same folder: what
        cross-fitting fits on and predicts. Estimators that read the folder (probe, encoder)
        look items up by id, so they see the same subset."""
        index = np.asarray(index, dtype=int)
        picked = {name: getattr(self, name)[index] for name in PER_ITEM}
        answers = None if self.answer_logprobs is None else self.answer_logprobs[index]
        optional = {name: None if getattr(self, name) is None else getattr(self, name)[index] for name in ("sampled", *MARGINAL)}
        texts = {name: None if getattr(self, name) is None else [getattr(self, name)[i] for i in index] for name in TEXTS}
        return replace(self, ids=[self.ids[i] for i in index], answer_logprobs=answers, **optional, **picked, **texts)

    def hidden_states(self, layer: int) -> np.ndarray:
        """items x hidden: one layer's first-slot state for each item, in this view's order
        (the run's ``--save-hidden`` file; layer 0 is the embeddings, -1 the last layer)."""
        ids, states = RunStore(self.path).read_hidden()
        if not -states.shape[1] <= layer < states.shape[1]:
            raise ValueError(f"layer {layer} does not exist: {self.path} stores {states.shape[1]} layers (0 = embeddings)")
        row = {item_id: i for i, item_id in enumerate(ids)}
        missing = [item_id for item_id in self.ids if item_id not in row]
        if missing:
            raise DataError(
                self.path, missing[0], f"has no hidden state ({len(missing)} items lack one; rerun with --save-hidden)"
            )
        return states[[row[item_id] for item_id in self.ids], layer].astype(np.float64)

    def has_hidden_states(self) -> bool:
        """Whether the run stored first-slot hidden states (made with ``--save-hidden``)."""
        return bool(self.path) and RunStore(self.path).hidden_dir.is_dir()

    def texts(self) -> list[str]:
        """The items' texts, re-read from the dataset the run's run.json names (a run stores
        its prompts, not the texts alone)."""
        from labeldist.data import load_dataset

        config = RunStore(self.path).read_manifest()["config"]
        if not config.get("data_dir"):
            raise DataError(self.path, None, "was made from a dataset in memory: its texts cannot be read again from disk")
        options = {"grouping": config.get("grouping"), "task": config.get("task"), **(config.get("options") or {})}
        dataset = load_dataset(config["dataset"], config["data_dir"], config["split"], **options)
        text = {item.id: item.text for item in dataset.items}
        missing = [item_id for item_id in self.ids if item_id not in text]
        if missing:
            raise DataError(self.path, missing[0], f"is not in the dataset the run names ({len(missing)} items missing)")
        return [text[item_id] for item_id in self.ids]

    @classmethod
    def load(cls, run_dir: str | Path, name: str | None = None, texts: bool = False) -> RunArrays:
        """Read a run's records column-wise with Arrow (no Python loop over items or slots);
        ``name`` for legends and tables (default: the folder's name); ``texts``: also each
        slot's chosen label and the answers (what the analyses read)."""
        store = RunStore(run_dir)
        manifest = store.read_manifest()
        labels = tuple(manifest["labels"])
        method = manifest_method(manifest)
        draws = int(manifest.get("config", {}).get("samples") or 0)
        marginal = bool(manifest.get("config", {}).get("marginal"))
        extra = (
            (("answer_logprobs",) if method.judges else ())
            + (("sampled_labels",) if draws else ())
            + (("marginal_unsettled", *MARGINAL) if marginal else ())
        )
        table = store.read_table(COLUMNS + (("answer",) if texts else ()) + extra)
        n, k = table.num_rows, len(labels)

        slots = table.column("slots").combine_chunks()
        n_slots = _list_lengths(slots)
        width = int(n_slots.max(initial=0)) or 1
        # every slot as (item, position): flattened slots are item-major, in slot order
        item_of_slot = np.repeat(np.arange(n), n_slots)
        position = np.arange(len(item_of_slot)) - np.repeat(np.cumsum(n_slots) - n_slots, n_slots)
        flat = slots.flatten()
        slot_probs = np.full((n, width, k), np.nan)
        first_token = np.full((n, width, k), np.nan)
        stop = np.full((n, width), np.nan)
        slot_probs[item_of_slot, position] = _vectors(flat.field("label_probs"), k, str(run_dir), "label_probs")
        first_token[item_of_slot, position] = _vectors(flat.field("first_token_probs"), k, str(run_dir), "first_token_probs")
        stop[item_of_slot, position] = flat.field("stop_prob").to_numpy(zero_copy_only=False)
        chosen = None
        if texts:
            chosen_flat = flat.field("chosen").to_pylist()
            starts = np.cumsum(n_slots) - n_slots
            chosen = [chosen_flat[start : start + count] for start, count in zip(starts.tolist(), n_slots.tolist())]

        targets = _vectors(table.column("vote_fractions").combine_chunks(), k, str(run_dir), "vote_fractions")
        answers = None
        if method.judges:
            questions = manifest.get("questions") or {}
            count = len(questions.get("pairs") or []) if method == RunMethod.PAIRWISE else len(questions.get("candidates") or [])
            column = table.column("answer_logprobs").combine_chunks()
            answers = _vectors(column, 2 * count, str(run_dir), "answer_logprobs").reshape(n, count, 2)
        sampled = None
        if draws:
            column = table.column("sampled_labels").combine_chunks()
            lengths = _list_lengths(column)
            if len(lengths) and (lengths != draws).any():
                row = int(np.flatnonzero(lengths != draws)[0])
                raise DataError(str(run_dir), f"record {row}", f"sampled_labels has {lengths[row]} answers, not {draws}")
            sampled = _indicators(column.flatten(), labels).reshape(n, draws, k)
        bounds = {}
        if marginal:
            for name in ("marginal_lower", "marginal_upper"):
                bounds[name] = _vectors(table.column(name).combine_chunks(), k, str(run_dir), name).reshape(n, k)
            unsettled = _floats(table, "marginal_unsettled")
            # runs made before the two parts were recorded apart: all of it counts as unexpanded
            # (the cautious reading: the in-format interval is then as wide as the bounds allow)
            unexpanded = _floats(table, "marginal_unexpanded")
            bounds["marginal_unexpanded"] = np.where(np.isnan(unexpanded), unsettled, unexpanded)
            bounds["marginal_off_format"] = np.nan_to_num(_floats(table, "marginal_off_format"), nan=0.0)
        return cls(
            path=str(run_dir),
            ids=table.column("id").to_pylist(),
            labels=labels,
            slot_probs=slot_probs,
            first_token=first_token,
            stop=stop,
            n_slots=n_slots,
            generated=_indicators(table.column("labels").combine_chunks(), labels),
            gold=_indicators(table.column("gold").combine_chunks(), labels),
            targets=targets.reshape(n, k),
            votes_available=table.column("votes_available").to_numpy().astype(bool),
            parsed=table.column("parsed").to_numpy().astype(bool),
            method=method,
            answer_logprobs=answers,
            questions=manifest.get("questions"),
            sampled=sampled,
            manifest=manifest,
            name=name or Path(run_dir).name,
            chosen=chosen,
            answers=table.column("answer").to_pylist() if texts else None,
            **bounds,
        )


# the per-item arrays (first axis: items)
PER_ITEM = ("slot_probs", "first_token", "stop", "n_slots", "generated", "gold", "targets", "votes_available", "parsed")
COLUMNS = ("id", "parsed", "labels", "gold", "vote_fractions", "votes_available", "slots")
# the per-item lists of strings
TEXTS = ("chosen", "answers")
# the optional arrays of a --marginal run
MARGINAL = ("marginal_lower", "marginal_upper", "marginal_off_format", "marginal_unexpanded")


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A float column as numpy, nulls as NaN."""
    return table.column(name).to_numpy(zero_copy_only=False).astype(float)


def _list_lengths(array: pa.ListArray) -> np.ndarray:
    return pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(int)


def _vectors(array: pa.ListArray, k: int, where: str, field: str) -> np.ndarray:
    """A list<double> column whose every entry has ``k`` values, as a (rows, k) array."""
    lengths = _list_lengths(array)
    if len(lengths) and (lengths != k).any():
        row = int(np.flatnonzero(lengths != k)[0])
        raise DataError(where, f"record {row}", f"{field} has {lengths[row]} values for {k} labels")
    values = pc.fill_null(array.flatten(), np.nan).to_numpy(zero_copy_only=False)
    return values.reshape(len(lengths), k)


def _indicators(array: pa.ListArray, labels: tuple[str, ...]) -> np.ndarray:
    """A list<string> column of label names as items x labels 0/1 (names outside ``labels`` ignored)."""
    out = np.zeros((len(array), len(labels)))
    lengths = _list_lengths(array)
    rows = np.repeat(np.arange(len(array)), lengths)
    column = pc.index_in(array.flatten(), value_set=pa.array(labels, pa.string())).to_numpy(zero_copy_only=False)
    known = ~np.isnan(column.astype(float))
    out[rows[known], column[known].astype(int)] = 1.0
    return out


def answer_probabilities(answer_logprobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., questions, 2) log-probabilities of (positive, negative) answers -> the positive
    answer's share of the two, and the mass the two answers have together."""
    logprobs = np.asarray(answer_logprobs, dtype=float)
    mass = np.exp(np.logaddexp(logprobs[..., 0], logprobs[..., 1]))
    positive = np.exp(logprobs[..., 0] - np.logaddexp(logprobs[..., 0], logprobs[..., 1]))
    return positive, mass


def in_format(lower, upper, unexpanded):
    """P(an answer the format reads names L), per label: the midpoint of [lower, lower +
    unexpanded] (what the trie left unexpanded could still add), never above ``upper``. Takes
    arrays of bounds with ``unexpanded`` broadcast against them (the estimator ``marginal`` and
    ``labeldist show`` read it alike)."""
    return np.minimum(lower + unexpanded / 2, upper)
