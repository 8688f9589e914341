"""Incremental runs on real worker processes: --reuse and its rerun_reason kinds, cache: false, --from
and --only, retry through the same mechanism, why, and bad input (one line, exit 2, nothing run)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from magnus_jupyter.errors import ExecutionError
from magnus_jupyter.executor import events as ev
from magnus_jupyter.executor.engine import RunResult, run_pipeline
from magnus_jupyter.executor.retry import retry_run
from magnus_jupyter.executor.runlog import iter_steps
from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.yaml_io import load_yaml

PIPELINE = """
dag:
  start_at: a
  steps:
    a:
      type: task
      command_type: shell
      command: echo a >> calls.txt && cp data/raw.csv out.txt
      inputs: [data/*.csv]
      catalog: {put: [out.txt]}
      next: b
    b:
      type: task
      command_type: shell
      command: echo b >> calls.txt && cat out.txt > b.txt
      catalog: {get: [out.txt], put: [b.txt]}
      next: c
    c:
      type: task
      command_type: python
      command: steps.c
      next: side
    side:
      type: task
      command_type: shell
      command: echo side >> calls.txt
      cache: false
      next: success
    success: {type: success}
    fail: {type: fail}
"""

STEPS = "def c(alpha):\n    open('calls.txt', 'a').write('c\\n')\n    return {'beta': alpha * 2}\n"


@pytest.fixture(scope="module")
def slots() -> Iterator[TaskSlots]:
    with TaskSlots(2, warm_kernels=False) as pool:
        yield pool


class Folder:
    """A run folder: its pipeline, its files, and what ran in each run (calls.txt)."""

    def __init__(self, path: Path, slots: TaskSlots, text: str = PIPELINE) -> None:
        self.path = path
        self.slots = slots
        self.text = text
        (path / "data").mkdir()
        (path / "data" / "raw.csv").write_text("x\n1\n")
        (path / "steps.py").write_text(STEPS)

    def run(self, **options: Any) -> RunResult:
        (self.path / "calls.txt").write_text("")
        options.setdefault("parameters", {"alpha": 1})
        self.events: list[ev.Event] = []
        result = run_pipeline(load_yaml(textwrap.dedent(self.text)), cwd=self.path, slots=self.slots,
                              workers=2, subscribers=[self.events.append], **options)
        self.calls = (self.path / "calls.txt").read_text().split()
        return result


def tasks(result: RunResult) -> dict[str, dict[str, Any]]:
    return {s["internal_name"]: s for s in iter_steps(result.run_log) if s["step_type"] == "task"}


def reasons(result: RunResult) -> dict[str, str]:
    return {name: step.get("rerun_reason") or f"reused from {step['reused_from']}"
            for name, step in tasks(result).items()}


@pytest.fixture
def folder(tmp_path: Path, slots: TaskSlots) -> Folder:
    return Folder(tmp_path, slots)


def test_reuse_runs_what_changed_and_names_why(folder: Folder) -> None:
    first = folder.run(reuse=True)
    assert first.ok and folder.calls == ["a", "b", "c", "side"]
    assert set(reasons(first).values()) == {"no earlier run", "cache: false"}

    same = folder.run(reuse=True)
    assert same.ok and folder.calls == ["side"] and same.parameters["beta"] == 2
    assert reasons(same) == {"a": f"reused from {first.run_id}", "b": f"reused from {first.run_id}",
                             "c": f"reused from {first.run_id}", "side": "cache: false"}
    reused = [e for e in folder.events if isinstance(e, ev.StepFinished) and e.reused_from]
    assert sorted(e.internal_name for e in reused) == ["a", "b", "c"]
    assert all(e.message == f"reused from run {first.run_id}" for e in reused)
    started = {e.internal_name for e in folder.events if isinstance(e, ev.AttemptStarted)}
    assert started == {"side"}  # a reused task starts no attempt
    assert (same.catalog_path / "out.txt").read_text() == "x\n1\n"  # its catalog files came along
    assert tasks(same)["a"]["mock"] is True

    changed = folder.run(reuse=True, parameters={"alpha": 2})  # every task receives alpha
    assert reasons(changed)["c"] == "parameter 'alpha' changed: 1 -> 2" and changed.parameters["beta"] == 4

    (folder.path / "data" / "raw.csv").write_text("x\n2\n")
    edited = folder.run(reuse=True, parameters={"alpha": 2})
    assert reasons(edited) == {"a": "input data/raw.csv changed", "b": "catalog file out.txt changed",
                               "c": f"reused from {changed.run_id}", "side": "cache: false"}

    (folder.path / "data" / "raw.csv").write_text("x\n1\n")  # back as it was in the first runs
    back = folder.run(reuse=True, parameters={"alpha": 2})
    assert folder.calls == ["side"]  # every earlier run is a candidate, not only the latest
    assert [tasks(back)[n]["reused_from"] for n in "abc"] == [changed.run_id, changed.run_id, edited.run_id]

    folder.text = PIPELINE.replace("cat out.txt > b.txt", "cat out.txt out.txt > b.txt")
    (folder.path / "steps.py").write_text(STEPS.replace("alpha * 2", "alpha * 3"))
    code = folder.run(reuse=True, parameters={"alpha": 2})
    assert reasons(code)["b"] == "command changed" and reasons(code)["c"] == "function changed: steps.c"
    (folder.path / "steps.py").write_text(STEPS.replace("alpha * 2", "alpha * 3") + "\nLIMIT = 1\n")
    assert reasons(folder.run(reuse=True, parameters={"alpha": 2}))["c"] == "module changed: steps.py"


def test_reuse_says_why_an_earlier_result_could_not_serve(folder: Folder) -> None:
    first = folder.run()  # without --reuse: nothing changes (magnus), but fingerprints are taken
    assert "rerun_reason" not in tasks(first)["a"] and tasks(first)["a"]["fingerprint"]["inputs"]
    (first.catalog_path / "out.txt").unlink()  # someone cleaned the catalog
    gone = folder.run(reuse=True)
    assert reasons(gone)["a"] == (f"its result in run {first.run_id} cannot be reused: its catalog file "
                                  f"{first.catalog_path / 'out.txt'} is gone")
    assert any("'a' succeeded in run" in w and "runs again" in w for w in gone.warnings)

    log = json.loads(gone.run_log_path.read_text())  # an older run: no fingerprints, another numpy
    for step in iter_steps(log):
        if step["internal_name"] == "b":
            del step["fingerprint"]
        elif step["internal_name"] == "c":
            step["fingerprint"] = {**step["fingerprint"], "digest": "older", "environment": "older"}
    environment = log["run_config"]["environment"]
    environment["distributions"]["numpy"] = "1.26.4"
    gone.run_log_path.write_text(json.dumps(log))
    for other in folder.path.joinpath(".run_log_store").glob("*.json"):
        if other != gone.run_log_path:
            other.unlink()
    now = folder.run(reuse=True)
    installed = __import__("magnus_jupyter.executor.fingerprint", fromlist=["x"]).read_environment()
    version = installed["distributions"].get("numpy")
    assert reasons(now)["b"] == f"run {gone.run_id} recorded no fingerprint"
    assert reasons(now)["c"] == ("environment changed: numpy 1.26.4 -> " + version if version
                                 else "environment changed: numpy 1.26.4 removed")

    (folder.path / "sub").mkdir()
    failing = Folder(folder.path / "sub", folder.slots, PIPELINE.replace("echo b >> calls.txt", "false"))
    failing.run(reuse=True)
    assert reasons(failing.run(reuse=True))["b"] == "no earlier successful run"


def test_a_map_value_that_changes_reruns_one_iteration_and_parallel_siblings_are_reused(
        tmp_path: Path, slots: TaskSlots) -> None:
    text = """
    dag:
      start_at: fan
      steps:
        fan:
          type: parallel
          next: m
          branches:
            x: {start_at: x1, steps: {x1: {type: task, command_type: shell, next: success,
                command: 'echo x1 >> calls.txt && export MAGNUS_PRM_fx=1'},
                success: {type: success}, fail: {type: fail}}}
            y: {start_at: y1, steps: {y1: {type: task, command_type: shell, next: success,
                command: 'echo y1 >> calls.txt && export MAGNUS_PRM_fy=2'},
                success: {type: success}, fail: {type: fail}}}
        m:
          type: map
          iterate_on: items
          iterate_as: item
          next: success
          branch:
            start_at: w
            steps:
              w: {type: task, command_type: shell, command: 'echo w$MAGNUS_PRM_item >> calls.txt',
                  next: success}
              success: {type: success}
              fail: {type: fail}
        success: {type: success}
        fail: {type: fail}
    """
    folder = Folder(tmp_path, slots, text)
    folder.run(parameters={"items": [1, 2, 3]})
    folder.run(parameters={"items": [1, 2, 3]}, reuse=True)
    assert folder.calls == []
    again = folder.run(parameters={"items": [1, 5, 3]}, reuse=True)
    # x1 and y1 receive the list; the map's iterations are told apart by their own value only
    assert sorted(folder.calls) == ["w5", "x1", "y1"]
    assert reasons(again)["m.5.w"] == "no earlier run"
    assert reasons(again)["fan.x.x1"] == "parameter 'items' changed: [1,2,3] -> [1,5,3]"
    assert again.parameters == {"items": [1, 5, 3], "fx": 1, "fy": 2}


PARTS = """
dag:
  start_at: a
  steps:
    a: {type: task, command_type: shell, command: echo a >> calls.txt, next: fan}
    fan:
      type: parallel
      next: m
      branches:
        x:
          start_at: x1
          steps:
            x1: {type: task, command_type: shell, command: echo x1 >> calls.txt, next: x2}
            x2: {type: task, command_type: shell, command: echo x2 >> calls.txt, next: success}
            success: {type: success}
            fail: {type: fail}
        y:
          start_at: y1
          steps:
            y1: {type: task, command_type: shell, command: echo y1 >> calls.txt, next: success}
            success: {type: success}
            fail: {type: fail}
    m:
      type: map
      iterate_on: items
      iterate_as: item
      next: z
      branch:
        start_at: w
        steps:
          w: {type: task, command_type: shell, command: 'echo w$MAGNUS_PRM_item >> calls.txt', next: success}
          success: {type: success}
          fail: {type: fail}
    z: {type: task, command_type: shell, command: echo z >> calls.txt, next: success}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.mark.parametrize(("options", "ran"), [
    ({"from_step": "fan.x.x2"}, ["x2", "w1", "w2", "w3", "z"]),
    ({"from_step": "x2"}, ["x2", "w1", "w2", "w3", "z"]),  # a name only one step has
    ({"from_step": "fan"}, ["x1", "x2", "y1", "w1", "w2", "w3", "z"]),
    ({"from_step": "m.2.w"}, ["w2", "z"]),  # one iteration; its siblings are neither before nor after
    ({"from_step": "m.{item}.w"}, ["w1", "w2", "w3", "z"]),
    ({"from_step": "z"}, ["z"]),
    ({"only": ["a", "z"]}, ["a", "z"]),
    ({"only": ["fan.y"]}, None),  # a branch is not a step: refused (below)
    ({"only": ["fan"]}, ["x1", "x2", "y1"]),
    ({"only": ["m.3.w", "x1"]}, ["x1", "w3"]),
])
def test_from_and_only_run_the_selected_steps_and_reuse_the_rest(
        tmp_path: Path, slots: TaskSlots, options: dict[str, Any], ran: list[str] | None) -> None:
    folder = Folder(tmp_path, slots, PARTS)
    first = folder.run(parameters={"items": [1, 2, 3]})
    if ran is None:
        with pytest.raises(ExecutionError, match="no such step"):
            folder.run(parameters={"items": [1, 2, 3]}, **options)
        return
    result = folder.run(parameters={"items": [1, 2, 3]}, **options)
    assert result.ok and sorted(folder.calls) == sorted(ran)
    flag = "--from" if "from_step" in options else "--only"
    for name, step in tasks(result).items():
        if step.get("reused_from"):
            assert step["reused_from"] == first.run_id
        else:
            assert step["rerun_reason"].startswith(f"asked to run ({flag} "), name


def test_from_reuses_what_comes_before_even_if_it_changed_and_warns(tmp_path: Path, slots: TaskSlots) -> None:
    folder = Folder(tmp_path, slots, PARTS)
    first = folder.run(parameters={"items": [1]})
    folder.text = PARTS.replace("echo a >>", "echo A >>")
    result = folder.run(parameters={"items": [1]}, from_step="z")
    assert folder.calls == ["z"] and tasks(result)["a"]["reused_from"] == first.run_id
    assert f"step 'a' reused from run {first.run_id} (--from 'z') although command changed" in result.warnings
    # the reused log keeps the fingerprint its result belongs to: a later --reuse runs 'a' again
    assert tasks(result)["a"]["fingerprint"] == tasks(first)["a"]["fingerprint"]
    folder.run(parameters={"items": [1]}, reuse=True)
    assert folder.calls == ["A"]


def test_retry_is_reuse_restricted_to_the_old_run(tmp_path: Path, slots: TaskSlots) -> None:
    text = PIPELINE.replace("echo side >> calls.txt", "echo side >> calls.txt && test -f fixed")
    folder = Folder(tmp_path, slots, text)
    first = folder.run()
    assert not first.ok and folder.calls == ["a", "b", "c", "side"]
    other = folder.run(parameters={"alpha": 5})  # a newer run: retry does not take results from it
    (folder.path / "fixed").touch()
    (folder.path / "steps.py").write_text(STEPS + "\n# edited after the run\n")  # c succeeded, then changed
    (folder.path / "calls.txt").write_text("")
    again = retry_run(first.run_id, load_yaml(textwrap.dedent(text)), cwd=folder.path, slots=slots,
                      workers=2)
    assert again.ok and (folder.path / "calls.txt").read_text().split() == ["c", "side"]
    assert reasons(again) == {"a": f"reused from {first.run_id}", "b": f"reused from {first.run_id}",
                              "c": "module changed: steps.py", "side": "cache: false"}
    assert other.run_id not in json.dumps(again.run_log)

    log = json.loads(first.run_log_path.read_text())  # a run logged before fingerprints (or by magnus)
    for step in iter_steps(log):
        step.pop("fingerprint", None)
    first.run_log_path.write_text(json.dumps(log))
    (folder.path / "calls.txt").write_text("")
    legacy = retry_run(first.run_id, load_yaml(textwrap.dedent(text)), cwd=folder.path, slots=slots,
                       workers=2)
    assert legacy.ok and (folder.path / "calls.txt").read_text().split() == ["side"]  # reused by name


def test_a_notebook_reused_comes_with_its_executed_notebook_and_an_edit_names_its_cell(
        tmp_path: Path, slots: TaskSlots) -> None:
    cells = [new_code_cell("n = 1", metadata={"tags": ["parameters"]}), new_code_cell("m = n * 10")]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.write(nb, tmp_path / "nb.ipynb")
    text = """
    dag:
      start_at: nb
      steps:
        nb: {type: task, command_type: notebook, command: nb.ipynb, returns: [m],
             notebook_output_path: out/nb_copy.ipynb, next: success}
        success: {type: success}
        fail: {type: fail}
    """
    folder = Folder(tmp_path, slots, text)
    first = folder.run(parameters={"n": 2})
    assert first.parameters["m"] == 20
    (tmp_path / "out" / "nb_copy.ipynb").unlink()
    again = folder.run(parameters={"n": 2}, reuse=True)
    assert tasks(again)["nb"]["reused_from"] == first.run_id and again.parameters["m"] == 20
    executed = nbformat.read(again.catalog_path / "nb_out.ipynb", as_version=4)
    assert executed.cells[-1].outputs == [] or "20" in json.dumps(executed.cells)  # the old run's notebook
    assert (tmp_path / "out" / "nb_copy.ipynb").is_file()  # published again, as a run would have
    nb.cells[1].source = "m = n * 100"
    nbformat.write(nb, tmp_path / "nb.ipynb")
    edited = folder.run(parameters={"n": 2}, reuse=True)
    assert reasons(edited)["nb"] == "notebook changed: cell 2" and edited.parameters["m"] == 200


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=120, cwd=folder)


def test_the_command_line_reuses_prints_why_and_explains(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.csv").write_text("x\n1\n")
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    first = cli(tmp_path, "run", "p.yaml", "--param", "alpha=1", "--run-id", "one", "--quiet")
    assert first.returncode == 0, first.stderr
    (tmp_path / "data" / "raw.csv").write_text("x\n2\n")
    second = cli(tmp_path, "run", "p.yaml", "--param", "alpha=1", "--run-id", "two", "--quiet", "--reuse")
    assert second.returncode == 0, second.stderr
    assert "reused: 1 task; ran: 3" in second.stdout
    assert "  a: input data/raw.csv changed" in second.stdout and "  side: cache: false" in second.stdout

    why = cli(tmp_path, "why", "two", "b")
    assert why.returncode == 0, why.stderr
    lines = why.stdout.splitlines()
    assert lines[0] == "b in run two: SUCCESS, ran (catalog file out.txt changed)"
    assert any(line.startswith("  catalog      out.txt ") for line in lines)
    assert lines[-2:] == ["compared with run one, the nearest earlier success:",
                          "  catalog file out.txt changed"]
    reused = cli(tmp_path, "why", "two", "c").stdout.splitlines()
    assert reused[-1] == "reused from run one: the fingerprint above is the one its result was made with"
    assert "no earlier successful run" in cli(tmp_path, "why", "one", "a").stdout

    for args, message in [
        (("why", "three", "a"), "run 'three': no run log"),
        (("why", "two", "nope"), "run 'two' has no step 'nope' (its tasks: 'a', 'b', 'c', 'side')"),
        (("why", "two", "success"), "'success' is a success step; why explains tasks"),
        (("run", "p.yaml", "--from", "nope"), "--from 'nope': no such step (the pipeline's steps: 'a', 'b'"),
        (("run", "p.yaml", "--from", "success"), "--from 'success' names a success step"),
        (("run", "p.yaml", "--reuse", "--only", "a"), "--reuse does not go with --from or --only"),
        (("run", "p.yaml", "--from", "b", "--only", "a"), "--from and --only do not go together"),
    ]:
        refused = cli(tmp_path, *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.count("\n") == 1 and message in refused.stderr, (args, refused.stderr)
    assert sorted(p.stem for p in (tmp_path / ".run_log_store").glob("*.json")) == ["one", "two"]

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    refused = cli(empty, "run", "p.yaml", "--only", "c")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--only 'c': step 'a' would be reused, but no earlier run in" in refused.stderr
    assert not (empty / ".run_log_store").exists() or not list((empty / ".run_log_store").iterdir())


def test_a_name_two_steps_share_is_refused(tmp_path: Path, slots: TaskSlots) -> None:
    text = PARTS.replace("y1: {", "w: {").replace("start_at: y1", "start_at: w")
    shared = r"--from 'w': 2 steps have that name \('fan.y.w', 'm.\{item\}.w'\)"
    with pytest.raises(ExecutionError, match=shared):
        Folder(tmp_path, slots, text).run(parameters={"items": [1]}, from_step="w")


@pytest.mark.parametrize(("field", "message"), [
    ("inputs: [../secret.txt]", "inputs pattern '../secret.txt' goes up with '..'"),
    ("inputs: [/etc/passwd]", "inputs pattern '/etc/passwd' is absolute"),
    ("inputs: [.catalog/x]", "reaches into the run records (.catalog)"),
    ("inputs: data/x.csv", "inputs must be a list of file patterns"),
    ("cache: 'no'", "cache must be true or false"),
])
def test_bad_inputs_and_cache_are_refused_with_file_line_and_step(tmp_path: Path, field: str,
                                                                   message: str) -> None:
    (tmp_path / "p.yaml").write_text(textwrap.dedent(f"""\
        dag:
          start_at: s
          steps:
            s:
              type: task
              command_type: shell
              command: echo
              {field}
              next: success
            success: {{type: success}}
            fail: {{type: fail}}
        """))
    result = cli(tmp_path, "validate", "p.yaml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "p.yaml:8" in result.stderr and "step 's'" in result.stderr and message in result.stderr


def test_execute_step_records_the_fingerprint_the_engine_takes(tmp_path: Path, slots: TaskSlots) -> None:
    from magnus_jupyter.executor.step import execute_step, init_run

    folder = Folder(tmp_path, slots)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    local = folder.run()
    init_run(tmp_path, "argo", "p.yaml", {"alpha": 1})
    for step in ("a", "b", "c"):
        assert execute_step(tmp_path, "argo", step) == "SUCCESS"
    pods = json.loads((tmp_path / ".run_log_store" / "argo.json").read_text())
    for name in ("a", "b", "c"):
        assert pods["steps"][name]["fingerprint"]["digest"] == tasks(local)[name]["fingerprint"]["digest"]
    assert pods["run_config"]["environment"] == local.run_log["run_config"]["environment"]


def test_the_widget_shows_a_reused_task_with_the_run_it_came_from(folder: Folder) -> None:
    from magnus_jupyter.widget.status import REUSED, RunStatus

    first = folder.run()
    status = RunStatus(load_yaml(textwrap.dedent(folder.text)))
    result = run_pipeline(load_yaml(textwrap.dedent(folder.text)), cwd=folder.path, slots=folder.slots,
                          workers=2, parameters={"alpha": 1}, subscribers=[status], reuse=True)
    snapshot = status.snapshot()
    assert snapshot.reused == {"a": first.run_id, "b": first.run_id, "c": first.run_id}
    assert snapshot.state("a") == REUSED and snapshot.state("side") != REUSED
    notebook, log = snapshot.outputs["a"]
    assert log == str(first.catalog_path / "a.execution.log") and Path(log).is_file()
    assert result.ok


def test_a_config_s_catalog_location_and_pipeline_execute_reuse(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """run -c CONFIG --reuse finds the earlier run's files where its catalog_location put them; the
    SDK's Pipeline.execute(reuse=True) reuses like run --reuse; a mocked task is not fingerprinted."""
    from magnus_jupyter import Pipeline, Task

    Folder(tmp_path, None)  # type: ignore[arg-type]  # its files: data/raw.csv, steps.py
    (tmp_path / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    (tmp_path / "c.yaml").write_text("catalog: {type: file-system, config: {catalog_location: store}}\n")
    first = cli(tmp_path, "run", "p.yaml", "-c", "c.yaml", "--param", "alpha=1", "--run-id", "one", "--quiet")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "store" / "one" / "out.txt").is_file()
    again = cli(tmp_path, "run", "p.yaml", "-c", "c.yaml", "--param", "alpha=1", "--run-id", "two", "--quiet",
                "--reuse")
    assert again.returncode == 0, again.stderr
    assert "reused: 3 tasks; ran: 1" in again.stdout
    assert (tmp_path / "store" / "two" / "out.txt").read_text() == "x\n1\n"

    monkeypatch.chdir(tmp_path)
    (tmp_path / "calls.txt").write_text("")
    sdk = Pipeline(steps=[Task("s", "echo s >> calls.txt", "shell")])
    assert sdk.execute(log_level="ERROR").status == "SUCCESS"
    log = sdk.execute(log_level="ERROR", reuse=True)
    assert log["steps"]["s"]["reused_from"] and (tmp_path / "calls.txt").read_text().split() == ["s"]

    (tmp_path / "m.yaml").write_text("executor:\n  type: mocked\n")
    mocked = cli(tmp_path, "run", "p.yaml", "-c", "m.yaml", "--param", "alpha=1", "--run-id", "mock",
                 "--quiet")
    assert mocked.returncode == 0, mocked.stderr
    steps = json.loads((tmp_path / ".run_log_store" / "mock.json").read_text())["steps"]
    assert steps["a"]["mock"] is True and "fingerprint" not in steps["a"]


def test_a_map_iteration_from_needs_but_never_ran_fails_naming_it(tmp_path: Path, slots: TaskSlots) -> None:
    """Map iterations are known only when the map runs: one --from would reuse but that never
    succeeded fails there (the checks before the run cover the names known before it)."""
    folder = Folder(tmp_path, slots, PARTS)
    folder.run(parameters={"items": [1, 2]})
    result = folder.run(parameters={"items": [1, 2, 3]}, from_step="z")
    assert not result.ok and folder.calls == []
    new = tasks(result)["m.3.w"]
    assert new["status"] == "FAIL"
    assert new["message"] == "--from 'z': 'm.3.w' has no earlier successful run to reuse"
    assert tasks(result)["m.1.w"]["reused_from"]
