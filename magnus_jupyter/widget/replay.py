"""A run log told again as the events the run published, so a past run is drawn as the live widget drew it.

The DAG of a run from its log (``%magnus_runs``, the Lab panel) is the widget's
own picture: the log's steps and branches become ``StepStarted`` /
``AttemptStarted`` / ``BranchStarted`` / ``...Finished`` events, in the order the
engine publishes them (a composite finishes after its branches), fed to a
``RunStatus``. Its rules (failed or cancelled, reused, map branches as lanes)
then apply unchanged. A step still PROCESSING gets no finish event, so a
running run shows its running steps. Times are the log's, moved onto
``time.monotonic()`` as live events carry them. No ipywidgets, no I/O but the
existence of a task's executed notebook.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..executor import events as ev
from ..executor.engine import attempt_paths
from ..history.summary import is_reused, parse_time
from ..model import Pipeline
from .status import RunStatus

FINISHED = frozenset({"SUCCESS", "FAIL"})


def _clock(stamp: Any, fallback: float) -> float:
    """A log timestamp on the monotonic clock events use; ``fallback`` when it is not one."""
    at = parse_time(stamp)
    return fallback if at is None else at - time.time() + time.monotonic()


def _events(run_log: dict[str, Any], catalog: Path) -> list[ev.Event]:
    """The events of ``run_log`` (checked by history.store), parents first, a composite's finish after its
    branches'. An explicit stack: a deep log costs no recursion."""
    now = time.monotonic()
    out: list[ev.Event] = []
    pending: list[tuple[str, Any]] = [("step", s) for s in reversed(list(run_log["steps"].values()))]
    while pending:
        kind, item = pending.pop()
        if kind == "event":
            out.append(item)
            continue
        if kind == "branch":
            name = str(item.get("internal_name") or "")
            out.append(ev.BranchStarted(name, time=now))
            if item.get("status") in FINISHED:
                pending.append(("event", ev.BranchFinished(name, str(item["status"]), time=now)))
            pending.extend(("step", s) for s in reversed(list((item.get("steps") or {}).values())))
            continue
        internal = str(item.get("internal_name") or item.get("name") or "")
        name = str(item.get("name") or internal.rpartition(".")[2])
        step_type = str(item.get("step_type") or "")
        attempts = item.get("attempts") or []
        start = _clock(attempts[0].get("start_time") if attempts else None, now)
        out.append(ev.StepStarted(internal, name, step_type, time=start))
        running = item.get("status") not in FINISHED
        if step_type == "task" and (attempts or running) and not is_reused(item, run_log):
            # a finished task's last attempt; a running one's current attempt (written when it ends)
            number = attempts[-1].get("attempt_number") if attempts else 0
            number = number if isinstance(number, int) and number > 0 else len(attempts)
            number += running
            log_path, notebook = attempt_paths(catalog, internal, "notebook", number)
            out.append(ev.AttemptStarted(internal, number, log_path,
                                         notebook if notebook and Path(notebook).is_file() else None,
                                         time=start))
        if item.get("status") in FINISHED:
            end = _clock(attempts[-1].get("end_time") if attempts else None, start)
            pending.append(("event", ev.StepFinished(internal, name, step_type, str(item["status"]),
                                                     str(item.get("message") or ""), time=end)))
        pending.extend(("branch", b) for b in reversed(list((item.get("branches") or {}).values())))
    return out


def replay(pipeline: Pipeline, run_log: dict[str, Any], run_log_path: str | Path, catalog: str | Path,
           original: dict[str, Any] | None = None) -> RunStatus:
    """A ``RunStatus`` of ``pipeline`` that has seen the run ``run_log`` as far as the log goes.

    ``catalog``: the run's catalog folder (``.catalog/<run_id>``), where its tasks' files are;
    ``original``: the log of the run this one retried, whose files a reused task links to (without
    it, to the first attempt's).
    """
    from ..history.summary import run_times

    retried = str(run_log.get("original_run_id") or "")
    if original is None and retried:
        original = {"run_id": retried}
    status = RunStatus(pipeline, retry_of=original)
    first, last = run_times(run_log)
    now = time.monotonic()
    started = _clock(first, now)
    run_id = str(run_log["run_id"])
    status(ev.RunStarted(run_id, str(run_log_path), str(catalog), dict(run_log.get("parameters") or {}), 0,
                         time=started))
    for event in _events(run_log, Path(catalog)):
        status(event)
    if run_log.get("status") in FINISHED:
        status(ev.RunFinished(run_id, str(run_log["status"]), dict(run_log.get("parameters") or {}),
                              str(run_log_path), str(catalog), time=_clock(last, started)))
    return status
