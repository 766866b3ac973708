# posguard: the commands a newcomer runs. `make test` and `make sim` build their own environment.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POSGUARD := $(VENV)/bin/posguard
# Re-install only when the dependency list changes (the stamp is newer than pyproject.toml otherwise).
STAMP := $(VENV)/.posguard-deps
BOARD ?= devkit-1s

.PHONY: help setup test bench sim deploy repl provision vboard clean

help:
	@echo "make test        everything CI checks (ruff, mypy, MicroPython gate, pytest on CPython + unix port)"
	@echo "make sim         a trading day on a virtual board; report and plots in out/"
	@echo "make bench       benchmark figures (tables + out/bench.json)"
	@echo "make setup       only build .venv with the pinned dependencies"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "posguard needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

test: setup
	$(PY) -m posguard_tools.check

bench: setup
	$(POSGUARD) bench

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .hypothesis
