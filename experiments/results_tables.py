"""docs/results.md from the runs of experiments/results.sh (the last step of `make results`).

    .venv/bin/python experiments/results_tables.py [RUNS_DIR] [OUT] [--fresh]     # runs/results docs/results.md

Everything here is a deterministic function of the finished runs: the bootstrap (1,000 resamples,
seed 0, items in id order), the cross-fitting folds (5, fold seed 0) and the fits are seeded, and
nothing reads a clock, so a second call on the same runs writes the same bytes. A section whose
runs are missing says which and how to make them, instead of a table.

Runs live on the machine that made them, and the machines here are not kept: a run's records are
gone when its machine is. So a table whose runs are not on this machine is carried over, verbatim,
from the document this build replaces (the reading rows and seed rows too, row by row), and the
cost section names what was carried. Runs made on different machines thus accumulate in one
document, and a build on the same runs and the same previous document writes the same bytes.
A change to a table's code thus reaches only the tables built from runs on the machine: after
one, rebuild with ``--fresh`` where every run is at hand, or remake the runs of the tables it
changes. ``--fresh`` builds from the runs alone.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeldist.errors import DataError
from labeldist.estimators import make_estimator, parse_estimator
from labeldist.estimators.crossfit import CrossFit, fold_split
from labeldist.estimators.unary_pairwise import Pairwise
from labeldist.evaluation import cross_fitted_prior, evaluate, format_rows, marked
from labeldist.metrics import evaluate_many
from labeldist.metrics.bootstrap import resample_indices
from labeldist.metrics.registry import METRICS
from labeldist.runs.arrays import RunArrays
from labeldist.workflows.probe_report import later_label_pairs

MODELS = {"qwen05": "Qwen2.5-Coder-0.5B-Instruct", "qwen15": "Qwen2.5-Coder-1.5B-Instruct"}
SETS = {
    "hx": "HateXplain targets (paper's 200 test ids, 12 targets)",
    "ge": "GoEmotions paper-7 (paper's 231 dev ids; gold only, no per-annotator votes in this release)",
    "se": "SemEval 2018 E-c (paper's 185 evaluation ids, from its dev file; 11 emotions; gold only)",
    "tw": "Tweet annotation sensitivity (first 100 test tweets, about 15 annotators each)",
}
COLUMNS = ("micro_f1", "macro_f1", "mamd", "bce", "spearman", "ece")
FOLDS = 5
RESAMPLES = 1000
JUDGED_ITEMS = 100  # --limit of the unary, pairwise and marginal runs (experiments/results.sh)
INTERIM_ITEMS = 2 * FOLDS  # the fewest items of an unfinished marginal run that get an interim table
INTERIM_RUNS = ("hx-marginal-qwen15",)  # the run whose unfinished records get a table (section 4: the marginal)
LEWIDI_ITEMS = 200  # --limit of the LeWiDi 2023 runs
# the original code's rows (the seed paper): first-token readings and its shared Platt baseline
PAPER_ROWS = ("first@first-token", "max@first-token", "platt-shared[base=first,feature=stop]@first-token")
EXACT_ROWS = ("first", "max", "platt-shared[base=first]", "platt-shared", "platt")
# the paired differences every "A beats B" sentence rests on: (A, B, what it asks)
PAPER_PAIRS = (
    ("max@first-token", "first@first-token", "the paper's finding, as the original code read it"),
    ("max", "first", "the paper's finding with exact slots"),
    ("first", "first@first-token", "what exact slots change in the first slot"),
    ("max", "max@first-token", "what exact slots change in max"),
    ("platt-shared", "platt-shared[base=first,feature=stop]@first-token", "exact Platt against the original baseline"),
)
# the paper's finding, read both ways, for every demonstration seed: (A, B, reading)
SEED_PAIRS = (("max@first-token", "first@first-token", "first-token"), ("max", "first", "exact"))
# the sets of the paper's comparison
PAPER_SETS = ("hx", "ge", "se")


PAPER_HEADING = "## 1. The paper's comparison, then exact slots"
SEEDS_HEADING = "## 2. Three demonstration seeds"
JUDGEMENT_HEADING = "## 3. Unary and pairwise on real data"
MARGINAL_HEADING = "## 4. The exact marginal"
LEWIDI_HEADING = "## 5. Against the field: the LeWiDi sets by their shared tasks' own metrics"
PROBE_HEADING = "## 6. What the first slot's hidden state holds"
COST_HEADING = "## Runs and their cost"


class Previous:
    """The document a build replaces, read for the tables whose runs are not on this machine."""

    def __init__(self, text: str = "", source: str = "the previous document"):
        self.lines = text.splitlines()
        self.source = source  # named in errors
        self.carried: set[str] = set()  # the runs whose tables this build took from it

    def _section(self, heading: str) -> list[str]:
        """The lines of the ``## `` section titled ``heading``, without the heading."""
        if heading not in self.lines:
            return []
        start = self.lines.index(heading) + 1
        end = next((i for i in range(start, len(self.lines)) if self.lines[i].startswith("## ")), len(self.lines))
        return self.lines[start:end]

    def block(self, section: str, heading: str, runs: Sequence[str]) -> list[str] | None:
        """The lines under ``heading`` (a ``### `` line) in ``section``, up to the next heading, or
        None where the last build has no such table (only its 'Not made yet' line, or nothing).
        ``runs``: the runs the table was made from, recorded as carried when it is found."""
        lines = self._section(section)
        if heading not in lines:
            return None
        start = lines.index(heading) + 1
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
        block = lines[start:end]
        if not any(line.strip() for line in block) or any(line.startswith("Not made yet") for line in block):
            return None
        self.carried.update(runs)
        return block

    def carry(self, section: str, heading: str, runs: Sequence[str], reading: dict, key: tuple, body: list, summary: list):
        """Append the last build's table under ``heading`` to ``body`` and its row ``key`` of the
        section's reading table (``reading``: :meth:`rows`) to ``summary``; False where it has none."""
        block = self.block(section, heading, runs)
        if block is None:
            return False
        body += block
        if key in reading:
            summary.append(reading[key])
        return True

    def rows(self, section: str, header: str, width: int) -> dict[tuple[str, ...], str]:
        """The body rows of the table headed by the line ``header`` in ``section``, each by its
        first ``width`` cells."""
        lines = self._section(section)
        if header not in lines:
            return {}
        found = {}
        for line in lines[lines.index(header) + 2 :]:  # after the header and its |---| line
            if not line.startswith("|"):
                break
            found[tuple(cells(line)[:width])] = line
        return found


def cells(line: str) -> list[str]:
    """The cells of one markdown table row."""
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def parse_cell(text: str, source: str = "the previous document") -> dict:
    """A table cell ``value [low, high]`` (with its ``*``) back as :func:`marked` wrote it;
    ``source``: the document it comes from, named in the error."""
    match = re.fullmatch(r"(\S+) \[(\S+), (\S+)\](\*?)", text)
    if match is None:
        raise DataError(source, None, f"not a table cell of value [low, high]: {text!r}")
    value, low, high = (float(match.group(i)) for i in (1, 2, 3))
    if match.group(4):  # the interval excludes 0: rounding to 3 places must not put it back on 0
        side = (low + high) if low + high != 0 else value
        low, high = (max(low, 1e-12), high) if side > 0 else (low, min(high, -1e-12))
    else:
        low, high = min(low, 0.0), max(high, 0.0)
    return {"value": value, "low": low, "high": high, "mark": match.group(4)}


def load(path: Path) -> RunArrays | None:
    """The run at ``path``, or None when it has not been made (or has no records yet)."""
    try:
        run = RunArrays.load(path)
    except (DataError, FileNotFoundError):
        return None
    return run if len(run) else None


def finished(path: Path) -> RunArrays | None:
    """The run at ``path`` when it holds every item it was asked for (see :func:`complete`), else None."""
    run = load(path)
    return run if run is not None and complete(path, run_limit(path.name)) else None


def run_limit(name: str) -> int | None:
    """The --limit experiments/results.sh gives the run called ``name`` (None: its whole id list)."""
    if name.startswith(("brexit-", "md-", "armis-")):
        return LEWIDI_ITEMS
    if name.startswith("tw-seed0-") or any(part in name for part in ("-unary-", "-pairwise-", "-marginal-")):
        return JUDGED_ITEMS  # the tweets' generation run is the judged items only
    return None


def complete(path: Path, limit: int | None = None) -> bool:
    """Whether the run at ``path`` holds every item it was asked for (its split's or id list's
    items, at most ``limit``: the --limit its command gave)."""
    made, wanted = recorded(path, limit)
    return wanted is not None and made >= wanted


def verdict(metric: str, difference: dict) -> str:
    """In words: which of A and B the paired interval favours on ``metric``."""
    low, high = difference["low"], difference["high"]
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return "no difference at 95%"
    a_higher = low > 0
    return "A better" if a_higher == METRICS[metric].higher_is_better else "B better"


READ_METRICS = ("macro_f1", "mamd", "bce")  # the metrics a pair's reading names


def reading(difference: dict) -> str:
    """A pair's paired differences in words: ``macro_f1: A better; mamd: ...; bce: ...``."""
    return "; ".join(f"{m}: {verdict(m, difference[m])}" for m in READ_METRICS)


def difference_rows(run: RunArrays, pairs: Sequence[tuple[str, str, str]]) -> list[dict]:
    """One row per pair: A - B on every column, paired on the same resamples (cross-fitted fits)."""
    rows = []
    for a, b, question in pairs:
        result = evaluate(run, [a], cross_fit=FOLDS, n_resamples=RESAMPLES, versus=b)
        difference = result["estimators"][a]["difference"]
        row = {"A - B": f"{a} - {b}", "asks": question, **marked(difference, COLUMNS)}
        row["verdicts"] = {m: verdict(m, difference[m]) for m in COLUMNS}
        row["reading"] = reading(difference)
        rows.append(row)
    return rows


def estimator_table(run: RunArrays, specs: Sequence[str]) -> str:
    result = evaluate(run, list(specs), cross_fit=FOLDS, n_resamples=RESAMPLES)
    rows = [{"estimator": name, **row} for name, row in result["estimators"].items()]
    return table(rows, "estimator")


PAPER_READING = (
    "| set | model | max - first, first-token (macro-F1 / MAMD) | max - first, exact (macro-F1 / MAMD) |"
    " max exact - max first-token (macro-F1 / MAMD) |"
)


def paper_section(runs: Path, previous: Previous) -> list[str]:
    out = [
        PAPER_HEADING,
        "",
        "Demonstration seed 0, 10 shots, greedy answers, JSON lists. The original code's rows read each",
        "label's first token renormalised over the label set (`@first-token`); its baseline is one shared",
        "Platt sigmoid on the first slot's label-versus-none log-odds",
        f"(`{PAPER_ROWS[2]}`: the records keep no first-token logit of the",
        'close, so "none" is the exact stop probability; the row is the original\'s feature, not its exact',
        "numbers). The exact rows read every tokenisation and surface form. Platt rows and the `prior`",
        f"row are {FOLDS}-fold cross-fitted on the evaluated items (fold seed 0): no item's prediction",
        "saw its own votes or gold.",
        "",
    ]
    body, summary = [], []
    earlier = previous.rows(PAPER_HEADING, PAPER_READING, 2)
    for set_key in PAPER_SETS:
        for short, model in MODELS.items():
            path = runs / f"{set_key}-seed0-{short}"
            run = finished(path)
            heading = f"### {SETS[set_key]}: {model}"
            body.append(heading)
            if run is None:
                if previous.carry(PAPER_HEADING, heading, [path.name], earlier, (set_key, short), body, summary):
                    continue
                body += ["", missing(path, "paper", short), ""]
                continue
            body += ["", f"{len(run)} items, threshold 0.5.", "", estimator_table(run, PAPER_ROWS + EXACT_ROWS), ""]
            body += ["Paired differences (A - B on the same resamples; * the 95% interval excludes 0):", ""]
            rows = difference_rows(run, PAPER_PAIRS)
            body += [table(rows, "A - B"), ""]
            body += [f"- {row['A - B']} ({row['asks']}): {row['reading']}" for row in rows]
            body.append("")
            by_pair = {row["A - B"]: row for row in rows}
            pairs = ("max@first-token - first@first-token", "max - first", "max - max@first-token")
            shown = " | ".join(reading_cells(by_pair[pair], ("macro_f1", "mamd")) for pair in pairs)
            summary.append(f"| {set_key} | {short} | {shown} |")
    if summary:
        out += [
            "The reading, from the paired differences below (the paper's finding: `max` beats `first` on",
            "macro-F1). Each cell: the difference A - B, * where its 95% interval excludes 0, and which",
            "side that interval favours: (A), (B), or (=) when it holds 0.",
            "",
            PAPER_READING,
            "|---|---|---|---|---|",
            *summary,
            "",
        ]
    return out + body


def reading_cells(cells: dict, metrics: Sequence[str], b_side: str = "(B)") -> str:
    """``+0.079* (A) / +0.041* (B)``: each metric's paired difference (a :func:`marked` cell), its
    mark, and the side its interval favours, (A), ``b_side``, or (=) when it holds 0."""
    sides = {"A better": "(A)", "B better": b_side}
    return " / ".join(f"{cells[m]['value']:+.3f}{cells[m]['mark']} {sides.get(verdict(m, cells[m]), '(=)')}" for m in metrics)


SEED_KEYS = ("set", "model", "seed", "reading")


def seeds_section(runs: Path, previous: Previous) -> list[str]:
    out = [
        SEEDS_HEADING,
        "",
        "`max - first` for each demonstration seed, read as the original code read the slots",
        "(`first-token`) and exactly (`exact`): the paper's finding must not hang on one draw of",
        "demonstrations. Seed 0 is section 1's run; seeds 1 and 2 draw other demonstrations from the",
        "same pool. * where the paired 95% interval excludes 0.",
        "",
    ]
    header = format_rows([], SEED_KEYS, COLUMNS, style="markdown").splitlines()
    earlier = previous.rows(SEEDS_HEADING, header[0], len(SEED_KEYS))
    lines, absent, verdicts = [], [], {}
    for set_key in PAPER_SETS:
        for short in MODELS:
            for seed in (0, 1, 2):
                path = runs / f"{set_key}-seed{seed}-{short}"
                run = finished(path)
                if run is None:
                    keys = [(set_key, short, str(seed), reading) for _, _, reading in SEED_PAIRS]
                    if not all(key in earlier for key in keys):
                        absent.append((seed, path.name))
                        continue
                    previous.carried.add(path.name)
                    for key in keys:
                        lines.append(earlier[key])
                        cell = parse_cell(cells(earlier[key])[len(SEED_KEYS) + COLUMNS.index("macro_f1")], previous.source)
                        verdicts.setdefault(key[:2] + key[3:], []).append(verdict("macro_f1", cell))
                    continue
                found = difference_rows(run, [(a, b, "") for a, b, _ in SEED_PAIRS])
                rows = []
                for (_, _, reading), row in zip(SEED_PAIRS, found):
                    keys = {"set": set_key, "model": short, "seed": str(seed), "reading": reading}
                    rows.append({**keys, **{m: row[m] for m in COLUMNS}})
                    verdicts.setdefault((set_key, short, reading), []).append(row["verdicts"]["macro_f1"])
                lines += format_rows(rows, SEED_KEYS, COLUMNS, style="markdown").splitlines()[2:]
    if lines:
        out += [*header, *lines, ""]
        out += ["On macro-F1, seeds by what their paired interval says:", ""]
        words = {"A better": "max better", "B better": "first better", "no difference at 95%": "no difference"}

        def tally(found: list[str]) -> str:
            return ", ".join(f"{words[v]} in {found.count(v)}" for v in words if v in found) + f" (of {len(found)})"

        for (set_key, short, reading), found in verdicts.items():
            out.append(f"- {set_key}, {short}, {reading}: {tally(found)}")
        # the headline count: every run made, per reading (each run a set, model and seed)
        for reading in dict.fromkeys(reading for _, _, reading in verdicts):
            found = [v for key, runs_found in verdicts.items() if key[2] == reading for v in runs_found]
            out.append(f"- every set, model and seed, {reading}: {tally(found)}")
        out.append("")
    for stage, seeds in (("paper", (0,)), ("seeds", (1, 2))):
        names = [name for seed, name in absent if seed in seeds]
        if names:
            out += [f"Not made yet: {', '.join(names)} (`STAGES={stage} bash experiments/results.sh`).", ""]
    return out


JUDGEMENT_READING = "| set | model | unary - max (macro-F1 / MAMD / Spearman) | pairwise - max (macro-F1 / MAMD / Spearman) |"


def judgement_section(runs: Path, previous: Previous) -> list[str]:
    out = [
        JUDGEMENT_HEADING,
        "",
        'One prompt per label (`unary`: "is this label reasonable?") or per ordered pair of labels',
        "(`pairwise`, Bradley-Terry against none), on the first 100 items of each set, beside the slot",
        "estimators of the generation run on the same items. Raw rows only in the paired table (fitted",
        "rows are cross-fitted within each run and cannot be paired across runs).",
        "",
    ]
    body, summary = [], []
    earlier = previous.rows(JUDGEMENT_HEADING, JUDGEMENT_READING, 2)
    for set_key in ("hx", "ge", "tw"):
        for short, model in MODELS.items():
            unary, pairwise = runs / f"{set_key}-unary-{short}", runs / f"{set_key}-pairwise-{short}"
            generation = runs / f"{set_key}-seed0-{short}"
            heading = f"### {SETS[set_key]}: {model}"
            body.append(heading)
            loaded = {p: finished(p) for p in (unary, pairwise, generation)}
            lacking = [p for p in loaded if loaded[p] is None]
            if lacking:
                names = [p.name for p in lacking]
                if previous.carry(JUDGEMENT_HEADING, heading, names, earlier, (set_key, short), body, summary):
                    continue
                # the tweets' generation run belongs to the judgements stage, the others' to the paper's
                stage = "paper" if "seed" in lacking[0].name and set_key != "tw" else "judgements"
                body += ["", missing(lacking[0], stage, short), ""]
                continue
            body.append("")
            ids = sorted(set(loaded[unary].ids) & set(loaded[pairwise].ids) & set(loaded[generation].ids))
            views = {p: restrict(loaded[p], ids) for p in loaded}
            specs = [
                (views[unary], "unary"),
                (views[pairwise], "pairwise"),
                (views[generation], "first"),
                (views[generation], "max"),
            ]
            probs = [predict(run, spec) for run, spec in specs]
            first = views[generation]
            scored = evaluate_many(probs, first.targets, first.gold, [0.5] * len(probs), n_resamples=RESAMPLES, versus=3)
            rows = [{"estimator": spec, **row} for (_, spec), row in zip(specs, scored)]
            body += [f"{len(ids)} items, threshold 0.5.", "", table(rows, "estimator"), ""]
            # how decided the pairwise answers are: the raw pairwise row is only as good as that
            outcomes = Pairwise().outcomes(views[pairwise])
            k = len(views[pairwise].labels)
            off = ~np.eye(k + 1, dtype=bool)
            body += [
                f"The pairwise answers: mean P(label beats none) {outcomes[:, :k, k].mean():.3f}; mean |P(i beats j) - 0.5|"
                f" {np.abs(outcomes[:, off] - 0.5).mean():.3f}, both orders of each pair averaged"
                " (0: no preference, 0.5: certain).",
                "",
            ]
            paired = [paired_row(spec, row) for (_, spec), row in zip(specs, scored) if spec != "max"]
            body += ["Paired differences from `max`:", "", table(paired, "A - B"), ""]
            fitted = [
                (views[unary], "platt[base=unary]"),
                (views[pairwise], "platt[base=pairwise]"),
                (views[generation], "platt-shared"),
            ]
            rows = []
            for run, spec in fitted:
                result = evaluate(run, [spec], cross_fit=FOLDS, n_resamples=RESAMPLES)
                rows.append({"estimator": spec, **result["estimators"][spec]})
            body += ["Fitted (cross-fitted within each run):", "", table(rows, "estimator"), ""]
            differences = {spec: marked(row["difference"], COLUMNS) for (_, spec), row in zip(specs, scored) if spec != "max"}
            shown = " | ".join(
                reading_cells(differences[spec], ("macro_f1", "mamd", "spearman"), "(max)") for spec in ("unary", "pairwise")
            )
            summary.append(f"| {set_key} | {short} | {shown} |")
    if summary:
        out += [
            "The reading, from the paired differences below: each cell is A - max on the same items and",
            "resamples, * where its 95% interval excludes 0, and the side that interval favours: (A), (max),",
            "or (=) when it holds 0.",
            "",
            JUDGEMENT_READING,
            "|---|---|---|---|",
            *summary,
            "",
        ]
    return out + body


def gets_interim_table(name: str, items: int) -> bool:
    """Whether the unfinished run ``name``, ``items`` recorded so far, gets section 4's interim table."""
    return name in INTERIM_RUNS and items >= INTERIM_ITEMS


def marginal_section(runs: Path, previous: Previous) -> list[str]:
    path = runs / INTERIM_RUNS[0]
    heading = f"### HateXplain targets, the first {JUDGED_ITEMS} of the paper's test ids: {MODELS['qwen15']}"
    out = [
        MARGINAL_HEADING,
        "",
        "P(label in answer) over the trie of answers (tolerance 1e-3, at most 200 nodes an item), against the slot readings of",
        "the same greedy answers.",
        "",
        heading,
    ]
    run, interim = finished(path), []
    if run is None:
        # the run takes hours and is made over several sittings: the items recorded so far get
        # an interim table, named as such, once there are enough of them to cross-fit and resample
        run, (_, wanted) = load(path), recorded(path, run_limit(path.name))
        if run is None or wanted is None or not gets_interim_table(path.name, len(run)):
            carried = previous.block(MARGINAL_HEADING, heading, [path.name])
            return out + (carried if carried is not None else ["", missing(path, "marginal", "qwen15"), ""])
        interim = [
            "",
            f"Interim: {len(run)} of {wanted} items recorded so far, and the table is on those (in id order); "
            "`STAGES=marginal MODELS=qwen15 bash experiments/results.sh` goes on from there, then `make results`.",
        ]
    out += interim + [""]
    specs = ["first", "max", "marginal", "marginal[reading=conditional]", "marginal[reading=lower]", "marginal[reading=upper]"]
    result = evaluate(run, specs, cross_fit=FOLDS, n_resamples=RESAMPLES, versus="max")
    rows = [{"estimator": name, **row} for name, row in result["estimators"].items()]
    off, unexpanded = run.marginal_off_format, run.marginal_unexpanded
    out += [
        f"{len(run)} items. Where the mass went, mean over items (largest): answers off the format "
        f"(a label outside the set, or not JSON) {off.mean():.3f} ({off.max():.3f}); left unexpanded when the "
        f"walk stopped {unexpanded.mean():.4f} ({unexpanded.max():.4f}). `marginal` reads P(the answer is in the "
        "format and names L) to within the unexpanded mass, `conditional` the same given that the answer is in the "
        "format; `lower` and `upper` bound P(L named) when an answer off the format could name anything.",
        "",
        table(rows, "estimator"),
        "",
    ]
    paired = [paired_row(name, row) for name, row in result["estimators"].items() if name != "max"]
    out += ["Paired differences from `max`:", "", table(paired, "A - B"), ""]
    # in words, as section 1 reads its pairs: does the whole answer distribution read the votes
    # (MAMD, BCE) and the gold (macro-F1) better than the greedy answer's slots?
    marginals = [name for name in specs if name.startswith("marginal")]
    readings = [f"- {name} - max: {reading(result['estimators'][name]['difference'])}" for name in marginals]
    return out + readings + [""]


# the LeWiDi sets, each scored as its shared task scored it: (run name, title, label columns the
# task scored (None: all), soft metric, published figure or None, its source)
LEWIDI = (
    (
        "varierr",
        "VariErrNLI (LeWiDi 2025), test, 50 items",
        None,
        "mamd",
        "0.31",
        "the best soft-label score, joint first (Staliunaite and Vlachos, NLPerspectives 2025)",
    ),
    ("brexit", "HS-Brexit (LeWiDi 2023), test, 168 items: the hate-speech label", ("hate",), "bce", None, ""),
    ("md", "MD-Agreement (LeWiDi 2023), test, at most 200 items", None, "bce", None, ""),
    ("armis", "ArMIS (LeWiDi 2023), test, at most 200 items", None, "bce", None, ""),
)
LEWIDI_ROWS = ("first", "max", "platt-shared", "prior")


LEWIDI_READING = (
    "| set | model | metric | max | platt-shared | prior | platt-shared - max | prior - max"
    " | platt-shared - prior | published best |"
)


def lewidi_section(runs: Path, previous: Previous) -> list[str]:
    out = [
        LEWIDI_HEADING,
        "",
        "LeWiDi 2025 scored soft labels of VariErrNLI by the average multi-label Manhattan distance",
        "(the `mamd` column here: per label 2|p - t|, averaged over labels and items). LeWiDi 2023",
        "(SemEval Task 11) scored the soft label of one binary judgement per set by cross-entropy; here",
        "it is the `bce` column on that label, natural log, averaged over items, and the hard score is",
        "micro-F1. The 2023 leaderboard could not be read from this machine, so no 2023 figure is",
        "quoted beside ours (nor the log base of its scorer). Few-shot prompts, 10 demonstrations from",
        f"the train split (seed 0); `platt-shared` and `prior` {FOLDS}-fold cross-fitted on the evaluated items.",
        "",
    ]
    body, summary = [], []
    earlier = previous.rows(LEWIDI_HEADING, LEWIDI_READING, 2)
    for set_key, title, columns, metric, published, source in LEWIDI:
        for short, model in MODELS.items():
            path = runs / f"{set_key}-seed0-{short}"
            heading = f"### {title}: {model}"
            body.append(heading)
            run = finished(path)
            if run is None:
                if previous.carry(LEWIDI_HEADING, heading, [path.name], earlier, (set_key, short), body, summary):
                    continue
                body += ["", missing(path, "lewidi", short), ""]
                continue
            body.append("")
            keep = (
                np.arange(len(run.labels))
                if columns is None
                else np.array([list(run.labels).index(label) for label in columns], dtype=int)
            )
            run = restrict(run, sorted(run.ids))  # id order, as evaluate bootstraps and folds
            probs = [predict(run, spec)[:, keep] for spec in LEWIDI_ROWS]
            scored = evaluate_many(
                probs, run.targets[:, keep], run.gold[:, keep], [0.5] * len(probs), n_resamples=RESAMPLES, versus=1
            )
            rows = [{"estimator": spec, **row} for spec, row in zip(LEWIDI_ROWS, scored)]
            shown = ("micro_f1", metric, "mamd" if metric == "bce" else "bce")
            body += [f"{len(run)} items, threshold 0.5.", "", format_rows(rows, ("estimator",), shown, style="markdown"), ""]
            paired = [
                {"A - B": f"{spec} - max", **marked(row["difference"], shown)}
                for spec, row in zip(LEWIDI_ROWS, scored)
                if spec != "max"
            ]
            body += ["Paired differences from `max`:", "", format_rows(paired, ("A - B",), shown, style="markdown"), ""]
            if published is not None:
                body += [f"Published: {metric} {published}, {source}.", ""]
            by_spec = dict(zip(LEWIDI_ROWS, scored))
            differences = {spec: marked(by_spec[spec]["difference"], (metric,)) for spec in ("platt-shared", "prior")}
            # does reading the text beat not reading it: the fitted row against the prior, paired
            against_prior = evaluate_many(
                [probs[LEWIDI_ROWS.index(spec)] for spec in ("platt-shared", "prior")],
                run.targets[:, keep],
                run.gold[:, keep],
                [0.5, 0.5],
                n_resamples=RESAMPLES,
                versus=1,
            )
            differences["platt-shared - prior"] = marked(against_prior[0]["difference"], (metric,))
            values = " | ".join(f"{by_spec[spec][metric]['value']:.3f}" for spec in ("max", "platt-shared", "prior"))
            pairs = ("platt-shared", "prior", "platt-shared - prior")
            shown = " | ".join(reading_cells(differences[key], (metric,)) for key in pairs)
            summary.append(f"| {set_key} | {short} | {metric} | {values} | {shown} | {published or '-'} |")
    if summary:
        # where the model stands on each task's own soft metric: against the prior (a model that
        # reads no text) and, where one could be read, the published best
        out += [
            "The reading, on each task's soft metric (lower is better): the raw `max` row, the cross-fitted",
            "`platt-shared` and `prior` rows, each minus `max` on the same resamples, and `platt-shared`",
            "minus `prior` (does reading the text beat a row that reads none). * where the paired 95% interval",
            "excludes 0; (A) where it favours the first row, (B) the second, (=) where it holds 0.",
            "",
            LEWIDI_READING,
            "|---|---|---|---|---|---|---|---|---|---|",
            *summary,
            "",
        ]
    return out + body


# the probes of section 6: fitted to the model's own labels, and to the annotators
LATER_PROBE = "probe[target=model-output]"
PROBE_ROWS = ("probe", "first", "max", "platt-shared")
PROBE_READING = (
    "| set | model | items with 2+ labels | later-label AUC, probe | later-label AUC, first | probe - first"
    " | probe - max (macro-F1 / MAMD / BCE) |"
)


def paired_auc(scores: Sequence[np.ndarray], items: np.ndarray, later: np.ndarray, n: int) -> list[dict]:
    """ROC AUC of each score array (one score per pair) for ``later`` against the rest, with its
    percentile interval over the same item resamples as the tables (1,000, seed 0, over the run's
    ``n`` items in id order: a pair is drawn as often as its item), and each one's paired
    difference from the first array's."""
    from sklearn.metrics import roc_auc_score

    def auc(values: np.ndarray, weight: np.ndarray | None = None) -> float:
        keep = slice(None) if weight is None else weight > 0
        truth = later[keep]
        if truth.all() or not truth.any():
            return float("nan")
        return float(roc_auc_score(truth, values[keep], sample_weight=None if weight is None else weight[keep]))

    values = [auc(s) for s in scores]
    draws = np.zeros((RESAMPLES, len(scores)))
    for r, picked in enumerate(resample_indices(n, RESAMPLES, 0)):
        weight = np.bincount(picked, minlength=n)[items].astype(float)
        draws[r] = [auc(s, weight) for s in scores]
    out = []
    for j, value in enumerate(values):
        low, high = np.nanpercentile(draws[:, j], [2.5, 97.5])
        cell = {"value": value, "low": float(low), "high": float(high)}
        if j:
            d_low, d_high = np.nanpercentile(draws[:, j] - draws[:, 0], [2.5, 97.5])
            cell["difference"] = {"value": value - values[0], "low": float(d_low), "high": float(d_high)}
        out.append(cell)
    return out


def probe_section(runs: Path, previous: Previous) -> list[str]:
    out = [
        PROBE_HEADING,
        "",
        "The paper runs (seed 0) keep the hidden states at the position where slot 1 is decided; the",
        "last layer's is read here. Does it already hold the labels the model writes *after* its first?",
        f"`{LATER_PROBE}` is one logistic regression per label on that state, fitted to",
        f"the labels the model wrote ({FOLDS}-fold cross-fitted: no item's probe saw its own answer). The",
        "later-label AUC is the chance that a label written second or later outranks a label not written,",
        "over the items whose answer names two or more labels (the first written label left out); `first`,",
        "slot 1's own distribution, is what the slots show at the same point. And does a probe fitted to",
        "the annotators (`probe`: vote fractions, gold where there are none; cross-fitted) read them",
        f"better than the slots? Intervals: {RESAMPLES:,} item resamples, seed 0; * where a paired interval excludes 0.",
        "",
    ]
    body, summary = [], []
    earlier = previous.rows(PROBE_HEADING, PROBE_READING, 2)
    for set_key in PAPER_SETS:
        for short, model in MODELS.items():
            path = runs / f"{set_key}-seed0-{short}"
            heading = f"### {SETS[set_key]}: {model}"
            body.append(heading)
            run = finished(path)
            if run is None or not run.has_hidden_states():
                if previous.carry(PROBE_HEADING, heading, [path.name], earlier, (set_key, short), body, summary):
                    continue
                body += ["", missing(path, "paper", short), ""]
                continue
            run = restrict(run, sorted(run.ids))  # id order, as evaluate bootstraps and folds
            items, labels, later = later_label_pairs(run)
            scored = [predict(run, spec)[items, labels] for spec in ("first", LATER_PROBE)]
            first_auc, probe_auc = paired_auc(scored, items, later, len(run))
            multi = len(set(items.tolist()))
            result = evaluate(run, list(PROBE_ROWS), cross_fit=FOLDS, n_resamples=RESAMPLES, versus="max")
            rows = [{"estimator": name, **row} for name, row in result["estimators"].items()]
            paired = [paired_row(name, row) for name, row in result["estimators"].items() if name in ("probe", "platt-shared")]
            auc_cell = marked({"d": probe_auc["difference"]}, ("d",))["d"]
            body += [
                "",
                f"{len(run)} items, threshold 0.5; {multi} answers name two or more labels ({int(later.sum())} later labels"
                f" against {int((~later).sum())} unwritten).",
                "",
                f"Later-label AUC: `{LATER_PROBE}` {_interval(probe_auc)}, `first` {_interval(first_auc)};"
                f" difference {_interval(auc_cell)}{auc_cell['mark']}.",
                "",
                table(rows, "estimator"),
                "",
                "Paired differences from `max`:",
                "",
                table(paired, "A - B"),
                "",
            ]
            probe_vs_max = marked(result["estimators"]["probe"]["difference"], COLUMNS)
            summary.append(
                f"| {set_key} | {short} | {multi} | {_interval(probe_auc)} | {_interval(first_auc)}"
                f" | {auc_cell['value']:+.3f}{auc_cell['mark']} {_side(auc_cell, '(first)')}"
                f" | {reading_cells(probe_vs_max, ('macro_f1', 'mamd', 'bce'), '(max)')} |"
            )
    if summary:
        out += [
            "The reading: the later-label AUC of each (0.5: no better than chance), the paired difference",
            "probe - first with the side its interval favours, and the annotator probe against `max`.",
            "",
            PROBE_READING,
            "|---|---|---|---|---|---|---|",
            *summary,
            "",
        ]
    return out + body


def _side(cell: dict, b_side: str) -> str:
    """The side a paired interval of a higher-is-better difference favours: (A), ``b_side``, or (=)."""
    return "(A)" if cell["low"] > 0 else b_side if cell["high"] < 0 else "(=)"


def _interval(cell: dict) -> str:
    return f"{cell['value']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}]"


COST_TABLE = "| run | model | method | items | model minutes | seconds per item |"


def timing_section(runs: Path, previous: Previous) -> list[str]:
    rows, unfinished = {}, []
    for manifest in sorted(runs.glob("*/run.json")):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if not complete(manifest.parent, run_limit(manifest.parent.name)):
            # its tables are not built from it: its cost would read as a finished run's (a run
            # cut off writes no counts into run.json, so its records are counted)
            run = load(manifest.parent)
            if run is not None:
                name = manifest.parent.name
                where = "an interim table" if gets_interim_table(name, len(run)) else "no table"
                # its time so far: the attempts' and the one in progress (as of its last stored batch)
                attempts = [*data.get("attempts", []), data.get("attempt_in_progress") or {}]
                seconds = sum(a.get("model_seconds", 0) for a in attempts)
                spent = f", {seconds / 60:.1f} model minutes recorded" if seconds else ""
                unfinished.append(f"{name} ({len(run)} items so far{spent}, in {where})")
            continue
        items = data.get("counts", {}).get("items_recorded", 0)
        seconds = data.get("timings", {}).get("model_seconds_total")
        # an attempt killed before its time was kept (runs made before cut-off attempts were
        # recorded) leaves items without a time: the rate is over the items timed, and says so
        timed = sum(a.get("items_labelled", 0) for a in data.get("attempts", []) if a.get("model_seconds"))
        if not items or not seconds or not timed:
            continue
        count = str(items) if timed >= items else f"{items} ({timed} timed)"
        rows[manifest.parent.name] = (
            f"| {manifest.parent.name} | {data['config']['model']} | {data['config'].get('method', 'generate')} | {count} | "
            f"{seconds / 60:.1f} | {seconds / timed:.2f} |"
        )
    # the runs behind the tables carried from the last build: their costs as it recorded them
    for (name,), line in previous.rows(COST_HEADING, COST_TABLE, 1).items():
        if name in previous.carried and name not in rows:
            rows[name] = line
    footer = []
    if previous.carried:
        footer += [
            "Tables carried verbatim from the build before this one, their runs not being on the machine",
            f"that wrote this file (runs may not outlive their machine): {', '.join(sorted(previous.carried))}.",
            "",
        ]
    if unfinished:
        footer += [f"Unfinished on this machine, so not in the cost table: {', '.join(unfinished)}.", ""]
    header = [
        COST_HEADING,
        "",
        "Model time as each run recorded it (loading excluded), float32, on 2 CPU cores shared with",
        "other runs and tests (read the times as upper bounds).",
        "",
        COST_TABLE,
        "|---|---|---|---|---|---|",
    ]
    return header + [rows[name] for name in sorted(rows)] + [""] + footer


def missing(path: Path, stage: str, short: str) -> str:
    line = f"Not made yet: `{path.name}` (`STAGES={stage} MODELS={short} bash experiments/results.sh`, then `make results`)."
    # a long run (the marginal: hours) is made over several sittings: say how far it got, by its
    # records (run.json's counts are written when an attempt ends, so a stopped one has none)
    run, (_, wanted) = load(path), recorded(path, run_limit(path.name))
    if run is None or wanted is None:
        return line
    return f"{line[:-1]}: {len(run)} of {wanted} items recorded so far; the same command goes on from there."


def recorded(path: Path, limit: int | None) -> tuple[int, int | None]:
    """Items the run at ``path`` has recorded, and how many it was asked for (0, None: no run)."""
    manifest = path / "run.json"
    if not manifest.exists():
        return 0, None
    data = json.loads(manifest.read_text(encoding="utf-8"))
    wanted = data.get("dataset", {}).get("items")
    if isinstance(wanted, int) and limit is not None:
        wanted = min(wanted, limit)
    return int(data.get("counts", {}).get("items_recorded", 0)), wanted if isinstance(wanted, int) else None


def restrict(run: RunArrays, ids: Sequence[str]) -> RunArrays:
    position = {item_id: i for i, item_id in enumerate(run.ids)}
    return run.take(np.array([position[item_id] for item_id in ids], dtype=int))


def predict(run: RunArrays, spec: str) -> np.ndarray:
    """``spec``'s probabilities for ``run``; what learns is cross-fitted on ``run`` as evaluate does
    (the same folds), and ``prior`` is evaluate's cross-fitted row."""
    if spec == "prior":
        return cross_fitted_prior(run, fold_split(run, FOLDS, 0))
    name, params, source = parse_estimator(spec)
    estimator = make_estimator(name, source, **params)
    estimator = CrossFit(estimator, FOLDS).fit(run) if estimator.learns else estimator.fit(None)
    return np.asarray(estimator.predict_proba(run), dtype=float)


def table(rows: list[dict], key: str) -> str:
    return format_rows(rows, (key,), COLUMNS, style="markdown")


def paired_row(name: str, row: dict) -> dict:
    return {"A - B": f"{name} - max", **marked(row["difference"], COLUMNS)}


def build(runs: Path, previous_text: str = "", previous_source: str = "the previous document") -> str:
    """docs/results.md from the runs under ``runs``; ``previous_text``: the document it replaces,
    whose tables stand in for those whose runs are not under ``runs`` (see :class:`Previous`)."""
    lines = [
        "# Results",
        "",
        "<!-- Written by `make results` (experiments/results.sh makes the runs, experiments/results_tables.py",
        "these tables); edit those, not this file. -->",
        "",
        "Few-shot Qwen2.5-Coder-0.5B and -1.5B Instruct (the offline models that write several labels",
        "because of the text), float32 on 2 CPU cores (no GPU, 24 GB), under today's definitions:",
        "record format 3 (every tokenisation and surface form of a label), scikit-learn's F1",
        "convention (a label gold for no item and never",
        f"predicted scores 0), and a percentile bootstrap over items in id order ({RESAMPLES:,} resamples,",
        "seed 0, the same resamples for every row of a table). Each cell is the value [95% interval].",
        "Lower is better for MAMD, BCE and ECE; higher for F1 and Spearman. `oracle` is the vote",
        "fractions themselves, `prior` each label's mean vote fraction on the other folds.",
        "A percentile interval can miss its own value where resampling biases the statistic: binned",
        "ECE sums absolute gaps, which a resample's noise can only widen on average, so a small ECE",
        "may sit just below its interval.",
        "Runs may not outlive the machine that made them (a working session here may get a new one), so",
        "a build carries each table whose runs are not on its machine over from the document it",
        "replaces, verbatim; the last section names the runs behind the carried tables.",
        "",
        "    make models-extra && make results     # resumable: a second call reuses finished runs",
        "",
    ]
    previous = Previous(previous_text, previous_source)
    for section in (
        paper_section,
        seeds_section,
        judgement_section,
        marginal_section,
        lewidi_section,
        probe_section,
        timing_section,
    ):
        lines += section(runs, previous)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str]) -> int:
    fresh = "--fresh" in argv  # from the runs alone, carrying nothing from the document it replaces
    argv = [arg for arg in argv if arg != "--fresh"]
    runs = Path(argv[0]) if argv else Path("runs/results")
    out = Path(argv[1]) if len(argv) > 1 else Path("docs/results.md")
    if not runs.is_dir():  # no runs at all: keep the document there is, rather than one of empty sections
        print(f"error: {runs}: no such folder of runs (experiments/results.sh makes them); {out} left as it is", file=sys.stderr)
        return 2
    previous = "" if fresh or not out.exists() else out.read_text(encoding="utf-8")
    try:
        text = build(runs, previous, str(out))
    except DataError as error:  # a carried cell that cannot be read back: nothing is written
        print(f"error: {error} ({out} left as it is; --fresh builds without it)", file=sys.stderr)
        return 2
    out.write_text(text, encoding="utf-8")
    carried = "" if fresh else f" (tables whose runs are not there carried from the {out} it replaced)"
    print(f"{out} written from {runs}{carried}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
