# The one entry point: `make demo` and `make test` work on a fresh machine with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROJECT ?= examples/workforce
LAKE ?= $(PROJECT)/lake

.PHONY: demo test lint bench bench-ingest bench-transform bench-query bench-widgets bench-extract bench-quality clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Land both examples' demo data, build their tables, then serve both (Ctrl-C stops them):
# workforce on :8000, hospitality on :8001, printing a sign-in URL per tenant.
HOSPITALITY ?= examples/hospitality
demo: $(VENV)/.installed
	$(BIN)/strata demo --lake $(LAKE)
	$(BIN)/strata lake ls --lake $(LAKE)
	$(BIN)/strata run --project $(PROJECT)
	$(BIN)/strata demo --example hospitality --lake $(HOSPITALITY)/lake
	$(BIN)/strata run --project $(HOSPITALITY)
	$(BIN)/strata serve --project $(HOSPITALITY) --port 8001 --demo-keys & \
	trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	$(BIN)/strata serve --project $(PROJECT) --port 8000 --demo-keys

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

# Each prints one JSON object; together they take about fifteen minutes on two cores.
bench: bench-ingest bench-transform bench-query bench-widgets bench-extract bench-quality

bench-ingest: $(VENV)/.installed-dev
	$(BIN)/python bench/ingest.py

bench-transform: $(VENV)/.installed-dev
	$(BIN)/python bench/transform.py

bench-query: $(VENV)/.installed-dev
	$(BIN)/python bench/query.py

bench-widgets: $(VENV)/.installed-dev
	$(BIN)/python bench/widgets.py

# Needs PostgreSQL on 127.0.0.1:5432 (user postgres); keeps its table in strata_bench_extract.
bench-quality: $(VENV)/.installed-dev
	$(BIN)/python bench/quality.py

bench-extract: $(VENV)/.installed-dev
	$(BIN)/python bench/extract.py

clean:
	rm -rf $(LAKE) $(PROJECT)/.strata .strata
