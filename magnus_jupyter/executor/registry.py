"""Executors by name: the ``magnus_jupyter.executors`` entry-point group.

An executor is a task-slots class: ``cls(workers, *, on_progress=None,
warm_kernels=True, **options)`` with ``submit(spec) -> Future[TaskResult]``,
``cancel(internal_name)`` and ``close()`` (``slots.TaskSlots`` is the model).
Names come from entry points, so another package can add one without touching
this code; the two built in are also known without them, so a checkout whose
metadata predates the group still runs.
"""

from __future__ import annotations

import functools
import inspect
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from ..errors import ExecutionError

GROUP = "magnus_jupyter.executors"
DEFAULT = "local"
_BUILT_IN = {
    "local": "magnus_jupyter.executor.slots:TaskSlots",
    "dask": "magnus_jupyter.executor.dask_slots:DaskSlots",
}


def known_executors() -> dict[str, str]:
    """Name -> ``module:attribute`` for every executor installed (entry points win over built-ins)."""
    found = dict(_BUILT_IN)
    for point in entry_points(group=GROUP):
        found[point.name] = point.value
    return found


def load_executor(name: str) -> Any:
    """The executor class registered as ``name``; an unknown name is a usage error listing the known."""
    known = known_executors()
    target = known.get(name)
    if target is None:
        raise ExecutionError(f"--executor: unknown executor {name!r}; known executors: "
                             f"{', '.join(sorted(known))}")
    module, _, attribute = target.partition(":")
    try:
        value: Any = import_module(module)
        for part in attribute.split(".") if attribute else ():
            value = getattr(value, part)
    except ImportError as exc:
        raise ExecutionError(f"--executor {name}: cannot import {target}: {exc} "
                             f"(is the package that provides it installed?)") from None
    except AttributeError as exc:
        raise ExecutionError(f"--executor {name}: {target} is not there: {exc}") from None
    return value


def slots_factory(name: str | None = None, scheduler: str | None = None) -> Any:
    """A ``slots_factory`` for ``run_pipeline``: the named executor, with ``scheduler`` bound if given.

    Neither given: ``None``, the engine's own default, which imports the local
    pool only when a first task needs it (a stub pipeline starts no process).
    """
    if name is None and scheduler is None:
        return None
    cls = load_executor(name or DEFAULT)
    if scheduler is None:
        return cls
    try:
        takes = "scheduler" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes = False
    if not takes:
        raise ExecutionError(f"--scheduler: the {name or DEFAULT!r} executor takes no scheduler address")
    return functools.partial(cls, scheduler=scheduler)
