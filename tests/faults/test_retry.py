"""``magnus-jupyter retry``: after an ordinary failure, and after the orchestrator was SIGKILLed.

Every task appends its name to ``calls.txt``, so "reused, not run again" is
checked by what actually ran, not by a status in the log.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path

import pytest

from magnus_jupyter.executor.retry import retry_run

from .conftest import Cli, kernels, marked, read_log, steps, wait_for, write_notebook

pytestmark = pytest.mark.slow

FAILING = textwrap.dedent("""
    dag:
      start_at: prepare
      steps:
        prepare:
          type: task
          command_type: shell
          command: >-
            echo prepare >> calls.txt && echo "data $MAGNUS_PRM_seed" > data.txt
            && export MAGNUS_PRM_items='[1, 2, 3]'
          catalog: {put: [data.txt]}
          next: fan
        fan:
          type: parallel
          next: per item
          on_failure: per item
          branches:
            good:
              start_at: g
              steps:
                g: {type: task, command_type: shell, command: echo good >> calls.txt, next: success}
                success: {type: success}
                fail: {type: fail}
            broken:
              start_at: nb
              steps:
                nb: {type: task, command_type: notebook, command: fixme.ipynb, returns: [answer],
                     next: success}
                success: {type: success}
                fail: {type: fail}
        per item:
          type: map
          iterate_on: items
          iterate_as: item
          next: finish
          branch:
            start_at: work
            steps:
              work:
                type: task
                command_type: shell
                command: echo "item $MAGNUS_PRM_item" >> calls.txt && test "$MAGNUS_PRM_item" != 2 -o -f fixed
                next: success
              success: {type: success}
              fail: {type: fail}
        finish:
          type: task
          command_type: shell
          command: echo finish >> calls.txt && grep -q "data 7" data.txt && test "$MAGNUS_PRM_answer" = 42
          catalog: {get: [data.txt]}
          next: success
        success: {type: success}
        fail: {type: fail}
""")


def calls(folder: Path) -> list[str]:
    return (folder / "calls.txt").read_text().splitlines()


def test_retry_after_a_failure_reuses_succeeded_steps_in_branches_and_map_iterations(
        cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(FAILING)
    write_notebook(tmp_path / "fixme.ipynb", "raise RuntimeError('not fixed yet')")
    first = cli.run("run", "pipeline.yaml", "--run-id", "first", "--param", "seed=7", "--quiet")
    assert first.returncode == 1, first.stdout + first.stderr
    old = read_log(tmp_path, "first")
    assert old is not None and old["status"] == "FAIL"
    assert steps(old)["fan.broken.nb"]["status"] == "FAIL"
    assert steps(old)["per item.2.work"]["status"] == "FAIL"
    assert sorted(calls(tmp_path)) == ["good", "item 1", "item 2", "item 3", "prepare"]

    # the user fixes the notebook and the data item 2 needed; data.txt is gone from the folder:
    # the reused 'prepare' puts it back, as running it would have, and the catalog has it too
    write_notebook(tmp_path / "fixme.ipynb", "answer = 42")
    (tmp_path / "fixed").touch()
    (tmp_path / "data.txt").unlink()
    (tmp_path / "calls.txt").write_text("")
    again = cli.run("retry", "first", "--quiet")  # the pipeline file comes from the old run log
    assert again.returncode == 0, again.stdout + again.stderr
    new_id = again.stdout.splitlines()[0].removeprefix("run_id: ")
    assert new_id != "first"
    assert "retry of: first" in again.stdout
    # what succeeded with the same inputs is not run again; items 1 and 3 succeeded in the first run
    # too, but (reached through on_failure) without the 'answer' the fixed branch now gives them
    assert sorted(calls(tmp_path)) == ["finish", "item 1", "item 2", "item 3"]
    assert (tmp_path / "data.txt").read_text() == "data 7\n"

    new = read_log(tmp_path, new_id)
    assert new is not None and new["status"] == "SUCCESS"
    assert new["original_run_id"] == "first" and new["use_cached"] is True
    found = steps(new)
    for name in ("prepare", "fan.good.g"):
        assert found[name]["status"] == "SUCCESS"
        assert found[name]["reused_from"] == "first" and found[name]["mock"] is True
        assert found[name]["attempts"] == steps(old)[name]["attempts"]  # the old attempt, as it was
    for name in ("fan.broken.nb", "per item.1.work", "per item.2.work", "per item.3.work", "finish"):
        assert found[name]["status"] == "SUCCESS" and "reused_from" not in found[name]
    assert found["per item.1.work"]["rerun_reason"] == "parameter 'answer' added: 42"
    assert found["fan.broken.nb"]["rerun_reason"] == "no earlier successful run"
    assert found["finish"]["rerun_reason"] == "no earlier run"
    # the reused step's catalog file now lives in the new run's catalog, and its log entry says so
    put = [e for e in found["prepare"]["data_catalog"] if e["name"] == "data.txt"][0]
    assert put["catalog_relative_path"] == f"{new_id}{os.sep}data.txt"
    assert (tmp_path / ".catalog" / new_id / "data.txt").read_text() == "data 7\n"
    # parameters: the reused step's update (the map list) and the seed of the first run
    assert new["parameters"]["items"] == [1, 2, 3] and new["parameters"]["seed"] == 7
    assert new["parameters"]["answer"] == 42
    # the old run is left as it was
    assert read_log(tmp_path, "first") == old


def test_retry_api_takes_a_pipeline_and_new_parameters_and_refuses_unknown_runs(tmp_path: Path) -> None:
    from magnus_jupyter.errors import ExecutionError
    from magnus_jupyter.executor.engine import run_pipeline
    from magnus_jupyter.yaml_io import load_yaml

    pipeline = load_yaml(textwrap.dedent("""
        dag:
          start_at: a
          steps:
            a: {type: task, command_type: shell, command: echo a >> calls.txt, next: b}
            b: {type: task, command_type: shell, command: 'echo b >> calls.txt && test "$MAGNUS_PRM_ok" = 1',
                next: success}
            success: {type: success}
            fail: {type: fail}
    """))
    first = run_pipeline(pipeline, cwd=tmp_path, parameters={"ok": 0}, workers=1, run_id="one")
    assert first.status == "FAIL"
    with pytest.raises(ExecutionError, match="no run log"):
        retry_run("nope", cwd=tmp_path)
    # no pipeline given and none in a file: the YAML recorded in the old run log (an in-kernel run)
    second = retry_run("one", cwd=tmp_path, parameters={"ok": 1}, workers=1, new_run_id="two")
    assert second.status == "SUCCESS" and second.run_id == "two"
    # 'a' succeeded, but with ok=0: it runs again, as every task that receives a changed parameter
    assert calls(tmp_path) == ["a", "b", "a", "b"]
    assert second.run_log["steps"]["a"]["rerun_reason"] == "parameter 'ok' changed: 0 -> 1"
    assert second.run_log["run_config"]["pipeline_file"] == ""
    with pytest.raises(ExecutionError, match="already exists"):
        retry_run("one", pipeline, cwd=tmp_path, workers=1, new_run_id="two")


KILLED = textwrap.dedent("""
    dag:
      start_at: fan
      steps:
        fan:
          type: parallel
          next: after
          branches:
            quick:
              start_at: q1
              steps:
                q1: {type: task, command_type: shell, command: echo q1 >> calls.txt, next: q2}
                q2: {type: task, command_type: notebook, command: quick.ipynb, returns: [value],
                     next: success}
                success: {type: success}
                fail: {type: fail}
            slow:
              start_at: s
              steps:
                s:
                  type: task
                  command_type: shell
                  command: echo s >> calls.txt; while [ ! -f go ]; do sleep 0.1; done
                  next: success
                success: {type: success}
                fail: {type: fail}
            hang:
              start_at: nb
              steps:
                nb: {type: task, command_type: notebook, command: hang.ipynb, next: success}
                success: {type: success}
                fail: {type: fail}
        after:
          type: task
          command_type: shell
          command: echo after >> calls.txt && test "$MAGNUS_PRM_value" = 5
          next: success
        success: {type: success}
        fail: {type: fail}
""")


def test_sigkill_of_the_orchestrator_leaves_a_whole_log_no_processes_and_retry_finishes(
        cli: Cli, tmp_path: Path, mark: str) -> None:
    (tmp_path / "pipeline.yaml").write_text(KILLED)
    write_notebook(tmp_path / "quick.ipynb", "value = 5")
    write_notebook(tmp_path / "hang.ipynb",
                   "import os, time\nopen('nb_started', 'w').close()\n"
                   "while not os.path.exists('go'):\n    time.sleep(0.1)")
    proc = cli.start("run", "pipeline.yaml", "--run-id", "killed", "--workers", "3", "--quiet")

    def ready() -> bool:
        log = read_log(tmp_path, "killed")
        if log is None or not (tmp_path / "nb_started").exists():
            return False
        found = steps(log)
        return (found.get("fan.quick.q2", {}).get("status") == "SUCCESS"
                and found.get("fan.slow.s", {}).get("status") == "PROCESSING")

    wait_for("q2 done while s and the notebook still run", ready)
    assert kernels(mark), "the hanging notebook's kernel should be running"
    early = cli.run("retry", "killed", "--quiet")  # not while its orchestrator lives
    assert early.returncode == 2 and "is still running" in early.stderr, early.stdout + early.stderr
    os.kill(proc.pid, signal.SIGKILL)  # the orchestrator only, as the OOM killer would
    proc.communicate()

    log = read_log(tmp_path, "killed")  # whole JSON, and it holds every step that had finished
    assert log is not None and log["status"] == "PROCESSING"
    found = steps(log)
    assert found["fan.quick.q1"]["status"] == "SUCCESS" and found["fan.quick.q2"]["status"] == "SUCCESS"
    assert found["fan.quick.q2"]["parameter_updates"] == {"value": 5}
    assert found["fan.slow.s"]["status"] == "PROCESSING"
    # the dead orchestrator's workers, shell tasks and kernels notice and go, soon
    wait_for("the orphaned workers and kernels to exit", lambda: not marked(mark), guard=10)

    (tmp_path / "go").touch()
    (tmp_path / "calls.txt").write_text("")
    again = cli.run("retry", "killed", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(calls(tmp_path)) == ["after", "s"]  # q1 and q2 were reused
    new_id = again.stdout.splitlines()[0].removeprefix("run_id: ")
    new = read_log(tmp_path, new_id)
    assert new is not None and new["status"] == "SUCCESS" and new["original_run_id"] == "killed"
    assert steps(new)["fan.quick.q2"]["reused_from"] == "killed"
    # the reused notebook step's executed notebook was copied into the new run's catalog
    executed = [e for e in steps(new)["fan.quick.q2"]["data_catalog"] if e["name"].endswith(".ipynb")]
    assert executed and all((tmp_path / ".catalog" / e["catalog_relative_path"]).is_file() for e in executed)
    assert json.loads((tmp_path / ".catalog" / executed[0]["catalog_relative_path"]).read_text())["cells"]
