"""Under load: 200 notebooks at --workers 16 on this 2-core machine, and not one kernel-start failure.

papermill users see a few percent of kernel starts fail at this load (port
races, "kernel didn't respond"); the warm kernel pool retries such starts, so
none may reach a task. Run as a user would, the whole command in a fresh folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from magnus_jupyter.executor.runlog import flatten

TRIVIAL = Path(__file__).resolve().parents[1] / "notebooks" / "trivial.ipynb"
COUNT = 200

PIPELINE = """\
dag:
  start_at: fan out
  steps:
    fan out:
      type: map
      iterate_on: items
      iterate_as: i
      next: success
      branch:
        start_at: square
        steps:
          square:
            type: task
            command_type: notebook
            command: trivial.ipynb
            returns: [square]
            next: success
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.mark.slow
def test_200_notebooks_at_16_workers_all_succeed(tmp_path: Path) -> None:
    shutil.copy(TRIVIAL, tmp_path / "trivial.ipynb")
    (tmp_path / "load.yaml").write_text(PIPELINE)
    items = json.dumps(list(range(COUNT)))
    done = subprocess.run(
        [sys.executable, "-m", "magnus_jupyter", "run", "load.yaml", "--workers", "16", "--quiet",
         "--run-id", "load", "--param", f"items={items}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    log = json.loads((tmp_path / ".run_log_store" / "load.json").read_text())
    steps = flatten(log)
    tasks = {name: status for name, status in steps.items() if name.endswith(".square")}
    failed = {name: status for name, status in tasks.items() if status != "SUCCESS"}
    assert len(tasks) == COUNT and not failed, (failed, done.stderr[-3000:])
    assert done.returncode == 0 and log["status"] == "SUCCESS"
    executed = list((tmp_path / ".catalog" / "load").glob("*_out.ipynb"))
    assert len(executed) == COUNT  # each iteration's notebook kept apart
