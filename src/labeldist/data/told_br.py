"""ToLD-Br (Leite et al., 2020): Brazilian Portuguese tweets, 6 toxicity types, 3 ratings each.

``ToLD-BR_alpha.csv`` has, per type, one 0/1 column per annotator slot (``insult_1``,
``insult_2``, ``insult_3``), so each slot is a multi-label rating. Annotator identities come from
``agreement_files/insult_alpha.csv`` when it is there (tab-separated, 42 annotator columns, ``?``
= not rated; the rated columns in ascending order are slots 1, 2, 3); otherwise the slots are
the annotators ``slot1..3``. ``ToLD-BR.csv`` (per-type counts), when present, is checked against
the slots. The corpus ships no splits: ``all``, or train/dev/test 80/10/10 by a hash of the row
number. Item ids are row numbers from 1.
"""

from __future__ import annotations

from pathlib import Path

from labeldist.data.cells import binary_value
from labeldist.data.io import read_table, require_columns, row_label
from labeldist.data.registry import DatasetSpec, register
from labeldist.data.repairs import Repairs, check_hashed_split, hashed_split
from labeldist.data.schema import Dataset, Item, gold_by_share
from labeldist.errors import DataError

TYPES = ("homophobia", "obscene", "insult", "racism", "misogyny", "xenophobia")
SLOTS = (1, 2, 3)
ALPHA = "ToLD-BR_alpha.csv"
COUNTS = "ToLD-BR.csv"
IDENTITIES = Path("agreement_files") / "insult_alpha.csv"


def _annotators(path: Path, rows: int) -> list[list[str]]:
    """Per row, the annotator ids of slots 1..3 from an agreement file."""
    frame = read_table(path, sep="\t")
    if len(frame) != rows:
        raise DataError(str(path), None, f"{len(frame)} rows, but {ALPHA} has {rows}")
    columns = [str(c) for c in frame.columns]
    values = frame.to_numpy()
    out = []
    for position, row in enumerate(values):
        rated = [columns[c] for c in range(len(columns)) if str(row[c]).strip() not in ("?", "")]
        if len(rated) != len(SLOTS):
            raise DataError(str(path), row_label(position), f"expected 3 rated columns, found {len(rated)}")
        out.append([f"A{c}" for c in sorted(rated, key=lambda c: int(c) if c.isdigit() else c)])
    return out


def load_told_br(data_dir: Path, split: str) -> Dataset:
    """ToLD-Br's three slot ratings per tweet (annotator ids where known), all rows or one hashed split."""
    data_dir = Path(data_dir)
    canonical = check_hashed_split(split, str(data_dir))
    path = data_dir / ALPHA
    frame = read_table(path)
    columns = [f"{t}_{s}" for t in TYPES for s in SLOTS]
    require_columns(frame, ["text", *columns], path)
    texts = frame["text"].tolist()
    cells = {c: frame[c].tolist() for c in columns}
    repairs = Repairs()
    files = [str(path)]

    identity_path = data_dir / IDENTITIES
    if identity_path.is_file():
        slot_annotators = _annotators(identity_path, len(frame))
        files.append(str(identity_path))
        identities = "annotator ids from agreement_files/insult_alpha.csv (rated columns in ascending order = slots 1-3)"
    else:
        slot_annotators = [[f"slot{s}" for s in SLOTS]] * len(frame)
        identities = f"{IDENTITIES} not found: annotators are the slots slot1..3 (not the same person across items)"

    votes_per_row = []
    for position in range(len(frame)):
        where = row_label(position)
        chosen: list[set[str]] = [set() for _ in SLOTS]
        for t in TYPES:
            for s in SLOTS:
                value = binary_value(cells[f"{t}_{s}"][position])
                if value is None:
                    raise DataError(str(path), where, f"{t}_{s} must be 0 or 1, found {cells[f'{t}_{s}'][position]!r}")
                if value:
                    chosen[s - 1].add(t)
        votes_per_row.append({a: frozenset(c) for a, c in zip(slot_annotators[position], chosen)})

    counts_path = data_dir / COUNTS
    if counts_path.is_file():
        counts = read_table(counts_path)
        require_columns(counts, ["text", *TYPES], counts_path)
        if len(counts) != len(frame):
            raise DataError(str(counts_path), None, f"{len(counts)} rows, but {ALPHA} has {len(frame)}")
        for position in range(len(frame)):
            if counts["text"].iat[position] != texts[position]:
                raise DataError(str(counts_path), row_label(position), f"text differs from row {position + 1} of {ALPHA}")
            for t in TYPES:
                expected = float(counts[t].iat[position])
                found = sum(t in v for v in votes_per_row[position].values())
                if expected != found:
                    raise DataError(str(counts_path), row_label(position), f"{t} = {expected:g}, but the slots sum to {found}")
        files.append(str(counts_path))

    seen_texts: set[str] = set()
    items = []
    for position, (text, votes) in enumerate(zip(texts, votes_per_row)):
        if not isinstance(text, str) or not text.strip():
            raise DataError(str(path), row_label(position), "empty text")
        if text in seen_texts:
            repairs.add("repeated_texts", "{n} rows repeat an earlier row's text: kept as separate items")
        seen_texts.add(text)
        item_id = str(position + 1)
        if canonical != "all" and hashed_split("told_br", item_id) != canonical:
            continue
        items.append(Item(item_id, text, votes, gold_by_share(votes, 0.5)))
    notes = [identities, *repairs.notes(), "gold = types flagged by at least 2 of 3 annotators"]
    if canonical != "all":
        notes.append("ToLD-Br ships no splits: this split is 80/10/10 train/dev/test by a hash of the row number")
    if counts_path.is_file():
        notes.append(f"per-type counts of {COUNTS} equal the slot sums on every row")
    info = {"files": files, "repairs": repairs.as_dict()}
    return Dataset("told_br", TYPES, canonical, items, notes, info)


register(
    DatasetSpec(
        "told_br",
        load_told_br,
        "ToLD-Br (ToLD-BR_alpha.csv [+ agreement_files/insult_alpha.csv]): Portuguese tweets, 6 toxicity types, 3 annotators",
    ),
    "told-br",
)
