"""Every pipeline of the magnus 0.5 corpus gives the run log real magnus 0.5.1 gave.

Each runs as a user would run it, ``python -m magnus_jupyter run NAME.yaml
[-p NAME.params.yaml]``, in a fresh folder; the run log is flattened (every
step and branch by internal name -> status) and compared, with the final
status and parameters, to ``NAME.expected.json`` exactly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.executor.runlog import flatten

COMPAT = Path(__file__).resolve().parents[1] / "data" / "compat" / "magnus-0.5"
NAMES = sorted(p.name[: -len(".yaml")] for p in COMPAT.glob("*.yaml") if not p.name.endswith(".params.yaml"))


def test_the_corpus_is_there(compat_dir: Path) -> None:
    assert len(NAMES) >= 8, f"expected the magnus examples in {compat_dir}"


@pytest.mark.parametrize("name", NAMES)
def test_run_log_matches_real_magnus(name: str, compat_dir: Path, tmp_path: Path) -> None:
    expected: dict[str, Any] = json.loads((compat_dir / f"{name}.expected.json").read_text())
    shutil.copy(compat_dir / f"{name}.yaml", tmp_path / f"{name}.yaml")
    args = [sys.executable, "-m", "magnus_jupyter", "run", f"{name}.yaml", "--run-id", "compat", "--quiet"]
    params = compat_dir / f"{name}.params.yaml"
    if params.exists():
        shutil.copy(params, tmp_path / params.name)
        args += ["-p", params.name]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.stdout.splitlines()[0] == "run_id: compat", done.stdout + done.stderr
    assert done.returncode == (0 if expected["status"] == "SUCCESS" else 1), done.stdout + done.stderr
    run_log = json.loads((tmp_path / ".run_log_store" / "compat.json").read_text())
    assert run_log["status"] == expected["status"]
    assert flatten(run_log) == expected["steps"]
    assert run_log["parameters"] == expected["parameters"]
