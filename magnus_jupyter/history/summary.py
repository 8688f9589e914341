"""One row per run: what ``runs`` lists, the notebook's history table shows and the Lab panel serves.

A run log says PROCESSING both while its run goes on and after its
orchestrator was killed. The orchestrator's pid, host and process start time
are in ``run_config.orchestrator`` (runlog.py): on the same host, a live process
with that pid and start time means RUNNING, anything else ABANDONED. A log
recorded elsewhere, or by magnus itself (which records no orchestrator), stays
PROCESSING: nobody here can tell.

Counts are of the steps that do work (tasks and stubs, at any depth); a step a
retry copied from an earlier run (``reused_from``) counts as reused, not as
succeeded. Times are those of the attempts, reused ones left out: they belong to
the earlier run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypedDict

from ..executor.runlog import iter_steps, orchestrator_alive
from . import index
from .store import RunFile, RunFolder, RunLogError, read_run_file, run_files

RUNNING, ABANDONED, PROCESSING = "RUNNING", "ABANDONED", "PROCESSING"
NOT_LEAVES = frozenset({"parallel", "map", "dag", "success", "fail"})


class RunSummary(TypedDict):
    """A run as one row. ``status``: SUCCESS, FAIL, RUNNING, ABANDONED, or PROCESSING when
    this machine cannot tell (``log_status`` is what the log says). Times as magnus writes
    them (local, ``2024-01-31 12:00:00.123456``), ``""`` when unknown; ``duration`` in
    seconds, so far for a running run. ``done``/``total``: steps finished / steps known
    (declared in the recorded pipeline, each map branch counted as often as it has run so
    far), the progress of a run still going."""

    run_id: str
    status: str
    log_status: str
    start: str
    end: str
    duration: float | None
    succeeded: int
    failed: int
    reused: int
    done: int
    total: int
    original_run_id: str
    tag: str
    pipeline: str
    message: str
    path: str
    note: str


def is_leaf(step: dict[str, Any]) -> bool:
    return step.get("step_type") not in NOT_LEAVES and "step_type" in step


def is_reused(step: dict[str, Any], run_log: dict[str, Any]) -> bool:
    """Copied from an earlier run by a retry: ours say ``reused_from``; magnus' mark it ``mock``."""
    return bool(step.get("reused_from")) or (bool(step.get("mock")) and bool(run_log.get("original_run_id")))


def parse_time(text: Any) -> float | None:
    """A magnus timestamp as seconds since the epoch; None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def seconds(value: float | None) -> str:
    """A duration as people read it: ``0.25 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"


def run_times(run_log: dict[str, Any]) -> tuple[str, str]:
    """The first attempt's start and the last attempt's end in this run (reused steps left out)."""
    first: tuple[float, str] | None = None
    last: tuple[float, str] | None = None
    for step in iter_steps(run_log):
        if is_reused(step, run_log):
            continue
        for attempt in step.get("attempts") or ():
            start, end = attempt.get("start_time"), attempt.get("end_time")
            at = parse_time(start)
            if at is not None and (first is None or at < first[0]):
                first = (at, start)
            at = parse_time(end)
            if at is not None and (last is None or at > last[0]):
                last = (at, end)
    return (first[1] if first else ""), (last[1] if last else "")


def summarise(run_log: dict[str, Any], path: str = "", run_id: str | None = None) -> dict[str, Any]:
    """The cacheable part of a row: everything read from the log (liveness is decided later)."""
    succeeded = failed = reused = done = leaves = 0
    for step in iter_steps(run_log):
        if not is_leaf(step):
            continue
        leaves += 1
        status = step.get("status")
        if status != "PROCESSING":
            done += 1
        if is_reused(step, run_log):
            reused += 1
        elif status == "SUCCESS":
            succeeded += 1
        elif status == "FAIL":
            failed += 1
    start, end = run_times(run_log)
    config = run_log.get("run_config") or {}
    status = run_log["status"]
    return {
        "run_id": run_id if run_id is not None else run_log["run_id"],
        "log_status": status,
        "start": start,
        "end": end,
        "succeeded": succeeded,
        "failed": failed,
        "reused": reused,
        "done": done,
        "total": declared_total(run_log, leaves) if status == PROCESSING else leaves,
        "original_run_id": run_log.get("original_run_id") or "",
        "tag": run_log.get("tag") or "",
        "pipeline": str(config.get("pipeline_file") or config.get("pipeline") or ""),
        "message": run_log.get("message") or "",
        "path": path,
        "orchestrator": config.get("orchestrator") if isinstance(config.get("orchestrator"), dict) else None,
    }


def declared_total(run_log: dict[str, Any], seen: int) -> int:
    """Steps that do work in the recorded pipeline, each map branch counted once per branch run so far;
    at least ``seen``. Without a readable recorded pipeline: ``seen``."""
    text = (run_log.get("run_config") or {}).get("pipeline_yaml")
    if not isinstance(text, str) or not text:
        return seen
    try:
        from ..model import Map
        from ..yaml_io import load_yaml

        pipeline = load_yaml(text, validate=False)
    except Exception:  # a recorded pipeline this version cannot read: count what the log shows
        return seen
    logs = {s.get("internal_name"): s for s in iter_steps(run_log)}
    total = 0
    stack = [("", pipeline)]
    while stack:
        prefix, graph = stack.pop()
        for name, step in graph.steps.items():
            internal = f"{prefix}.{name}" if prefix else name
            if isinstance(step, Map):
                if step.branch is not None:
                    found = list((logs.get(internal) or {}).get("branches") or ()) or [internal + ".?"]
                    stack.extend((branch, step.branch) for branch in found)
            elif step.is_composite:
                stack.extend((step.branch_prefix(internal, b), p) for b, p in step.branches().items())
            elif step.type not in NOT_LEAVES:
                total += 1
    return max(total, seen)


def present(row: dict[str, Any], now: float | None = None) -> RunSummary:
    """A cached row made current: liveness of a PROCESSING run, its duration so far."""
    status, note = row["log_status"], ""
    if status == PROCESSING:
        who = row.get("orchestrator")
        alive = orchestrator_alive(who)
        if alive:
            status = RUNNING
        elif alive is False:
            status = ABANDONED
            note = f"its orchestrator (pid {who['pid']}) is gone"  # type: ignore[index]
        else:
            note = ("its orchestrator runs on host " + str(who.get("host")) if who
                    else "no orchestrator recorded") + ": cannot tell whether it still runs"
    start, end = parse_time(row["start"]), parse_time(row["end"])
    if status == RUNNING and start is not None:
        duration: float | None = max(0.0, (now if now is not None else time.time()) - start)
    else:
        duration = end - start if start is not None and end is not None else None
    out = {key: row.get(key) for key in RunSummary.__annotations__}
    out.update(status=status, duration=duration, note=note)
    return out  # type: ignore[return-value]


def _sort_key(row: RunSummary, mtimes: dict[str, float]) -> tuple[float, str]:
    start = parse_time(row["start"])
    return (start if start is not None else mtimes.get(row["run_id"], 0.0), row["run_id"])


def list_runs(folder: str | os.PathLike[str] | RunFolder | None = None, *,
              warn: Callable[[str], None] | None = None, use_index: bool = True) -> list[RunSummary]:
    """Every run in ``folder``, newest first. A log that cannot be read is skipped and ``warn`` is
    called with one line naming its file. Summaries are cached in ``.run_log_store`` (index.py)."""
    where = RunFolder.of(folder)
    files = run_files(where)
    cached = index.load(where.run_logs) if use_index else {}
    keep: dict[str, Any] = {}
    rows: list[RunSummary] = []
    mtimes: dict[str, float] = {}
    now = time.time()
    for run in files:
        key = run.stat_key()
        if key is None:
            continue  # removed since it was listed
        if key[1] == 0 and not index.settled(key):
            continue  # a run starting: its id is reserved by an empty file, its first write follows
        entry = cached.get(run.run_id)
        if not (isinstance(entry, dict) and entry.get("key") == key):
            entry = _read_entry(run, key)
        if index.settled(key):
            keep[run.run_id] = entry
        if "error" in entry:
            if warn is not None:
                warn(str(entry["error"]))
            continue
        mtimes[run.run_id] = key[3] / 1e9
        rows.append(present(entry["summary"], now))
    if use_index and keep != cached:
        index.save(where.run_logs, keep)
    rows.sort(key=lambda r: _sort_key(r, mtimes), reverse=True)
    return rows


def _read_entry(run: RunFile, key: list[int]) -> dict[str, Any]:
    try:
        data = read_run_file(run)
    except RunLogError as exc:
        return {"key": key, "error": str(exc)}
    return {"key": key, "summary": summarise(data, str(run.path), run.run_id)}


def summary_of(run: RunFile, run_log: dict[str, Any]) -> RunSummary:
    """The row of one run already read (``runs show``, rm's liveness check)."""
    return present(summarise(run_log, str(run.path), run.run_id))
