# The two commands of the README: `make run` and `make test`. Both work on a fresh machine with
# nothing but Python 3.10+, a C compiler and make; each creates .venv, compiles kmquant's core and
# installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
K      ?= 32
# the tests that drive the compiled kernels (run under the sanitizers by `make sanitize`)
CORE_TESTS := tests/engines/test_native_engine.py tests/engines/test_conformance.py \
              tests/test_histogram.py tests/test_seeding.py tests/test_dither.py tests/test_nearest.py

.PHONY: run test bench sanitize clean help system-packages

help:
	@echo "make run       set up $(VENV) and compress the shipped sample (results in ./kmquant-demo)"
	@echo "make test      set up $(VENV) with the test extras and run the whole suite"
	@echo "make sanitize  build the compiled core with AddressSanitizer + UBSan and run its tests"
	@echo "make bench     run the side-by-side benchmarks (needs ../shared/data/kodak or DATA=dir)"
	@echo "make fuzz      fuzz the loader with atheris for FUZZ_SECONDS (600); findings in build/fuzz"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The editable install compiles src/kmquant/_core/*.pyx in place (Cython + setuptools, fetched
# into pip's isolated build environment); edit a .pyx and run it again to rebuild.
$(VENV)/.run-installed: pyproject.toml setup.py $(wildcard src/kmquant/_core/*.pyx) | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

# torch==2.13.0 first: the CPU build (on this project's machines it lies on disk); a bare
# 'torch' requirement would pull a multi-GB CUDA build. The suite's CUDA tests skip without a GPU.
$(VENV)/.test-installed: pyproject.toml setup.py $(wildcard src/kmquant/_core/*.pyx) | $(BIN)/python
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test,torch,bench,dask,perceptual,web]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/kmquant demo -k $(K) --force

# System packages the suite runs for real (Debian; apt-get needs root): pngquant, the anchor the
# benchmark tests compare with, and Chromium, the browser the web page's tests drive (through
# Playwright from PyPI: its own browser downloads are not used).
system-packages:
	@command -v pngquant >/dev/null && test -x /usr/bin/chromium || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends pngquant chromium)

# The web page's screenshot is kept in build/test-artifacts/serve-page.png; without Chromium or
# Playwright its tests fail here (elsewhere they skip).
test: $(VENV)/.test-installed system-packages
	$(BIN)/ruff check src tests bench setup.py
	$(BIN)/mypy
	KMQUANT_ARTIFACTS=build/test-artifacts KMQUANT_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

# The compiled core built with -fsanitize=address,undefined into build/sanitize (a copy of the
# package, so the normal build is left alone), its tests run with libasan preloaded (Python itself
# is not instrumented; its own allocations are not checked, leaks are not reported).
sanitize: $(VENV)/.test-installed
	rm -rf build/sanitize && mkdir -p build/sanitize
	cp -r src/kmquant build/sanitize/ && rm -f build/sanitize/kmquant/_core/*.so
	KMQUANT_SANITIZE=address,undefined $(BIN)/python setup.py -q build_ext \
		--build-lib build/sanitize --build-temp build/sanitize-tmp --force
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
		ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		PYTHONPATH=build/sanitize KMQUANT_EXPECT_CORE=build/sanitize \
		$(BIN)/python -m pytest -q -p no:cacheprovider $(CORE_TESTS)

# pngquant and ImageMagick are Debian packages (apt-get needs root).
bench: $(VENV)/.test-installed
	@command -v pngquant >/dev/null && test -x /usr/bin/convert || \
		(apt-get update -q && apt-get install -y -q pngquant imagemagick)
	$(BIN)/python bench/bench_core.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_pngquant.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_search.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_png.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_cli.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_batch.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_rd.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_target.py $(if $(DATA),--data $(DATA)) --kmquant-args=--best-effort
	$(BIN)/python bench/bench_levers.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_serve.py $(if $(DATA),--data $(DATA))
	$(BIN)/python bench/bench_slider.py $(if $(DATA),--data $(DATA))

# Coverage-guided fuzzing of the loader and quantizer (tests/fuzz/fuzz_load.py, atheris) over a
# copy of the seed corpus (libFuzzer adds what it finds to it); a crash, an input over 2 GB or one
# over 10 s stops the run and is written to build/fuzz/findings/. Replay one with
# `$(BIN)/python tests/fuzz/fuzz_load.py FILE`; once fixed, add it to tests/fuzz/regressions/.
FUZZ_SECONDS ?= 600
.PHONY: fuzz
fuzz: $(VENV)/.test-installed
	rm -rf build/fuzz/corpus && mkdir -p build/fuzz/corpus build/fuzz/findings
	cp tests/fuzz/corpus/* build/fuzz/corpus/
	$(BIN)/python tests/fuzz/fuzz_load.py build/fuzz/corpus -max_total_time=$(FUZZ_SECONDS) \
		-rss_limit_mb=2048 -timeout=10 -artifact_prefix=build/fuzz/findings/ -print_final_stats=1

clean:
	rm -rf $(VENV) kmquant-demo .pytest_cache src/*.egg-info build dist \
		src/kmquant/_core/*.c src/kmquant/_core/*.so
