#!/usr/bin/env bash
# The evaluation issue's real experiment (docs/results.md): SmolLM2-135M-Instruct and
# Gemma-3-270M on HateXplain targets (paper's 200 test ids; calibration on 300 validation posts)
# and on GoEmotions dev with the paper-7 grouping (paper's 231 ids; calibration on 300 test
# comments, disjoint from dev). Every run resumes, so rerunning only fills in what is missing.
# Needs ../shared/data; run from the repository root after `make install`
# (Gemma also needs `make models-extra`).
set -euo pipefail
SHARED=${SHARED:-../shared}
export HF_HUB_OFFLINE=1
LD=${LD:-.venv/bin/labeldist}
HX="--dataset hatexplain --task target --option fold_rare=100 --data-dir $SHARED/data/hatexplain --pool-split dev --shots 10 --seed 0"
GE="--dataset goemotions --grouping paper-7 --data-dir $SHARED/data/goemotions --pool-split train --shots 10 --seed 0"
for model in ${MODELS:-smollm2-135m-instruct gemma3-270m}; do
  short=${model%%-*}
  $LD run $HX --model $model --split test --ids $SHARED/data/paper_eval_ids/Hatexplain/main_test_set.txt --out runs/hx-test-$short
  $LD run $HX --model $model --split dev --limit 300 --out runs/hx-val-$short
  $LD run $GE --model $model --split dev --ids $SHARED/data/paper_eval_ids/GoEmotions/main_test_set.txt --out runs/ge-dev-$short
  $LD run $GE --model $model --split test --limit 300 --out runs/ge-cal-$short
done
# Every answer above names at most one label, so max over slots can hardly differ from slot 1.
# The same GoEmotions runs with only multi-label demonstrations (--multilabel-share 1.0) push
# the models to write several labels.
for model in ${MODELS:-smollm2-135m-instruct gemma3-270m}; do
  short=${model%%-*}
  $LD run $GE --multilabel-share 1.0 --model $model --split dev --ids $SHARED/data/paper_eval_ids/GoEmotions/main_test_set.txt --out runs/ge-dev-ml-$short
  $LD run $GE --multilabel-share 1.0 --model $model --split test --limit 300 --out runs/ge-cal-ml-$short
done
# the tables of docs/results.md
E=first,max,max@first-token,mean,noisy-or,output,platt,platt-shared
for pair in hx-test:hx-val ge-dev:ge-cal ge-dev-ml:ge-cal-ml; do
  for model in ${MODELS:-smollm2-135m-instruct gemma3-270m}; do
    short=${model%%-*}
    for threshold in 0.5 tuned; do
      $LD evaluate runs/${pair%%:*}-$short --calibrate-on runs/${pair##*:}-$short --estimators $E --threshold $threshold --json \
        > runs/${pair%%:*}-$short/evaluation-$threshold.json
    done
  done
done
