# Quick start: `make demo` (the main job) and `make test` (the whole suite).
# Each target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-test

.PHONY: demo test lint node-test bench bench-quick conformance clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/tablescore demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile
	$(MAKE) node-test

# the Node.js scorer (node/): fixture bundles + golden vectors from the current exporters
node/node_modules/.installed: node/package-lock.json
	cd node && npm ci --no-audit --no-fund
	touch $@

node-test: $(STAMP) node/node_modules/.installed
	$(PY) node/test/make_fixtures.py node/.fixtures
	cd node && TABLESCORE_PYTHON=$(abspath $(PY)) node --test --test-concurrency=1 test/

$(VENV)/.installed-bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.readme

bench-quick: $(VENV)/.installed-bench
	$(PY) -m benchmarks.run --quick

# the full conformance matrix; its report is committed to docs/
conformance: $(STAMP)
	$(VENV)/bin/tablescore conformance matrix --subset full --external --report docs/conformance.md

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache node/node_modules node/.fixtures
