#!/usr/bin/env bash
# The size-series issue's experiment (docs/results.md, "Scale within one family"): the same
# items, prompts and seeds for four models, SmolLM2-135M, Gemma-3-270M, Qwen2.5-Coder-0.5B and
# -1.5B Instruct, on HateXplain targets (paper's 200 test ids), GoEmotions paper-7 (paper's 231
# dev ids) and the tweet annotation sensitivity set (200 test tweets, ~15 annotators each);
# then `labeldist analyze` (slot-1 entropy and spikiness, paired differences with intervals,
# label order) and `labeldist evaluate` (first / max / Platt / prior / oracle).
# The HateXplain and GoEmotions runs of the two small models are experiments/evaluation.sh's
# (the same settings), so that script runs first. Every run resumes: rerunning fills in what is
# missing. Run from the repository root after `make install models-extra`; needs ../shared/data.
# MODELS="qwen05" bash experiments/scale.sh runs one model only.
set -euo pipefail
SHARED=${SHARED:-../shared}
export HF_HUB_OFFLINE=1
LD=${LD:-.venv/bin/labeldist}
HX="--dataset hatexplain --task target --option fold_rare=100 --data-dir $SHARED/data/hatexplain --pool-split dev --shots 10 --seed 0"
GE="--dataset goemotions --grouping paper-7 --data-dir $SHARED/data/goemotions --pool-split train --shots 10 --seed 0"
TW="--dataset tweet_sensitivity --data-dir $SHARED/data/tweet_annotation_sensitivity --pool-split train --shots 10 --seed 0"
declare -A MODEL=(
  [smollm2]=smollm2-135m-instruct [gemma3]=gemma3-270m
  [qwen05]=qwen2.5-coder-0.5b-instruct [qwen15]=qwen2.5-coder-1.5b-instruct
)
for short in ${MODELS:-smollm2 gemma3 qwen05 qwen15}; do
  model=${MODEL[$short]}
  $LD run $HX --model $model --split test --ids $SHARED/data/paper_eval_ids/Hatexplain/main_test_set.txt --out runs/hx-test-$short
  $LD run $GE --model $model --split dev --ids $SHARED/data/paper_eval_ids/GoEmotions/main_test_set.txt --out runs/ge-dev-$short
  $LD run $TW --model $model --split test --limit 200 --out runs/tw-test-$short
  # calibration runs (Platt, tuned thresholds): other items of other splits
  $LD run $HX --model $model --split dev --limit 300 --out runs/hx-val-$short
  $LD run $GE --model $model --split test --limit 300 --out runs/ge-cal-$short
  $LD run $TW --model $model --split train --limit 150 --out runs/tw-cal-$short
  for pair in hx-test:hx-val ge-dev:ge-cal tw-test:tw-cal; do
    $LD evaluate runs/${pair%%:*}-$short --calibrate-on runs/${pair##*:}-$short \
      --estimators first,max,platt --threshold 0.5 --json > runs/${pair%%:*}-$short/evaluation-scale.json
  done
done
for set in hx-test ge-dev tw-test; do
  runs=()
  for short in ${MODELS:-smollm2 gemma3 qwen05 qwen15}; do runs+=(runs/$set-$short); done
  $LD analyze "${runs[@]}" --out runs/analyses/scale-$set
done
