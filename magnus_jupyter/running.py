"""The in-kernel run behind ``%magnus_run`` and ``%magnus_show``: declared pipeline -> engine -> widget.

The magics only parse arguments; this module builds the declared pipeline,
starts ``run_pipeline`` in a thread with the DAG widget's status as its
subscriber, and either waits (the default: the cell stays busy while the
widget updates) or returns at once (``background``). The kernel's interrupt
lands in the wait as ``KeyboardInterrupt``: it sets the engine's ``cancel``
event, which kills the run's tasks and kernels and ends the run log FAIL, and
the cell ends with one line, not a traceback. A background run has a Stop
button instead (its kernel is idle, so it handles the click; a busy cell's
kernel would handle it only after the run). When the run ends, the widget gives
way to the static final picture the notebook file keeps. No traversal here;
ipywidgets loads only when a widget is made.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PipelineError

if TYPE_CHECKING:
    from .executor.engine import RunResult
    from .model import Pipeline
    from .widget.view import DagWidget

_POLL = 0.1  # seconds between checks of the run thread; the wait stays interruptible
INTERRUPTED = "interrupted: the run was cancelled, its tasks stopped"
STOP_HINT = "to stop the run, interrupt the kernel (the ■ button, or I I)"


@dataclass
class InKernelRun:
    """One run started from the notebook: its thread, its cancel switch, its widget and result."""

    widget: DagWidget
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)  # set last thing by the run thread
    thread: threading.Thread | None = None
    result: RunResult | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.ended.is_set()

    def _block(self) -> None:
        # an Event, not Thread.join: a KeyboardInterrupt inside join() can leave the thread
        # marked as stopped while it still runs (CPython gh-90882)
        while not self.ended.wait(_POLL):
            pass

    def wait(self) -> RunResult | None:
        """Block until the run ends; an interrupt cancels the run, waits for it to stop, then re-raises."""
        try:
            self._block()
        except KeyboardInterrupt as exc:
            with suppress(KeyboardInterrupt):  # a second interrupt: stop waiting for the tasks to die
                self.stop()
            # IPython shows an exception's _render_traceback_() instead of its traceback: one line.
            # Still raised, so the kernel answers "error" and cells queued behind this one don't run.
            exc._render_traceback_ = lambda: [INTERRUPTED]  # type: ignore[attr-defined]
            raise
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self) -> None:
        """Cancel the run and wait for its tasks to be killed (a second interrupt stops waiting)."""
        self.cancel.set()
        if self.thread is not None:
            self._block()


_LAST: InKernelRun | None = None


def last_run() -> InKernelRun | None:
    """The most recent run started in this kernel (to cancel a background run, read its result)."""
    return _LAST


def widget_for(pipeline: Pipeline, on_stop: Callable[[], None] | None = None, hint: str = "",
               retry_of: dict[str, Any] | None = None) -> DagWidget:
    from .widget.status import RunStatus
    from .widget.view import DagWidget

    return DagWidget(pipeline, RunStatus(pipeline, retry_of=retry_of), link_base=os.getcwd(),
                     on_stop=on_stop, hint=hint)


def show(pipeline: Pipeline | None = None) -> DagWidget:
    """Display the DAG of ``pipeline`` (default: the declared one) without running it: a static
    picture, since nothing will change it (and a saved notebook keeps it)."""
    from .declare import current_pipeline

    widget = widget_for(pipeline if pipeline is not None else current_pipeline())
    widget.show(static=True)
    return widget


def start(*, workers: int | None = None, parameters_file: str | None = None, params: Iterable[str] = (),
          background: bool = False, pipeline: Pipeline | None = None, run_id: str | None = None,
          display: bool = True, retry_of: str | None = None, executor: str | None = None,
          scheduler: str | None = None, reuse: bool = False, from_step: str | None = None,
          only: list[str] | None = None, **engine: Any) -> InKernelRun:
    """Run the declared pipeline (or ``pipeline``) with a live widget; blocks unless ``background``.

    With ``retry_of`` the run is a retry of that run id: its succeeded tasks are
    reused, the rest run again (``executor.retry``); with nothing declared in this
    kernel, it retries the pipeline that run recorded. ``executor`` names where tasks
    run (``local``, ``dask`` or a registered one; ``scheduler``: a Dask address). ``reuse``,
    ``from_step``, ``only``: reuse earlier results (``executor.reuse``). Bad input (an invalid
    pipeline, a missing parameters file or old run, a run already running, a step --from names
    that does not exist) raises ``PipelineError`` before anything starts.
    """
    global _LAST
    from .declare import current_pipeline, session
    from .executor.engine import run_pipeline
    from .executor.params import initial_parameters

    if _LAST is not None and _LAST.thread is not None and not _LAST.done:
        raise PipelineError(f"a run is still going on in the background (run "
                            f"{_LAST.widget.status.snapshot().run_id or 'starting'}); wait for it, or "
                            "cancel it with magnus_jupyter.running.last_run().stop()")
    if workers is not None and workers < 1:
        raise PipelineError(f"--workers must be at least 1, found {workers}")
    if executor is not None or scheduler is not None:
        from .executor.registry import slots_factory

        engine["slots_factory"] = slots_factory(executor, scheduler)  # unknown name: an error now
    old_log = None
    if retry_of is not None:
        from .executor.retry import load_run_log

        old_log = load_run_log(retry_of)  # a missing or unreadable old run is an error now, not in the thread
    if pipeline is not None:
        graph = pipeline
    elif old_log is not None and session().empty:
        from .executor.retry import recorded_pipeline

        graph = recorded_pipeline(old_log)[0]  # nothing declared here: retry what the run ran
    else:
        graph = current_pipeline()
    parameters = initial_parameters(parameters_file, list(params))
    if reuse or from_step is not None or only:
        from .executor.reuse import plan

        plan(graph, Path.cwd(), reuse=reuse, from_step=from_step, only=only)  # refused now, not in the thread
        engine.update(reuse=reuse, from_step=from_step, only=only)
    cancel = threading.Event()
    widget = widget_for(graph, on_stop=cancel.set if background else None,
                        hint="" if background else STOP_HINT, retry_of=old_log)
    run = InKernelRun(widget, cancel=cancel)
    if display:
        run.widget.show()

    def target() -> None:
        try:
            common = dict(workers=workers, subscribers=[run.widget.status], cancel=run.cancel, **engine)
            if retry_of is None:
                run.result = run_pipeline(graph, parameters=parameters, run_id=run_id, **common)
            else:
                from .executor.retry import retry_run

                run.result = retry_run(retry_of, graph, parameters=parameters, new_run_id=run_id, **common)
        except BaseException as exc:  # handed to the waiting cell, or printed for a background run
            run.error = exc
        try:
            run.widget.finish()
            if background:
                if display:
                    run.widget.publish()
                _report(run)
        finally:
            run.ended.set()  # whatever the view did, the cell must not wait forever

    run.thread = threading.Thread(target=target, name="magnus-run", daemon=True)
    _LAST = run
    run.thread.start()
    if not background:
        try:
            run.wait()
        finally:
            if display:  # from the cell's own thread: the notebook file keeps the final picture
                run.widget.publish()
        _report(run)
    return run


def latest_run_id() -> str:
    """The run to retry when none is named: this kernel's last run, else the newest run log here."""
    if _LAST is not None and _LAST.result is not None:
        return _LAST.result.run_id
    from .executor.runlog import RUN_LOG_FOLDER

    logs = sorted(Path(RUN_LOG_FOLDER).glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not logs:
        raise PipelineError(f"no run to retry: no run log in {Path(RUN_LOG_FOLDER).resolve()}")
    return logs[-1].stem


def _report(run: InKernelRun) -> None:
    """One line on how the run ended and where its log is."""
    if run.error is not None:  # a blocking run raised it to the cell already
        print(f"the run stopped: {type(run.error).__name__}: {run.error}", file=sys.stderr)
        return
    result = run.result
    if result is None:
        return
    try:
        where = os.path.relpath(result.run_log_path)
    except ValueError:
        where = str(result.run_log_path)
    print(f"run {result.run_id}: {result.status} · run log {where}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
