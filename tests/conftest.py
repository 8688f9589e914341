"""Shared fixtures: every test keeps Jupyter's and IPython's folders in a temp dir."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "tests" / "data" / "compat" / "magnus-0.5"
PYTHON = sys.executable

# Data, not tests: magnus 0.5.1's examples tree carries its own tests/test_examples.py.
collect_ignore_glob = ["data/*"]


@pytest.fixture(autouse=True, scope="session")
def _jupyter_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point JUPYTER_* and IPYTHONDIR away from the real home, for every test and child."""
    base = tmp_path_factory.mktemp("jupyter-home")
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = base / sub
        path.mkdir()
        os.environ[var] = str(path)
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"


@pytest.fixture
def compat_dir() -> Path:
    if not COMPAT.is_dir():
        pytest.fail(f"the magnus compat corpus is missing at {COMPAT}")
    return COMPAT
