#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what benchmarks/gpu_check.sh needs on a GPU machine that can reach
# no registry and takes a small upload: SmolLM2's tokenizer files (3.5 MB; no weights) and the
# wheels of the two dependencies its image lacks (Python 3.12, x86-64). Run here once, after
# `make install`; then carry .gpu along with the working tree and run benchmarks/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .gpu/smollm2-tokenizer .gpu/wheels
folder=$(HF_HUB_OFFLINE=1 "$PY" -c "from labeldist.models.resolve import resolve_model; print(resolve_model('smollm2-135m-instruct').path)")
for name in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja special_tokens_map.json; do
  if [ -f "$folder/$name" ]; then cp "$folder/$name" .gpu/smollm2-tokenizer/; fi
done
versions=$("$PY" -c "from importlib.metadata import version as v; print(f'rapidfuzz=={v(\"rapidfuzz\")} gguf=={v(\"gguf\")}')")
# shellcheck disable=SC2086
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .gpu/wheels $versions
du -sh .gpu
