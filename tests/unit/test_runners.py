"""Task runners called directly (shell, python): real subprocesses, real imports, real files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

from magnus_jupyter.executor.runners import TaskError, run_task
from magnus_jupyter.executor.task import FAIL, SUCCESS, TaskSpec


def shell(command: str, tmp_path: Path, **kw: object) -> TaskSpec:
    return TaskSpec(internal_name="step", kind="shell", command=command, cwd=str(tmp_path), **kw)  # type: ignore[arg-type]


def test_shell_sees_parameters_and_exports_come_back(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "step.log"
    spec = shell(
        """test "$MAGNUS_PRM_spam" = '"Hello"' && test "$(pwd)" = "$EXPECTED_CWD" && echo seen && \\
        export MAGNUS_PRM_spam='World' && export MAGNUS_PRM_eggs='{"ham": "No, thanks"}' && \\
        export MAGNUS_PRM_Raw=not-json""",
        tmp_path,
        parameters={"spam": "Hello", "keep": [1, 2]},
        env={"EXPECTED_CWD": str(tmp_path)},
        log_path=str(log),
    )
    result = run_task(spec)
    assert result.status == SUCCESS, result.message
    # exported values come back (lower-cased keys, JSON or raw); an unchanged echo of `keep` does not
    assert result.parameters == {"spam": "World", "eggs": {"ham": "No, thanks"}, "raw": "not-json"}
    text = log.read_text()
    assert "seen" in text and "MAGNUS_PRM_spam=World" in text
    assert result.log_path == str(log)


def test_shell_map_variable_is_in_the_environment(tmp_path: Path) -> None:
    spec = shell('export MAGNUS_PRM_got="$MAGNUS_MAP_VARIABLE" MAGNUS_PRM_idx="$MAGNUS_PRM_start_index"',
                 tmp_path, map_variable={"start_index": 20})
    result = run_task(spec)
    assert result.status == SUCCESS, result.message
    assert result.parameters["got"] == {"start_index": 20}
    assert result.parameters["idx"] == 20


def test_shell_nonzero_exit_fails_with_the_code_and_output(tmp_path: Path) -> None:
    result = run_task(shell("echo about to fail >&2; exit 3", tmp_path))
    assert result.status == FAIL
    assert "exited with code 3" in result.message
    assert "about to fail" in result.message
    assert result.parameters == {}


def test_shell_killed_by_signal_names_it(tmp_path: Path) -> None:
    result = run_task(shell("kill -9 $$", tmp_path))
    assert result.status == FAIL
    assert "SIGKILL" in result.message


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def python(command: str, folder: Path, **kw: object) -> TaskSpec:
    return TaskSpec(internal_name="fn", kind="python", command=command, cwd=str(folder), **kw)  # type: ignore[arg-type]


def test_python_task_binds_parameters_and_returns_a_dict(tmp_path: Path) -> None:
    write_module(tmp_path, "tasks_a", """
        import os

        def train(x, chunk, scale=10, **rest):
            print("training with", x, chunk, sorted(rest))
            return {"score": x * scale + chunk, "seen_rest": sorted(rest), "env": os.environ["MAGNUS_PRM_x"]}
    """)
    log = tmp_path / "fn.log"
    spec = python("tasks_a.train", tmp_path, parameters={"x": 2, "other": True}, map_variable={"chunk": 5},
                  log_path=str(log))
    result = run_task(spec)
    assert result.status == SUCCESS, result.message
    assert result.parameters == {"score": 25, "seen_rest": ["other"], "env": "2"}
    assert "training with 2 5 ['other']" in log.read_text()


def test_python_task_none_model_and_wrong_returns(tmp_path: Path) -> None:
    write_module(tmp_path, "tasks_b", """
        class Model:  # anything with pydantic's model_dump() counts as a model
            def model_dump(self):
                return {"from_model": 1}

        def nothing():
            return None

        def model():
            return Model()

        def wrong():
            return [1, 2]

        def unjsonable():
            return {"bad": object()}
    """)
    assert run_task(python("tasks_b.nothing", tmp_path)).parameters == {}
    assert run_task(python("tasks_b.model", tmp_path)).parameters == {"from_model": 1}
    wrong = run_task(python("tasks_b.wrong", tmp_path))
    assert wrong.status == FAIL and "returned list" in wrong.message
    bad = run_task(python("tasks_b.unjsonable", tmp_path))
    assert bad.status == FAIL and "JSON" in bad.message and "bad" in bad.message


def test_python_task_failures_say_what_went_wrong(tmp_path: Path) -> None:
    write_module(tmp_path, "tasks_c", """
        def boom(x):
            raise ValueError(f"bad x {x}")

        def needs(missing_arg):
            return {}
    """)
    raised = run_task(python("tasks_c.boom", tmp_path, parameters={"x": 7}))
    assert raised.status == FAIL
    assert "ValueError" in raised.message and "bad x 7" in raised.message
    missing = run_task(python("tasks_c.needs", tmp_path))
    assert missing.status == FAIL and "missing_arg" in missing.message
    no_module = run_task(python("no_such_module_here.f", tmp_path))
    assert no_module.status == FAIL and "no_such_module_here" in no_module.message
    no_func = run_task(python("tasks_c.absent", tmp_path))
    assert no_func.status == FAIL and "absent" in no_func.message
    not_dotted = run_task(python("justaname", tmp_path))
    assert not_dotted.status == FAIL and "module.function" in not_dotted.message


def test_python_modules_are_not_cached_across_tasks(tmp_path: Path) -> None:
    """A long-lived worker must import a same-named module afresh from each task's folder."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    write_module(one, "samename", "def f():\n    return {'which': 'one'}\n")
    write_module(two, "samename", "def f():\n    return {'which': 'two'}\n")
    assert run_task(python("samename.f", one)).parameters == {"which": "one"}
    assert run_task(python("samename.f", two)).parameters == {"which": "two"}
    assert "samename" not in sys.modules
    assert str(one) not in sys.path


def test_unknown_kind_fails(tmp_path: Path) -> None:
    result = run_task(TaskSpec(internal_name="x", kind="docker", command="x", cwd=str(tmp_path)))
    assert result.status == FAIL and "docker" in result.message


def test_task_errors_survive_pickling() -> None:
    """They cross the worker/orchestrator boundary."""
    from magnus_jupyter.executor.notebooks import NotebookTaskError

    err = pickle.loads(pickle.dumps(NotebookTaskError("cell 3 raised", "/tmp/out.ipynb")))
    assert str(err) == "cell 3 raised" and err.output_notebook == "/tmp/out.ipynb"
    assert str(pickle.loads(pickle.dumps(TaskError("plain")))) == "plain"


def test_importing_the_pool_does_not_import_papermill() -> None:
    code = ("import sys, magnus_jupyter.executor.slots, magnus_jupyter.executor.worker; "
            "print(json.dumps(sorted(m for m in ('papermill', 'nbclient', 'jupyter_client') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_missing_working_folder_fails_clearly(tmp_path: Path) -> None:
    result = run_task(shell("true", tmp_path / "not-there"))
    assert result.status == FAIL and "working folder does not exist" in result.message
