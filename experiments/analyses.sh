#!/usr/bin/env bash
# The analyses issue's real experiment (docs/results.md, "Analyses"): the paper's analyses of the
# runs made by experiments/evaluation.sh (run that first), label attention, the multi-label
# demonstration sweep with SmolLM2-135M-Instruct, and one HTML report. Every step resumes or
# rewrites its own outputs, so rerunning is safe. Run from the repository root after
# `make install models-extra`; needs ../shared/data.
set -euo pipefail
SHARED=${SHARED:-../shared}
export HF_HUB_OFFLINE=1
LD=${LD:-.venv/bin/labeldist}
# the same items and settings for both models: GoEmotions dev (paper's 231 ids, paper-7) with the
# default demonstrations and with only multi-label demonstrations; HateXplain targets (200 ids)
$LD analyze runs/ge-dev-smollm2 runs/ge-dev-gemma3 runs/ge-dev-ml-smollm2 runs/ge-dev-ml-gemma3 --out runs/analyses/ge-dev
$LD analyze runs/hx-test-smollm2 runs/hx-test-gemma3 --out runs/analyses/hx-test
# label attention: a second, eager pass of each model over the first 12 answers (the runs that
# write a second label; about 40 s per answer on 2 busy CPU cores)
$LD analyze runs/ge-dev-ml-smollm2 runs/ge-dev-ml-gemma3 --attention --attention-items 12 --out runs/analyses/ge-dev-ml-attention
# the sweep: 5 runs of SmolLM2 on the first 60 of the paper's GoEmotions dev ids, differing only
# in the share of multi-label demonstrations (0.8 left out for time on 2 busy cores)
$LD sweep --dataset goemotions --grouping paper-7 --data-dir $SHARED/data/goemotions --pool-split train --shots 10 --seed 0 \
  --model smollm2-135m-instruct --split dev --ids $SHARED/data/paper_eval_ids/GoEmotions/main_test_set.txt --limit 60 \
  --multilabel-share 0,0.2,0.4,0.6,1.0 --out runs/sweep-ge-smollm2
# one self-contained HTML file, checked in headless Chromium (figures decoded and not blank)
$LD report runs/ge-dev-smollm2 runs/ge-dev-gemma3 runs/ge-dev-ml-smollm2 runs/ge-dev-ml-gemma3 runs/sweep-ge-smollm2 \
  --out runs/reports/ge-dev.html --title "GoEmotions dev (paper-7): SmolLM2-135M-Instruct and Gemma-3-270M" \
  --screenshot runs/reports/ge-dev.png
