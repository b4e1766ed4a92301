# Two commands a new user needs: `make demo` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rxrepurchase-installed
DEMO   := data/demo
DEMO_AS_OF ?= 2026-09-30# last day of the demo chain (DemoConfig.end_date)
JOBS   ?= 2

.PHONY: demo test lint lab bench setup sysdeps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "rxrepurchase needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	bash scripts/system-deps.sh
	touch $(STAMP)

sysdeps:
	bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/rxrepurchase demo-data --out $(DEMO) --overwrite
	$(BIN)/rxrepurchase summary --data $(DEMO) --as-of $(DEMO_AS_OF)
	$(BIN)/rxrepurchase report --data $(DEMO) --stores all --out reports --jobs $(JOBS) --as-of $(DEMO_AS_OF)

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/ruff check rxrepurchase tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check rxrepurchase tests benchmarks

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
