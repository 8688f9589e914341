"""Ctrl-C in the CLI: the run is cancelled within 2 s, its tasks killed, partial notebooks kept, exit 130.

SIGINT goes to the CLI's whole process group, as a terminal sends it; SIGTERM
(exit 143) to the CLI alone, as a service manager or ``kill`` sends it.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from .conftest import Cli, read_log, stamp, steps, wait_for, write_notebook

pytestmark = pytest.mark.slow

PIPELINE = textwrap.dedent("""
    dag:
      start_at: fan
      steps:
        fan:
          type: parallel
          next: after
          branches:
            a:
              start_at: nb
              steps:
                nb: {type: task, command_type: notebook, command: slow.ipynb, next: success}
                success: {type: success}
                fail: {type: fail}
            b:
              start_at: sh
              steps:
                sh: {type: task, command_type: shell, command: echo $$ > sh_pid; sleep 60, next: success}
                success: {type: success}
                fail: {type: fail}
        after: {type: task, command_type: shell, command: touch after_ran, next: success}
        success: {type: success}
        fail: {type: fail}
""")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c to the group", "sigterm to the cli"])
def test_a_signal_cancels_the_run_kills_tasks_keeps_partial_notebooks_and_exits_128_plus_it(
        cli: Cli, tmp_path: Path, signum: signal.Signals, code: int) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    write_notebook(tmp_path / "slow.ipynb", "print('first cell done')",
                   "import time\nopen('nb_started', 'w').close()\ntime.sleep(60)")
    proc = cli.start("run", "pipeline.yaml", "--run-id", "stopme", "--quiet")

    def running() -> bool:
        log = read_log(tmp_path, "stopme")
        return bool(log and (tmp_path / "nb_started").exists() and (tmp_path / "sh_pid").exists()
                    and steps(log).get("fan.a.nb", {}).get("status") == "PROCESSING")

    wait_for("both tasks running", running)
    shell_pid = int((tmp_path / "sh_pid").read_text())
    sent = datetime.now()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # a terminal's Ctrl-C goes to the whole foreground group
    else:
        os.kill(proc.pid, signum)  # a service manager's stop goes to the main process
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err
    assert "retry:   magnus-jupyter retry stopme" in out

    log = read_log(tmp_path, "stopme")
    assert log is not None
    assert log["status"] == "FAIL" and log["message"] == "cancelled"
    found = steps(log)
    for name in ("fan.a.nb", "fan.b.sh"):
        assert found[name]["status"] == "FAIL"
        assert "cancelled" in found[name]["message"]
        ended = stamp(found[name]["attempts"][-1]["end_time"])
        assert (ended - sent).total_seconds() < 2.0, f"{name} was stopped {ended - sent} after Ctrl-C"
    assert "after" not in found and not (tmp_path / "after_ran").exists()
    assert all(s["status"] != "PROCESSING" for s in found.values())
    assert not psutil.pid_exists(shell_pid) or psutil.Process(shell_pid).status() == psutil.STATUS_ZOMBIE
    # the partial executed notebook is kept, in the catalog, with the output of the cell that ran
    entries = [e for e in found["fan.a.nb"]["data_catalog"] if e["name"].endswith(".ipynb")]
    assert entries, found["fan.a.nb"]
    partial = json.loads((tmp_path / ".catalog" / entries[0]["catalog_relative_path"]).read_text())
    texts = ["".join(o.get("text", "")) for c in partial["cells"] for o in c.get("outputs", [])]
    assert "first cell done\n" in texts


def test_a_cancelled_run_is_retried_with_a_fixed_pipeline_file(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    write_notebook(tmp_path / "slow.ipynb", "print('first cell done')",
                   "import time\nopen('nb_started', 'w').close()\ntime.sleep(60)")
    proc = cli.start("run", "pipeline.yaml", "--run-id", "stopped", "--quiet")
    wait_for("the notebook to start", (tmp_path / "nb_started").exists)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    # the user makes both tasks quick, in a new file, and retries the cancelled run with it
    (tmp_path / "fixed.yaml").write_text(PIPELINE.replace("echo $$ > sh_pid; sleep 60", "echo quick"))
    write_notebook(tmp_path / "slow.ipynb", "print('first cell done')")
    again = cli.run("retry", "stopped", "fixed.yaml", "--run-id", "resumed", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    log = read_log(tmp_path, "resumed")
    assert log is not None and log["status"] == "SUCCESS" and log["original_run_id"] == "stopped"
    assert log["run_config"]["pipeline_file"] == str(tmp_path / "fixed.yaml")
    assert (tmp_path / "after_ran").exists()
