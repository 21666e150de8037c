# The two commands a user needs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Quiet TensorFlow's C++ start-up chatter; errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

.venv: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py --output demo_output

# Lint first (seconds; config in pyproject.toml), then the suite on TEST_WORKERS processes
# (pytest-xdist; each test file runs whole in one of them, the slowest files first:
# tests/conftest.py SLOWEST_FIRST).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

# Every speed and memory figure, side by side with TF Model Garden (installed into its own
# venv, bench/.peer-venv, on first use), with the paired run; 39 minutes on 2 CPU cores once
# the peer venv exists (2026-11-22).
# See docs/BENCHMARKS.md.
bench: $(STAMP)
	$(PY) bench/run.py --peer --json bench/results.json

clean:
	rm -rf $(VENV) demo_output .pytest_cache
