"""``magnus-jupyter why RUN_ID STEP``: a task's fingerprint, and what differs from its nearest earlier run.

"Nearest earlier" is what ``--reuse`` compares with: the newest successful
attempt of the same internal name, in another run of this folder, that ended
before this one started. Every difference is listed, not only the first (the
step's ``rerun_reason``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ExecutionError
from .fingerprint import differences
from .retry import load_run_log
from .reuse import EarlierRuns
from .runlog import iter_steps


def find_step(run_log: dict[str, Any], name: str) -> dict[str, Any]:
    """The step log named ``name`` (an internal name, or a name only one step has); else a one-liner."""
    steps = [s for s in iter_steps(run_log) if "internal_name" in s]
    for step in steps:
        if step["internal_name"] == name:
            return step
    named = [s for s in steps if s.get("name") == name]
    if len(named) == 1:
        return named[0]
    run_id = run_log.get("run_id")
    if named:
        shown = ", ".join(repr(s["internal_name"]) for s in named[:5])
        raise ExecutionError(f"run {run_id!r}: {len(named)} steps are named {name!r} ({shown}); give the "
                             "internal name")
    tasks = [s["internal_name"] for s in steps if s.get("step_type") == "task"]
    shown = ", ".join(repr(t) for t in tasks[:6]) + (" ..." if len(tasks) > 6 else "")
    raise ExecutionError(f"run {run_id!r} has no step {name!r}" + (f" (its tasks: {shown})" if tasks else ""))


def explain(run_id: str, name: str, cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """The lines ``why`` prints."""
    folder = Path(cwd if cwd is not None else os.getcwd())
    run_log = load_run_log(run_id, folder)
    step = find_step(run_log, name)
    internal = step["internal_name"]
    if step.get("step_type") != "task":
        raise ExecutionError(f"run {run_id!r}: '{internal}' is a {step.get('step_type')} step; why explains "
                             "tasks (a composite step's tasks have their own internal names)")
    fingerprint = step.get("fingerprint")
    if not isinstance(fingerprint, dict):
        raise ExecutionError(f"run {run_id!r}: '{internal}' has no fingerprint (the run was made before "
                             "fingerprints, or by another tool)")
    out = [f"{internal} in run {run_id}: {_outcome(step)}", f"fingerprint {fingerprint.get('digest')}"]
    environment = (run_log.get("run_config") or {}).get("environment")
    out.extend(f"  {line}" for line in parts(fingerprint, environment))
    if step.get("reused_from"):
        out.append(f"reused from run {step['reused_from']}: the fingerprint above is the one its result "
                   "was made with")
        return out
    attempts = step.get("attempts") or [{}]
    started = str(attempts[0].get("start_time", "")) or None
    earlier = next(EarlierRuns(folder, exclude=run_id).succeeded(internal, before=started), None)
    if earlier is None:
        out.append("no earlier successful run of this step in this folder")
    elif earlier.fingerprint is None:
        out.append(f"run {earlier.run_id}, the nearest earlier success, recorded no fingerprint")
    else:
        found = differences(fingerprint, earlier.fingerprint, environment, earlier.environment)
        if not found:
            out.append(f"the same fingerprint as run {earlier.run_id}, the nearest earlier success")
        else:
            out.append(f"compared with run {earlier.run_id}, the nearest earlier success:")
            out.extend(f"  {line}" for line in found)
    return out


def _outcome(step: dict[str, Any]) -> str:
    if step.get("reused_from"):
        return f"{step.get('status')}, reused from run {step['reused_from']}"
    reason = step.get("rerun_reason")
    return f"{step.get('status')}, ran" + (f" ({reason})" if reason else "")


def parts(fingerprint: dict[str, Any], environment: Any = None) -> list[str]:
    """The fingerprint's parts, one line each: what was looked at, and its digest."""
    out = ["task         " + ", ".join(f"{k} {v}" for k, v in (fingerprint.get("task") or {}).items())]
    notebook = fingerprint.get("notebook")
    if isinstance(notebook, dict):
        cells = notebook.get("cells") or []
        shown = ", ".join(str(c[0]) for c in cells[:12]) + (" ..." if len(cells) > 12 else "")
        what = "missing" if notebook.get("missing") else f"{len(cells)} code cells ({shown})"
        out.append(f"notebook     {notebook.get('path')}: {what}")
        out.append(f"kernel       {fingerprint.get('kernel')}")
    python = fingerprint.get("python")
    if isinstance(python, dict):
        what = "not found" if python.get("missing") else (
            f"module {python.get('source')}, function {python.get('function') or 'not found in it'}")
        out.append(f"python       {python.get('name')} in {python.get('module')}: {what}")
    values = fingerprint.get("values") or {}
    params = fingerprint.get("parameters") or {}
    shown = [f"{k}={_short(values[k])}" if k in values else f"{k} ({v})" for k, v in params.items()]
    out.append("parameters   " + (", ".join(shown) if shown else "none"))
    for label, key in (("catalog      ", "catalog"), ("inputs       ", "inputs")):
        files = fingerprint.get(key) or {}
        out.append(label + (", ".join(f"{n} {str(d)[:16]}" for n, d in files.items()) if files else "none"))
    if isinstance(environment, dict):
        count = len(environment.get("distributions") or {})
        out.append(f"environment  {environment.get('python')}, {count} distributions "
                   f"({fingerprint.get('environment')})")
    else:
        out.append(f"environment  {fingerprint.get('environment')}")
    return out


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
