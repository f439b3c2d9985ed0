#!/usr/bin/env bash
# The supervised issue's experiment (docs/results.md): probes on SmolLM2's first-slot hidden
# states and a fine-tuned MiniLM encoder on HateXplain targets (trained on validation data,
# evaluated on the paper's 200 test ids), and SmolLM2 before/after LoRA finetuning (zero-shot
# prompts). Every run resumes; rerunning only fills in what is missing. Run from the
# repository root after `make install`.
set -euo pipefail
SHARED=${SHARED:-../shared}
export HF_HUB_OFFLINE=1
LD=${LD:-.venv/bin/labeldist}
DATA="--dataset hatexplain --task target --option fold_rare=100 --data-dir $SHARED/data/hatexplain"
HX="$DATA --pool-split dev --shots 10 --seed 0 --model smollm2-135m-instruct"
TEST_IDS=$SHARED/data/paper_eval_ids/Hatexplain/main_test_set.txt

# 1. probes: runs with first-slot hidden states (training: the first 150 validation posts)
$LD run $HX --save-hidden --split dev --limit 150 --out runs/hx-val-smollm2-hidden --quiet
$LD run $HX --save-hidden --split test --ids $TEST_IDS --out runs/hx-test-smollm2-hidden --quiet

# 2. the encoder: all-MiniLM-L6-v2 fine-tuned on the first 800 validation posts (soft targets)
test -f models/hx-minilm/encoder.json || $LD encoder train $DATA --split dev --limit 800 --epochs 2 --out models/hx-minilm

# 3. one table: zero-shot slot estimators, Platt, probes (last and a middle layer), encoder
$LD evaluate runs/hx-test-smollm2-hidden --calibrate-on runs/hx-val-smollm2-hidden --json \
  --estimators "first,max,platt,probe,probe[layer=16],probe[target=gold],encoder[model=models/hx-minilm]" \
  > runs/hx-test-smollm2-hidden/evaluation-supervised.json
$LD probe --train runs/hx-val-smollm2-hidden --eval runs/hx-test-smollm2-hidden --target model-output --json \
  > runs/hx-test-smollm2-hidden/probe-model-output.json

# 4. LoRA finetuning: zero-shot prompts, 200 validation posts, gold answers; before and after on
# the first 100 of the paper's test ids (zero-shot SmolLM2 writes long non-answers, so 24 new
# tokens at most)
ZS="$DATA --shots 0 --seed 0 --max-new-tokens 24 --limit 100"
$LD run $ZS --model smollm2-135m-instruct --split test --ids $TEST_IDS --out runs/hx-test-smollm2-0shot --quiet
test -f models/hx-smollm2-lora/finetune.json || \
  $LD finetune $DATA --split dev --limit 200 --model smollm2-135m-instruct --epochs 2 --out models/hx-smollm2-lora
$LD run $ZS --model models/hx-smollm2-lora --split test --ids $TEST_IDS --out runs/hx-test-smollm2-lora --quiet
for run in hx-test-smollm2-0shot hx-test-smollm2-lora; do
  $LD evaluate runs/$run --estimators first,max,output --json > runs/$run/evaluation-0.5.json
done
$LD analyze runs/hx-test-smollm2-0shot runs/hx-test-smollm2-lora --out runs/analyses/lora
