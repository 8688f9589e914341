"""magnus 0.5.1's whole examples tree, run by real magnus 0.5.1 and by magnus-jupyter: the same runs.

Every YAML pipeline of ``tests/data/compat/magnus-0.5.1-examples/examples`` (with
the parameters and config file magnus' own ``tests/test_examples.py`` gives it)
and every SDK script through its own ``main()``, plus the configs of
``examples/configs`` each with a pipeline it is meant for. Each side runs in a
fresh copy of the tree, as a user would: magnus through its CLI (or
``python -c "...main()"``), magnus-jupyter through ``magnus-jupyter execute``
with the same flags, and the SDK scripts with nothing changed but their import
line (``from magnus import`` -> ``from magnus_jupyter import``); notebooks and
task modules keep ``from magnus import``, which works inside tasks. Compared:
the status of every step and branch, the run's status, its final parameters and
each step's ``user_defined_metrics``.

The oracle keeps its run log in a file (its default keeps it in memory only) and,
having no mlflow installed, uses the do-nothing tracker where a config names
mlflow; magnus-jupyter runs those configs with a real mlflow file store. Where
magnus 0.5.1 itself crashes or cannot run here, ``DIFFERENT`` says why and the
test asserts what magnus-jupyter does instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from oracle import RUN_MAGNUS, build_oracle

from magnus_jupyter.executor.runlog import flatten, iter_steps

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "tests" / "data" / "compat" / "magnus-0.5.1-examples" / "examples"
TIMEOUT = 300
PARALLEL = 4  # cases run at once (each side is mostly a waiting subprocess)


@dataclass(frozen=True)
class Case:
    """One run: a YAML pipeline (``file``) or an SDK script (``module``), with magnus' flags."""

    id: str
    file: str = ""  # examples/... (a YAML pipeline)
    module: str = ""  # examples.... (an SDK script run through main())
    config: str = ""
    params: str = ""
    env: tuple[tuple[str, str], ...] = ()
    before: tuple[str, ...] = ()  # a YAML pipeline run first in the same folder (run id "first")
    use_cached: bool = False  # retry the run of `before`


# magnus' own tests/test_examples.py: (file, config, parameters)
YAML_CASES = [
    ("concepts/catalog.yaml", "fs-catalog.yaml", ""),
    ("concepts/experiment_tracking_env.yaml", "", ""),
    ("concepts/experiment_tracking_env_step.yaml", "", ""),
    ("concepts/map.yaml", "", ""),
    ("concepts/map_shell.yaml", "", ""),
    ("concepts/nesting.yaml", "", ""),
    ("concepts/notebook_api_parameters.yaml", "", "concepts/parameters.yaml"),
    ("concepts/notebook_env_parameters.yaml", "", "concepts/parameters.yaml"),
    ("concepts/notebook_native_parameters.yaml", "", "concepts/parameters.yaml"),
    ("concepts/parallel.yaml", "", ""),
    ("concepts/simple_notebook.yaml", "", ""),
    ("concepts/simple.yaml", "", ""),
    ("concepts/task_shell_parameters.yaml", "", "parameters_initial.yaml"),
    ("concepts/task_shell_simple.yaml", "", ""),
    ("concepts/traversal.yaml", "", ""),
    ("catalog.yaml", "fs-catalog.yaml", ""),
    ("contrived.yaml", "", ""),
    ("default-fail.yaml", "", ""),
    ("experiment_tracking_env.yaml", "", ""),
    ("logging.yaml", "", ""),
    ("mocking.yaml", "", ""),
    ("on-failure.yaml", "", ""),
    ("parallel-fail.yaml", "", ""),
    ("parameters_env.yaml", "", "parameters_initial.yaml"),
    ("parameters_flow.yaml", "", "parameters_initial.yaml"),
    ("python-tasks.yaml", "", "parameters_initial.yaml"),
    ("retry-fail.yaml", "fs-catalog-run_log.yaml", ""),
    ("retry-fixed.yaml", "fs-catalog-run_log.yaml", ""),
    # pipelines of the tree that test_examples.py leaves out
    ("executors/argo-map-sequential.yaml", "", ""),
    ("executors/step_overrides_container.yaml", "", ""),
]
# configs of examples/configs, each with a pipeline it is meant for (magnus' docs pair them so)
CONFIG_CASES = [
    ("concepts/simple.yaml", "default.yaml", ""),
    ("concepts/catalog.yaml", "default.yaml", ""),  # a do-nothing catalog: the last get finds nothing
    ("concepts/simple.yaml", "fs-run_log.yaml", ""),
    ("concepts/parallel.yaml", "chunked-fs-run_log.yaml", ""),
    ("concepts/traversal.yaml", "mocked-config-simple.yaml", ""),
    ("concepts/map.yaml", "mocked-config.yaml", "configs/mocked_map_parameters.yaml"),
    ("on-failure.yaml", "mocked-config-unittest.yaml", ""),
    ("retry-fail.yaml", "mocked-config-debug.yaml", ""),
    ("concepts/simple.yaml", "argo-config.yaml", ""),
    ("concepts/simple.yaml", "local-container.yaml", ""),
    ("executors/step_overrides_container.yaml", "../executors/local-container-override.yaml", ""),
]
SDK_MODULES = [
    "catalog", "catalog_api", "catalog_simple", "contrived", "mocking", "on_failure", "parameters_api",
    "parameters", "python-tasks", "secrets", "secrets_env", "concepts.catalog", "concepts.catalog_api",
    "concepts.catalog_object", "concepts.experiment_tracking_api", "concepts.experiment_tracking_env",
    "concepts.experiment_tracking_step", "concepts.experiment_tracking_integration",
    "experiment_tracking_api", "concepts.map", "concepts.nesting", "concepts.parallel", "concepts.simple",
    "concepts.task_api_parameters", "concepts.task_env_parameters", "concepts.task_native_parameters",
    "concepts.traversal", "python-tasks-argo", "executors.step_overrides_container",
]
SECRET_ENV = (("secret", "secret_value"),)


def _cases() -> list[Case]:
    out = []
    for file, config, params in YAML_CASES + CONFIG_CASES:
        name = file + (f" -c {config}" if config else "")
        out.append(Case(name, file=f"examples/{file}", config=f"examples/configs/{config}" if config else "",
                        params=f"examples/{params}" if params else ""))
    out.append(Case("retry-fixed.yaml --use-cached retry-fail", file="examples/retry-fixed.yaml",
                    config="examples/configs/fs-catalog-run_log.yaml", before=("examples/retry-fail.yaml",),
                    use_cached=True))
    for module in SDK_MODULES:
        env: tuple[tuple[str, str], ...] = ()
        if module == "secrets_env":  # as magnus' tests/test_examples.py runs it
            env = (*SECRET_ENV, ("MAGNUS_CONFIGURATION_FILE", "examples/configs/secrets-env-default.yaml"))
        out.append(Case(f"{module}.py main()", module=f"examples.{module}", env=env))
    out.append(Case("secrets_env.py main() -c secrets-env-ps.yaml", module="examples.secrets_env",
                    env=(("magnus_secret", "secret_value"),
                         ("MAGNUS_CONFIGURATION_FILE", "examples/configs/secrets-env-ps.yaml"))))
    return out


CASES = _cases()


# ---- where magnus 0.5.1 does not give a run to compare with ---------------------------------------


def _crash_at_put(ours: Outcome) -> None:
    steps = flatten(ours.run_log)
    assert ours.run_log["status"] == "FAIL"
    assert steps["Setup"] == "SUCCESS" and steps["Create Content"] == "FAIL" and steps["fail"] == "SUCCESS"
    message = ours.run_log["steps"]["Create Content"]["message"]
    assert "data/hello.txt" in message and "no file matches" in message


def _refused(pattern: str) -> Callable[[Outcome], None]:
    def check(ours: Outcome) -> None:
        lines = [line for line in ours.stderr.splitlines() if line.strip()]
        assert ours.returncode == 2 and ours.run_log is None, ours.stderr
        assert len(lines) == 1 and re.search(pattern, lines[0]), ours.stderr
        assert "Traceback" not in ours.stderr + ours.stdout
    return check


def _sdk_refused(pattern: str) -> Callable[[Outcome], None]:
    def check(ours: Outcome) -> None:
        assert ours.returncode != 0 and ours.run_log is None
        assert re.search(pattern, ours.stderr.strip().splitlines()[-1]), ours.stderr
    return check


ARGO = r"executor: type argo: .*magnus-jupyter export .* --to argo"
DOCKER = r"executor: type local-container needs a docker engine: "
# case id -> (why magnus 0.5.1 gives nothing to compare with, what magnus-jupyter must do instead)
DIFFERENT: dict[str, tuple[str, Callable[[Outcome], None]]] = {
    "retry-fixed.yaml -c fs-catalog-run_log.yaml": (
        "magnus 0.5.1 crashes (an uncaught 'Did not find any files matching data/hello.txt' from the stub's "
        "catalog put), leaving its run log PROCESSING; its own tests pass only because retry-fail.yaml ran "
        "before in the same folder", _crash_at_put),
    "retry-fail.yaml -c mocked-config-debug.yaml": (
        "magnus 0.5.1 crashes the same way: Setup is mocked, so Create Content (mocked too) has no "
        "data/hello.txt to put", _crash_at_put),
    "concepts/simple.yaml -c argo-config.yaml": (
        "magnus writes an Argo workflow and runs nothing", _refused(ARGO)),
    "python-tasks-argo.py main()": ("magnus writes an Argo workflow and runs nothing", _sdk_refused(ARGO)),
    "concepts/simple.yaml -c local-container.yaml": (
        "there is no docker engine on this machine: magnus 0.5.1 crashes", _refused(DOCKER)),
    "executors/step_overrides_container.yaml -c ../executors/local-container-override.yaml": (
        "there is no docker engine on this machine: magnus 0.5.1 crashes", _refused(DOCKER)),
}


# ---- the two sides -------------------------------------------------------------------------------


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    run_log: dict[str, Any] | None = field(default=None, repr=False)


def _tree(folder: Path, sdk_imports: bool, mlflow: str | None) -> None:
    """A fresh copy of the examples tree; the SDK scripts' import line changed, mlflow pointed here."""
    shutil.copytree(TREE, folder / "examples")
    if sdk_imports:
        for script in (folder / "examples").rglob("*.py"):
            text = script.read_text()
            script.write_text(re.sub(r"^(\s*)from magnus import", r"\1from magnus_jupyter import", text,
                                     flags=re.M))
    config = folder / "examples" / "configs" / "mlflow-config.yaml"
    data = yaml.safe_load(config.read_text())
    if mlflow is None:
        data["experiment_tracker"] = {"type": "do-nothing"}
    else:
        data["experiment_tracker"]["config"]["server_url"] = mlflow
    config.write_text(yaml.safe_dump(data))


def _run(args: list[str], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def _read_log(folder: Path, run_id: str | None = None) -> dict[str, Any] | None:
    logs = folder / ".run_log_store"
    if run_id is not None:
        path = logs / f"{run_id}.json"
        return json.loads(path.read_text()) if path.is_file() else None
    found = sorted(logs.glob("*.json"), key=lambda p: p.stat().st_mtime) if logs.is_dir() else []
    return json.loads(found[-1].read_text()) if found else None


# Run in the oracle before its CLI or an SDK script: its run log goes to a file (its default store,
# buffered, keeps it in memory), whatever config the run names.
_FILE_LOG = """
import yaml
from magnus import entrypoints
_prepare = entrypoints.prepare_configurations
def prepare(*args, configuration_file="", **kwargs):
    data = (yaml.safe_load(open(configuration_file)) if configuration_file else None) or dict()
    if (data.get("run_log_store") or dict()).get("type") != "file-system":
        data["run_log_store"] = dict(type="file-system")
    open("oracle-config.yaml", "w").write(yaml.safe_dump(data))
    return _prepare(*args, configuration_file="oracle-config.yaml", **kwargs)
entrypoints.prepare_configurations = prepare
"""


def theirs(case: Case, folder: Path, python: Path) -> Outcome:
    _tree(folder, sdk_imports=False, mlflow=None)
    env = dict(case.env)
    if case.module:
        script = _FILE_LOG + f"import importlib; importlib.import_module({case.module!r}).main()"
        done = _run([str(python), "-c", script], folder, env)
        return Outcome(done.returncode, done.stdout, done.stderr, _read_log(folder))
    command = [str(python), "-c", _FILE_LOG + RUN_MAGNUS, "execute"]
    flags = ["-c", case.config] if case.config else []
    for first in case.before:
        _run([*command, "-f", first, *flags, "--run-id", "first"], folder, env)
    args = [*command, "-f", case.file, *flags, "--run-id", "oracle"]
    args += ["-p", case.params] if case.params else []
    args += ["--use-cached", "first"] if case.use_cached else []
    done = _run(args, folder, env)
    return Outcome(done.returncode, done.stdout, done.stderr, _read_log(folder, "oracle"))


def ours(case: Case, folder: Path) -> Outcome:
    mlruns = folder / "mlruns"
    _tree(folder, sdk_imports=bool(case.module), mlflow=mlruns.as_uri())
    env = {**dict(case.env), "MLFLOW_ALLOW_FILE_STORE": "true"}
    if case.module:
        script = f"import importlib; importlib.import_module({case.module!r}).main()"
        done = _run([sys.executable, "-c", script], folder, env)
        return Outcome(done.returncode, done.stdout, done.stderr, _read_log(folder))
    command = [sys.executable, "-m", "magnus_jupyter", "execute", "--quiet"]
    flags = ["-c", case.config] if case.config else []
    for first in case.before:
        _run([*command, "-f", first, *flags, "--run-id", "first"], folder, env)
    args = [*command, "-f", case.file, *flags, "--run-id", "ours"]
    args += ["-p", case.params] if case.params else []
    args += ["--use-cached", "first"] if case.use_cached else []
    done = _run(args, folder, env)
    return Outcome(done.returncode, done.stdout, done.stderr, _read_log(folder, "ours"))


def view(run_log: dict[str, Any]) -> dict[str, Any]:
    """What is compared: statuses of every step and branch, the run's, parameters, metrics per step."""
    metrics = {s["internal_name"]: s["user_defined_metrics"] for s in iter_steps(run_log)
               if s.get("user_defined_metrics")}
    return {"status": run_log["status"], "steps": flatten(run_log), "parameters": run_log["parameters"],
            "metrics": metrics}


@dataclass
class Both:
    theirs: Outcome
    ours: Outcome
    folder: Path  # where magnus-jupyter ran


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Both]:
    """Every case on both sides, several at once (each side is a subprocess in its own folder)."""
    python = build_oracle()
    base = tmp_path_factory.mktemp("examples")

    def both(index: int) -> Both:
        case, folder = CASES[index], base / str(index)
        return Both(theirs(case, folder / "magnus", python), ours(case, folder / "ours"), folder / "ours")

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(both, range(len(CASES))))
    return {case.id: result for case, result in zip(CASES, results, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_example_runs_as_in_magnus(case: Case, outcomes: dict[str, Both]) -> None:
    theirs_, ours_ = outcomes[case.id].theirs, outcomes[case.id].ours
    if case.id in DIFFERENT:
        why, check = DIFFERENT[case.id]
        check(ours_)
        return
    assert theirs_.run_log is not None, f"magnus left no run log:\n{theirs_.stderr[-1500:]}"
    assert ours_.run_log is not None, f"no run log:\n{ours_.stdout[-1500:]}\n{ours_.stderr[-1500:]}"
    assert view(ours_.run_log) == view(theirs_.run_log), ours_.stderr[-2000:]
    assert "Traceback" not in ours_.stderr, ours_.stderr


def test_every_pipeline_and_script_of_the_tree_is_a_case() -> None:
    """Nothing of the tree is left out unnoticed: its pipelines, configs and SDK scripts are all cases."""
    not_pipelines = {"concepts/parameters.yaml", "parameters_initial.yaml", "generated-argo-pipeline.yaml",
                     "executors/local-container-override.yaml"}
    pipelines = {str(p.relative_to(TREE)) for p in TREE.rglob("*.yaml") if p.parent.name != "configs"}
    assert pipelines - not_pipelines == {file for file, _, _ in YAML_CASES}
    configs = {p.name for p in (TREE / "configs").glob("*.yaml")}
    not_configs = {"mocked_map_parameters.yaml", "argo-pipeline.yaml"}  # parameters; a workflow magnus wrote
    argo = {"argo-config-catalog.yaml", "argo-config-full.yaml", "argo-config-sequential.yaml"}  # see below
    used = {c for _, c, _ in YAML_CASES + CONFIG_CASES} | {"dotenv.yaml", "mlflow-config.yaml",
                                                            "secrets-env-default.yaml", "secrets-env-ps.yaml"}
    assert configs - not_configs - argo <= used
    scripts = {str(p.relative_to(TREE))[:-3].replace("/", ".") for p in TREE.rglob("*.py")
               if "def main" in p.read_text()}
    assert scripts - {"functions"} == set(SDK_MODULES)  # functions.py's main() is plain Python, no pipeline


@pytest.mark.parametrize("config", ["argo-config-catalog.yaml", "argo-config-full.yaml",
                                    "argo-config-sequential.yaml"])
def test_every_argo_config_points_to_export(config: str, tmp_path: Path) -> None:
    """magnus writes a workflow for these; magnus-jupyter says how to (argo-config-full.yaml gives its
    catalog a log_folder, which magnus' file-system catalog does not take either: that line is first)."""
    shutil.copytree(TREE, tmp_path / "examples")
    done = _run([sys.executable, "-m", "magnus_jupyter", "execute", "-f", "examples/concepts/simple.yaml",
                 "-c", f"examples/configs/{config}"], tmp_path, {})
    expected = r"argo-config-full.yaml:\d+: catalog.config.log_folder: not a setting of catalog file-system" \
        if config == "argo-config-full.yaml" else ARGO
    _refused(expected)(Outcome(done.returncode, done.stdout, done.stderr, _read_log(tmp_path)))


def test_mlflow_got_the_metrics(outcomes: dict[str, Both], monkeypatch: pytest.MonkeyPatch) -> None:
    """The mlflow examples' metrics reached a real mlflow store: floats as metrics (per step), the rest as
    parameters ``<key>_<step>``, in the experiment named by the run's tag, in the run named by its id."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for case_id, experiment, answers in (
            ("concepts.experiment_tracking_integration.py main()", "demo-magnus",
             [(0, 0.0), (1, 20.0), (2, 40.0), (3, 60.0)]),
            ("experiment_tracking_api.py main()", "Default", [(0, 42.0)])):
        result = outcomes[case_id]
        assert result.ours.run_log is not None, result.ours.stderr
        client = mlflow.MlflowClient(tracking_uri=(result.folder / "mlruns").as_uri())
        found = client.get_experiment_by_name(experiment)
        assert found is not None, case_id
        runs = [r for r in client.search_runs([found.experiment_id])
                if r.info.run_name == result.ours.run_log["run_id"]]
        assert len(runs) == 1, case_id
        history = client.get_metric_history(runs[0].info.run_id, "answer")
        assert sorted((m.step, m.value) for m in history) == answers
        params = runs[0].data.params
        assert params["spam_0"] == "hello" and params["is_it_true_0"] == "False", params
