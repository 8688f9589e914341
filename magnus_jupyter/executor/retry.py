"""Retry a run: a new run that reuses every task the old one finished successfully.

magnus 0.5 calls this ``use_cached``: the new run walks the pipeline as usual,
and a task whose internal name (map values filled in, at any depth of parallel
and map branches) has a ``SUCCESS`` step log in the old run, with the same
fingerprint as now, is not run again — its log entry is copied (``mock: true``,
``reused_from``), its catalog files are copied into the new run's catalog and
its parameter updates are applied again. This is ``--reuse`` with the
candidates restricted to the old run (``reuse.py``): a task that succeeded but
whose notebook, command, parameters or files have changed since runs again,
with its ``rerun_reason``, so a retry never brings back a stale result. A step
the old run logged without a fingerprint (magnus' own run logs) is reused by
name, as magnus does. Everything else runs. The old run may have failed, been
cancelled or had its orchestrator killed mid-run: its log on disk is always
whole JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ExecutionError
from ..model import Pipeline
from .engine import RunResult, run_pipeline
from .runlog import still_running


def load_run_log(run_id: str, cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The run log of ``run_id`` in ``cwd``, checked; a missing or unreadable one is an ``ExecutionError``
    naming the file. The run history's reader: magnus' file-system and chunked-fs logs alike."""
    from ..history.store import load_run

    return load_run(run_id, Path(cwd) if cwd is not None else None)


def recorded_pipeline(run_log: dict[str, Any]) -> tuple[Pipeline, str | None]:
    """The pipeline the old run ran: its file if still there (the user may have fixed it), else the
    YAML recorded in its log. Returns the pipeline and the file it came from (None: from the log)."""
    from ..yaml_io import load_yaml

    config = run_log.get("run_config") or {}
    file = config.get("pipeline_file") or ""
    if file and Path(file).is_file():
        return load_yaml(file), file
    text = config.get("pipeline_yaml") or ""
    if not text:
        raise ExecutionError(f"run {run_log.get('run_id')!r} recorded no pipeline"
                             + (f" and {file} is gone" if file else "") + "; give the pipeline file")
    return load_yaml(text), None


def retry_run(
    run_id: str,
    pipeline: Pipeline | str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    parameters: dict[str, Any] | None = None,
    new_run_id: str | None = None,
    **kwargs: Any,
) -> RunResult:
    """Start a new run of ``pipeline`` (default: the old run's) reusing the succeeded tasks of ``run_id``.

    The new run starts from the old run's initial parameters, updated by
    ``parameters``; ``kwargs`` go to ``run_pipeline`` (workers, subscribers,
    cancel, timeout, slots ...). It records ``original_run_id`` and ends as an
    ordinary run. Raises ``PipelineError`` for a missing run or bad pipeline.
    """
    folder = Path(cwd if cwd is not None else os.getcwd()).resolve()
    old = load_run_log(run_id, folder)
    pid = still_running(old)
    if pid is not None:
        raise ExecutionError(f"run {run_id!r} is still running (its orchestrator, pid {pid}, is alive); "
                             "wait for it to end or stop it, then retry")
    file: str | os.PathLike[str] | None
    if pipeline is None:
        pipeline, file = recorded_pipeline(old)
    elif isinstance(pipeline, Pipeline):
        file = kwargs.pop("pipeline_file", None)
    else:
        from ..yaml_io import load_yaml

        file = pipeline
        pipeline = load_yaml(pipeline)
    config = old.get("run_config") or {}
    initial = config.get("initial_parameters")
    start = dict(initial if isinstance(initial, dict) else old.get("parameters") or {})
    start.update(parameters or {})
    return run_pipeline(pipeline, parameters=start, run_id=new_run_id, cwd=folder, pipeline_file=file,
                        original_run_log=old, **kwargs)
