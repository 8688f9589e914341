"""The run history of runs that are not over: a real orchestrator still running, and one SIGKILLed.

A run still going is listed as RUNNING with its progress and is never removed;
once its orchestrator is killed the same PROCESSING log lists as ABANDONED and
can be removed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from .conftest import Cli, marked, read_log, steps, wait_for

PIPELINE = """\
dag:
  start_at: first
  steps:
    first: {type: task, command_type: shell, command: "true", next: waits}
    waits:
      type: task
      command_type: shell
      command: "touch started; while [ ! -f go ]; do sleep 0.1; done"
      next: after
    after: {type: stub, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _waiting(tmp_path: Path, run_id: str) -> bool:
    try:
        log = read_log(tmp_path, run_id)
    except ValueError:  # the run log's name is reserved by an empty file before its first write
        return False
    return (log is not None and (tmp_path / "started").exists()
            and steps(log).get("first", {}).get("status") == "SUCCESS")


def _listed(cli: Cli) -> dict[str, dict[str, object]]:
    result = cli.run("runs", "--json")
    assert result.returncode == 0, result.stderr
    return {r["run_id"]: r for r in json.loads(result.stdout)}


def test_a_running_run_is_listed_with_progress_and_never_removed(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "go").touch()
    done = cli.run("run", "pipeline.yaml", "--run-id", "old", "--quiet")
    assert done.returncode == 0, done.stderr
    (tmp_path / "go").unlink()
    (tmp_path / "started").unlink()
    proc = cli.start("run", "pipeline.yaml", "--run-id", "live", "--quiet")
    try:
        wait_for("the run to reach its waiting task", lambda: _waiting(tmp_path, "live"))
        live = _listed(cli)["live"]
        assert live["status"] == "RUNNING" and live["log_status"] == "PROCESSING"
        assert (live["done"], live["total"]) == (1, 3)  # first done; waits and after to come
        table = cli.run("runs")
        assert any(line.split()[:3] == ["live", "RUNNING", "1/3"] for line in table.stdout.splitlines())

        refused = cli.run("runs", "rm", "live", "old")
        assert refused.returncode == 2 and "still running" in refused.stderr and "live" in refused.stderr
        assert refused.stderr.count("\n") == 1 and "nothing was removed" in refused.stderr
        assert (tmp_path / ".run_log_store" / "old.json").exists()  # not even the other one
        forced = cli.run("runs", "rm", "live", "--force")  # --force never covers a live run
        assert forced.returncode == 2 and "still running" in forced.stderr
        pruned = cli.run("runs", "prune", "--keep", "0")
        assert pruned.returncode == 0, pruned.stderr
        assert "removed old:" in pruned.stdout and "kept live: it is still running" in pruned.stdout
        assert (tmp_path / ".run_log_store" / "live.json").exists()
        assert (tmp_path / ".catalog" / "live").is_dir()

        drawn = cli.run("timeline", "live", "-o", "live.svg")
        assert drawn.returncode == 0, drawn.stderr
        svg = (tmp_path / "live.svg").read_text()
        assert "RUNNING" in svg and "running for about" in svg
    finally:
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, out + err
    assert _listed(cli)["live"]["status"] == "SUCCESS"
    removed = cli.run("runs", "rm", "live")
    assert removed.returncode == 0 and "removed live:" in removed.stdout, removed.stderr
    assert not (tmp_path / ".run_log_store" / "live.json").exists()


def test_a_run_whose_orchestrator_was_killed_is_abandoned_not_running(cli: Cli, tmp_path: Path,
                                                                      mark: str) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    proc = cli.start("run", "pipeline.yaml", "--run-id", "killed", "--quiet")
    try:
        wait_for("the run to reach its waiting task", lambda: _waiting(tmp_path, "killed"))
        assert _listed(cli)["killed"]["status"] == "RUNNING"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the orchestrator only
        proc.communicate()
    wait_for("the orphaned workers to exit", lambda: not marked(mark), guard=15)

    log = read_log(tmp_path, "killed")
    assert log is not None and log["status"] == "PROCESSING"  # the log alone still says so
    row = _listed(cli)["killed"]
    assert row["status"] == "ABANDONED" and row["log_status"] == "PROCESSING"
    assert f"pid {proc.pid}" in str(row["note"]) and "gone" in str(row["note"])
    table = cli.run("runs").stdout
    assert any(line.split()[:2] == ["killed", "ABANDONED"] for line in table.splitlines())
    shown = cli.run("runs", "show", "killed")
    assert "status:    ABANDONED" in shown.stdout, shown.stdout
    drawn = cli.run("timeline", "killed", "-o", "killed.svg")
    assert drawn.returncode == 0 and "ABANDONED" in (tmp_path / "killed.svg").read_text()

    removed = cli.run("runs", "rm", "killed")
    assert removed.returncode == 0, removed.stderr
    assert not (tmp_path / ".run_log_store" / "killed.json").exists()
    assert not (tmp_path / ".catalog" / "killed").exists()
