# posguard: the commands a newcomer runs. `make test` and `make sim` build their own environment.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POSGUARD := $(VENV)/bin/posguard
# Re-install only when the dependency list changes (the stamp is newer than pyproject.toml otherwise).
STAMP := $(VENV)/.posguard-deps
BOARD ?= devkit-1s
PORT ?=
# Options for `make sim`, e.g. make sim SIM_ARGS="--hours 8 --pack aged85 --temp 0"
SIM_ARGS ?=
# Options for `make test`, e.g. make test CHECK_ARGS="--fast -- host_tests/test_journal.py"
CHECK_ARGS ?=
# Extra options for deploy and vboard, e.g. make deploy PORT=... DEPLOY_ARGS=--frozen (docs/device.md)
DEPLOY_ARGS ?=
VBOARD_ARGS ?=

.PHONY: browser cjk-font help pypy setup test bench sim deploy repl provision vboard vboard-paper vboard-stop clean need-port

help:
	@echo "make test        everything CI checks (ruff, mypy, MicroPython gate, pytest on CPython + unix port)"
	@echo "                 CHECK_ARGS=\"--fast -- host_tests/test_x.py\" for a quick subset"
	@echo "make sim         a trading day on a virtual board; report and plots in out/"
	@echo "make bench       benchmark figures (tables + out/bench.json)"
	@echo "make setup       only build .venv with the pinned dependencies"
	@echo "make deploy PORT=/dev/ttyUSB0 [BOARD=devkit-1s] [DEPLOY_ARGS=--frozen]   copy what changed"
	@echo "make repl PORT=/dev/ttyUSB0                       the board's REPL through mpremote"
	@echo "make provision PORT=/dev/ttyUSB0 [BOARD=…]        add the journal partition (reformats the filesystem)"
	@echo "make vboard [BOARD=…] [VBOARD_ARGS=--fresh]       a virtual board mpremote can talk to (PORT=vboard finds it)"
	@echo "make vboard-paper / vboard-stop                   its printout as out/vboard-paper.png / stop it"

setup: $(STAMP) cjk-font browser pypy

# Receipt PNGs draw Chinese with a system CJK font. Installed where this machine lets us (root with
# apt-get); otherwise the renderer says clearly that Chinese comes out as boxes. Never fails the build.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
cjk-font:
	@if [ ! -e $(CJK_FONT) ] && [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei >/dev/null 2>&1; }; } \
	    && echo "installed a CJK font (Debian fonts-wqy-zenhei) for receipt PNGs" \
	    || echo "note: could not install fonts-wqy-zenhei: receipt PNGs will draw Chinese as boxes"; \
	  else echo "note: no CJK font (needs root and apt-get: fonts-wqy-zenhei); receipt PNGs draw Chinese as boxes"; fi; \
	fi

# A Debian package where this machine lets us (root with apt-get: install, or update the lists and
# install), else a note; never fails the build. $(call apt-install,COMMAND,PACKAGE,DONE MESSAGE,WITHOUT IT)
define apt-install
	@if ! command -v $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null 2>&1; }; } \
	    && echo "$(3)" || echo "note: could not install $(2): $(4)"; \
	  else echo "note: no $(2) (needs root and apt-get): $(4)"; fi; \
	fi
endef

# The fleet page test (host_tests/test_fleet.py) opens out/fleet.html in a real headless browser: Debian's
# chromium where this machine lets us (root with apt-get); otherwise that one test skips and says why.
browser:
	$(call apt-install,chromium,chromium,installed a headless browser (Debian chromium) for the fleet page test,the fleet page test will skip)

# `posguard sim --fleet` runs its terminals' days under PyPy when there is one (docs/fleet.md: the
# 20 x 12 h fleet needs about a third of CPython's CPU there): Debian's pypy3 where this machine lets us
# (root with apt-get); otherwise the fleet runs on CPython, slower, and says which interpreter ran it.
pypy:
	$(call apt-install,pypy3,pypy3,installed PyPy (Debian pypy3) for the fleet simulation's terminals,the fleet simulation runs its terminals on CPython)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "posguard needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m posguard_tools.mpylib >/dev/null  # micropython-lib's umqtt.simple for the unix-port tests
	@touch $@

test: setup
	$(PY) -m posguard_tools.check $(CHECK_ARGS)

bench: setup
	$(POSGUARD) bench

sim: setup
	$(POSGUARD) sim --board $(BOARD) $(SIM_ARGS)

# Device work needs a port: say so instead of letting mpremote guess a device.
need-port:
	@test -n "$(PORT)" || { echo "PORT is not set: make $(MAKECMDGOALS) PORT=/dev/ttyUSB0 (or a vboard pty)"; exit 2; }

deploy: setup need-port
	$(POSGUARD) deploy --port $(PORT) --board $(BOARD) $(DEPLOY_ARGS)

repl: setup need-port
	$(POSGUARD) repl --port $(PORT)

provision: setup need-port
	$(POSGUARD) provision --port $(PORT) --board $(BOARD)

vboard: setup
	$(POSGUARD) vboard --board $(BOARD) $(VBOARD_ARGS)

vboard-paper: setup
	$(POSGUARD) vboard paper

vboard-stop: setup
	$(POSGUARD) vboard stop

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .hypothesis
