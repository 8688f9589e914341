"""magnus' config files and commands: ``execute``, ``execute_notebook``, ``execute_function``, ``-c`` on
run and retry, ``Pipeline.execute()``, the mocked executor, and bad configs (one line, exit 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.config import ConfigError, load_config
from magnus_jupyter.executor.runlog import flatten

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "data" / "compat" / "magnus-0.5.1-examples" / "examples"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd, env={**os.environ, **(env or {})})


def run_log(folder: Path, run_id: str) -> dict[str, Any]:
    return json.loads((folder / ".run_log_store" / f"{run_id}.json").read_text())


def one_line_exit_2(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr + done.stdout
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for part in parts:
        assert part in lines[0], lines[0]


STORE = "catalog:\n  type: file-system\n  config:\n    catalog_location: store\n"
PIPELINE = """\
dag:
  start_at: write
  steps:
    write:
      type: task
      command_type: shell
      command: mkdir -p data && echo hi > data/a.txt && export MAGNUS_PRM_n=1 MAGNUS_TRACK_loss=0.5
      catalog:
        put: [data/a.txt]
      next: read
    read:
      type: task
      command_type: shell
      command: cat data/a.txt
      catalog:
        get: [data/a.txt]
      next: success
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.parametrize(("config", "line", "parts"), [
    ("catalogue:\n  type: file-system\n", 1, ["catalogue: not a magnus service (did you mean 'catalog'?)"]),
    ("catalog:\n  type: s3\n", 2, ["catalog.type: unknown type 's3'", "do-nothing, file-system"]),
    ("secrets:\n  type: dotenv\n  config:\n    path: x\n", 4,
     ["secrets.config.path: not a setting of secrets dotenv (its settings: location)"]),
    ("experiment_tracker:\n  type: mlflow\n", 2, ["experiment_tracker: type mlflow needs config.server_url"]),
    ("executor:\n  type: mocked\n  config:\n    patches:\n      write:\n        cmd: x\n", 6,
     ["executor.config.patches.write.cmd: not a task field a patch can set"]),
    ("run_log_store:\n  type: file-system\n  config:\n    log_folder: logs\n", None,
     ["run_log_store: log_folder 'logs': magnus-jupyter keeps run logs in .run_log_store/"]),
    ("catalog: [file-system]\n", 1, ["catalog: must be a mapping with 'type'"]),
    ("catalog:\n  type: file-system\n  config:\n    catalog_location: 3\n", 4,
     ["catalog.config.catalog_location: must be text, found int 3"]),
    ("catalog: {type: file-system\n", 2, ["YAML syntax error"]),
])
def test_a_bad_config_is_one_line_naming_file_line_and_key(tmp_path: Path, config: str, line: int | None,
                                                           parts: list[str]) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "config.yaml").write_text(config)
    for command in (["execute", "-f", "p.yaml"], ["run", "p.yaml"]):
        done = cli(*command, "-c", "config.yaml", cwd=tmp_path)
        where = f"config.yaml:{line}: " if line else "config.yaml: "
        one_line_exit_2(done, where, *parts)
    assert not (tmp_path / ".run_log_store").exists()  # nothing started


def test_the_config_from_the_environment_and_magnus_config_defaults(tmp_path: Path) -> None:
    (tmp_path / "magnus-config.yaml").write_text("defaults:\n  catalog:\n    type: do-nothing\n"
                                                 "  secrets:\n    type: env-secrets-manager\n")
    (tmp_path / "c.yaml").write_text("catalog:\n  type: file-system\n  config:\n    catalog_location: cat\n")
    config = load_config(None, cwd=tmp_path)
    assert (config.catalog["type"], config.secrets["type"]) == ("do-nothing", "env-secrets-manager")
    config = load_config(tmp_path / "c.yaml", cwd=tmp_path, tag="x")
    assert config.catalog_folder(tmp_path, "r") == tmp_path / "cat" / "r"
    assert config.secrets["type"] == "env-secrets-manager" and config.tag == "x"
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml", cwd=tmp_path)


def test_execute_with_magnus_flags_and_a_catalog_location(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "c.yaml").write_text(STORE)
    (tmp_path / "params.yaml").write_text("start: 0\n")
    done = cli("execute", "-f", "p.yaml", "-c", "c.yaml", "--parameters-file", "params.yaml", "--run-id",
               "r1", "--tag", "nightly", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    log = run_log(tmp_path, "r1")
    assert (log["status"], log["tag"], log["parameters"]) == ("SUCCESS", "nightly", {"start": 0, "n": 1})
    assert log["steps"]["write"]["user_defined_metrics"] == {"loss": 0.5}
    assert (tmp_path / "store" / "r1" / "data" / "a.txt").read_text() == "hi\n"
    assert log["run_config"]["services"]["catalog"] == {"type": "file-system",
                                                        "config": {"catalog_location": "store"}}


def test_a_do_nothing_catalog_syncs_nothing(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "c.yaml").write_text("catalog:\n  type: do-nothing\n")
    done = cli("run", "p.yaml", "-c", "c.yaml", "--run-id", "r", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    log = run_log(tmp_path, "r")
    names = [e["name"] for s in log["steps"].values() for e in s["data_catalog"]]
    assert "data/a.txt" not in names and not (tmp_path / ".catalog" / "r" / "data").exists()


def test_the_mocked_executor_runs_only_patched_tasks(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE.replace("cat data/a.txt", "exit 1"))
    (tmp_path / "c.yaml").write_text("executor:\n  type: mocked\n  config:\n    patches:\n      read:\n"
                                     "        command: test -e data/a.txt && export MAGNUS_PRM_read=yes\n")
    done = cli("execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "m", "--quiet", cwd=tmp_path)
    log = run_log(tmp_path, "m")
    # `write` is mocked: not run (no data/a.txt, no n), and so the patched `read` fails
    assert log["steps"]["write"]["mock"] is True and "n" not in log["parameters"]
    assert flatten(log) == {"write": "FAIL", "fail": "SUCCESS"}  # its catalog put found nothing
    assert done.returncode == 1
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("there\n")
    done = cli("execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "m2", "--quiet", cwd=tmp_path)
    log = run_log(tmp_path, "m2")
    assert done.returncode == 0, done.stdout
    assert (log["steps"]["write"]["mock"], log["steps"]["read"]["mock"]) == (True, False)
    assert log["parameters"] == {"read": "yes"}


def test_execute_use_cached_and_retry_keep_the_config(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE.replace("cat data/a.txt", "test -e go"))
    (tmp_path / "c.yaml").write_text(STORE)
    first = cli("execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "first", "--quiet", cwd=tmp_path)
    assert first.returncode == 1
    (tmp_path / "go").write_text("")
    again = cli("execute", "-f", "p.yaml", "--use-cached", "first", "--run-id", "again", "--quiet",
                cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    log = run_log(tmp_path, "again")
    assert log["original_run_id"] == "first" and log["steps"]["write"]["mock"] is True
    assert (tmp_path / "store" / "again" / "data" / "a.txt").exists()  # the recorded config's catalog
    retried = cli("retry", "first", "--run-id", "third", "--quiet", cwd=tmp_path)
    assert retried.returncode == 0 and (tmp_path / "store" / "third" / "data" / "a.txt").exists()


def test_execute_function_and_execute_notebook_are_one_task_runs(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "tasks.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from magnus import set_parameter, track_this

        def make(start):
            Path("data/out.csv").write_text("a,b\\n")
            set_parameter(made=start + 1)
            track_this(rows=1)
    """))
    (tmp_path / "params.yaml").write_text("start: 1\n")
    done = cli("execute_function", "tasks.make", "-p", "params.yaml", "-put", "out.csv", "--run-id", "f",
               "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    log = run_log(tmp_path, "f")
    step = log["steps"]["executing job"]
    assert log["parameters"] == {"start": 1, "made": 2} and step["user_defined_metrics"] == {"rows": 1}
    assert (tmp_path / ".catalog" / "f" / "data" / "out.csv").exists()
    one_line_exit_2(cli("execute_notebook", "tasks.py", cwd=tmp_path),
                    "a notebook's file name ends in .ipynb")
    shutil.copy(EXAMPLES / "concepts" / "simple_notebook.ipynb", tmp_path / "nb.ipynb")
    done = cli("execute_notebook", "nb.ipynb", "--notebook-output-path", "nb_out.ipynb", "--run-id", "n",
               "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert flatten(run_log(tmp_path, "n")) == {"executing job": "SUCCESS", "success": "SUCCESS"}
    assert (tmp_path / "nb_out.ipynb").is_file()


def test_executors_magnus_jupyter_cannot_run_here_are_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "argo.yaml").write_text("executor:\n  type: argo\n  config:\n    image: x\n")
    one_line_exit_2(cli("execute", "-f", "p.yaml", "-c", "argo.yaml", cwd=tmp_path),
                    "argo.yaml: executor: type argo:", "magnus-jupyter export PIPELINE.yaml --to argo")
    (tmp_path / "lc.yaml").write_text("executor:\n  type: local-container\n  config:\n    docker_image: x\n")
    env = {"PATH": str(tmp_path / "no-docker-here")}  # no docker command at all
    one_line_exit_2(cli("execute", "-f", "p.yaml", "-c", "lc.yaml", cwd=tmp_path, env=env),
                    "lc.yaml: executor: type local-container needs a docker engine: the docker command "
                    "is not installed")
    one_line_exit_2(cli("run", "p.yaml", cwd=tmp_path, env={"MAGNUS_CONFIGURATION_FILE": "lc.yaml", **env}),
                    "lc.yaml: executor: type local-container needs a docker engine")
    # with a docker engine (a docker command that answers, as there is none on this machine) the run is
    # refused too: containers are not run here, and the run must not quietly happen outside them
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 27.0.1\n")
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    one_line_exit_2(cli("execute", "-f", "p.yaml", "-c", "lc.yaml", cwd=tmp_path, env=env),
                    "lc.yaml: executor: type local-container: magnus-jupyter does not run tasks in")
    assert not (tmp_path / ".run_log_store").exists()


def test_parallel_py_runs_as_written_after_changing_only_its_import_line(tmp_path: Path) -> None:
    """The seed's SDK example: examples/concepts/parallel.py, `from magnus import` made
    `from magnus_jupyter import`, run as a script (its `pipeline.execute(configuration_file=...)`)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    script = tmp_path / "examples" / "concepts" / "parallel.py"
    original = script.read_text()
    changed = original.replace("from magnus import Parallel, Pipeline, Stub",
                               "from magnus_jupyter import Parallel, Pipeline, Stub")
    assert [a for a, b in zip(original.splitlines(), changed.splitlines(), strict=True) if a != b] == [
        "from magnus import Parallel, Pipeline, Stub"]
    script.write_text(changed)
    done = subprocess.run([sys.executable, "examples/concepts/parallel.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    logs = list((tmp_path / ".run_log_store").glob("*.json"))
    assert len(logs) == 1
    log = json.loads(logs[0].read_text())
    assert log["status"] == "SUCCESS"
    assert flatten(log)["Train Models.RF Model.Train RF"] == "SUCCESS"
    assert log["run_config"]["services"]["run_log_store"]["type"] == "file-system"  # its config file


def test_pipeline_execute_returns_the_run_log(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("def square(x):\n    return {'y': x * x}\n")
    (tmp_path / "params.yaml").write_text("x: 3\n")
    code = textwrap.dedent("""
        from magnus_jupyter import Pipeline, Task
        task = Task(name="square", command="tasks.square", terminate_with_success=True)
        log = Pipeline(steps=[task], start_at=task).execute(parameters_file="params.yaml", run_id="sdk",
                                                            tag="t")
        print(log.status, log.parameters["y"], log.steps["square"].status, log["tag"])
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SUCCESS", "9", "SUCCESS", "t"]


def test_execute_step_gives_each_pod_the_run_context(tmp_path: Path) -> None:
    """An Argo pod's step (execute-step) runs with the run's context: parameters and objects of one pod
    reach the next, metrics and catalog entries land in the run log, the recorded config's secrets work."""
    (tmp_path / "tasks.py").write_text(textwrap.dedent("""
        from magnus import get_object, get_secret, put_object, set_parameter, track_this

        def produce():
            put_object([1, 2], "numbers")
            set_parameter(total=3)
            track_this(step=2, loss=0.1)

        def consume(total):
            assert get_object("numbers") == [1, 2] and total == 3
            set_parameter(secret=get_secret("token"))
    """))
    (tmp_path / "p.yaml").write_text("dag:\n  start_at: produce\n  steps:\n"
                                     "    produce: {type: task, command: tasks.produce, next: consume}\n"
                                     "    consume: {type: task, command: tasks.consume, next: success}\n"
                                     "    success: {type: success}\n    fail: {type: fail}\n")
    (tmp_path / "c.yaml").write_text("secrets:\n  type: env-secrets-manager\n  config:\n    prefix: app_\n")
    env = {"app_token": "s3cr3t"}
    init = cli("execute-step", "pod", "--init", "--file", "p.yaml", "-c", "c.yaml", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    for step in ("produce", "consume", "success"):
        done = cli("execute-step", "pod", step, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    log = run_log(tmp_path, "pod")
    assert log["status"] == "SUCCESS" and log["parameters"] == {"total": 3, "secret": "s3cr3t"}
    assert log["steps"]["produce"]["user_defined_metrics"] == {"loss": {"2": 0.1}}
    assert [(e["name"], e["stage"]) for e in log["steps"]["consume"]["data_catalog"]
            if e["name"].endswith(".pickle")] == [("numbers.pickle", "get")]


def test_mlflow_gets_the_metrics_and_the_tasks_own_logging_in_one_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real mlflow file store: the step's metrics (published after the task) and what the task logs
    inside get_experiment_tracker_context() land in the same mlflow run, named by the run id, in the
    experiment named by the tag."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    (tmp_path / "tasks.py").write_text(textwrap.dedent("""
        import mlflow
        from magnus import get_experiment_tracker_context, track_this

        def train():
            track_this(loss=0.5)
            track_this(step=1, loss=0.25)
            with get_experiment_tracker_context():
                mlflow.log_param("inside", "yes")
    """))
    config = f"experiment_tracker:\n  type: mlflow\n  config:\n    server_url: {store}\n"
    (tmp_path / "c.yaml").write_text(config)
    done = cli("execute_function", "tasks.train", "-c", "c.yaml", "--tag", "exp", "--run-id", "ml", "--quiet",
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stdout + done.stderr
    client = mlflow.MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert run.info.run_name == "ml" and run.data.params == {"inside": "yes"}
    assert sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")) == [
        (0, 0.5), (1, 0.25)]
