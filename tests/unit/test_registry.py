"""Executors chosen by name through the ``magnus_jupyter.executors`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from magnus_jupyter.errors import ExecutionError
from magnus_jupyter.executor.registry import known_executors, load_executor, slots_factory
from magnus_jupyter.executor.slots import TaskSlots

PIPELINE = """\
dag:
  start_at: hello
  steps:
    hello:
      type: task
      command_type: shell
      command: export MAGNUS_PRM_greeting=hi
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_both_built_in_executors_are_known() -> None:
    known = known_executors()
    assert known["local"] == "magnus_jupyter.executor.slots:TaskSlots"
    assert known["dask"] == "magnus_jupyter.executor.dask_slots:DaskSlots"
    assert load_executor("local") is TaskSlots


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ExecutionError, match=r"unknown executor 'nope'; known executors: dask, local"):
        slots_factory("nope")


def test_scheduler_is_refused_by_an_executor_without_one() -> None:
    with pytest.raises(ExecutionError, match="takes no scheduler"):
        slots_factory("local", "tcp://127.0.0.1:1")


def test_cli_unknown_executor_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "p.yaml", "--executor", "nope"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --executor: unknown executor 'nope'; known executors: dask, local"
    assert not (tmp_path / ".run_log_store").exists()


def test_a_third_executor_from_another_package_runs_the_pipeline(tmp_path: Path) -> None:
    """A distribution on sys.path adds an entry point; ``--executor counted`` picks it up by name."""
    site = tmp_path / "site"
    info = site / "counted_executor-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: counted-executor\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[magnus_jupyter.executors]\ncounted = counted_executor:Counted\n")
    (site / "counted_executor.py").write_text(
        "import os\n"
        "from magnus_jupyter.executor.slots import TaskSlots\n\n\n"
        "class Counted(TaskSlots):\n"
        "    def submit(self, spec):\n"
        "        with open(os.path.join(spec.cwd, 'submitted.txt'), 'a') as fh:\n"
        "            fh.write(spec.internal_name + '\\n')\n"
        "        return super().submit(spec)\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "p.yaml").write_text(PIPELINE)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "p.yaml", "--executor", "counted",
                           "--run-id", "r1", "--quiet"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "submitted.txt").read_text() == "hello\n"
    log = json.loads((work / ".run_log_store" / "r1.json").read_text())
    assert log["parameters"] == {"greeting": "hi"}
