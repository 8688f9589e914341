"""The Argo export: every compat pipeline's manifest validates, and running its pods' commands in the
order Argo would (a small simulation of Argo's DAG semantics on this machine) leaves the run log real
magnus 0.5 left: same status tree, run status and parameters.

The simulation follows Argo's rules for what the manifest uses: ``depends`` on ``.Succeeded`` /
``.Failed`` / ``.Skipped`` (a false one omits the task), ``continueOn.failed``, a DAG's ``failFast``
(default true: once a task failed without ``continueOn``, no further task starts and the DAG fails),
``withParam`` over a parameter, ``{{inputs...}}`` / ``{{workflow...}}`` / ``{{item}}`` substitution,
and the workflow's ``onExit`` handler, run once the entrypoint is over. Each container's command runs
as ``magnus-jupyter ...`` in the run folder, one after another; tasks Argo would start together (ready
at once) all start.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from magnus_jupyter.cli import main
from magnus_jupyter.errors import ExecutionError
from magnus_jupyter.executor.argo import VALUES_PATH, export_argo, validate_manifest
from magnus_jupyter.executor.params import initial_parameters
from magnus_jupyter.executor.runlog import flatten
from magnus_jupyter.executor.step import LOST_POD
from magnus_jupyter.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "tests" / "data" / "compat" / "magnus-0.5"
NAMES = sorted(p.name[: -len(".yaml")] for p in COMPAT.glob("*.yaml") if not p.name.endswith(".params.yaml"))
_STATE = re.compile(r"([a-z0-9-]+)\.(Succeeded|Failed|Skipped)")


class ArgoSimulation:
    """Argo's DAG semantics, as far as the exported manifests use them; pods run one at a time."""

    def __init__(self, manifest: dict[str, Any], root: Path, run_id: str) -> None:
        self.templates = {t["name"]: t for t in manifest["spec"]["templates"]}
        self.on_exit = manifest["spec"].get("onExit")
        self.workflow = {p["name"]: str(p.get("value", ""))
                         for p in manifest["spec"]["arguments"]["parameters"]}
        self.workflow["run_id"] = run_id
        self.root = root
        self.pods: list[list[str]] = []

    def run(self, entrypoint: str) -> str:
        """The workflow's phase: Succeeded or Failed (a stopped workflow: Failed); then its exit handler."""
        try:
            phase = self.template(entrypoint, {})[0]
        except WorkflowStopped:
            phase = "Failed"
        if self.on_exit:
            self.template(self.on_exit, {})
        return phase

    def substitute(self, text: str, inputs: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
        text = re.sub(r"\{\{workflow\.parameters\.([\w-]+)\}\}", lambda m: self.workflow[m[1]], text)
        text = re.sub(r"\{\{inputs\.parameters\.([\w-]+)\}\}", lambda m: inputs[m[1]], text)
        return re.sub(r"\{\{tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)\}\}",
                      lambda m: outputs[m[1]][m[2]], text)

    def template(self, name: str, inputs: dict[str, str]) -> tuple[str, dict[str, str]]:
        template = self.templates[name]
        declared = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        assert declared == set(inputs), f"{name}: inputs {sorted(inputs)} for {sorted(declared)}"
        if "container" in template:
            return self.pod(template, inputs)
        statuses: dict[str, str] = {}
        outputs: dict[str, dict[str, str]] = {}
        tasks = template["dag"]["tasks"]
        pending = list(tasks)
        fail_fast = template["dag"].get("failFast", True)

        def failed() -> bool:
            return any(statuses.get(t["name"]) == "Failed" and not t.get("continueOn", {}).get("failed")
                       for t in tasks)

        while pending and not (fail_fast and failed()):
            ready = [t for t in pending
                     if all(d in statuses for d, _ in _STATE.findall(t.get("depends", "")))]
            assert ready, f"{name}: no task can start: {[t['name'] for t in pending]}"
            for task in ready:  # started together, as Argo would
                pending.remove(task)
                statuses[task["name"]], outputs[task["name"]] = self.task(task, inputs, statuses, outputs)
        return ("Failed" if failed() else "Succeeded"), {}

    def task(self, task: dict[str, Any], inputs: dict[str, str], statuses: dict[str, str],
             outputs: dict[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
        depends = task.get("depends")
        if depends:
            expression = _STATE.sub(lambda m: repr(statuses[m[1]] == m[2]), depends)
            if not eval(expression.replace("||", " or ").replace("&&", " and ")):  # noqa: S307 - our text
                return "Omitted", {}
        arguments = {p["name"]: self.substitute(p["value"], inputs, outputs)
                     for p in task.get("arguments", {}).get("parameters", [])}
        if "withParam" not in task:
            return self.template(task["template"], arguments)
        items = json.loads(self.substitute(task["withParam"], inputs, outputs))
        if not items:
            return "Skipped", {}
        results = [self.template(task["template"], {k: v.replace("{{item}}", str(item))
                                                    for k, v in arguments.items()})[0] for item in items]
        return ("Failed" if "Failed" in results else "Succeeded"), {}

    def command(self, template: dict[str, Any], inputs: dict[str, str]) -> list[str]:
        """The pod's ``magnus-jupyter`` arguments, with the volume's mount point here."""
        args = [self.substitute(a, inputs, {}).replace(VALUES_PATH, str(self.values))
                for a in template["container"]["args"]]
        args[args.index("--root") + 1] = str(self.root)
        assert template["container"]["command"] == ["magnus-jupyter"]
        return args

    @property
    def values(self) -> Path:
        return self.root.parent / f"{self.root.name}-values.json"

    def pod(self, template: dict[str, Any], inputs: dict[str, str]) -> tuple[str, dict[str, str]]:
        values = self.values
        args = self.command(template, inputs)
        self.pods.append(args)
        code = main(args)
        outputs = {}
        for parameter in template.get("outputs", {}).get("parameters", []):
            outputs[parameter["name"]] = values.read_text()
        return ("Succeeded" if code == 0 else "Failed"), outputs


class WorkflowStopped(Exception):
    """Argo stopped the whole workflow (a deadline): no further pod starts; the exit handler runs."""


def _export(name: str, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    shutil.copy(COMPAT / f"{name}.yaml", folder / "pipeline.yaml")
    params_file = COMPAT / f"{name}.params.yaml"
    parameters = initial_parameters(params_file if params_file.exists() else None, (), environ={})
    manifest = export_argo(load_yaml(folder / "pipeline.yaml"), image="example/magnus:1",
                           pipeline_file="pipeline.yaml", parameters=parameters)
    return manifest, parameters


@pytest.mark.parametrize("name", NAMES)
def test_each_compat_export_validates_and_its_simulation_matches_real_magnus(
        name: str, compat_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected: dict[str, Any] = json.loads((compat_dir / f"{name}.expected.json").read_text())
    folder = tmp_path / "run"
    folder.mkdir()
    manifest, _ = _export(name, folder)
    validate_manifest(manifest)
    validate_manifest(yaml.safe_load(yaml.safe_dump(manifest)))  # as written to the file
    monkeypatch.chdir(folder)
    simulation = ArgoSimulation(manifest, folder, "argo-sim")
    phase = simulation.run(manifest["spec"]["entrypoint"])
    log = json.loads((folder / ".run_log_store" / "argo-sim.json").read_text())
    assert flatten(log) == expected["steps"]
    assert log["status"] == expected["status"]
    assert log["parameters"] == expected["parameters"]
    assert phase == ("Succeeded" if expected["status"] == "SUCCESS" else "Failed")
    assert all(pod[0] == "execute-step" for pod in simulation.pods)


def _fan_out(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entrypoint's task running a composite step's branches, and that branches template."""
    templates = {t["name"]: t for t in manifest["spec"]["templates"]}
    tasks = templates[manifest["spec"]["entrypoint"]]["dag"]["tasks"]
    [task] = [t for t in tasks if "dag" in templates[t["template"]]]
    return task, templates[task["template"]]


def test_map_fans_out_with_param_and_parallel_branches_run_concurrently(tmp_path: Path) -> None:
    manifest, _ = _export("concepts_map_shell", tmp_path)
    task, branches = _fan_out(manifest)
    given = {p["name"]: p["value"] for p in task["arguments"]["parameters"]}
    assert given["values"].endswith("-start.outputs.parameters.values}}")
    [fan] = branches["dag"]["tasks"]
    assert fan["withParam"] == "{{inputs.parameters.values}}"
    assert branches["dag"]["failFast"] is False  # finish_all, magnus' default
    manifest, _ = _export("concepts_parallel", tmp_path)
    _, branches = _fan_out(manifest)
    assert len(branches["dag"]["tasks"]) == 2
    assert not any("depends" in t for t in branches["dag"]["tasks"])  # both start at once


def test_parameters_become_workflow_parameters(tmp_path: Path) -> None:
    manifest, parameters = _export("concepts_task_shell_parameters", tmp_path)
    given = {p["name"]: p["value"] for p in manifest["spec"]["arguments"]["parameters"]}
    assert given == {"run_id": "{{workflow.name}}", **{k: json.dumps(v) for k, v in parameters.items()}}


def _break_type(manifest: dict[str, Any]) -> None:
    manifest["spec"]["templates"][0]["container"]["args"] = "execute-step"


def _break_item_type(manifest: dict[str, Any]) -> None:
    manifest["spec"]["templates"][0]["container"]["args"][0] = 7


def _unknown_field(manifest: dict[str, Any]) -> None:
    manifest["spec"]["templates"][0]["container"]["imagee"] = "typo"


def _missing_image(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["templates"][0]["container"]["image"]


def _missing_parameter_name(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["arguments"]["parameters"][0]["name"]


@pytest.mark.parametrize(("breakage", "message"), [
    (_break_type, r"Invalid type for variable 'args'.*value type is list.*\['container'\]\['args'\]"),
    (_break_item_type, r"Required value type is str and passed type was int.*\['args'\]\[0\]"),
    (_unknown_field, r"spec\.templates\[0\]\.container: unknown field 'imagee' \(not in Argo's Container\)"),
    (_missing_image, r"spec\.templates\[0\]\.container: missing required field 'image'"),
    (_missing_parameter_name, r"spec\.arguments\.parameters\[0\]: missing required field 'name'"),
])
def test_a_broken_manifest_is_refused_by_argos_schema(breakage: Any, message: str, tmp_path: Path) -> None:
    manifest, _ = _export("contrived", tmp_path)
    validate_manifest(manifest)
    breakage(manifest)
    with pytest.raises(ExecutionError, match=f"(?i)^not a valid Argo Workflow: .*{message}"):
        validate_manifest(manifest)


def test_cli_export_writes_a_valid_manifest(tmp_path: Path) -> None:
    shutil.copy(COMPAT / "parallel-fail.yaml", tmp_path / "p.yaml")
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "export", "p.yaml", "--to", "argo",
                           "--image", "example/magnus:1", "--pvc", "magnus-data", "-o", "workflow.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load((tmp_path / "workflow.yaml").read_text())
    validate_manifest(manifest)
    assert manifest["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "magnus-data"


TIMEOUT = """\
dag:
  start_at: slow
  steps:
    slow:
      type: task
      command_type: shell
      command: sleep 30
      timeout: 1
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_execute_step_keeps_a_task_timeout_and_records_it(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(TIMEOUT)
    assert main(["execute-step", "r1", "--init", "--file", "p.yaml", "--root", str(tmp_path)]) == 0
    assert main(["execute-step", "r1", "slow", "--root", str(tmp_path)]) == 1
    log = json.loads((tmp_path / ".run_log_store" / "r1.json").read_text())
    assert log["steps"]["slow"]["status"] == "FAIL"
    assert log["steps"]["slow"]["message"] == "timed out after 1 s"
    assert main(["execute-step", "r1", "no such step", "--root", str(tmp_path)]) == 2


def test_execute_step_refuses_a_name_that_ends_at_a_branch(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(CONFLICT)
    assert main(["execute-step", "r1", "--init", "--file", "p.yaml", "--root", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["execute-step", "r1", "par.a", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'par.a' names no step of the pipeline" in err and "Traceback" not in err, err


def test_the_demo_simulated_on_argo_matches_magnus_jupyter_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook tasks in pods: the same status tree and parameters as the local executor's run."""
    for name in ("argo", "local"):
        (tmp_path / name / "notebooks").mkdir(parents=True)
        for file in (ROOT / "notebooks").glob("*.ipynb"):
            shutil.copy(file, tmp_path / name / "notebooks" / file.name)
        shutil.copy(ROOT / "notebooks" / "pipeline.yaml", tmp_path / name / "notebooks" / "pipeline.yaml")
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "notebooks/pipeline.yaml",
                           "--run-id", "demo", "--quiet"], cwd=tmp_path / "local", capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    local = json.loads((tmp_path / "local" / ".run_log_store" / "demo.json").read_text())
    folder = tmp_path / "argo"
    manifest = export_argo(load_yaml(folder / "notebooks" / "pipeline.yaml"), image="example/magnus:1",
                           pipeline_file="notebooks/pipeline.yaml")
    validate_manifest(manifest)
    monkeypatch.chdir(folder)
    assert ArgoSimulation(manifest, folder, "demo").run(manifest["spec"]["entrypoint"]) == "Succeeded"
    log = json.loads((folder / ".run_log_store" / "demo.json").read_text())
    assert flatten(log) == flatten(local)
    assert log["status"] == "SUCCESS"
    assert log["parameters"] == local["parameters"]
    assert (folder / ".catalog" / "demo" / "data" / "xgb_weights.npy").is_file()


FAIL_FAST = """\
dag:
  start_at: par
  steps:
    par:
      type: parallel
      failure_policy: {policy}
      next: success
      branches:
        a:
          start_at: broken
          steps:
            broken: {{type: task, command_type: shell, command: exit 1, next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
        b:
          start_at: first
          steps:
            first: {{type: task, command_type: shell, command: "true", next: second}}
            second: {{type: task, command_type: shell, command: "true", next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.parametrize("policy", ["fail_fast", "finish_all"])
def test_failure_policy_is_the_branches_failfast_and_execute_step_honours_it(
        policy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argo starts both branches; once 'a' failed, fail_fast lets 'b' start nothing (as the engine
    cancels it), finish_all lets it finish. The parallel step fails either way."""
    (tmp_path / "p.yaml").write_text(FAIL_FAST.format(policy=policy))
    manifest = export_argo(load_yaml(tmp_path / "p.yaml"), image="example/magnus:1", pipeline_file="p.yaml")
    validate_manifest(manifest)
    _, branches = _fan_out(manifest)
    assert branches["dag"]["failFast"] is (policy == "fail_fast")
    assert not any("continueOn" in t for t in branches["dag"]["tasks"])  # a failed branch counts
    monkeypatch.chdir(tmp_path)
    assert ArgoSimulation(manifest, tmp_path, "ff").run(manifest["spec"]["entrypoint"]) == "Failed"
    log = json.loads((tmp_path / ".run_log_store" / "ff.json").read_text())
    steps = flatten(log)
    assert steps["par.a.broken"] == "FAIL" and steps["par.a"] == "FAIL"
    assert steps["par"] == "FAIL" and steps["fail"] == "SUCCESS" and log["status"] == "FAIL"
    if policy == "fail_fast":
        assert steps["par.b"] == "FAIL"
        assert not [name for name in steps if name.startswith("par.b.")]  # it started nothing
        assert log["steps"]["par"]["message"] == "branches failed: par.a, par.b"
    else:
        assert steps["par.b.first"] == steps["par.b.second"] == steps["par.b"] == "SUCCESS"
        assert log["steps"]["par"]["message"] == "branch failed: par.a"


SLOW = """\
dag:
  start_at: slow
  steps:
    slow:
      type: task
      command_type: shell
      command: touch started && sleep 60
      next: success
    success:
      type: success
    fail:
      type: fail
"""


class KillingSimulation(ArgoSimulation):
    """Argo kills the pod of ``victim`` (SIGKILL to all its processes, as for OOM) once its task runs.
    ``deadline``: the workflow is stopped with it (no further pod; the exit handler runs)."""

    def __init__(self, manifest: dict[str, Any], root: Path, run_id: str, victim: str,
                 deadline: bool) -> None:
        super().__init__(manifest, root, run_id)
        self.victim, self.deadline = victim, deadline

    def pod(self, template: dict[str, Any], inputs: dict[str, str]) -> tuple[str, dict[str, str]]:
        args = self.command(template, inputs)
        if args[:3] != ["execute-step", self.workflow["run_id"], self.victim]:
            return super().pod(template, inputs)
        self.pods.append(args)
        proc = subprocess.Popen([sys.executable, "-m", "magnus_jupyter", *args], cwd=self.root,
                                start_new_session=True)
        try:
            for _ in range(1200):  # until the task runs (its shell made the file)
                if (self.root / "started").exists() or proc.poll() is not None:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "the pod ended before it could be killed"
            assert (self.root / "started").exists(), "the task never started"
        finally:
            pod = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            for process in pod:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGKILL)
            proc.wait()
            psutil.wait_procs(pod, timeout=10)
        if self.deadline:
            raise WorkflowStopped
        return "Failed", {}


@pytest.mark.parametrize("deadline", [False, True], ids=["oom-kill", "deadline"])
def test_a_killed_pod_leaves_nothing_processing_once_the_exit_handler_ran(
        deadline: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.yaml").write_text(SLOW)
    manifest = export_argo(load_yaml(tmp_path / "p.yaml"), image="example/magnus:1", pipeline_file="p.yaml")
    validate_manifest(manifest)
    handler = {t["name"]: t for t in manifest["spec"]["templates"]}[manifest["spec"]["onExit"]]
    assert handler["container"]["args"][:1] + handler["container"]["args"][2:3] == ["execute-step",
                                                                                      "--finalize"]
    monkeypatch.chdir(tmp_path)
    simulation = KillingSimulation(manifest, tmp_path, "killed", "slow", deadline)
    assert simulation.run(manifest["spec"]["entrypoint"]) == "Failed"
    assert simulation.pods[-1][:3] == ["execute-step", "killed", "--finalize"]  # the exit handler ran last
    text = (tmp_path / ".run_log_store" / "killed.json").read_text()
    log = json.loads(text)
    assert log["steps"]["slow"]["status"] == "FAIL"
    assert log["steps"]["slow"]["message"] == LOST_POD
    assert log["status"] == "FAIL"
    assert "PROCESSING" not in text
    if deadline:  # no fail step ran: the handler ended the run, and says why
        assert "fail" not in log["steps"]
        assert LOST_POD in log["message"] and "slow" in log["message"]
    else:
        assert log["steps"]["fail"]["status"] == "SUCCESS"


def test_finalize_leaves_a_finished_run_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(TIMEOUT)
    assert main(["execute-step", "r1", "--init", "--file", "p.yaml", "--root", str(tmp_path)]) == 0
    assert main(["execute-step", "r1", "slow", "--root", str(tmp_path)]) == 1
    assert main(["execute-step", "r1", "fail", "--root", str(tmp_path)]) == 1
    before = (tmp_path / ".run_log_store" / "r1.json").read_text()
    assert main(["execute-step", "r1", "--finalize", "--root", str(tmp_path)]) == 0
    assert json.loads((tmp_path / ".run_log_store" / "r1.json").read_text()) == json.loads(before)
    assert main(["execute-step", "r1", "slow", "--finalize", "--root", str(tmp_path)]) == 2


CONFLICT = """\
dag:
  start_at: par
  steps:
    par:
      type: parallel
      next: success
      branches:
        a:
          start_at: write
          steps:
            write: {type: task, command_type: shell, command: export MAGNUS_PRM_x=1, next: success}
            success: {type: success}
            fail: {type: fail}
        b:
          start_at: write
          steps:
            write: {type: task, command_type: shell, command: export MAGNUS_PRM_x=2, next: success}
            success: {type: success}
            fail: {type: fail}
    success:
      type: success
    fail:
      type: fail
"""


def test_two_branches_writing_one_parameter_warn_as_the_local_executor_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("argo", "local"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.yaml").write_text(CONFLICT)
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "p.yaml", "--run-id", "w",
                           "--quiet", "--workers", "1"], cwd=tmp_path / "local", capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    local = json.loads((tmp_path / "local" / ".run_log_store" / "w.json").read_text())
    folder = tmp_path / "argo"
    manifest = export_argo(load_yaml(folder / "p.yaml"), image="example/magnus:1", pipeline_file="p.yaml")
    monkeypatch.chdir(folder)
    capsys.readouterr()
    assert ArgoSimulation(manifest, folder, "w").run(manifest["spec"]["entrypoint"]) == "Succeeded"
    log = json.loads((folder / ".run_log_store" / "w.json").read_text())
    # Which branch finishes last is up to the scheduling (even with one worker the engine's branch
    # threads race to it): both say the same words, and the branch each names is the one whose value won.
    wrote = {"par.a": 1, "par.b": 2}
    for run in (local, log):
        [warning] = run["warnings"]
        found = re.fullmatch(r"parameter 'x' was written by parallel branches '(par\.[ab])', '(par\.[ab])' "
                             r"of 'par'; the last to finish \('(par\.[ab])'\) wins", warning)
        assert found and {found.group(1), found.group(2)} == set(wrote), warning
        assert found.group(2) == found.group(3), f"listed in the order they wrote, the last wins: {warning}"
        assert run["parameters"] == {"x": wrote[found.group(3)]}
    [expected] = log["warnings"]
    assert f"warning: {expected}" in capsys.readouterr().err  # the pod's log says it too
