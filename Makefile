# Every target creates .venv and installs the project into it first; nothing is set up by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo dev dev-postgres test test-all bench bench-tenants bench-cpu lint clean screenshots chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sandbox.demo

dev: $(STAMP)
	$(BIN)/python -m sandbox.dev

# Its own instance folder (.dagster_home_postgres, the production dagster.yaml), unless DAGSTER_HOME is set.
dev-postgres: $(STAMP)
	DAGSTER_HOME=$(if $(filter file,$(origin DAGSTER_HOME)),$(CURDIR)/.dagster_home_postgres,$(DAGSTER_HOME)) \
		$(BIN)/python -m sandbox.dev --postgres

# The default suite in four workers (pytest-xdist) on any host: most tests wait on the sandboxes' latency and
# budgets, not the CPU (two workers kept two cores half busy). The slow suites run one at a time: their
# figures are real-time budgets.
TEST_WORKERS ?= 4

test: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --durations=15

test-all: $(STAMP) chromium
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS)
	$(BIN)/pytest -m slow

# The UI tour in a headless browser (tests/test_ui.py runs the same): PNGs of each page it visits.
screenshots: $(STAMP) chromium
	$(BIN)/python -m sandbox.ui_tour --out docs/screenshots

# Debian's Chromium, which Playwright drives for the UI tour (no browser is ever downloaded).
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && apt-get install -y chromium; } \
		|| { echo "Chromium is missing: install Debian's chromium package (apt-get install -y chromium)." >&2; exit 1; }

bench: $(STAMP)
	$(BIN)/python bench/extract.py

bench-tenants: $(STAMP)
	$(BIN)/python bench/tenants.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .dagster_home .dagster_home_postgres .sandbox .pytest_cache

# dlt is the benchmark's contender, not a dependency of the project: installed into the venv here only.
.PHONY: bench-cpu
bench-cpu: $(STAMP)
	$(BIN)/pip install --quiet dlt
	$(BIN)/python bench/cpu.py
