"""``execute-step``: run one step of a run, by internal name, against its run log and catalog.

What an Argo pod runs (``argo.py``): the workflow, not this process, walks the
pipeline, so each call does one step's share of what the engine does and
records it where the engine would, at any depth of parallel and map branches:

- ``--init``: create the run log (pipeline YAML, initial parameters);
- a task: catalog get, its fingerprint (``fingerprint.py``, as the engine takes
  it, but with the run's parameters as they are when the pod starts: a value a
  sibling branch wrote is not told apart here), attempts up to
  ``max_attempts``, catalog put, parameter updates merged into the run's
  parameters; a stub: SUCCESS;
- ``success`` / ``fail``: the step SUCCESS and its graph's (branch or run) status;
- a parallel / map / dag step, ``--phase start``: its log and branch logs (a
  map writes its values, as JSON text, to ``--values-out`` for Argo's
  ``withParam``); ``--phase end``: its status from its branches', and the
  engine's warning when two branches wrote the same parameter (the last wins);
- ``failure_policy: fail_fast``: once a branch of such a step failed, a step of
  a sibling branch starts nothing: its branch ends FAIL, as the engine's
  cancelled branch does (a task already running finishes: Argo does not stop
  a sibling's pod, the engine would have killed it);
- ``--finalize``: the workflow's exit handler. A pod Argo killed (OOM, deadline)
  left its step PROCESSING; every step and branch still PROCESSING ends FAIL
  with the reason, and a run still PROCESSING ends FAIL.

The exit status is the step's: 0 SUCCESS, 1 FAIL (a ``fail`` step exits 1, so
the workflow that reaches it fails). Concurrent pods share the run log through
an exclusive lock file next to it (``flock``: one host, or a file system that
honours it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ExecutionError
from ..model import Dag, Fail, Map, Parallel, Pipeline, Step, Success, Task, join_name
from .catalog import Catalog, CatalogError
from .engine import attempt_paths, branches_failed, run_config_of
from .fingerprint import Fingerprints
from .params import WriteLog, changed
from .runlog import (
    CATALOG_FOLDER,
    RUN_LOG_FOLDER,
    RunLogStore,
    attempt_log,
    branch_log,
    iter_steps,
    now,
    run_log_path,
    step_log,
)
from .task import FAIL, SUCCESS, TaskSpec


@contextlib.contextmanager
def _locked(root: Path, run_id: str) -> Iterator[dict[str, Any]]:
    """The run log for read-modify-write, under an exclusive lock; written back atomically."""
    path = run_log_path(root, run_id)
    if not path.is_file():
        raise ExecutionError(f"run {run_id!r}: no run log at {path}; run execute-step --init first")
    with open(root / RUN_LOG_FOLDER / f".{run_id}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text(encoding="utf-8"))
        yield data
        store = RunLogStore(path, data)
        store.write(indent=1)


def init_run(root: Path, run_id: str, pipeline_file: str, parameters: dict[str, Any],
             services: Any = None) -> None:
    """Create the run's log, as ``run_pipeline`` would at its start; ``services``: its magnus config."""
    from ..yaml_io import load_yaml

    pipeline = load_yaml(root / pipeline_file)
    config = run_config_of(pipeline, root / pipeline_file, parameters, {"type": "magnus-jupyter-argo"})
    if services is not None:
        config["services"] = services.as_dict()
    store = RunLogStore.create(root, run_id, parameters, config)
    store.data["tag"] = services.tag if services is not None else ""
    store.write(indent=1)
    Catalog(root, run_id, services.catalog_location if services is not None else CATALOG_FOLDER).ensure()


def _pipeline(data: dict[str, Any]) -> Pipeline:
    from ..yaml_io import load_yaml

    text = (data.get("run_config") or {}).get("pipeline_yaml") or ""
    if not text:
        raise ExecutionError(f"run {data.get('run_id')!r} recorded no pipeline")
    return load_yaml(text)


def _locate(pipeline: Pipeline, internal: str, data: dict[str, Any], above: list[Step] | None = None
            ) -> tuple[Step, Pipeline, list[tuple[str, str]], dict[str, Any]]:
    """The step named ``internal``, its graph, the (composite step, branch) names above it, map values;
    ``above`` receives the composite steps of ``path``."""
    parts = internal.split(".")
    graph, prefix, path, map_variable = pipeline, "", [], {}
    above = [] if above is None else above
    i = 0
    while i < len(parts):
        step = graph.steps.get(parts[i])
        if step is None:
            raise ExecutionError(f"execute-step: no step {parts[i]!r} in {prefix or 'the pipeline'}")
        full = join_name(prefix, parts[i])
        if i == len(parts) - 1:
            return step, graph, path, map_variable
        branch = parts[i + 1]
        if isinstance(step, Map) and step.branch is not None:
            values = data["parameters"].get(step.iterate_on)
            match = [v for v in values if str(v) == branch] if isinstance(values, list) else []
            map_variable = {**map_variable, step.iterate_as: match[0] if match else branch}
            graph = step.branch
        elif step.branches().get(branch) is not None:
            graph = step.branches()[branch]
        else:
            break
        prefix = f"{full}.{branch}"
        path.append((full, prefix))
        above.append(step)
        i += 2
    raise ExecutionError(f"execute-step: {internal!r} names no step of the pipeline")


def _container(data: dict[str, Any], path: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The steps mapping the step's log goes in, and the graph's owner (branch log or run log)."""
    owner, steps = data, data["steps"]
    for step_name, branch_name in path:
        owner = steps[step_name]["branches"][branch_name]
        steps = owner["steps"]
    return steps, owner


def execute_step(root: str | os.PathLike[str], run_id: str, internal: str, phase: str = "run",
                 values_out: str | None = None, warn: Callable[[str], None] | None = None) -> str:
    """Run (or start/end) one step; return its status. Bad names raise ``ExecutionError``.

    ``warn`` also hears the warnings recorded in the run log (parameters written by two branches).
    """
    folder = Path(root).resolve()
    with _locked(folder, run_id) as data:
        pipeline = _pipeline(data)
        above: list[Step] = []
        step, graph, path, map_variable = _locate(pipeline, internal, data, above)
        steps, owner = _container(data, path)
        reason = _cancelled(data, path, above)
        if reason:  # a fail_fast sibling failed: this branch starts nothing more, as in the engine
            if warn is not None:
                warn(f"{internal}: not started: {reason}")
            return FAIL
        if phase == "end":
            if internal not in steps:  # its start was cancelled
                return FAIL
            status, warnings = _end(steps[internal], internal)
            data["warnings"].extend(warnings)
            for message in warnings if warn is not None else ():
                warn(message)
            return status
        entry = step_log(step.name, internal, step.type)
        steps[internal] = entry
        if step.is_composite:
            return _start(step, internal, entry, data, values_out)
        if not isinstance(step, Task):
            status = SUCCESS
            if isinstance(step, Success | Fail):
                owner["status"] = SUCCESS if isinstance(step, Success) else FAIL
            stamp = now()
            entry["attempts"].append(attempt_log(1, stamp, stamp, status))
            entry["status"] = status
            return FAIL if isinstance(step, Fail) else status
        given = {**data["parameters"], **map_variable}
        iterated = {s.iterate_on for s in above if isinstance(s, Map)}  # as the engine: each value its own
        seen = {k: v for k, v in given.items() if k not in iterated}
        services = (data.get("run_config") or {}).get("services")
    status, message, record = _task(folder, run_id, step, internal, given, map_variable, seen, services, warn)
    with _locked(folder, run_id) as data:
        steps, _ = _container(data, path)
        entry = steps[internal]
        entry["attempts"].extend(record["attempts"])
        entry["data_catalog"].extend(record["data_catalog"])
        if record.get("fingerprint"):
            entry["fingerprint"] = record["fingerprint"]
            data["run_config"].setdefault("environment", record["environment"])
        entry.update(status=status, message=message)
        if status == SUCCESS:
            entry["user_defined_metrics"] = record["metrics"]
            entry["parameter_updates"] = record["updates"]
            data["parameters"].update(record["updates"])
    return status


def _start(step: Step, internal: str, entry: dict[str, Any], data: dict[str, Any],
           values_out: str | None) -> str:
    names: list[str] = []
    if isinstance(step, Map):
        values = data["parameters"].get(step.iterate_on)
        if not isinstance(values, list):
            entry.update(status=FAIL, message=f"map: iterate_on parameter {step.iterate_on!r} must be a list")
            return FAIL
        names = [str(v) for v in values]
        branches = [f"{internal}.{name}" for name in names]
    else:
        assert isinstance(step, Parallel | Dag)
        branches = [join_name(internal, name) for name in step.branches()]
    for name in branches:
        entry["branches"][name] = branch_log(name)
    if values_out:
        Path(values_out).write_text(json.dumps(names))
    return SUCCESS


def _cancelled(data: dict[str, Any], path: list[tuple[str, str]], above: list[Step]) -> str:
    """Why the branch a step is in must start nothing more (else ""): a branch of an enclosing
    ``fail_fast`` step failed (its own, or a sibling's). Branches so stopped are marked FAIL."""
    steps: dict[str, Any] = data["steps"]
    for (step_name, branch_name), step in zip(path, above, strict=True):
        entry = steps.get(step_name)
        if entry is None:
            return ""
        branches = entry["branches"]
        if getattr(step, "failure_policy", None) == "fail_fast":
            failed = [name for name, b in branches.items() if name != branch_name and b["status"] == FAIL]
            if failed:
                reason = f"cancelled: branch '{failed[0]}' failed (failure_policy: fail_fast)"
                _stop(branches[branch_name])
                return reason
        branch = branches.get(branch_name)
        if branch is None:
            return ""
        if branch["status"] == FAIL:  # stopped by an earlier step of it (its own fail step sets it last)
            return "cancelled: its branch was stopped"
        steps = branch["steps"]
    return ""


def _stop(branch: dict[str, Any]) -> None:
    """A cancelled branch and the branches under it that are still PROCESSING end FAIL."""
    for log in (branch, *iter_steps(branch, branches=True)):
        if "step_type" not in log and log["status"] == PROCESSING:  # a branch log
            log["status"] = FAIL


def _end(entry: dict[str, Any], internal: str) -> tuple[str, list[str]]:
    """A composite step's status from its branches', and the warnings about parameters two wrote."""
    if entry["status"] == FAIL:  # its start failed
        return FAIL, []
    failed = [b["internal_name"] for b in entry["branches"].values() if b["status"] != SUCCESS]
    entry["status"] = FAIL if failed else SUCCESS
    entry["message"] = branches_failed(failed) if failed else ""
    return str(entry["status"]), _write_conflicts(entry, internal)


def _write_conflicts(entry: dict[str, Any], internal: str) -> list[str]:
    """The engine notes writes as tasks merge; here the run log has them: each successful task's
    ``parameter_updates`` under each branch, merged in the order the tasks ended."""
    writes: list[tuple[str, str, dict[str, Any]]] = []
    for name, branch in entry["branches"].items():
        for step in iter_steps(branch):
            updates = step.get("parameter_updates")
            if updates and step["status"] == SUCCESS and step["attempts"]:
                writes.append((step["attempts"][-1]["end_time"], name, updates))
    log = WriteLog(internal)
    for _, name, updates in sorted(writes, key=lambda w: w[0]):
        for parameter in updates:
            log.writes.setdefault(parameter, []).append(name)
    return log.warnings()


PROCESSING = "PROCESSING"
LOST_POD = "its pod ended without recording a result"


def finalize_run(root: str | os.PathLike[str], run_id: str) -> tuple[str, list[str]]:
    """The exit handler's work: nothing left PROCESSING once the workflow is over.

    Returns the run's status and the internal names of the steps a lost pod left PROCESSING.
    """
    with _locked(Path(root).resolve(), run_id) as data:
        lost: list[str] = []
        for log in iter_steps(data, branches=True):
            if log["status"] != PROCESSING:
                continue
            log["status"] = FAIL
            if "step_type" not in log:  # a branch log
                continue
            if log["step_type"] in ("parallel", "map", "dag"):
                log["message"] = log["message"] or "the workflow ended before its branches did"
            else:
                lost.append(log["internal_name"])
                log["message"] = log["message"] or LOST_POD
        if data["status"] == PROCESSING:
            data["status"] = FAIL
            data["message"] = data.get("message") or (
                f"the workflow ended before the run did ({LOST_POD}: {', '.join(lost)})" if lost
                else "the workflow ended before the run did")
        return str(data["status"]), lost


def _task(root: Path, run_id: str, step: Task, internal: str, given: dict[str, Any],
          map_variable: dict[str, Any], seen: dict[str, Any], recorded: dict[str, Any] | None = None,
          warn: Callable[[str], None] | None = None) -> tuple[str, str, dict[str, Any]]:
    """The task's attempts, outside the lock: a long task must not hold the other pods up. ``seen``: the
    parameters its fingerprint counts; ``recorded``: the magnus config the run recorded (catalog,
    secrets, tracker)."""
    from ..config import MagnusConfig
    from .context import run_context
    from .runners import run_task

    services = MagnusConfig.from_dict(recorded) if recorded else MagnusConfig()
    catalog = Catalog(root, run_id, services.catalog_location)
    context = run_context(run_id, services.catalog_folder(root, run_id), catalog.location,
                          run_log_path(root, run_id), services)
    syncs = services.catalog["type"] != "do-nothing"
    record: dict[str, Any] = {"attempts": [], "data_catalog": [], "updates": {}, "metrics": {}}
    try:
        for pattern in (step.catalog or {}).get("get") or [] if syncs else []:
            record["data_catalog"].extend(catalog.get(pattern))
    except (CatalogError, OSError) as exc:
        stamp = now()
        record["attempts"].append(attempt_log(1, stamp, stamp, FAIL, str(exc)))
        return FAIL, str(exc), record
    synced = list(record["data_catalog"])
    fingerprints = Fingerprints(root)  # as the engine takes it: the same parts, from this pod's view
    record["fingerprint"] = fingerprints.task(step, seen, synced)
    record["environment"] = fingerprints.environment()
    message = ""
    for number in range(1, (step.max_attempts or 1) + 1):
        log_path, notebook = attempt_paths(catalog.ensure(), internal, step.kind, number)
        spec = TaskSpec(internal_name=internal, kind=step.kind, command=step.command, cwd=str(root),
                        parameters=given, map_variable=dict(map_variable), notebook_output_path=notebook,
                        output_cell_tag=step.output_cell_tag or "magnus_output",
                        returns=list(step.returns or []), timeout=step.timeout, log_path=log_path,
                        attempt=number, env=context.env(internal))
        start = now()
        if spec.timeout is None:
            result = run_task(spec)
        else:  # the pool kills the task's process tree at its timeout; run_task alone would wait on
            from .slots import TaskSlots

            with TaskSlots(1, warm_kernels=False) as slots:
                result = slots.submit(spec).result()
        record["attempts"].append(attempt_log(number, result.start_time or start, result.end_time or now(),
                                              result.status, result.message, given))
        for file in dict.fromkeys((result.output_notebook or notebook, log_path)):
            if file:
                with contextlib.suppress(OSError):
                    item = catalog.record(file)
                    if item:
                        record["data_catalog"].append(item)
        _track(services, run_id, internal, result.metrics, warn)
        if result.status == SUCCESS:
            record["data_catalog"].extend(result.data_catalog)
            try:
                for pattern in (step.catalog or {}).get("put") or [] if syncs else []:
                    record["data_catalog"].extend(catalog.put(pattern, synced))
            except (CatalogError, OSError) as exc:
                return FAIL, str(exc), record
            record["updates"] = changed(given, result.parameters or {})
            record["metrics"] = dict(result.metrics)
            return SUCCESS, "", record
        message = result.message or "the task failed"
    return FAIL, message, record


def _track(services: Any, run_id: str, internal: str, metrics: dict[str, Any],
           warn: Callable[[str], None] | None) -> None:
    """The task's metrics to the run's experiment tracker, as the engine publishes them."""
    if not metrics or services.experiment_tracker["type"] == "do-nothing":
        return
    from .tracking import tracker_for

    try:
        tracker_for(services.experiment_tracker, run_id, services.tag).publish(metrics)
    except Exception as exc:
        if warn is not None:
            warn(f"step '{internal}': the experiment tracker did not take its metrics: "
                 f"{type(exc).__name__}: {exc}")
