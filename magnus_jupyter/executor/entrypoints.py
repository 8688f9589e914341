"""magnus' ways to start a run: ``execute`` (a pipeline), ``execute_notebook`` / ``execute_function`` (one
task), and the SDK's ``Pipeline.execute()``, each with a magnus config file.

The config decides the services (``config.py``); what magnus-jupyter cannot
run here (argo, local-container without docker) is refused in one line before
anything starts. A mocked executor's ``patches`` change the named tasks before
the run; its other tasks are not run (the engine marks them ``mock``). A
``use_cached`` run is a retry of that run (``retry.py``).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..config import MagnusConfig, config_file, load_config
from ..errors import ExecutionError
from ..model import Pipeline, Task

ONE_TASK = "executing job"  # magnus' name for the step of execute_notebook / execute_function
LOG_LEVELS = ("INFO", "DEBUG", "WARNING", "ERROR", "FATAL")


def prepare(configuration_file: str | None, *, tag: str = "", how: str = "execute",
            cwd: str | os.PathLike[str] | None = None) -> MagnusConfig:
    """The run's config, checked: a ``ConfigError`` (exit 2) for what cannot run here."""
    config = load_config(configuration_file, tag=tag, cwd=cwd)
    config.check_runnable(how)
    return config


def patched(pipeline: Pipeline, config: MagnusConfig) -> Pipeline:
    """A mocked executor's patches applied to a copy of ``pipeline``: each task of a patched name (at any
    depth) takes the patch's fields; as in magnus a patch keeps the task's command type."""
    patches = config.patches
    if not patches:
        return pipeline
    out = copy.deepcopy(pipeline)
    for _, step, _ in out.walk():
        fields = patches.get(step.name)
        if isinstance(step, Task) and fields:
            for key, value in fields.items():
                if key != "command_type":
                    setattr(step, key, copy.deepcopy(value))
    return out


def one_task(kind: str, command: str, data_folder: str, put: list[str] | None,
             notebook_output_path: str = "") -> Pipeline:
    """The pipeline of ``execute_notebook`` / ``execute_function``: one task, its ``--put-in-catalog``
    patterns taken in ``data_folder`` as magnus' compute data folder."""
    if kind == "notebook" and not command.endswith(".ipynb"):
        raise ExecutionError(f"execute_notebook {command}: a notebook's file name ends in .ipynb")
    patterns = [str(Path(data_folder) / p) if data_folder not in ("", ".") else p for p in put or []]
    from ..model import Fail, Success

    task = Task(name=ONE_TASK, command=command, command_type=kind, next="success",
                catalog={"put": patterns} if patterns else None,
                notebook_output_path=notebook_output_path or None)
    graph = Pipeline(start_at=ONE_TASK)
    for step in (task, Success(name="success"), Fail(name="fail")):
        graph.add(step)
    return graph


def set_log_level(level: str) -> None:
    """magnus' ``--log-level``: how much of magnus-jupyter's own logging shows."""
    logging.getLogger("magnus_jupyter").setLevel("CRITICAL" if level == "FATAL" else level)


def run(pipeline: Pipeline, config: MagnusConfig, *, use_cached: str = "", **kwargs: Any) -> Any:
    """Run (``use_cached``: retry that run) with the config's services; a ``RunResult``."""
    pipeline = patched(pipeline, config)
    if use_cached:
        from .retry import retry_run

        run_id = kwargs.pop("run_id", None)
        return retry_run(use_cached, pipeline, new_run_id=run_id, config=config, **kwargs)
    from .engine import run_pipeline

    return run_pipeline(pipeline, config=config, **kwargs)


def execute_sdk(pipeline: Pipeline, *, configuration_file: str = "", run_id: str = "", tag: str = "",
                parameters_file: str = "", use_cached: str = "", log_level: str = "WARNING",
                reuse: bool = False) -> Any:
    """``Pipeline.execute()``: run here with live progress (the DAG widget in a notebook, the terminal
    view elsewhere) and return the run log. ``MAGNUS_CONFIGURATION_FILE`` wins over
    ``configuration_file``, as in magnus."""
    from ..interaction import RunLog

    set_log_level(log_level)
    config = prepare(os.environ.get("MAGNUS_CONFIGURATION_FILE") or configuration_file or None, tag=tag,
                     how="Pipeline.execute()")
    if _in_notebook():
        from .. import running

        started = running.start(pipeline=patched(pipeline, config), run_id=run_id or None,
                                parameters_file=parameters_file or None, retry_of=use_cached or None,
                                config=config, reuse=reuse)
        result = started.result
    else:
        from ..progress import TerminalProgress
        from .params import initial_parameters

        parameters = initial_parameters(parameters_file or None)
        result = run(pipeline, config, use_cached=use_cached, run_id=run_id or None, parameters=parameters,
                     subscribers=[TerminalProgress(sys.stderr)], reuse=reuse)
        print(f"run {result.run_id}: {result.status} · run log {result.run_log_path}", file=sys.stderr)
    return RunLog(result.run_log) if result is not None else None


def _in_notebook() -> bool:
    """Whether this is a Jupyter kernel, where the DAG widget can show (IPython is loaded only if so)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def resolved_config(given: str | None, old_run_log: dict[str, Any] | None = None, *,
                    tag: str = "", how: str = "run") -> MagnusConfig | None:
    """The config of a command line run: ``-c``, else ``MAGNUS_CONFIGURATION_FILE``, else (a retry) the
    one the old run recorded; None when there is none at all (the plain ``run`` of before)."""
    path = config_file(given)
    if path is not None:
        return prepare(path, tag=tag, how=how)
    recorded = ((old_run_log or {}).get("run_config") or {}).get("services")
    if recorded:
        config = MagnusConfig.from_dict(recorded)
        if tag:
            config.tag = tag
        return config
    return MagnusConfig(tag=tag) if tag else None
