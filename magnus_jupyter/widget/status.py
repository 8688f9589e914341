"""The widget's state as a pure status object: an event subscriber with no view in it.

Like pipefunc's progress, the state lives apart from any display: ``RunStatus``
turns engine events into step states, per-branch progress and running tasks;
views (the ipywidgets DAG, a test, a benchmark) subscribe to it and read
``snapshot()``. No ipywidgets, no I/O. Events arrive on engine threads, so every
change happens under one lock and listeners are called outside it (a listener
may render, and rendering reads the status).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..executor import events as ev
from ..model import Dag, Fail, Map, Pipeline, Step, Success, Task, join_name

# the states a view shows (the legend's order); a step never reached in a finished run is skipped
PENDING, RUNNING, SUCCESS, FAILED, CANCELLED, REUSED, SKIPPED = (
    "pending", "running", "success", "failed", "cancelled", "reused", "skipped")
STATES = (PENDING, RUNNING, SUCCESS, REUSED, FAILED, CANCELLED, SKIPPED)
_CANCELLED = "cancelled"  # how the engine's message of a task stopped by a cancel starts

Listener = Callable[["RunStatus", ev.Event | None], None]


@dataclass
class Lane:
    """One branch (or the top-level pipeline, prefix ``""``): what its steps came to.

    Only a succeeded (or reused) step counts towards ``succeeded``: a failed one
    is named in ``failed_at``, one stopped by a cancel in ``cancelled_at``.
    """

    prefix: str
    label: str
    total: int
    succeeded: int = 0
    reused: int = 0
    failed_at: list[str] = field(default_factory=list)
    cancelled_at: list[str] = field(default_factory=list)
    state: str = PENDING
    template: bool = False  # a map's branch before its values are known
    map_owner: str | None = None  # the map step this lane (or an enclosing lane) belongs to


@dataclass
class Running:
    """A task now running: since when, where its output goes, how far its notebook got."""

    internal: str
    name: str
    start: float
    attempt: int = 0
    log_path: str | None = None
    notebook: str | None = None
    cells: tuple[int, int] | None = None


@dataclass
class Snapshot:
    """A consistent copy of the status for one render."""

    version: int
    states: dict[str, str]  # internal name -> engine status (PROCESSING | SUCCESS | FAIL)
    types: dict[str, str]
    lanes: list[Lane]
    running: list[Running]
    outputs: dict[str, tuple[str | None, str | None]]  # task -> (executed notebook, log), last attempt
    map_branches: dict[str, str]  # map branch seen so far -> the map step that owns it
    run_id: str | None = None
    run_status: str | None = None
    run_log_path: str | None = None
    started: float | None = None
    finished: float | None = None
    warnings: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # failed task -> its message
    failed: set[str] = field(default_factory=set)  # what failed for a reason of its own, and all around it
    reused: dict[str, str] = field(default_factory=dict)  # reused task -> the run it came from

    def state(self, internal: str) -> str:
        """The view state of a step or branch (one of ``STATES``).

        A ``FAIL`` is *failed* when something in it failed for a reason of its own,
        else *cancelled* (stopped by an interrupt, the Stop button or fail_fast).
        """
        status = self.states.get(internal)
        if status is None:
            return SKIPPED if self.finished is not None else PENDING
        if self.types.get(internal) == "fail" and status in ("SUCCESS", "FAIL"):
            return FAILED  # magnus logs a reached fail step as SUCCESS; it still means failure
        if status == "SUCCESS":
            return REUSED if internal in self.reused else SUCCESS
        if status == "FAIL":
            return FAILED if internal in self.failed else CANCELLED
        return RUNNING

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else (time.monotonic() if now is None else now)
        return max(0.0, end - self.started)


def _work(pipeline: Pipeline) -> int:
    """Steps a branch has to do: every step but its success and fail ends."""
    return sum(1 for s in pipeline.steps.values() if not isinstance(s, Success | Fail))


class RunStatus:
    """Subscribe an instance to a run (``subscribers=[status]``); views subscribe to the instance."""

    def __init__(self, pipeline: Pipeline, *, retry_of: dict[str, Any] | None = None) -> None:
        """``retry_of``: the run log of the run this one retries; its tasks' files are what a reused
        step links to."""
        self.pipeline = pipeline
        self._retry_of = retry_of
        self._old_steps: dict[str, dict[str, Any]] | None = None  # the retried run's steps, read once
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.version = 0
        self._states: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._lanes: dict[str, Lane] = {}
        self._branch_of: dict[str, Pipeline] = {"": pipeline}  # lane prefix -> its pipeline
        self._composites: dict[str, Step] = {}  # internal name -> composite step, as they start
        self._running: dict[str, Running] = {}
        self._outputs: dict[str, tuple[str | None, str | None]] = {}
        self._map_branches: dict[str, str] = {}
        self._run: dict[str, Any] = {}
        self._warnings: list[str] = []
        self._failures: dict[str, str] = {}
        self._failed: set[str] = set()
        self._reused: dict[str, str] = {}
        self._branches_started: set[str] = set()
        self._static_lanes(pipeline)

    # ---- listeners ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def finished(self) -> bool:
        return "finished" in self._run

    # ---- events ------------------------------------------------------------------------------

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is None:
            return
        with self._lock:
            handler(event)
            self.version += 1
            listeners = list(self._listeners)
        for listener in listeners:  # outside the lock: a listener may render, which reads the status
            listener(self, event)

    def _on_RunStarted(self, e: ev.RunStarted) -> None:
        self._run = {"id": e.run_id, "started": e.time, "run_log_path": e.run_log_path,
                     "catalog_path": e.catalog_path}
        self._lanes[""].state = RUNNING

    def _on_StepStarted(self, e: ev.StepStarted) -> None:
        self._states[e.internal_name] = "PROCESSING"
        self._types[e.internal_name] = e.step_type
        step = self._step(e.internal_name, e.name)
        if step is not None and (step.is_composite or isinstance(step, Map | Dag)):
            self._composites[e.internal_name] = step
        if e.step_type == "task":
            self._running[e.internal_name] = Running(e.internal_name, e.name, e.time)

    def _on_AttemptStarted(self, e: ev.AttemptStarted) -> None:
        task = self._running.get(e.internal_name)
        if task is not None:
            task.attempt, task.log_path, task.notebook = e.attempt, e.log_path, e.output_notebook
            task.cells = None

    def _on_CellExecuted(self, e: ev.CellExecuted) -> None:
        task = self._running.get(e.internal_name)
        if task is not None:
            task.cells = (e.done, e.total)

    def _on_StepFinished(self, e: ev.StepFinished) -> None:
        name = e.internal_name
        self._states[name] = e.status
        self._types[name] = e.step_type
        task = self._running.pop(name, None)
        # a reused task says where from; the engine publishes no attempt for it
        reused = e.status == "SUCCESS" and (bool(e.reused_from) or (task is not None and task.attempt == 0))
        if reused:
            self._reuse(name, e.name, e.reused_from)
        elif task is not None and (task.log_path or task.notebook):
            self._outputs[name] = (task.notebook, task.log_path)
        if e.status == "FAIL" and e.step_type == "task":
            self._failures[name] = e.message
        # a failure of its own: not a cancel, and not a composite whose branches failed (they say why)
        if e.status == "FAIL" and not e.message.startswith(_CANCELLED) and not self._started_branches(name):
            self._mark_failed(name)
        lane = self._lane_of(name, e.name)
        if lane is None or e.step_type in ("success", "fail"):
            return
        if e.status == "SUCCESS":
            lane.succeeded += 1
            lane.reused += reused
        elif name in self._failed:
            lane.failed_at.append(e.name)
        else:
            lane.cancelled_at.append(e.name)

    def _on_BranchStarted(self, e: ev.BranchStarted) -> None:
        name = e.internal_name
        self._states[name] = "PROCESSING"
        self._branches_started.add(name)
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._new_branch_lane(name)
        if lane is not None:
            lane.state = RUNNING

    def _on_BranchFinished(self, e: ev.BranchFinished) -> None:
        self._states[e.internal_name] = e.status
        lane = self._lanes.get(e.internal_name)
        if lane is not None:
            lane.state = self._finished_state(e.internal_name, e.status)

    def _on_RunWarning(self, e: ev.RunWarning) -> None:
        self._warnings.append(e.message)

    def _on_RunFinished(self, e: ev.RunFinished) -> None:
        self._run.update(status=e.status, finished=e.time, run_log_path=e.run_log_path, id=e.run_id)
        self._lanes[""].state = self._finished_state("", e.status)
        for task in self._running.values():  # an interrupted run: what ran keeps its files
            if task.log_path or task.notebook:
                self._outputs[task.internal] = (task.notebook, task.log_path)
        self._running.clear()

    def _finished_state(self, prefix: str, status: str) -> str:
        if status == "SUCCESS":
            return SUCCESS
        return FAILED if prefix in self._failed else CANCELLED

    # ---- failed or cancelled, reused -----------------------------------------------------------

    def _started_branches(self, composite: str) -> bool:
        head = composite + "."
        return any(branch.startswith(head) for branch in self._branches_started)

    def _mark_failed(self, internal: str) -> None:
        """``internal`` failed for a reason of its own: so did every branch and step holding it
        (the rest of a failed run that stopped only because of it reads as cancelled)."""
        self._failed.add(internal)
        self._failed.add("")  # the pipeline
        current = internal
        while True:
            lanes = [p for p in self._lanes if p and current.startswith(p + ".")]
            if not lanes:
                return
            lane = max(lanes, key=len)
            self._failed.add(lane)
            owners = [c for c in self._composites if lane.startswith(c + ".")]
            if not owners:
                return
            current = max(owners, key=len)
            self._failed.add(current)

    def _reuse(self, internal: str, name: str, reused_from: str = "") -> None:
        """A reused task: it links to the executed notebook and log of the run it came from (copied
        into this run's catalog too; a retry's old run log says how many attempts it took)."""
        old = self._retry_of or {}
        run_id = reused_from or str(old.get("run_id", ""))
        self._reused[internal] = run_id
        catalog = self._run.get("catalog_path")
        step = self._step(internal, name)
        if not run_id or not catalog or not isinstance(step, Task):
            return
        from ..executor.engine import attempt_paths
        from ..executor.runlog import iter_steps

        if self._old_steps is None:
            self._old_steps = {s["internal_name"]: s for s in iter_steps(old) if "internal_name" in s}
        attempts = len(self._old_steps.get(internal, {}).get("attempts") or [])
        folder = Path(catalog).parent / run_id  # that run's own catalog folder, beside this one's
        log_path, notebook = attempt_paths(folder, internal, step.kind, max(attempts, 1))
        self._outputs[internal] = (notebook, log_path)

    # ---- lanes -------------------------------------------------------------------------------

    def _static_lanes(self, pipeline: Pipeline) -> None:
        """Every branch the model shows before a run; a map's branch as its ``{x}`` template."""
        self._lanes[""] = Lane("", pipeline.name or "pipeline", _work(pipeline))
        stack: list[tuple[str, Pipeline, str | None]] = [("", pipeline, None)]
        while stack:
            prefix, graph, owner = stack.pop()
            for name, step in graph.steps.items():
                internal = join_name(prefix, name)
                for branch_name, branch in step.branches().items():
                    lane_prefix = step.branch_prefix(internal, branch_name)
                    map_owner = internal if isinstance(step, Map) else owner
                    self._lanes[lane_prefix] = Lane(lane_prefix, lane_prefix, _work(branch),
                                                    template=map_owner is not None, map_owner=map_owner)
                    self._branch_of[lane_prefix] = branch
                    stack.append((lane_prefix, branch, map_owner))

    def _lane_of(self, internal: str, name: str) -> Lane | None:
        prefix = internal[: -len(name)].removesuffix(".") if internal.endswith(name) else ""
        return self._lanes.get(prefix)

    def _step(self, internal: str, name: str) -> Step | None:
        """The model's step behind an event: looked up in its lane's branch pipeline."""
        lane = self._lane_of(internal, name)
        return self._branch_of[lane.prefix].steps.get(name) if lane is not None else None

    def _new_branch_lane(self, name: str) -> Lane | None:
        """A branch met at run time (a map value): its pipeline comes from the composite that owns it."""
        owners = [c for c in self._composites if name.startswith(c + ".")]
        if not owners:
            return None
        owner = max(owners, key=len)
        step = self._composites[owner]
        branch: Pipeline | None
        if isinstance(step, Map):
            branch = step.branch
            self._map_branches[name] = owner
        else:
            branch = step.branches().get(name[len(owner) + 1:])
        if branch is None:
            return None
        lane = Lane(name, name, _work(branch))
        self._lanes[name] = lane
        self._branch_of[name] = branch
        return lane

    # ---- reading -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """A copy safe to render while events keep arriving."""
        with self._lock:
            lanes = [replace(lane, failed_at=list(lane.failed_at), cancelled_at=list(lane.cancelled_at))
                     for lane in self._lanes.values()
                     if not (lane.template and lane.map_owner in self._composites)]
            return Snapshot(
                version=self.version, states=dict(self._states), types=dict(self._types), lanes=lanes,
                running=[replace(r) for r in self._running.values()], outputs=dict(self._outputs),
                map_branches=dict(self._map_branches), run_id=self._run.get("id"),
                run_status=self._run.get("status"), run_log_path=self._run.get("run_log_path"),
                started=self._run.get("started"), finished=self._run.get("finished"),
                warnings=list(self._warnings), failures=dict(self._failures), failed=set(self._failed),
                reused=dict(self._reused),
            )
