"""Running pipelines: the engine, its task slots, run log, catalog and events.

Names load on first use, so ``import magnus_jupyter.executor`` costs nothing
until a run needs the engine (and the pool's multiprocessing / papermill only
when a run has a task).
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "run_pipeline": "engine",
    "RunResult": "engine",
    "retry_run": "retry",
    "load_run_log": "retry",
    "TaskSpec": "task",
    "TaskResult": "task",
    "TaskSlots": "slots",
    "EventBus": "events",
    "Event": "events",
    "RunStarted": "events",
    "StepStarted": "events",
    "BranchStarted": "events",
    "CellExecuted": "events",
    "AttemptStarted": "events",
    "AttemptFinished": "events",
    "StepFinished": "events",
    "BranchFinished": "events",
    "RunWarning": "events",
    "RunFinished": "events",
    "initial_parameters": "params",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY, globals())
