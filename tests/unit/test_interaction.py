"""magnus' interaction API in real tasks (Python functions run by the task runner, real files, a real
catalog folder), what tasks leave in their environment, and the API outside a run."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import magnus_jupyter
from magnus_jupyter.executor.context import RunContext, tracked_metrics
from magnus_jupyter.executor.runlog import RunLogStore, step_log
from magnus_jupyter.executor.runners import run_task
from magnus_jupyter.executor.task import FAIL, SUCCESS, TaskResult, TaskSpec

STEP = "Train Models.XGBoost.train"


def _context(folder: Path, secrets: dict[str, Any] | None = None, catalog: bool = True) -> RunContext:
    log = folder / ".run_log_store" / "run-1.json"
    if not log.exists():
        store = RunLogStore.create(folder, "run-1", {"spam": "Hello"})
        store.data["steps"]["first"] = step_log("first", "first", "task")
        store.write()
    return RunContext("run-1", str(folder / ".catalog" / "run-1") if catalog else None, ".catalog",
                      str(log), tag="nightly",
                      secrets=secrets or {"type": "do-nothing", "config": {}})


def _task(folder: Path, body: str, parameters: dict[str, Any] | None = None,
          context: RunContext | None = None, name: str = "step_fn") -> TaskResult:
    """Write ``body`` as module ``mod_<name>`` (function ``task``) and run it as a Python task."""
    (folder / f"mod_{name}.py").write_text(textwrap.dedent(body))
    context = context or _context(folder)
    spec = TaskSpec(internal_name=STEP, kind="python", command=f"mod_{name}.task", cwd=str(folder),
                    parameters=dict(parameters or {}), env=context.env(STEP),
                    log_path=str(folder / "logs" / f"{name}.log"))
    return run_task(spec)


def test_a_python_task_keeps_what_it_writes_to_its_environment_as_magnus_does(tmp_path: Path) -> None:
    """magnus reads MAGNUS_PRM_ variables back after the task: names lower-cased, JSON or plain text;
    a returned value wins over the variable of the same name. Before, only the return value counted."""
    result = _task(tmp_path, """
        import json, os
        from magnus import set_parameter

        class Eggs:  # pydantic-like: set_parameter dumps models
            def model_dump(self, by_alias=False):
                return {"ham": "Maybe, one more!!"}

        def task(spam):
            assert spam == "Hello"
            os.environ["MAGNUS_PRM_Spam"] = "Universe"      # plain text, mixed case
            os.environ["MAGNUS_PRM_count"] = json.dumps(3)
            set_parameter(eggs=Eggs(), count=4)
            return {"x": 1}
    """, {"spam": "Hello", "untouched": [1, 2]})
    assert result.status == SUCCESS, result.message
    assert result.parameters == {"spam": "Universe", "count": 4, "eggs": {"ham": "Maybe, one more!!"}, "x": 1}
    assert "MAGNUS_PRM_spam" not in os.environ and "MAGNUS_PRM_count" not in os.environ  # the worker's own


def test_get_parameter_reads_every_parameter_and_casts(tmp_path: Path) -> None:
    result = _task(tmp_path, """
        from magnus import get_parameter

        class Inner:
            model_validate = None  # a pydantic model is built from the mapping: Model(**value)
            def __init__(self, **fields):
                self.fields = fields

        def task():
            assert get_parameter("n", cast_as=float) == 3.0
            assert get_parameter("inner", cast_as=Inner).fields == {"x": 1}
            assert get_parameter("inner", cast_as=dict) == {"x": 1}
            return {"seen": sorted(get_parameter())}
    """, {"n": 3, "inner": {"x": 1}})
    assert result.status == SUCCESS, result.message
    assert result.parameters == {"seen": ["inner", "n"]}


@pytest.mark.parametrize(("body", "expected"), [
    ("get_parameter('nope')", "get_parameter: no parameter 'nope' in run run-1 (its parameters: spam)"),
    ("get_parameter('spam', cast_as=int)", "get_parameter: 'spam' does not fit int: ValueError"),
    ("get_object('model')", "get_object: no object 'model' was put in the catalog of run run-1"),
    ("get_secret('token')", "get_secret: no secret 'token' in secrets.env (secrets: dotenv)"),
    ("put_in_catalog('missing/*.csv')", "put_in_catalog: catalog put 'missing/*.csv': no file matches"),
    ("set_parameter(bad=object())", "set_parameter: 'bad' cannot be stored"),
])
def test_an_api_call_that_cannot_be_answered_fails_the_task_naming_the_step(
        tmp_path: Path, body: str, expected: str) -> None:
    (tmp_path / "secrets.env").write_text("known=1\n")
    context = _context(tmp_path, secrets={"type": "dotenv", "config": {"location": "secrets.env"}})
    result = _task(tmp_path, f"""
        from magnus import get_object, get_parameter, get_secret, put_in_catalog, set_parameter

        def task():
            {body}
    """, {"spam": "Hello"}, context)
    assert result.status == FAIL
    assert f"mod_step_fn.task raised InteractionError: step '{STEP}': {expected}" in result.message
    log = (tmp_path / "logs" / "step_fn.log").read_text()
    ours = str(Path(magnus_jupyter.__file__).parent)
    assert "mod_step_fn.py" in log and ours not in log, log  # the user's frames, not ours


def test_objects_and_files_go_through_the_run_catalog(tmp_path: Path) -> None:
    context = _context(tmp_path)
    put = _task(tmp_path, """
        from pathlib import Path
        from magnus import put_in_catalog, put_object

        def task():
            Path("data").mkdir()
            Path("data/hello.txt").write_text("hello")
            put_in_catalog("data/*.txt")
            put_object({"weights": [1, 2]}, name="model")
    """, context=context, name="put")
    assert put.status == SUCCESS, put.message
    catalog = tmp_path / ".catalog" / "run-1"
    assert (catalog / "data" / "hello.txt").read_text() == "hello"
    assert pickle.loads((catalog / "model.pickle").read_bytes()) == {"weights": [1, 2]}
    assert not (tmp_path / "model.pickle").exists()  # the local pickle is removed, as in magnus
    assert [(e["name"], e["stage"], e["catalog_relative_path"]) for e in put.data_catalog] == [
        ("data/hello.txt", "put", "run-1/data/hello.txt"), ("model.pickle", "put", "run-1/model.pickle")]

    (tmp_path / "data" / "hello.txt").unlink()
    get = _task(tmp_path, """
        from pathlib import Path
        from magnus import get_from_catalog, get_object, get_run_id, get_run_log, get_tag

        def task():
            get_from_catalog("data/hello.txt")
            assert Path("data/hello.txt").read_text() == "hello"
            assert get_object("model") == {"weights": [1, 2]}
            log = get_run_log()
            return {"run": get_run_id(), "tag": get_tag(), "first": log.steps["first"].status}
    """, context=context, name="get")
    assert get.status == SUCCESS, get.message
    assert get.parameters == {"run": "run-1", "tag": "nightly", "first": "PROCESSING"}
    assert [e["stage"] for e in get.data_catalog] == ["get", "get"]


def test_a_do_nothing_catalog_puts_and_gets_nothing(tmp_path: Path) -> None:
    result = _task(tmp_path, """
        from pathlib import Path
        from magnus import get_from_catalog, put_in_catalog

        def task():
            Path("a.txt").write_text("a")
            put_in_catalog("a.txt")
            get_from_catalog("nothing-there")
    """, context=_context(tmp_path, catalog=False))
    assert result.status == SUCCESS, result.message
    assert result.data_catalog == [] and not (tmp_path / ".catalog").exists()


def test_secrets_from_a_dotenv_file_and_from_the_environment(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets.env").write_text('export shell_type="shell type secret" # comment\nkv_style=value\n')
    dotenv = _task(tmp_path, """
        from magnus import get_secret

        def task():
            return {"a": get_secret("shell_type"), "b": get_secret("kv_style")}
    """, context=_context(tmp_path, {"type": "dotenv", "config": {"location": "secrets.env"}}), name="d")
    assert dotenv.parameters == {"a": "shell type secret", "b": "value"}, dotenv.message
    monkeypatch.setenv("magnus_token", "t0k3n")
    env = _task(tmp_path, """
        from magnus import get_secret

        def task():
            return {"token": get_secret("token")}
    """, context=_context(tmp_path, {"type": "env-secrets-manager", "config": {"prefix": "magnus_"}}),
        name="e")
    assert env.parameters == {"token": "t0k3n"}, env.message


def test_metrics_have_magnus_structure() -> None:
    """magnus' get_tracked_data: step 0 alone is the value, several steps a mapping by step; a key
    tracked at one other step only (a KeyError in magnus 0.5.1) is a mapping too."""
    raw = {"MAGNUS_TRACK_answer_STEP_0": "0.0", "MAGNUS_TRACK_answer_STEP_1": "20.0",
           "MAGNUS_TRACK_Spam": '"hello"', "MAGNUS_TRACK_eggs_STEP_0": '{"ham": "world"}',
           "MAGNUS_TRACK_late_STEP_3": "1", "MAGNUS_TRACK_text": "not json", "MAGNUS_PRM_x": "1"}
    assert tracked_metrics(raw) == {"answer": {"0": 0.0, "1": 20.0}, "spam": "hello",
                                    "eggs": {"ham": "world"}, "late": {"3": 1}, "text": "not json"}


def test_track_this_and_track_variables_become_the_tasks_metrics(tmp_path: Path) -> None:
    result = _task(tmp_path, """
        import os
        from magnus import track_this

        def task():
            track_this(spam="hello", answer=42.0)
            track_this(step=1, spam="hey")
            os.environ["MAGNUS_TRACK_raw"] = "7"
    """)
    assert result.status == SUCCESS, result.message
    assert result.metrics == {"spam": {"0": "hello", "1": "hey"}, "answer": 42.0, "raw": 7}
    assert not [k for k in os.environ if k.startswith("MAGNUS_TRACK_")]


def test_a_shell_tasks_track_variables_are_metrics(tmp_path: Path) -> None:
    spec = TaskSpec(internal_name="sh", kind="shell", cwd=str(tmp_path),
                    command="export MAGNUS_TRACK_answer=42.0 MAGNUS_TRACK_spam_STEP_1='\"hey\"'")
    result = run_task(spec)
    assert result.status == SUCCESS, result.message
    assert result.metrics == {"answer": 42.0, "spam": {"1": "hey"}}


def test_outside_a_run_the_api_says_so() -> None:
    with pytest.raises(magnus_jupyter.InteractionError, match="get_parameter: no magnus run here"):
        magnus_jupyter.get_parameter("x")
    with pytest.raises(magnus_jupyter.InteractionError, match="put_object: no magnus run here"):
        magnus_jupyter.put_object(1, "one")


def test_import_magnus_works_in_tasks_only(tmp_path: Path) -> None:
    """The shim is on a task's path, not the orchestrator's: a user's own `import magnus` stays theirs."""
    probe = subprocess.run([sys.executable, "-c", "import magnus_jupyter.executor.runners; import magnus"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'magnus'" in probe.stderr
    result = _task(tmp_path, """
        import magnus, magnus_jupyter

        def task():
            return {"same": magnus.get_parameter is magnus_jupyter.get_parameter and
                    magnus.Pipeline is magnus_jupyter.Pipeline}
    """)
    assert result.parameters == {"same": True}, result.message
    assert "magnus" not in sys.modules


def test_an_interactive_session_records_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("spam: Hello\n")
    magnus_jupyter.start_interactive_session(run_id="session", tag="t", parameters_file="params.yaml")
    try:
        assert magnus_jupyter.get_parameter("spam") == "Hello"
        magnus_jupyter.set_parameter(spam="World")
        magnus_jupyter.track_this(step=1, loss=0.5)
        magnus_jupyter.put_object([1, 2], "numbers")
        assert magnus_jupyter.get_object("numbers") == [1, 2]
        assert magnus_jupyter.get_run_id() == "session"
    finally:
        magnus_jupyter.end_interactive_session()
    log = json.loads((tmp_path / ".run_log_store" / "session.json").read_text())
    step = log["steps"]["interactive"]
    assert (log["status"], step["status"], log["tag"]) == ("SUCCESS", "SUCCESS", "t")
    assert log["parameters"] == {"spam": "World"}
    assert step["user_defined_metrics"] == {"loss": {"1": 0.5}}
    assert [e["name"] for e in step["data_catalog"]] == ["numbers.pickle", "numbers.pickle"]
    with pytest.raises(magnus_jupyter.InteractionError, match="no magnus run here"):
        magnus_jupyter.get_run_id()
