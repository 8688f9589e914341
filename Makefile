# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup graphviz chromium labext-test demo test lint bench clean

setup: $(STAMP) graphviz chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Graphviz's `dot` draws the DAG; installed with apt when missing and apt is there.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else echo "graphviz 'dot' not found and no apt-get: install Graphviz by hand" >&2; exit 1; fi; }

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@test -x /usr/bin/chromium || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no /usr/bin/chromium and no apt-get: browser tests will be skipped" >&2; fi; }

# The main job on the built-in example: the seed pipeline, its branches at the same time.
demo: setup
	$(PY) -m magnus_jupyter validate notebooks/pipeline.yaml
	$(PY) -m magnus_jupyter render notebooks/pipeline.yaml -o out/pipeline.svg
	$(PY) -m magnus_jupyter run notebooks/pipeline.yaml --workers 4
	@echo "executed notebooks and logs: the catalog folder above; DAG drawn to out/pipeline.svg"

# The JupyterLab extension's TypeScript unit tests (npm registry only; locked with package-lock.json).
labext-test:
	cd labextension && npm ci --no-audit --no-fund --loglevel=error && npm test

test: setup labext-test
	$(PY) -m ruff check magnus_jupyter tests bench
	$(PY) -m pytest

bench: setup
	$(PY) bench/load_validate.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache labextension/node_modules labextension/lib magnus_jupyter/labextension
