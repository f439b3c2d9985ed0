#!/usr/bin/env bash
# Every run behind docs/results.md (`make results`), under today's definitions. Every run resumes,
# so a second call reuses what is finished and fills in only what is missing; stop it at any time.
#
#   STAGES="judgements paper" bash experiments/results.sh     # some stages only
#   MODELS="qwen05" bash experiments/results.sh               # one model only
#   SETS="hx" bash experiments/results.sh                      # some data sets only (hx ge se tw varierr brexit md armis)
#   STAGES=seeds SEEDS=2 bash experiments/results.sh           # some demonstration seeds only (1 2)
#
# Stages, cheapest first, so that an interrupted pass leaves whole tables behind:
#   judgements  unary and pairwise on 100 items of HateXplain targets, GoEmotions paper-7, tweets
#               (and generation on those 100 tweets)
#   paper       generation on the paper's evaluation ids: HateXplain (200), GoEmotions (231),
#               SemEval 2018 E-c (185, all in its dev file), demonstration seed 0, first-slot hidden states kept
#   seeds       the same runs with demonstration seeds 1 and 2
#   marginal    the exact marginal (tolerance 1e-3) on the first 100 HateXplain ids, 1.5B
#   lewidi      the LeWiDi sets (VariErrNLI 2025, HS-Brexit, MD-Agreement, ArMIS 2023)
# Fitted rows (Platt, the probe, tuned thresholds, the prior) are 5-fold cross-fitted on the
# evaluated items (no calibration runs: 2 CPU cores cannot afford them for the 1.5B).
# Needs ../shared/data and `make install models-extra`; run from the repository root. The tables
# and docs/results.md are written by experiments/results_tables.py (the last step of `make results`).
set -euo pipefail
SHARED=${SHARED:-../shared}
OUT=${RESULTS_RUNS:-runs/results}
export HF_HUB_OFFLINE=1
LD=${LD:-.venv/bin/labeldist}
declare -A MODEL=([qwen05]=qwen2.5-coder-0.5b-instruct [qwen15]=qwen2.5-coder-1.5b-instruct)
MODELS=${MODELS:-qwen05 qwen15}
STAGES=${STAGES:-judgements paper seeds marginal lewidi}
SETS=${SETS:-}
SEEDS=${SEEDS:-1 2}
for short in $MODELS; do
  [ -n "${MODEL[$short]:-}" ] || { echo "unknown model $short in MODELS (qwen05 qwen15)" >&2; exit 2; }
done
for seed in $SEEDS; do
  case $seed in 1|2) ;; *) echo "unknown seed $seed in SEEDS (1 2: seed 0 is the paper stage's)" >&2; exit 2 ;; esac
done
for set in $SETS; do
  case $set in hx|ge|se|tw|varierr|brexit|md|armis) ;; *) echo "unknown set $set in SETS (hx ge se tw varierr brexit md armis)" >&2; exit 2 ;; esac
done
IDS=$SHARED/data/paper_eval_ids
data() {  # the dataset options of one set
  case $1 in
    hx) echo "--dataset hatexplain --task target --option fold_rare=100 --data-dir $SHARED/data/hatexplain --pool-split dev --split test --ids $IDS/Hatexplain/main_test_set.txt" ;;
    ge) echo "--dataset goemotions --grouping paper-7 --data-dir $SHARED/data/goemotions --pool-split train --split dev --ids $IDS/GoEmotions/main_test_set.txt" ;;
    se) echo "--dataset semeval2018 --data-dir $SHARED/data/semeval2018_ec --pool-split train --split dev --ids $IDS/SemEval/main_test_set.txt" ;;
    tw) echo "--dataset tweet_sensitivity --data-dir $SHARED/data/tweet_annotation_sensitivity --pool-split train --split test" ;;
    varierr) echo "--dataset lewidi2025 --data-dir $SHARED/data/lewidi2025/VariErrNLI --pool-split train --split test" ;;
    brexit) echo "--dataset lewidi2023 --data-dir $SHARED/data/lewidi2023/HS-Brexit_dataset --pool-split train --split test" ;;
    md) echo "--dataset lewidi2023 --data-dir $SHARED/data/lewidi2023/MD-Agreement_dataset --pool-split train --split test" ;;
    armis) echo "--dataset lewidi2023 --data-dir $SHARED/data/lewidi2023/ArMIS_dataset --pool-split train --split test" ;;
  esac
}
run() {  # run SET SHORT NAME [options...]
  local set=$1 short=$2 name=$3
  shift 3
  if [ -n "$SETS" ] && [[ " $SETS " != *" $set "* ]]; then return 0; fi
  # shellcheck disable=SC2046
  $LD run $(data "$set") --model "${MODEL[$short]}" --shots 10 "$@" --out "$OUT/$name-$short"
}
for stage in $STAGES; do
  for short in $MODELS; do
    case $stage in
      judgements)
        for set in hx ge tw; do
          run $set "$short" $set-unary --seed 0 --method unary --limit 100
          run $set "$short" $set-pairwise --seed 0 --method pairwise --limit 100
        done
        # the slot estimators beside them on tweets (HateXplain's and GoEmotions' are the paper stage's)
        run tw "$short" tw-seed0 --seed 0 --limit 100 ;;
      paper)
        for set in hx ge se; do run $set "$short" $set-seed0 --seed 0 --save-hidden; done ;;
      seeds)
        for seed in $SEEDS; do for set in hx ge se; do run $set "$short" $set-seed$seed --seed $seed; done; done ;;
      marginal)
        # four items a batch (about 15 minutes of 2 cores), so a stop loses at most that: one item a
        # batch took 1.5x the time of four walked in lockstep (0.5B, 24 nodes, 4 items); the items
        # per batch change no record (the nodes per pass are --marginal-batch's 8)
        if [ "$short" = qwen15 ]; then run hx "$short" hx-marginal --seed 0 --limit 100 --marginal --marginal-tolerance 1e-3 --batch-size 4; fi ;;
      lewidi)
        run varierr "$short" varierr-seed0 --seed 0
        for set in brexit md armis; do run $set "$short" $set-seed0 --seed 0 --limit 200; done ;;
      *) echo "unknown stage $stage (judgements, paper, seeds, marginal, lewidi)" >&2; exit 2 ;;
    esac
  done
done
