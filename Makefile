# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# What the JupyterLab extension is built from, and where the build goes (git-ignored).
LABEXT_SRC := labextension/package.json labextension/package-lock.json labextension/tsconfig.json \
              $(shell find labextension/src labextension/style -type f)
LABEXT_OUT := magnus_jupyter/labextension
# npm writes this file at every install: node_modules is as new as package-lock.json or newer.
LABEXT_NPM := labextension/node_modules/.package-lock.json

.PHONY: setup graphviz rsvg chromium node labext-test demo test lint bench clean

setup: $(STAMP) graphviz rsvg chromium

# pip builds the JupyterLab extension from labextension/ (pyproject.toml's build hook: npm ci, npm run
# build) and installs it into the venv. An edited extension source removes the old build first: the
# hook would otherwise keep it (it only compares src/ with the build, a plain install keeps any build).
$(STAMP): pyproject.toml $(LABEXT_SRC) | node
	$(if $(filter labextension/%,$?),rm -rf $(LABEXT_OUT))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "pip install -e '.[test]': builds the JupyterLab extension (npm ci, npm run build), a few minutes"
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Graphviz's `dot` draws the DAG; installed with apt when missing and apt is there.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else echo "graphviz 'dot' not found and no apt-get: install Graphviz by hand" >&2; exit 1; fi; }

# librsvg's `rsvg-convert` draws a run's timeline as PNG (`magnus-jupyter timeline RUN -o X.png`).
rsvg:
	@command -v rsvg-convert >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq librsvg2-bin >/dev/null; \
	  else echo "rsvg-convert not found and no apt-get: install librsvg by hand" >&2; exit 1; fi; }

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@test -x /usr/bin/chromium || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no /usr/bin/chromium and no apt-get: browser tests will be skipped" >&2; fi; }

# Node.js and npm build the JupyterLab extension; installed from Debian with apt when missing.
# Vite 7 / Vitest 3 (the unit tests) want Node.js 20 or newer; Debian 12's is 18.
node:
	@command -v npm >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "no npm and no apt-get: install Node.js (20 or newer) and npm by hand" >&2; exit 1; fi; }
	@node -e 'process.exit(process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || \
	  echo "Node.js $$(node --version) is older than 20: the extension builds, its unit tests may not run" >&2

# The main job on the built-in example: the seed pipeline, its branches at the same time.
demo: setup
	$(PY) -m magnus_jupyter validate notebooks/pipeline.yaml
	$(PY) -m magnus_jupyter render notebooks/pipeline.yaml -o out/pipeline.svg
	$(PY) -m magnus_jupyter run notebooks/pipeline.yaml --workers 4
	@echo "executed notebooks and logs: the catalog folder above; DAG drawn to out/pipeline.svg"

# The JupyterLab extension's TypeScript unit tests (npm registry only; locked with package-lock.json).
# npm ci runs only when package-lock.json is newer than node_modules: after `make setup` built the
# extension, its node_modules serve the tests too.
$(LABEXT_NPM): labextension/package-lock.json | node
	cd labextension && npm ci --no-audit --no-fund --loglevel=error

labext-test: $(LABEXT_NPM)
	cd labextension && npm test

test: setup labext-test
	$(PY) -m ruff check magnus_jupyter tests bench
	$(PY) -m pytest

bench: setup
	$(PY) bench/load_validate.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache labextension/node_modules labextension/lib \
	  labextension/tsconfig.tsbuildinfo $(LABEXT_OUT)
