# Two commands a new user needs: `make demo` and `make test`. Both bootstrap .venv first, from
# the lock (uv.lock), so every machine runs the same releases.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rxrepurchase-installed
# uv, pinned, in a bootstrap venv of its own: a machine needs only Python 3.11+ and make.
UV_VERSION := 0.13.9
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
# Never download a Python: use the one PYTHON names.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
DEMO   := data/demo
DEMO_AS_OF ?= 2026-09-30# last day of the demo chain (DemoConfig.end_date)
JOBS   ?= 2

.PHONY: demo test test-latest lint lab bench setup sysdeps lock clean

setup: $(STAMP)

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "rxrepurchase needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

# Installs exactly the lock (runtime + dev and spark extras); --locked fails if pyproject.toml changed
# without `make lock`. --compile-bytecode: a report run starts a fresh kernel per store, and without
# .pyc files (uv writes none; PYTHONDONTWRITEBYTECODE keeps Python from caching them) every kernel
# compiles its imports again, about 4 CPU seconds each.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode --extra dev --extra spark --python $(PYTHON)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	bash scripts/system-deps.sh
	touch $(STAMP)

# The newest releases pyproject.toml allows, written to uv.lock and exported, hashed, to
# requirements.lock for pip or conda users; commit both after `make test`.
EXPORT := $(UV) export --frozen --extra dev --extra spark --no-emit-project --output-file requirements.lock
lock: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)
	$(EXPORT) >/dev/null

# The suite on the newest releases, in a throwaway environment: drift shows up here first.
test-latest: | $(UV)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(UV) venv -q --python $(PYTHON) "$$tmp/venv"; \
	$(UV) pip install -q --python "$$tmp/venv/bin/python" --upgrade --no-cache-dir -e '.[dev,spark]'; \
	"$$tmp/venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null; \
	$(UV) pip freeze --python "$$tmp/venv/bin/python" | grep -iE '^(pandas|numpy|duckdb|pyarrow|scipy|lifetimes|matplotlib|papermill|weasyprint)==' || true; \
	PATH="$$tmp/venv/bin:$$PATH" "$$tmp/venv/bin/python" -m pytest; \
	"$$tmp/venv/bin/ruff" check rxrepurchase tests benchmarks

sysdeps:
	bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/rxrepurchase demo-data --out $(DEMO) --overwrite
	$(BIN)/rxrepurchase summary --data $(DEMO) --as-of $(DEMO_AS_OF)
	$(BIN)/rxrepurchase report --data $(DEMO) --stores all --out reports --jobs $(JOBS) --as-of $(DEMO_AS_OF)

# Two pytest workers, a whole test file each so that a module's fixtures are built once: the
# report runs spend much of their time waiting on kernels and printers. TEST_WORKERS=0 runs the
# suite in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
	$(BIN)/ruff check rxrepurchase tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check rxrepurchase tests benchmarks

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info .pytest_cache .ruff_cache
