# `make run`: set up .venv (if missing) and run the main job on the embedded default dataset.
# `make test`: set up .venv (if missing) and run the default test suite (< 10 min on 2 cores).
# `make lint`: check the architecture (import-linter contracts of pyproject.toml).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
# tools the tests start (dvc stages call `python`, mlflow, lshgan) come from the venv
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test test-slow test-all lint clean

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/lshgan run pbmc68k_reduced --label-key cell_type --out results/pbmc68k_reduced --force

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	cd $(CURDIR) && $(BIN)/lint-imports --no-cache

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

clean:
	rm -rf results .pytest_cache
