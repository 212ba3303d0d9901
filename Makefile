# Two commands for a fresh machine (both idempotent, quiet when nothing is to do):
#   make repro   set up, then run the pipeline (dvc repro) on the default CPU profile
#   make test    set up, then run the test suite
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(BIN):$(PATH)

.PHONY: setup data repro lint test test-fast test-bench bench clean-venv

setup: $(STAMP) data

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (torch==2.14.1, torchvision==0.29.1, dvc, ...)"
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2>/dev/null || true
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# Debian's dataset-fashion-mnist, where apt is available and the files are missing. Best effort:
# without it the fetch stage falls back to torchvision's download, or says how to get the data.
data:
	@if [ ! -f $(FMNIST) ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "note: could not install dataset-fashion-mnist; the fetch stage will try a download"; \
	fi

repro: setup
	@python -m freqbias.lockfile
	dvc repro

lint: setup
	ruff check src stages tests benchmarks

# One pytest-xdist worker per core; each test file runs whole on one worker (its module fixtures,
# e.g. the end-to-end dvc runs, once), with one torch thread per worker, longest end-to-end files
# first (tests/conftest.py; --no-loadscope-reorder keeps that order). Tests marked `bench` (bench.py's
# torch.compile rows: minutes on a cold cache) run in `make test-bench` only. --durations: the 25 slowest
# tests close the output (and CI logs)
PYTEST := python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=25

test: setup lint
	$(PYTEST) -m "not bench"

test-fast: setup
	$(PYTEST) -m "not slow and not bench"

test-bench: setup
	$(PYTEST) -m bench

bench: setup
	python benchmarks/bench.py

clean-venv:
	rm -rf $(VENV)
