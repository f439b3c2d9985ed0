#!/usr/bin/env bash
# The size-series issue's experiment (docs/results.md, "Scale within one family"): the same
# items, prompts and seeds for four models, SmolLM2-135M, Gemma-3-270M, Qwen2.5-Coder-0.5B and
# -1.5B Instruct, on HateXplain targets (paper's 200 test ids), GoEmotions paper-7 (paper's 231
# dev ids) and the tweet annotation sensitivity set (the first 100 test tweets, ~15 annotators each);
# then `labeldist analyze` (slot-1 entropy and spikiness, paired differences with intervals,
# label order) and `labeldist evaluate` (first / max / Platt / prior / oracle, Platt and prior
# cross-fitted on the evaluated items).
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
MODELS=${MODELS:-smollm2 gemma3 qwen05 qwen15}
# Every model runs the three sets in turn (set by set, so that the tables fill in model by model).
for set in hx ge tw; do
  for short in $MODELS; do
    model=${MODEL[$short]}
    case $set in
      hx) $LD run $HX --model $model --split test --ids $SHARED/data/paper_eval_ids/Hatexplain/main_test_set.txt --out runs/hx-test-$short ;;
      ge) $LD run $GE --model $model --split dev --ids $SHARED/data/paper_eval_ids/GoEmotions/main_test_set.txt --out runs/ge-dev-$short ;;
      tw) $LD run $TW --model $model --split test --limit 100 --out runs/tw-test-$short ;;
    esac
  done
done
# Platt and the prior are fitted by 5-fold cross-fitting on the evaluated items themselves (each
# item predicted from the other four folds): no calibration runs, which the 1.5B could not afford
# on 2 CPU cores, and the same folds for every model.
for short in $MODELS; do
  for set in hx-test ge-dev tw-test; do
    $LD evaluate runs/$set-$short --cross-fit 5 --estimators first,max,platt --threshold 0.5 --json \
      > runs/$set-$short/evaluation-scale.json
  done
done
for set in hx-test ge-dev tw-test; do
  runs=()
  for short in $MODELS; do runs+=(runs/$set-$short); done
  $LD analyze "${runs[@]}" --out runs/analyses/scale-$set
done
