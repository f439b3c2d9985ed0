"""A standing results table: a (dataset, model, method) grid of runs and evaluations, from one
YAML file, that resumes where it stopped.

Each cell labels a capped, seeded sample of the dataset's evaluation split and of its calibration
split (``execute_run``; demonstrations from ``pool_split``), then scores every estimator with
``evaluate_run`` calibrated on the calibration run (Platt, tuned thresholds, the constant prior
and the supervised estimators are fitted there, never on the evaluated items). A cell is
finished when both runs hold every sampled item and ``cell.json`` records an evaluation made
with the same settings (a hash of both runs' configs, the estimators, the threshold and the
bootstrap); a finished cell is skipped without loading a model. An interrupted run continues
from its last complete batch. The table (Markdown and JSON: dataset x estimator rows with MAMD,
BCE, Brier, Spearman and macro-F1, each with a 95% bootstrap interval, plus the oracle and
constant-prior rows) is rewritten from every finished cell after each cell.

The bare estimator ``encoder`` makes the suite fine-tune one small encoder per dataset
(``train_suite_encoder``: the pool split without any sampled evaluation or calibration item,
best epoch on the calibration sample), shared by every model's cell of that dataset.

The package: ``config`` (the suite file), ``samples`` (cells and item samples), ``encoder`` (the per-dataset
encoder), ``execute`` (running cells), ``tables`` (the standing tables)."""

from labeldist.workflows.suite.config import Suite, SuiteDataset, load_suite
from labeldist.workflows.suite.encoder import train_suite_encoder
from labeldist.workflows.suite.execute import run_suite
from labeldist.workflows.suite.samples import Cell, cells, model_slug, sample_ids
from labeldist.workflows.suite.tables import table_rows, write_tables

__all__ = [
    "Cell",
    "Suite",
    "SuiteDataset",
    "cells",
    "load_suite",
    "model_slug",
    "run_suite",
    "sample_ids",
    "table_rows",
    "train_suite_encoder",
    "write_tables",
]
