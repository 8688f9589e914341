"""Real magnus 0.5.1 as a test oracle: a virtual environment of its own, never a dependency.

Built once from the package registry under the system temp folder and reused by
every session, keyed by what is installed in it and Python's version; built aside
and renamed into place, so a half-built one is never used. Notebook tasks need
ploomber-engine (before 0.0.32, which magnus 0.5.1 was written for) and ipykernel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PACKAGES = ("magnus==0.5.1", "ploomber-engine<0.0.32", "ipykernel")
PY = f"py{sys.version_info[0]}{sys.version_info[1]}"
ORACLE = Path(tempfile.gettempdir()) / f"magnus-jupyter-oracle-0.5.1-nb-{PY}"
RUN_MAGNUS = "import sys; from magnus.cli import cli; sys.argv[0] = 'magnus'; cli()"
TIMEOUT = 120


def build_oracle() -> Path:
    """The oracle's python; skips the test when the registry cannot give the packages."""
    python = ORACLE / "bin" / "python"
    if (ORACLE / ".ready").exists():
        return python
    build = Path(tempfile.mkdtemp(prefix=ORACLE.name + ".build-", dir=ORACLE.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(build)], check=True, capture_output=True,
                       timeout=TIMEOUT)
        pip = subprocess.run([str(build / "bin" / "python"), "-m", "pip", "install", "-q", *PACKAGES],
                             capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            pytest.skip(f"could not install {' '.join(PACKAGES)} for the magnus oracle: {pip.stderr[-500:]}")
        (build / ".ready").write_text("\n".join(PACKAGES) + "\n")
        try:
            os.rename(build, ORACLE)
        except OSError:  # another session got there first
            shutil.rmtree(build, ignore_errors=True)
    finally:
        if build.exists() and not (ORACLE / ".ready").exists():
            shutil.rmtree(build, ignore_errors=True)
    if not (ORACLE / ".ready").exists():
        pytest.fail(f"the magnus oracle at {ORACLE} did not build")
    return python
