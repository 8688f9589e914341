"""Traversal: runs a pipeline exactly as magnus 0.5 walks it, with branches at the same time.

A graph is walked from ``start_at`` along ``next``; a failed step goes to its
``on_failure`` step, else to the graph's ``fail`` step; the ``success`` or
``fail`` step ends the graph and sets its branch's (or the run's) status. A
parallel, map or dag step succeeds only when every branch reached its
``success`` step.

The walk is event-driven, not a thread per branch: one asyncio event loop, in
the caller's thread, runs every graph as a coroutine. A leaf task hands each
attempt to the bounded pool of task slots and awaits its future; blocking file
work (catalog copies and hashes, the pool's start and submit) goes to a few
helper threads. A parallel, map or dag step walks its branches in at most
``branch_window(workers)`` lanes, each taking the next branch when its last one
ends, so neither threads nor memory grow with the number of branches, and a
composite waiting for its branches holds nothing they need: nesting cannot
deadlock. Stubs and terminal steps never leave the loop.

The engine knows no widget and no terminal: it publishes events (events.py).

Every task gets a fingerprint (``fingerprint.py``) just before its first
attempt would be submitted. Under ``--reuse``, ``--from``/``--only`` or a retry
(``retry.py``), ``reuse.py`` then decides whether an earlier result of the task
stands in for running it: its log entry, catalog files and parameter updates
are copied into this run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ExecutionError
from ..model import Dag, Fail, Map, Parallel, Pipeline, Step, Stub, Success, Task, join_name
from ..text import file_stem
from . import events as ev
from .catalog import Catalog, CatalogError
from .context import RunContext, run_context
from .fingerprint import Fingerprints
from .params import ParameterStore, WriteLog, changed
from .reuse import Decision, Reuse, plan
from .runlog import RunLogStore, attempt_log, branch_log, flatten, now, orchestrator, step_log
from .task import FAIL, SUCCESS, TaskResult, TaskSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
FILE_THREADS = 4  # helper threads for blocking file work: catalog copies, hashes, the pool's start and submit
CANCEL_POLL = 0.05  # seconds between looks at the caller's cancel event


def branch_window(workers: int) -> int:
    """How many branches of one parallel or map step are walked at once: twice the pool's width (at
    least 4), so the pool always has a next task waiting, while the walk's memory follows the pool's
    width and not the number of branches."""
    return max(4, 2 * workers)


@dataclass
class RunResult:
    """What a finished run leaves: its id, status, parameters and where its files are."""

    run_id: str
    status: str
    parameters: dict[str, Any]
    run_log_path: Path
    catalog_path: Path
    warnings: list[str] = field(default_factory=list)
    run_log: dict[str, Any] = field(default_factory=dict, repr=False)
    run_log_writes: int = 0  # files written for the run log: coalesced, so far fewer than steps

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    def steps(self) -> dict[str, str]:
        """Every step and branch by internal name -> status."""
        return flatten(self.run_log)


class _Scope:
    """One running branch: cancelled together (fail_fast), and where its parameter writes are noted.

    ``base`` and ``own`` are the parameters as the branch sees them for fingerprints: those at the
    start of the step that holds it, then what its own tasks wrote. A value a sibling branch wrote
    meanwhile is left out: whether a task saw it depends on which branch finished first. So is, in a
    map's branch, the list the map iterates on: each iteration has its own value.
    """

    __slots__ = ("parent", "writers", "map_variable", "children", "running", "cancelled", "reason",
                 "trail", "base", "own")

    def __init__(self, parent: _Scope | None, writers: tuple[tuple[WriteLog, str], ...],
                 map_variable: dict[str, Any], trail: tuple[tuple[str, str], ...] = (),
                 base: dict[str, Any] | None = None) -> None:
        self.parent = parent
        self.writers = writers
        self.map_variable = map_variable
        self.children: list[_Scope] = []
        self.running: set[str] = set()
        self.cancelled = parent.cancelled if parent else False
        self.reason = parent.reason if parent else ""
        self.trail = trail  # (composite step, branch key) pairs above it: partial.Selection reads them
        self.base: dict[str, Any] = base if base is not None else {}  # shared by siblings: never changed
        self.own: dict[str, Any] | None = None

    def visible(self) -> dict[str, Any]:
        return {**self.base, **self.own} if self.own else self.base


def _safe(name: str) -> str:
    """A file-name stem for an internal name: readable, one path component, bounded in length."""
    return file_stem(name, name.replace(" ", "_").replace(os.sep, "_"))


def attempt_paths(folder: Path, internal: str, kind: str, attempt: int) -> tuple[str, str | None]:
    """An attempt's log and (a notebook task's) executed notebook, in the run's own catalog folder:
    concurrent runs never share a file; map values are part of the internal name; a given
    notebook_output_path gets a copy afterwards (_publish_notebook)."""
    suffix = f".attempt{attempt}" if attempt > 1 else ""
    log_path = str(folder / f"{_safe(internal)}{suffix}.execution.log")
    return log_path, str(folder / f"{_safe(internal)}{suffix}_out.ipynb") if kind == "notebook" else None


def branches_failed(failed: list[str]) -> str:
    """A composite step's message naming its failed branches (the first five, then a count)."""
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    return f"branch{'es' if len(failed) > 1 else ''} failed: {shown}"


class _Engine:
    """One run's walk: coroutines on one event loop; the pool, helper threads and the run log it feeds."""

    def __init__(self, pipeline: Pipeline, store: RunLogStore, catalog: Catalog, params: ParameterStore,
                 bus: ev.EventBus, cwd: Path, workers: int, slots: Any, warm_kernels: bool,
                 slots_factory: Any = None, reuse: Reuse | None = None, timeout: float | None = None,
                 context: RunContext | None = None, services: Any = None) -> None:
        self.pipeline = pipeline
        self.store = store
        self.catalog = catalog
        self.params = params
        self.bus = bus
        self.cwd = cwd
        self.workers = workers
        self.window = branch_window(workers)
        self._slots = slots
        self.owns_slots = False
        self.warm_kernels = warm_kernels
        self.slots_factory = slots_factory
        self.reuse = reuse
        self.fingerprints = Fingerprints(cwd)
        self.timeout = timeout  # for tasks without a timeout of their own
        self.context = context or run_context(store.run_id, catalog.folder, catalog.location, store.path)
        # magnus config: a do-nothing catalog syncs nothing; a mocked executor runs only patched tasks
        self.syncs = services is None or services.catalog["type"] != "do-nothing"
        self.patches = services.patches if services is not None else None
        self.tracker: Any = None
        if services is not None and services.experiment_tracker["type"] != "do-nothing":
            from .tracking import tracker_for

            self.tracker = tracker_for(services.experiment_tracker, store.run_id, services.tag)
        self._lock = threading.Lock()  # the pool is started in a helper thread, once
        self._files: ThreadPoolExecutor | None = None
        self._interrupt = threading.Event()  # a KeyboardInterrupt while another thread walks
        self._watching: asyncio.Handle | None = None
        self.root = _Scope(None, (), {}, base=params.snapshot())
        self.stopped = False

    # ---- the pool, created on the first task so stub pipelines start no process ----

    def slots(self) -> Any:
        with self._lock:
            if self._slots is None:
                factory = self.slots_factory
                if factory is None:
                    from .slots import TaskSlots as factory
                self._slots = factory(self.workers, on_progress=self._on_progress,
                                        warm_kernels=self.warm_kernels and has_notebooks(self.pipeline))
                self.owns_slots = True
            return self._slots

    def close(self) -> None:
        if self.owns_slots and self._slots is not None:
            self._slots.close()

    def _on_progress(self, internal_name: str, done: int, total: int) -> None:
        self.bus.publish(ev.CellExecuted(internal_name, done, total))

    # ---- run log helpers ----

    def _update(self, target: dict[str, Any], **values: Any) -> None:
        with self.store.lock:
            target.update(values)
        self.store.touch()

    def warn(self, message: str) -> None:
        with self.store.lock:
            self.store.data["warnings"].append(message)
        self.store.touch()
        log.info(message)  # subscribers show it; a logging handler of last resort would repeat it
        self.bus.publish(ev.RunWarning(message))

    # ---- the event loop ----

    def walk(self, cancel: threading.Event | None) -> None:
        """Walk the pipeline to its end. The loop runs in this thread, unless this thread runs an event
        loop already (``run_pipeline`` called in a Jupyter cell): then in one thread of its own."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._walk(cancel)
            return
        failure: list[BaseException] = []
        done = threading.Event()

        def target() -> None:
            try:
                self._walk(cancel)
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, name="magnus-walk", daemon=True).start()
        try:
            while not done.wait(CANCEL_POLL):
                pass
        except KeyboardInterrupt:
            self._interrupt.set()  # the walk stops everything, then ends
            done.wait()
            raise
        if failure:
            raise failure[0]

    def _walk(self, cancel: threading.Event | None) -> None:
        loop = asyncio.new_event_loop()
        self._files = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="magnus-files")
        self._watching = loop.call_soon(self._watch, loop, cancel)
        try:
            loop.run_until_complete(
                self.graph(self.pipeline, "", self.store.data["steps"], self.root, self.store.data))
        except BaseException:  # an interrupt or an engine bug: stop every branch, before the pool closes
            self.stop("the run was interrupted")
            _cancel_all(loop)
            raise
        finally:
            if self._watching is not None:
                self._watching.cancel()
            self._files.shutdown(wait=True, cancel_futures=True)
            loop.close()

    def _watch(self, loop: asyncio.AbstractEventLoop, cancel: threading.Event | None) -> None:
        """The caller's event (Ctrl-C, a kernel interrupt, a button) cancels everything."""
        if cancel is not None and cancel.is_set():
            self.stop("the run was cancelled")
        elif self._interrupt.is_set():
            self.stop("the run was interrupted")
        else:
            self._watching = loop.call_later(CANCEL_POLL, self._watch, loop, cancel)

    async def _off(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work in a helper thread; the walk goes on meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._files, partial(fn, *args))

    def stop(self, reason: str) -> None:
        """Cancel the whole run, once: running tasks are killed, no step starts."""
        if self.stopped:
            return
        self.stopped = True
        with self.store.lock:
            self.store.data["message"] = "cancelled"
        self.warn(reason)
        self.cancel([self.root], reason)

    # ---- traversal ----

    async def graph(self, graph: Pipeline, prefix: str, container: dict[str, Any], scope: _Scope,
                    owner: dict[str, Any]) -> str:
        """Walk one graph; its success/fail step sets ``owner`` (a branch log or the run log)."""
        current = graph.start_at
        fail_step = graph.terminal(Fail)
        while True:
            await asyncio.sleep(0)  # between steps, the other branches and the cancel watch get their turn
            if scope.cancelled:
                self._update(owner, status=FAIL)
                return FAIL
            step = graph.steps.get(current or "")
            if step is None:
                raise ExecutionError(f"{prefix or 'the pipeline'}: no step named {current!r} to go to")
            status = await self.step(step, join_name(prefix, step.name), container, scope, owner)
            if isinstance(step, Success | Fail):
                break
            if status == SUCCESS:
                current = step.next
            else:
                current = step.on_failure or (fail_step.name if fail_step else None)
        return str(owner["status"])

    async def step(self, step: Step, internal: str, container: dict[str, Any], scope: _Scope,
                   owner: dict[str, Any]) -> str:
        entry = step_log(step.name, internal, step.type)
        with self.store.lock:
            container[internal] = entry
        self.store.touch()
        self.bus.publish(ev.StepStarted(internal, step.name, step.type))
        message = ""
        if isinstance(step, Task):
            status, message = await self.task(step, internal, entry, scope)
        elif isinstance(step, Parallel | Map | Dag):
            status, message = await self.composite(step, internal, entry, scope)
        else:
            status = SUCCESS
            start = now()
            if isinstance(step, Stub) and step.catalog:
                status, message = await self._sync(step.catalog, entry, "get", None)
                if status == SUCCESS:
                    status, message = await self._sync(step.catalog, entry, "put", None)
            if isinstance(step, Success | Fail):  # magnus: the terminal step itself always succeeds
                self._update(owner, status=SUCCESS if isinstance(step, Success) else FAIL)
            with self.store.lock:
                entry["attempts"].append(attempt_log(1, start, now(), status, message))
        self._update(entry, status=status, message=message)
        reused = str(entry.get("reused_from") or "")
        shown = f"reused from run {reused}" if reused else message
        self.bus.publish(ev.StepFinished(internal, step.name, step.type, status, shown, reused_from=reused))
        return status

    # ---- leaf tasks ----

    async def _sync(self, catalog: dict[str, list[str]], entry: dict[str, Any], stage: str,
                    synced: list[dict[str, Any]] | None) -> tuple[str, str]:
        """A step's catalog ``get`` or ``put``; the copies happen in a helper thread."""
        if not catalog.get(stage) or not self.syncs:
            return SUCCESS, ""
        return await self._off(self._copy, catalog, entry, stage, synced)

    def _copy(self, catalog: dict[str, list[str]], entry: dict[str, Any], stage: str,
              synced: list[dict[str, Any]] | None) -> tuple[str, str]:
        found: list[dict[str, Any]] = []
        try:
            for pattern in catalog.get(stage) or []:
                if stage == "get":
                    found.extend(self.catalog.get(pattern))
                else:
                    found.extend(self.catalog.put(pattern, synced))
        except (CatalogError, OSError) as exc:
            return FAIL, str(exc)
        finally:
            if found:
                with self.store.lock:
                    entry["data_catalog"].extend(found)
        return SUCCESS, ""

    async def task(self, step: Task, internal: str, entry: dict[str, Any], scope: _Scope) -> tuple[str, str]:
        catalog = step.catalog or {}
        status, message = await self._sync(catalog, entry, "get", None)
        if status == FAIL:
            stamp = now()
            with self.store.lock:
                entry["attempts"].append(attempt_log(1, stamp, stamp, FAIL, message))
            return FAIL, message
        synced = list(entry["data_catalog"])
        if self.patches is not None and step.name not in self.patches:
            return await self._mocked(catalog, entry, synced)  # not run: nothing to fingerprint or reuse
        decision = await self._fingerprint(step, internal, entry, scope, synced)
        if decision.reused is not None:
            await self._off(self._adopt, step, scope, entry, decision.reused)
            return SUCCESS, str(entry.get("message") or "")
        if decision.error:
            stamp = now()
            with self.store.lock:
                entry["attempts"].append(attempt_log(1, stamp, stamp, FAIL, decision.error))
            return FAIL, decision.error
        for number in range(1, (step.max_attempts or 1) + 1):
            if scope.cancelled:
                return FAIL, scope.reason
            given = {**self.params.snapshot(), **scope.map_variable}
            log_path, notebook = attempt_paths(self.catalog.ensure(), internal, step.kind, number)
            spec = TaskSpec(
                internal_name=internal, kind=step.kind, command=step.command, cwd=str(self.cwd),
                parameters=given, map_variable=dict(scope.map_variable), notebook_output_path=notebook,
                output_cell_tag=step.output_cell_tag or "magnus_output", returns=list(step.returns or []),
                timeout=step.timeout if step.timeout is not None else self.timeout, log_path=log_path,
                attempt=number,
                env=self.context.env(internal),
            )
            start = now()
            self.bus.publish(ev.AttemptStarted(internal, number, log_path, notebook))
            await self._off(self.store.flush)  # the task's get_run_log() sees the run as it is now
            result = await self._submit(spec, scope)
            if scope.cancelled and result.status != SUCCESS:
                result.message = f"cancelled: {scope.reason}"
            record = attempt_log(number, result.start_time or start, result.end_time or now(), result.status,
                                 result.message, given)
            with self.store.lock:
                entry["attempts"].append(record)
            self.store.touch()
            self.bus.publish(ev.AttemptFinished(internal, number, result.status, result.message))
            await self._off(self._keep_outputs, step, scope, entry, result, log_path, notebook)
            if result.status == SUCCESS:
                with self.store.lock:
                    entry["data_catalog"].extend(result.data_catalog)
                status, message = await self._sync(catalog, entry, "put", synced)
                if status == FAIL:
                    return FAIL, message
                updates = changed(given, result.parameters or {})
                with self.store.lock:
                    entry["user_defined_metrics"] = dict(result.metrics)
                    entry["parameter_updates"] = updates  # a retry that reuses this step merges them again
                self._merge(updates, scope)
                return SUCCESS, ""
            message = result.message or "the task failed"
        return FAIL, message

    async def _fingerprint(self, step: Task, internal: str, entry: dict[str, Any], scope: _Scope,
                           gets: list[dict[str, Any]]) -> Decision:
        """The task's fingerprint into its log; under reuse, whether an earlier result stands in for it."""
        visible = {**scope.visible(), **scope.map_variable}
        try:
            fingerprint = await self._off(self.fingerprints.task, step, visible, gets)
        except Exception as exc:  # fingerprinting must never stop a run: the task runs without one
            log.exception("fingerprint of %s failed", internal)
            self.warn(f"step '{internal}': no fingerprint: {type(exc).__name__}: {exc}")
            return Decision()
        environment = self.fingerprints.environment()
        with self.store.lock:
            entry["fingerprint"] = fingerprint
            self.store.data["run_config"].setdefault("environment", environment)
        self.store.touch()
        if self.reuse is None or scope.cancelled:
            return Decision()
        try:
            decision = await self._off(self.reuse.decide, step, internal, scope.trail, fingerprint,
                                       environment, self.catalog)
        except OSError as exc:
            return Decision(reason=f"its earlier result cannot be copied: {exc}")
        if decision.warning:
            self.warn(decision.warning)
        if decision.reason:
            self._update(entry, rerun_reason=decision.reason)
        return decision

    def _adopt(self, step: Task, scope: _Scope, entry: dict[str, Any], reused: dict[str, Any]) -> None:
        """An earlier result becomes this step's log (as that run made it); its updates merge, its
        notebook is published."""
        with self.store.lock:
            entry.clear()
            entry.update(reused)
            entry["status"] = "PROCESSING"  # until step() sets it, as for any step
        self.store.touch()
        self._merge(dict(reused.get("parameter_updates") or {}), scope)
        attempts = len(reused.get("attempts") or ()) or 1
        notebook = attempt_paths(self.catalog.folder, entry["internal_name"], step.kind, attempts)[1]
        self._publish_notebook(step, scope, notebook)

    def _keep_outputs(self, step: Task, scope: _Scope, entry: dict[str, Any], result: TaskResult,
                      log_path: str, notebook: str | None) -> None:
        """An attempt's files: recorded in the catalog, the executed notebook copied where it was asked;
        its metrics to the experiment tracker."""
        self._record_outputs(entry, result, log_path, notebook)
        self._publish_notebook(step, scope, result.output_notebook or notebook)
        self._track(entry["internal_name"], result.metrics)

    async def _mocked(self, catalog: dict[str, list[str]], entry: dict[str, Any],
                      synced: list[dict[str, Any]]) -> tuple[str, str]:
        """A mocked executor's unpatched task: not run but successful, ``mock: true``; its catalog syncs."""
        start = now()
        status, message = await self._sync(catalog, entry, "put", synced)
        with self.store.lock:
            entry["mock"] = True
            entry["attempts"].append(attempt_log(1, start, now(), status, message, self.params.snapshot()))
        return status, message

    def _track(self, internal: str, metrics: dict[str, Any]) -> None:
        """Metrics go to the experiment tracker after each attempt, as magnus publishes them."""
        if self.tracker is None or not metrics:
            return
        try:
            self.tracker.publish(metrics)
        except Exception as exc:  # the tracker is outside the run: a problem there is a warning, not a FAIL
            self.warn(f"step '{internal}': the experiment tracker did not take its metrics: "
                      f"{type(exc).__name__}: {exc}")

    def _record_outputs(self, entry: dict[str, Any], result: TaskResult, log_path: str,
                        notebook: str | None) -> None:
        """Executed notebook (partial ones too: failed, timed out, cancelled) and log, in the catalog."""
        found = []
        for path in dict.fromkeys((result.output_notebook or notebook, result.log_path or log_path)):
            if path:
                try:
                    item = self.catalog.record(path)
                except OSError:
                    item = None
                if item:
                    found.append(item)
        if found:
            with self.store.lock:
                entry["data_catalog"].extend(found)

    def _publish_notebook(self, step: Task, scope: _Scope, executed: str | None) -> None:
        """Copy the executed notebook (kept per run in the catalog) to the step's notebook_output_path.

        Notebooks run into the run's own catalog so concurrent runs never write
        one file; the given path gets a finished copy, replaced atomically.
        """
        if not step.notebook_output_path or not executed or not os.path.isfile(executed):
            return
        out = self.cwd / step.notebook_output_path
        if scope.map_variable:
            values = _safe("_".join(str(v) for v in scope.map_variable.values()))
            out = out.with_name(f"{out.stem}_{values}{out.suffix or '.ipynb'}")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            shutil.copyfile(executed, tmp)
            os.replace(tmp, out)
        except OSError as exc:
            self.warn(f"step '{step.name}': cannot copy the executed notebook to {out}: {exc}")

    def _merge(self, updates: dict[str, Any], scope: _Scope) -> None:
        if not updates:
            return
        self.params.merge(updates, scope.writers)
        here: _Scope | None = scope
        while here is not None:  # each enclosing branch sees what its own tasks wrote
            if here.own is None:
                here.own = {}
            here.own.update(updates)
            here = here.parent
        with self.store.lock:
            self.store.data["parameters"] = self.params.snapshot()
        self.store.touch()

    async def _submit(self, spec: TaskSpec, scope: _Scope) -> TaskResult:
        slots = self._slots if self._slots is not None else await self._off(self.slots)
        if scope.cancelled:
            return TaskResult(FAIL, f"cancelled: {scope.reason}")
        try:
            future = await self._off(slots.submit, spec)
            # listed as running only once in the pool: a cancel() before this found nothing to stop
            # (so stop it here), one after it stops it itself; either way the pool is told once
            scope.running.add(spec.internal_name)
            if scope.cancelled:
                slots.cancel(spec.internal_name)
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the walk itself is being torn down (an interrupt)
            return TaskResult(FAIL, f"cancelled: {scope.reason or 'the task was cancelled'}")  # by the pool
        except Exception as exc:  # the pool promises not to raise for task failures; be safe anyway
            log.exception("task slot failed for %s", spec.internal_name)
            return TaskResult(FAIL, f"could not run the task: {type(exc).__name__}: {exc}")
        finally:
            scope.running.discard(spec.internal_name)

    # ---- composite steps ----

    def _map_values(self, step: Map) -> tuple[list[Any] | None, str]:
        if step.iterate_on not in self.params:
            return None, (f"map: parameter {step.iterate_on!r} (iterate_on) is not set; set it with -p, "
                          "--param or from an earlier task")
        values = self.params.get(step.iterate_on)
        if not isinstance(values, list):
            shown = repr(values)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return None, (f"map: iterate_on parameter {step.iterate_on!r} must be a list, found "
                          f"{type(values).__name__} {shown}")
        counts = Counter(str(v) for v in values)
        duplicates = sorted(n for n, c in counts.items() if c > 1)
        if duplicates:
            return None, (f"map: iterate_on parameter {step.iterate_on!r} holds the same value more than "
                          f"once ({', '.join(duplicates)}); map branches are named by value")
        return values, ""

    async def composite(self, step: Step, internal: str, entry: dict[str, Any],
                        scope: _Scope) -> tuple[str, str]:
        branches: list[tuple[str, Pipeline, dict[str, Any]]] = []
        keys: list[str] = []  # each branch's key in a trail: its name, a map's value
        if isinstance(step, Map):
            values, message = self._map_values(step)
            if values is None:
                return FAIL, message
            assert step.branch is not None
            for value in values:
                branches.append((f"{internal}.{value}", step.branch,
                                 {**scope.map_variable, step.iterate_as: value}))
                keys.append(str(value))
        else:
            for name, pipeline in step.branches().items():
                branches.append((join_name(internal, name), pipeline, scope.map_variable))
                keys.append(name)
        fail_fast = getattr(step, "failure_policy", None) == "fail_fast"
        writes = WriteLog(internal)
        logs: list[dict[str, Any]] = []
        children: list[_Scope] = []
        with self.store.lock:
            for name, _, _ in branches:
                logs.append(branch_log(name))
                entry["branches"][name] = logs[-1]
        self.store.touch()
        base = scope.visible()
        if isinstance(step, Map):  # an iteration is told apart by its own value, not by the whole list
            base = {k: v for k, v in base.items() if k != step.iterate_on}
        for (name, _, map_variable), key in zip(branches, keys, strict=True):
            children.append(_Scope(scope, scope.writers + ((writes, name),), map_variable,
                                   scope.trail + ((step.name, key),), base))
        scope.children = children  # a branch walks one step at a time: these are all it has

        async def run_branch(i: int) -> None:
            name, pipeline, _ = branches[i]
            self.bus.publish(ev.BranchStarted(name))
            try:
                status = await self.graph(pipeline, name, logs[i]["steps"], children[i], logs[i])
            except Exception as exc:  # an engine bug in one branch must not hang its siblings
                log.exception("branch %s crashed", name)
                self.warn(f"branch '{name}' stopped on an internal error: {type(exc).__name__}: {exc}")
                self._abandon(logs[i])
                status = FAIL
            self.bus.publish(ev.BranchFinished(name, status))
            if status != SUCCESS and fail_fast and not children[i].cancelled:
                self.cancel([c for j, c in enumerate(children) if j != i],
                            f"branch '{name}' failed (failure_policy: fail_fast)")

        started = 0

        async def lane() -> None:  # walks one branch after another, until none is left or they are cancelled
            nonlocal started
            while started < len(branches) and not children[started].cancelled:
                started += 1
                await run_branch(started - 1)

        await asyncio.gather(*(lane() for _ in range(min(self.window, len(branches)))))
        self._skip([name for name, _, _ in branches[started:]], logs[started:])
        scope.children = []
        for warning in writes.warnings():
            self.warn(warning)
        failed = [b["internal_name"] for b in logs if b["status"] != SUCCESS]
        if failed:
            return FAIL, branches_failed(failed)
        return SUCCESS, ""

    def _skip(self, names: list[str], logs: list[dict[str, Any]]) -> None:
        """Branches cancelled before their turn came: FAIL at once, no step run, announced like any other."""
        if not logs:
            return
        with self.store.lock:
            for branch in logs:
                branch["status"] = FAIL
        self.store.touch()
        for name in names:
            self.bus.publish(ev.BranchStarted(name))
            self.bus.publish(ev.BranchFinished(name, FAIL))

    def _abandon(self, branch: dict[str, Any], message: str = "") -> None:
        """A crashed branch (or an interrupted run): it and any step it left PROCESSING end FAIL,
        so no log claims it still runs."""
        with self.store.lock:
            branch["status"] = FAIL
            stack = [branch]
            while stack:
                for step in stack.pop()["steps"].values():
                    if step["status"] == "PROCESSING":
                        step["status"] = FAIL
                        if message and not step.get("message"):
                            step["message"] = message
                    for b in step["branches"].values():
                        if b["status"] == "PROCESSING":
                            b["status"] = FAIL
                            stack.append(b)
        self.store.touch()

    def cancel(self, scopes: Iterable[_Scope], reason: str) -> None:
        """Cancel branches and everything under them; their running tasks are stopped in the pool."""
        names: list[str] = []
        stack = list(scopes)
        while stack:
            scope = stack.pop()
            if scope.cancelled:
                continue  # and so is everything under it; its tasks were told already
            scope.cancelled, scope.reason = True, reason
            names.extend(scope.running)
            stack.extend(scope.children)
        slots = self._slots
        if slots is not None:
            for name in names:
                try:
                    slots.cancel(name)
                except Exception:
                    log.exception("could not cancel %s", name)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """After an interrupt: end every coroutine of the walk (the run is stopped already), so none is
    left pending when the loop closes."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def has_notebooks(pipeline: Pipeline) -> bool:
    """Whether any task is a notebook: only then are the pool's kernels worth warming."""
    return any(isinstance(s, Task) and s.kind == "notebook" for _, s, _ in pipeline.walk())


def default_workers(workers: int | None) -> int:
    """The pool size a run gets: as asked, else one worker per CPU."""
    return workers if workers is not None else (os.cpu_count() or 1)


def run_pipeline(
    pipeline: Pipeline,
    *,
    parameters: dict[str, Any] | None = None,
    run_id: str | None = None,
    workers: int | None = None,
    cwd: str | os.PathLike[str] | None = None,
    subscribers: Iterable[ev.Subscriber] = (),
    slots: Any = None,
    slots_factory: Any = None,
    warm_kernels: bool = True,
    validate: bool = True,
    write_interval: float = 0.1,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
    original_run_log: dict[str, Any] | None = None,
    reuse: bool = False,
    from_step: str | None = None,
    only: Sequence[str] | None = None,
    config: Any = None,
) -> RunResult:
    """Run ``pipeline`` to its end in ``cwd`` and return its result; a failed pipeline is not an error.

    ``slots``: an open ``TaskSlots`` (or anything with ``submit``/``cancel``) to
    share across runs; by default a pool of ``workers`` slots (CPU count) is
    started on the first task, by ``slots_factory`` (``TaskSlots``, called as
    ``TaskSlots(workers, on_progress=..., warm_kernels=...)``) and closed at the
    end. Raises a ``PipelineError`` for bad input (invalid pipeline, run id
    taken), never for a failing step. Setting ``cancel`` (from any thread) stops
    the run: running tasks are killed, no step starts, the run log ends FAIL with
    the message "cancelled". ``timeout``: seconds for tasks without their own.
    ``pipeline_file`` is recorded (with the pipeline's YAML) so a retry can find
    the pipeline; ``original_run_log``: the log of the run this one retries
    (use ``retry_run``). ``reuse``: a task whose fingerprint matches a successful
    attempt of an earlier run here is not run, its result is reused;
    ``from_step`` / ``only``: run that step and what follows it / those steps,
    reusing every other task's latest result (``reuse.py``). ``config``: a magnus
    config (``config.MagnusConfig``): its catalog, secrets, experiment tracker,
    mocked executor and tag.
    """
    if validate:
        from ..validate import validate as check

        check(pipeline)
    workers = default_workers(workers)
    if workers < 1:
        raise ExecutionError(f"--workers must be at least 1, found {workers}")
    if timeout is not None and not timeout > 0:
        raise ExecutionError(f"--timeout must be a positive number of seconds, found {timeout}")
    folder = Path(cwd if cwd is not None else os.getcwd()).resolve()
    if not folder.is_dir():
        raise ExecutionError(f"{folder}: the run folder does not exist")
    reuse_plan = plan(pipeline, folder, reuse=reuse, from_step=from_step, only=only,
                      original_run_log=original_run_log)
    params = ParameterStore(parameters or {})
    run_config = run_config_of(pipeline, pipeline_file, params.snapshot(),
                               {"type": f"magnus-jupyter-{_executor_name(slots, slots_factory)}",
                                "workers": workers, "timeout": timeout})
    if config is not None:
        run_config["services"] = config.as_dict()
    store = RunLogStore.create(folder, run_id, params.snapshot(), run_config, interval=write_interval,
                               original_run_id=str((original_run_log or {}).get("run_id", "")))
    catalog = Catalog(folder, store.run_id, config.catalog_location) if config is not None else \
        Catalog(folder, store.run_id)
    catalog.ensure()
    context = None
    if config is not None:
        store.data["tag"] = config.tag
        context = run_context(store.run_id, config.catalog_folder(folder, store.run_id), catalog.location,
                              store.path, config)
    bus = ev.EventBus(subscribers)
    engine = _Engine(pipeline, store, catalog, params, bus, folder, workers, slots, warm_kernels,
                     slots_factory, reuse_plan, timeout, context, config)
    bus.publish(ev.RunStarted(store.run_id, str(store.path), str(catalog.folder), params.snapshot(), workers))
    store.start()
    try:
        engine.walk(cancel)
    finally:
        try:
            engine.close()
        finally:
            if engine.stopped and store.data["status"] != SUCCESS:
                engine._abandon(store.data, "cancelled: the run was cancelled")
            with store.lock:
                if store.data["status"] not in (SUCCESS, FAIL):
                    store.data["status"] = FAIL  # interrupted, or the graph never reached an end step
                store.data["parameters"] = params.snapshot()
            store.close()
    data = store.data
    result = RunResult(store.run_id, data["status"], params.snapshot(), store.path, catalog.folder,
                       list(data["warnings"]), data, store.writes)
    bus.publish(ev.RunFinished(result.run_id, result.status, result.parameters, str(result.run_log_path),
                               str(result.catalog_path), tuple(result.warnings)))
    return result


def _executor_name(slots: Any, factory: Any) -> str:
    """Where the tasks run, for the run log: a pool's ``executor_name`` (``dask``), else ``local``."""
    target = slots if slots is not None else factory
    target = getattr(target, "func", target)  # a functools.partial binding a scheduler address
    return str(getattr(target, "executor_name", "local"))


def run_config_of(pipeline: Pipeline, pipeline_file: str | os.PathLike[str] | None,
                  parameters: dict[str, Any], executor: dict[str, Any]) -> dict[str, Any]:
    """The run log's ``run_config``: what ran, from which file, with which parameters, where."""
    return {"executor": executor, "pipeline": pipeline.name or "",
            "pipeline_file": str(Path(pipeline_file).resolve()) if pipeline_file else "",
            "pipeline_yaml": _yaml_of(pipeline), "initial_parameters": dict(parameters),
            "orchestrator": orchestrator()}


def _yaml_of(pipeline: Pipeline) -> str:
    """The pipeline as magnus YAML for the run log, so a retry can rebuild it; empty if it cannot."""
    try:
        from ..yaml_io import to_yaml

        return to_yaml(pipeline)
    except Exception:  # a pipeline from the SDK holding something YAML cannot say: retry needs a file
        log.debug("pipeline not recorded as YAML", exc_info=True)
        return ""
