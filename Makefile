# takedown — the two commands a fresh machine needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOME_DIR ?= takedown-data

.PHONY: setup demo test check lint types pytest test-apt bench bench-apt clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml setup.py $(wildcard takedown/sinkhole/*.c)
	@command -v $(PYTHON) >/dev/null || PYTHON=python3; \
	  test -x $(BIN)/python || $${PYTHON:-$(PYTHON)} -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip==26.0.1 || true
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

demo: setup
	$(BIN)/takedown --home $(HOME_DIR) demo

check: setup lint types

lint:
	$(BIN)/ruff check takedown tests bench
	$(BIN)/ruff format --check takedown tests bench

types:
	$(BIN)/mypy

pytest: setup test-apt
	$(BIN)/pytest -q

# The tests read PDFs with poppler's pdftotext/pdffonts and open pages in Debian's chromium
# (driven by Playwright); installed here when missing (root, Debian).
test-apt:
	@if ! command -v pdftotext >/dev/null || ! test -x /usr/bin/chromium; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    poppler-utils chromium >/dev/null; fi

test: check pytest

# Benchmarks need Debian's wrk and nginx; installed here, never by `make test`.
bench-apt:
	@if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light; fi

bench: setup bench-apt
	$(BIN)/python bench/bench_sinkhole.py
	$(BIN)/python bench/bench_handover.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_measure_speed.py
	$(BIN)/python bench/bench_evidence.py

clean:
	rm -rf $(VENV) $(HOME_DIR) demo-data bench/out
