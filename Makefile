# The two commands of the README: `make run` and `make test`. Both work on a fresh machine with
# nothing but Python 3.10+ and make; each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
K      ?= 32

.PHONY: run test bench clean help

help:
	@echo "make run    set up $(VENV) and compress the shipped sample (results in ./kmquant-demo)"
	@echo "make test   set up $(VENV) with the test extras and run the whole suite"
	@echo "make bench  run the side-by-side benchmarks (needs ../shared/data/kodak or DATA=dir)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

# torch==2.13.0 first: the CPU build (on this project's machines it lies on disk); a bare
# 'torch' requirement would pull a multi-GB CUDA build. The suite's CUDA tests skip without a GPU.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test,torch,bench]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/kmquant demo -k $(K)

test: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

# pngquant and ImageMagick are Debian packages (apt-get needs root).
bench: $(VENV)/.test-installed
	@command -v pngquant >/dev/null && test -x /usr/bin/convert || \
		(apt-get update -q && apt-get install -y -q pngquant imagemagick)
	$(BIN)/python bench/bench_core.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_pngquant.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_search.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_png.py $(if $(DATA),--data $(DATA))

clean:
	rm -rf $(VENV) kmquant-demo .pytest_cache src/*.egg-info
