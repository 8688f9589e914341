"""Task-level faults with the real pool: each ends its step FAIL saying what happened, siblings go on.

Kernels that die, shells killed by a signal, a worker process that dies,
timeouts (the task's field and the run's default), a kernel that cannot
start, and retries with ``max_attempts``. Durations are read from the run
log's timestamps; the only bound asserted is the issue's (killed within 1 s of
the limit).
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.executor.engine import RunResult, run_pipeline
from magnus_jupyter.yaml_io import load_yaml

from .conftest import GUARD, Cli, kernels, read_log, stamp, steps, wait_for, write_notebook

pytestmark = pytest.mark.slow


def branch(name: str, task: str) -> str:
    return textwrap.indent(textwrap.dedent(f"""\
        {name}:
          start_at: t
          steps:
            t: {task}
            success: {{type: success}}
            fail: {{type: fail}}
        """), " " * 8)


FAULTS = {
    "exit": "{type: task, command_type: notebook, command: exit.ipynb, next: success}",
    "signal": "{type: task, command_type: shell, command: 'echo going; kill -9 $$', next: success}",
    "worker": "{type: task, command_type: python, command: suicide.die, next: success}",
    "timeout": "{type: task, command_type: shell, command: sleep 30, timeout: 1, next: success}",
    "notebook timeout": ("{type: task, command_type: notebook, command: slow.ipynb, timeout: 2, "
                         "next: success}"),
    "badkernel": ("{type: task, command_type: notebook, command: badkernel.ipynb, max_attempts: 2, "
                  "next: success}"),
    "always fails": "{type: task, command_type: shell, command: exit 3, max_attempts: 3, next: success}",
    "flaky": ("{type: task, command_type: shell, command: 'echo x >> tries; test $(wc -l < tries) -ge 2', "
              "max_attempts: 3, next: success}"),
    "fine": "{type: task, command_type: notebook, command: fine.ipynb, returns: [y], next: success}",
}

PIPELINE = "dag:\n  start_at: fan\n  steps:\n    fan:\n      type: parallel\n      next: success\n" \
           "      branches:\n" + "".join(branch(n, t) for n, t in FAULTS.items()) + \
           "    success: {type: success}\n    fail: {type: fail}\n"


def seconds(attempt: dict[str, Any]) -> float:
    return (stamp(attempt["end_time"]) - stamp(attempt["start_time"])).total_seconds()


def test_each_task_fault_fails_its_step_with_the_reason_and_the_rest_go_on(tmp_path: Path) -> None:
    write_notebook(tmp_path / "exit.ipynb", "import os\nos._exit(1)")
    write_notebook(tmp_path / "slow.ipynb", "print('before the sleep')", "import time\ntime.sleep(30)")
    write_notebook(tmp_path / "badkernel.ipynb", "x = 1", kernel="no-such-kernel")
    write_notebook(tmp_path / "fine.ipynb", "y = x + 1", parameters="x = 1")
    (tmp_path / "suicide.py").write_text("import os, signal\n\n\ndef die():\n    os.kill(os.getpid(), "
                                         "signal.SIGKILL)\n")
    result = run_pipeline(load_yaml(PIPELINE), cwd=tmp_path, workers=5, run_id="faults")
    assert result.status == "FAIL"
    found = steps(result.run_log)

    def message(name: str) -> str:
        return str(found[f"fan.{name}.t"]["message"])

    assert all(s["status"] != "PROCESSING" for s in found.values())
    assert "died" in message("exit").lower(), message("exit")
    assert "SIGKILL" in message("signal"), message("signal")
    assert "worker process died" in message("worker") and "SIGKILL" in message("worker")
    assert message("timeout") == "timed out after 1 s"
    assert message("notebook timeout") == "timed out after 2 s"
    for name, limit in (("timeout", 1.0), ("notebook timeout", 2.0)):
        took = seconds(found[f"fan.{name}.t"]["attempts"][-1])
        assert limit <= took < limit + 1.0, f"{name}: killed after {took} s, the limit was {limit} s"
    # the timed-out notebook's partial output is kept
    partial = [e for e in found["fan.notebook timeout.t"]["data_catalog"] if e["name"].endswith(".ipynb")]
    assert partial and "before the sleep" in (result.catalog_path / partial[0]["name"]).read_text()
    # a kernel that cannot start: a clear message, one start per attempt, no storm of retries
    bad = found["fan.badkernel.t"]["attempts"]
    assert [a["status"] for a in bad] == ["FAIL", "FAIL"]
    assert all("no such kernel: 'no-such-kernel'" in a["message"] for a in bad), bad
    # max_attempts: every attempt recorded, in order
    assert [a["attempt_number"] for a in found["fan.always fails.t"]["attempts"]] == [1, 2, 3]
    assert all("exited with code 3" in a["message"] for a in found["fan.always fails.t"]["attempts"])
    assert [a["status"] for a in found["fan.flaky.t"]["attempts"]] == ["FAIL", "SUCCESS"]
    assert found["fan.flaky.t"]["status"] == "SUCCESS"
    # the healthy sibling finished normally despite all of the above
    assert found["fan.fine.t"]["status"] == "SUCCESS" and result.parameters["y"] == 2


def test_the_cli_timeout_is_the_default_for_tasks_without_their_own(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        dag:
          start_at: fan
          steps:
            fan:
              type: parallel
              next: success
              branches:
                default:
                  start_at: t
                  steps:
                    t: {type: task, command_type: shell, command: sleep 30, next: success}
                    success: {type: success}
                    fail: {type: fail}
                own:
                  start_at: t
                  steps:
                    t: {type: task, command_type: shell, command: sleep 2; touch own_done, timeout: 20,
                        next: success}
                    success: {type: success}
                    fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """))
    done = cli.run("run", "p.yaml", "--timeout", "1.5", "--run-id", "t", "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr
    log = read_log(tmp_path, "t")
    assert log is not None
    step = steps(log)["fan.default.t"]
    assert step["message"] == "timed out after 1.5 s"
    took = seconds(step["attempts"][-1])
    assert 1.5 <= took < 2.5, f"killed after {took} s, the limit was 1.5 s"
    assert steps(log)["fan.own.t"]["status"] == "SUCCESS"  # its own timeout wins over the default
    assert log["run_config"]["executor"]["timeout"] == 1.5


def test_a_kernel_killed_from_outside_fails_its_step_and_the_run_ends(tmp_path: Path, mark: str) -> None:
    write_notebook(tmp_path / "victim.ipynb", "import time\nopen('started', 'w').close()\ntime.sleep(60)")
    pipeline = load_yaml(textwrap.dedent("""
        dag:
          start_at: victim
          steps:
            victim: {type: task, command_type: notebook, command: victim.ipynb, next: success}
            success: {type: success}
            fail: {type: fail}
    """))
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(
        run_pipeline(pipeline, cwd=tmp_path, workers=1, run_id="victim")), daemon=True)
    thread.start()
    wait_for("the notebook to start", (tmp_path / "started").exists)
    # the process table: this test's only kernel is the one running the notebook (one worker)
    found = wait_for("the kernel in the process table", lambda: kernels(mark))
    assert len(found) == 1, found
    os.kill(found[0].pid, signal.SIGKILL)
    thread.join(GUARD)
    assert not thread.is_alive() and results
    step = steps(results[0].run_log)["victim"]
    assert results[0].status == "FAIL" and step["status"] == "FAIL"
    assert "died" in step["message"].lower(), step["message"]


def test_a_kernel_that_dies_at_start_fails_clearly_after_a_bounded_number_of_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import sys

    data = tmp_path / "jupyter-data"
    spec = data / "kernels" / "dies-at-start"
    spec.mkdir(parents=True)
    starts = tmp_path / "starts"
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)",
                 "{connection_file}"],
        "display_name": "dies at start", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    write_notebook(tmp_path / "nb.ipynb", "x = 1", kernel="dies-at-start")
    pipeline = load_yaml(textwrap.dedent("""
        dag:
          start_at: t
          steps:
            t: {type: task, command_type: notebook, command: nb.ipynb, next: success}
            success: {type: success}
            fail: {type: fail}
    """))
    result = run_pipeline(pipeline, cwd=tmp_path, workers=1, warm_kernels=False, run_id="dies")
    attempts = steps(result.run_log)["t"]["attempts"]
    assert [a["status"] for a in attempts] == ["FAIL"]
    assert "kernel 'dies-at-start' did not start after 3 attempts" in attempts[0]["message"], attempts
    assert "died" in attempts[0]["message"].lower()
    assert len(starts.read_text()) == 3  # a few starts for one attempt: bounded, no storm
