"""A run's steps as a tree of plain rows: what ``runs show`` prints and a notebook or Lab view lists.

Rows come parents first, in run-log order, every step and branch at any depth,
with its depth. A composite step or branch has no attempts of its own: its
times span those of the steps inside it. A reused step keeps the times it had
in the run it was copied from; they do not widen its parents' times here.
"""

from __future__ import annotations

from typing import Any, TypedDict

from .summary import is_reused, parse_time


class AttemptRow(TypedDict):
    number: int
    status: str
    start: str
    end: str
    duration: float | None
    message: str


class StepRow(TypedDict):
    """One step or branch. ``kind``: the step type (task, stub, parallel, map, dag, success, fail)
    or ``branch``; ``parent``: the index of the enclosing row, -1 at the top."""

    internal_name: str
    name: str
    kind: str
    depth: int
    parent: int
    status: str
    start: str
    end: str
    duration: float | None
    attempts: list[AttemptRow]
    message: str
    metrics: dict[str, Any]
    reused_from: str
    fingerprint: str


def _attempt(number: int, attempt: dict[str, Any]) -> AttemptRow:
    start, end = attempt.get("start_time") or "", attempt.get("end_time") or ""
    a, b = parse_time(start), parse_time(end)
    number_given = attempt.get("attempt_number")
    return {"number": number_given if isinstance(number_given, int) else number, "status":
            str(attempt.get("status") or ""), "start": start, "end": end,
            "duration": b - a if a is not None and b is not None else None,
            "message": str(attempt.get("message") or "")}


def step_rows(run_log: dict[str, Any]) -> list[StepRow]:
    """Every step and branch of ``run_log`` (checked by store.py), parents first."""
    rows: list[StepRow] = []
    spans: list[list[float | None]] = []  # per row: first start, last end (as numbers)
    stack: list[tuple[int, int, str, dict[str, Any]]] = [
        (0, -1, "", s) for s in reversed(list(run_log["steps"].values()))]
    while stack:
        depth, parent, parent_name, item = stack.pop()
        internal = str(item.get("internal_name") or item.get("name") or "")
        is_step = "step_type" in item or "attempts" in item
        attempts = [_attempt(i + 1, a) for i, a in enumerate(item.get("attempts") or ())] if is_step else []
        reused = ""
        if is_step and is_reused(item, run_log):
            reused = str(item.get("reused_from") or run_log.get("original_run_id") or "")
        name = str(item.get("name") or "") if is_step else internal.removeprefix(parent_name + ".")
        rows.append({
            "internal_name": internal, "name": name or internal,
            "kind": str(item.get("step_type") or "step") if is_step else "branch",
            "depth": depth, "parent": parent, "status": str(item.get("status") or ""),
            "start": "", "end": "", "duration": None, "attempts": attempts,
            "message": str(item.get("message") or ""),
            "metrics": dict(item.get("user_defined_metrics") or {}), "reused_from": reused,
            "fingerprint": _digest(item.get("fingerprint")),
        })
        spans.append([None, None])
        here = len(rows) - 1
        if attempts:
            rows[here]["start"], rows[here]["end"] = attempts[0]["start"], attempts[-1]["end"]
            spans[here] = [parse_time(attempts[0]["start"]), parse_time(attempts[-1]["end"])]
        children = item.get("branches") if is_step else item.get("steps")
        for child in reversed(list((children or {}).values())):
            stack.append((depth + 1, here, internal, child))
    for i in range(len(rows) - 1, -1, -1):  # children after parents: widen each parent's span
        row, parent = rows[i], rows[i]["parent"]
        first, last = spans[i]
        if first is not None and last is not None:
            row["duration"] = last - first
        if parent < 0 or row["reused_from"]:
            continue
        pfirst, plast = spans[parent]
        if first is not None and (pfirst is None or first < pfirst):
            spans[parent][0] = first
            rows[parent]["start"] = row["start"]
        if last is not None and (plast is None or last > plast):
            spans[parent][1] = last
            rows[parent]["end"] = row["end"]
    return rows


def _digest(fingerprint: Any) -> str:
    """A step log's fingerprint as one digest (executor/fingerprint.py records its parts too)."""
    if isinstance(fingerprint, dict):
        return str(fingerprint.get("digest") or "")
    return str(fingerprint or "")
