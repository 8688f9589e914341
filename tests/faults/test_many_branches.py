"""100,000 leaf branches in a 1 KB pipeline: a few threads, and SIGTERM stops the run like any other.

The engine once walked every parallel/map branch in a thread of its own: such
a run started tens of thousands of threads, printed "can't start new thread"
tracebacks and ignored SIGTERM for minutes. Here a map over 317 values nests
a map over the same 317 (100,489 leaf branches, each a real shell task); the
CLI's thread count is sampled while it runs, then it is sent SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from magnus_jupyter.executor.engine import FILE_THREADS

from .conftest import GUARD, Cli, read_log, steps, wait_for

pytestmark = pytest.mark.slow

VALUES = 317  # 317 * 317 = 100,489 leaf branches
# the caller's thread, the run-log writer, the helper threads for file work, the pool's monitor,
# and room for what the interpreter and the pool may add: nothing that grows with the branches
THREADS = FILE_THREADS + 8

PIPELINE = textwrap.dedent("""
    dag:
      start_at: outer
      steps:
        outer:
          type: map
          iterate_on: xs
          iterate_as: x
          next: success
          branch:
            start_at: inner
            steps:
              inner:
                type: map
                iterate_on: xs
                iterate_as: y
                next: success
                branch:
                  start_at: work
                  steps:
                    work: {type: task, command_type: shell, command: echo $$ >> task_pids; exec sleep 60,
                           next: success}
                    success: {type: success}
                    fail: {type: fail}
              success: {type: success}
              fail: {type: fail}
        success: {type: success}
        fail: {type: fail}
""")


def _task_pids(cwd: Path) -> list[int]:
    path = cwd / "task_pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_a_hundred_thousand_branches_run_in_a_few_threads_and_sigterm_cancels_the_run(
        cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    assert len(PIPELINE.encode()) < 1200
    proc = cli.start("run", "pipeline.yaml", "--run-id", "wide", "--quiet", "--workers", "2",
                     "--param", f"xs={json.dumps(list(range(VALUES)))}")
    try:
        orchestrator = psutil.Process(proc.pid)
        most = 0

        def threads_then(ready: bool) -> bool:
            nonlocal most
            most = max(most, orchestrator.num_threads())
            assert most <= THREADS, f"the orchestrator runs {most} threads"
            return ready

        wait_for("two tasks running", lambda: threads_then(len(_task_pids(tmp_path)) >= 2))
        for _ in range(20):  # the walk goes on while the pool is busy: still no thread per branch
            time.sleep(0.05)
            threads_then(False)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err and "can't start new thread" not in err, err
    assert "retry:   magnus-jupyter retry wide" in out

    log = read_log(tmp_path, "wide")
    assert log is not None
    assert log["status"] == "FAIL" and log["message"] == "cancelled"
    assert len(log["steps"]["outer"]["branches"]) == VALUES
    found = steps(log)
    assert all(s["status"] != "PROCESSING" for s in found.values())
    ran = [s for name, s in found.items() if name.endswith(".work")]
    assert ran and all(s["status"] == "FAIL" and "cancelled" in s["message"] for s in ran)
    assert len(ran) < VALUES * VALUES  # the cancel stopped the walk: most branches never ran
    for pid in _task_pids(tmp_path):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
