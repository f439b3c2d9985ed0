#!/usr/bin/env bash
# The real per-annotator alignment suite (issue 9; docs/results.md): SmolLM2-135M-Instruct and
# Gemma-3-270M over the seven datasets of suites/real.yaml at its caps, with one MiniLM encoder
# per dataset. Every cell resumes; rerunning only fills in what is missing (a finished cell is
# skipped without loading a model). Run from the repository root after `make install` and
# `make models-extra` (Gemma). Writes results/real/table.md, table.json and datasets.md.
set -euo pipefail
export HF_HUB_OFFLINE=1
LD=${LD:-.venv/bin/labeldist}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-results/real}
$LD suite --config suites/real.yaml --out "$OUT" --model smollm2-135m-instruct
$LD suite --config suites/real.yaml --out "$OUT" --model gemma3-270m
$PY experiments/suite_datasets.py --config suites/real.yaml --out "$OUT" > "$OUT/datasets.md"
