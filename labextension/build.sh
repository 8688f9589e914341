#!/usr/bin/env bash
# Build the prebuilt JupyterLab extension from a fresh checkout:
#   labextension/build.sh [PYTHON_BIN_DIR]
# installs the locked npm packages (npm ci, npm registry only), runs the unit
# tests, compiles the TypeScript and writes the extension to
# magnus_jupyter/labextension/ (git-ignored), where the wheel's shared-data
# picks it up. `jupyter` (JupyterLab >= 4) must be on PATH, or in
# PYTHON_BIN_DIR (default: the project's .venv/bin when it exists).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../.venv/bin}"
if [ -d "$bin" ]; then
  PATH="$(cd "$bin" && pwd):$PATH"
fi
command -v jupyter >/dev/null || { echo "build.sh: no 'jupyter' on PATH (pip install 'jupyterlab>=4')" >&2; exit 1; }
cd "$here"
npm ci --no-audit --no-fund
npm test
npm run build
echo "built: $(cd "$here/../magnus_jupyter/labextension" && pwd)"
