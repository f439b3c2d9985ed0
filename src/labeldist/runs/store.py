"""The run store: one folder per run.

::

    runs/NAME/run.json                 config, label order, model, versions, counts, timings
    runs/NAME/records/part-00000.parquet   item records, one file per flushed batch
    runs/NAME/hidden/part-00000.npz        first-slot hidden states (--save-hidden)

Each batch is written to a temporary file and renamed into place, so a killed run leaves only
complete parts: rerunning the same command reads the ids already recorded and continues with
the rest. A part's hidden states are written before its records; records are what count as
done, so an orphaned hidden file is simply overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from labeldist import atomic
from labeldist.errors import DataError
from labeldist.prompts.methods import RunMethod

# part-00012.parquet (written by this process), part-00012-3f9a1c.parquet (written by a Ray
# worker: the suffix names the attempt, so that a worker left over from a killed attempt never
# overwrites a part of the next one)
PART = re.compile(r"^part-(\d{5,})(?:-([0-9a-z]+))?\.parquet$")
LOCK = ".labeldist.lock"  # held (flock) by the process writing the run

SLOT_TYPE = pa.struct(
    [
        ("index", pa.int32()),
        ("chosen", pa.string()),
        ("raw", pa.string()),
        ("label_probs", pa.list_(pa.float64())),
        ("label_logprobs", pa.list_(pa.float64())),
        ("first_token_probs", pa.list_(pa.float64())),
        ("stop_prob", pa.float64()),
        ("stop_logprob", pa.float64()),
        ("entropy", pa.float64()),
        ("mass", pa.float64()),
        # bounds where a backend saw only the top-k next tokens (null: exact); see models/topk.py
        ("label_probs_lower", pa.list_(pa.float64())),
        ("label_probs_upper", pa.list_(pa.float64())),
        ("stop_prob_lower", pa.float64()),
        ("stop_prob_upper", pa.float64()),
        ("coverage", pa.float64()),
    ]
)

RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("answer", pa.string()),
        ("generated_tokens", pa.int32()),
        ("finished", pa.bool_()),
        ("parsed", pa.bool_()),
        ("complete", pa.bool_()),
        ("labels", pa.list_(pa.string())),
        ("unknown", pa.list_(pa.string())),
        ("corrections", pa.string()),  # JSON object raw text -> label
        ("gold", pa.list_(pa.string())),
        ("vote_fractions", pa.list_(pa.float64())),
        ("votes_available", pa.bool_()),
        ("demonstration_ids", pa.list_(pa.string())),
        ("slots", pa.list_(SLOT_TYPE)),
        # unary / pairwise runs: log P(answer | question) for each question x (positive,
        # negative) answer, flattened row-major; null for generation runs
        ("answer_logprobs", pa.list_(pa.float64())),
        # record format 2 (run.json "record_format"; null in older runs): the generated token ids,
        # and per slot its decision position (generated tokens in its context) and the forms
        # scored from there: format 2, one string per label then the close's; format 3, every
        # surface form as a JSON object (slots.locate.record_forms). Top-level columns, not
        # slot fields: older parts then read with nulls here on every supported pyarrow
        ("token_ids", pa.list_(pa.int64())),
        ("slot_decisions", pa.list_(pa.int32())),
        ("slot_forms", pa.list_(pa.list_(pa.string()))),
        # --samples N (null without, and in older runs): N answers drawn at the run's temperature,
        # each the answer prefix plus what was drawn, and the labels parsed from each
        ("sampled_answers", pa.list_(pa.string())),
        ("sampled_labels", pa.list_(pa.list_(pa.string()))),
        # --marginal (null without, and in older runs): bounds on P(label in answer) over the
        # trie of label sequences (runs.marginal), the settled mass of the empty answer, the
        # expected number of labels, nodes expanded, seconds, and the mass left unsettled: the
        # mass that left the format plus the mass of nodes not expanded (null in runs before
        # the two were recorded apart)
        ("marginal_lower", pa.list_(pa.float64())),
        ("marginal_upper", pa.list_(pa.float64())),
        ("marginal_empty", pa.float64()),
        ("marginal_expected_labels", pa.float64()),
        ("marginal_nodes", pa.int32()),
        ("marginal_seconds", pa.float64()),
        ("marginal_unsettled", pa.float64()),
        ("marginal_off_format", pa.float64()),
        ("marginal_unexpanded", pa.float64()),
    ]
)

# what the records hold; run.json says which format its records are in (absent: 1).
# 3: a slot's probabilities sum over every surface form of a label (quoted, bare, spacing,
# separators), not only the one the model wrote there
RECORD_FORMAT = 3


def manifest_method(manifest: dict) -> RunMethod:
    """The method a run was made with (runs from before methods existed are generation runs)."""
    return RunMethod(manifest.get("config", {}).get("method", RunMethod.GENERATE))


class RunStore:
    """One run folder: its manifest (run.json), record parts and hidden-state parts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        """The run's ``run.json``."""
        return self.path / "run.json"

    @property
    def records_dir(self) -> Path:
        """The folder of the record parts."""
        return self.path / "records"

    @property
    def hidden_dir(self) -> Path:
        """The folder of the hidden-state parts (``--save-hidden``)."""
        return self.path / "hidden"

    def exists(self) -> bool:
        """Whether the folder holds a run (its run.json exists)."""
        return self.manifest_path.is_file()

    # -- the lock ----------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for one writing process.

        A second process on the same folder gets a one-line error naming the holder (pid, host,
        since when) instead of writing beside it. The lock is an ``flock`` on ``.labeldist.lock``:
        the kernel drops it when its holder dies, however it dies, so a killed run never leaves
        a stale lock behind. A folder that is not a run and holds other files is refused before
        anything is written; a start that writes no run.json (the model failed to load) leaves
        nothing behind."""
        if self.path.exists() and not self.path.is_dir():
            raise DataError(str(self.path), None, "is a file, not a run folder: give a folder for --out")
        if self.path.is_dir() and not self.exists():
            others = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
            if others:
                raise DataError(
                    str(self.path),
                    None,
                    f"is not a run folder (no run.json) and is not empty ({len(others)} entries, e.g. {others[0]!r}): "
                    "give a new or empty folder for --out",
                )
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK
        handle = lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DataError(
                str(self.path), None, f"is being written by another labeldist run ({holder}); wait for it or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        handle.flush()
        try:
            yield
        finally:
            if not self.exists():  # nothing was recorded: leave no trace of the attempt
                lock_path.unlink(missing_ok=True)
                if created:
                    try:
                        self.path.rmdir()
                    except OSError:
                        pass
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # -- manifest ----------------------------------------------------------------------------

    def read_manifest(self) -> dict:
        """The parsed run.json; a DataError when it is missing or not valid JSON."""
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(str(self.path), None, "not a run folder (no run.json)") from None
        except json.JSONDecodeError as err:
            raise DataError(str(self.manifest_path), err.lineno, f"invalid JSON: {err.msg}") from None

    def write_manifest(self, manifest: dict) -> None:
        """Write ``manifest`` as run.json atomically, creating the folder if needed."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")

    def open(self, config: dict, manifest: dict, upgrade: Callable[[dict], dict] | None = None) -> dict:
        """Start a run, or check that an existing one was made with the same config.

        Returns the manifest in force; a new run's is not written here (the caller writes it
        once the model has loaded, so a failed start leaves nothing to refuse the corrected
        command with). A different config is an error naming the settings that differ, so a
        resumed run never mixes records of two setups. ``upgrade``: the stored config in today's
        keys (settings added since older runs were made take the value those runs had).
        """
        if self.exists():
            existing = self.read_manifest()
            stored = existing.get("config", {})
            before = upgrade(stored) if upgrade else stored
            keys = set(before) | set(config)
            if "data_sha256" in before:
                # the data is compared by content: a moved or re-linked data folder (or template,
                # compared by its own digest) resumes; other data does not. The ids file is still
                # compared by path: its content may grow (nested samples), another list may not
                keys -= {"data_dir", "template"}
            else:
                keys.discard("data_sha256")  # a run from before the digest: compared by paths
            differing = sorted(k for k in keys if before.get(k) != config.get(k))
            if differing:
                shown = "; ".join(f"{k}: {before.get(k)!r} -> {config.get(k)!r}" for k in differing)
                raise DataError(str(self.path), None, f"exists with a different config ({shown}); use another --out or delete it")
            existing["config"] = before  # in today's keys
            return existing
        return dict(manifest, config=config, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    # -- records -----------------------------------------------------------------------------

    def parts(self) -> list[Path]:
        """The record part files, sorted by name; [] when there are none."""
        if not self.records_dir.is_dir():
            return []
        return sorted(p for p in self.records_dir.iterdir() if PART.match(p.name))

    def done_ids(self) -> set[str]:
        """The ids of the items already recorded in any part."""
        done: set[str] = set()
        for part in self.parts():
            done.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
        return done

    def next_part_number(self) -> int:
        """The number of the next part: one above the highest written so far."""
        existing = [int(PART.match(p.name).group(1)) for p in self.parts()]
        return max(existing) + 1 if existing else 0

    def append(self, records: Sequence[dict], hidden: dict[str, np.ndarray] | None = None, name: str | None = None) -> Path:
        """Write one batch as the part ``name`` (``part-NNNNN[-suffix]``; default: the next
        number); the records file appears only once it is complete."""
        self.records_dir.mkdir(parents=True, exist_ok=True)
        if name is None:
            name = f"part-{self.next_part_number():05d}"
        elif not PART.match(name + ".parquet"):
            raise ValueError(f"a part is named part-NNNNN or part-NNNNN-suffix, not {name!r}")
        if hidden:
            self.hidden_dir.mkdir(parents=True, exist_ok=True)
            ids = list(hidden)
            with atomic.atomic_path(self.hidden_dir / f"{name}.npz") as tmp, tmp.open("wb") as handle:
                np.savez(handle, ids=np.array(ids), states=np.stack([hidden[i] for i in ids]))
        table = pa.Table.from_pylist(list(records), schema=RECORD_SCHEMA)
        target = self.records_dir / f"{name}.parquet"
        with atomic.atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        return target

    def drop_duplicates(self) -> int:
        """Keep each id's first record only; returns how many were dropped.

        A batch is recorded twice only when a worker that was given up for lost (a Ray worker
        cut off from the driver, say) still finishes it after another worker redid it, or a
        killed attempt's worker outlives its driver. Both copies hold the same records; the
        later part is rewritten without the repeated ids (atomically), or removed when nothing
        else is in it."""
        seen: set[str] = set()
        dropped = 0
        for part in self.parts():
            ids = pq.read_table(part, columns=["id"]).column("id").to_pylist()
            repeated = []
            for i, item_id in enumerate(ids):
                if item_id in seen:
                    repeated.append(i)
                seen.add(item_id)
            if not repeated:
                continue
            dropped += len(repeated)
            if len(repeated) == len(ids):
                part.unlink()
                continue
            table = pq.read_table(part, schema=RECORD_SCHEMA)
            keep = sorted(set(range(len(ids))) - set(repeated))
            with atomic.atomic_path(part) as tmp:
                pq.write_table(table.take(keep), tmp)
        return dropped

    def read(self) -> pd.DataFrame:
        """All records, in the order they were written."""
        return self.read_table().to_pandas()

    def read_table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """All records (only ``columns`` if given) as one Arrow table, in the order written."""
        schema = RECORD_SCHEMA if columns is None else pa.schema([RECORD_SCHEMA.field(c) for c in columns])
        parts = self.parts()
        if not parts:
            return schema.empty_table()
        return pa.concat_tables([pq.read_table(p, columns=schema.names, schema=RECORD_SCHEMA) for p in parts])

    def read_hidden(self) -> tuple[list[str], np.ndarray]:
        """Ids and first-slot hidden states (items x layers x hidden) of recorded items."""
        done = self.done_ids()
        ids: list[str] = []
        states = []
        seen: set[str] = set()  # an id twice (a batch redone after a lost worker): its first states
        if self.hidden_dir.is_dir():
            for part in sorted(self.hidden_dir.glob("part-*.npz")):
                with np.load(part) as data:
                    for item_id, state in zip(data["ids"].tolist(), data["states"]):
                        if item_id in done and item_id not in seen:
                            seen.add(item_id)
                            ids.append(item_id)
                            states.append(state)
        if not ids:
            raise DataError(str(self.path), None, "has no hidden states (run it with --save-hidden)")
        return ids, np.stack(states)
