#!/usr/bin/env bash
# The GPU check in one call (benchmarks/gpu_check.py says what it measures). On the GPU machine,
# from the repository root, with .gpu/ filled by benchmarks/gpu_prepare.sh:
#     bash benchmarks/gpu_check.sh [gpu_check.py options]
# The summary (gpu_check.json), the log and the overhead reports go to $OUT when set (the device
# tool's result folder), else to runs/gpu_check; the runs and models it makes stay in a work folder.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/gpu_check}"
work="${GPU_CHECK_WORK:-/tmp/labeldist-gpu-check}"
mkdir -p "$out" "$work"
site=/tmp/labeldist-site
# the carried wheels, where the image lacks the packages (Python 3.12 wheels: none are needed elsewhere)
if ! python3 -c "import rapidfuzz, gguf" 2>/dev/null && compgen -G ".gpu/wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu/wheels/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:$site${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true; } | tee "$out/nvidia-smi.txt"
python3 benchmarks/gpu_check.py --out "$work" "$@" 2>&1 | tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
# the vLLM path, where the image has vLLM (its wheel is too large to carry): a random 1B Llama with
# SmolLM2's tokenizer, gold answers scored exactly, against vLLM generating as many tokens, and
# the hf backend on the GPU (README, "Backends, and vLLM in process")
if python3 -c "import vllm" 2>/dev/null; then
  timeout "${VLLM_CHECK_SECONDS:-900}" python3 benchmarks/bench_vllm.py --bundled --items 64 --batch-size 16 \
    --model .gpu/smollm2-tokenizer --random-weights 1b --answers gold --dtype float32 --hf-device cuda \
    --json "$out/bench_vllm.json" 2>&1 | grep -v " INFO \| WARNING " | tee "$out/bench_vllm.log"
  vllm_status=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$vllm_status
else
  echo '{"skipped": "vllm is not installed in this image"}' > "$out/bench_vllm.json"
fi
cp "$work"/gpu_check.json "$work"/overhead_*.json "$out"/ 2>/dev/null || true
exit "$status"
