"""Run one task attempt — shell, python or notebook — inside a worker process.

Everything here runs in a worker (``worker.py``), never in the orchestrator:
a task may crash, hang or print anywhere, and the worker is what gets killed.
Every problem becomes a ``FAIL`` ``TaskResult`` with a message saying what went
wrong; nothing raises out of ``run_task``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from . import context
from .params import PARAMETER_PREFIX, environment_parameters
from .task import FAIL, SUCCESS, TaskResult, TaskSpec

MAP_VARIABLE = "MAGNUS_MAP_VARIABLE"

Progress = Callable[[int, int], None]


class TaskError(Exception):
    """A task-level failure with a message meant for the run log (pickles cleanly)."""


@dataclass
class Outputs:
    """What a successful task hands back: parameter updates, tracked metrics, catalog entries of its
    interaction-API puts and gets, and (a notebook task's) executed notebook."""

    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_catalog: list[dict[str, Any]] = field(default_factory=list)
    notebook: str | None = None


def now() -> str:
    """Timestamps as magnus' run log writes them (``str(datetime.now())``)."""
    return str(datetime.now())


def run_task(spec: TaskSpec, progress: Progress | None = None, kernels: Any = None) -> TaskResult:
    """Run ``spec`` to completion in this process; always return a result."""
    start = now()
    try:
        if not os.path.isdir(spec.cwd):
            raise TaskError(f"the task's working folder does not exist: {spec.cwd}")
        if spec.kind == "shell":
            outputs = run_shell(spec)
        elif spec.kind == "python":
            outputs = run_python(spec)
        elif spec.kind == "notebook":
            from .notebooks import run_notebook  # papermill lives there; import only when needed

            outputs = run_notebook(spec, progress=progress, kernels=kernels)
        else:
            raise TaskError(f"unknown task kind {spec.kind!r} (expected notebook, shell or python)")
    except TaskError as exc:
        return TaskResult(FAIL, str(exc), start_time=start, end_time=now(),
                          output_notebook=getattr(exc, "output_notebook", None), log_path=spec.log_path)
    except Exception as exc:  # a defect of ours must still come back as a result
        return TaskResult(FAIL, f"internal error running the task: {type(exc).__name__}: {exc}",
                          start_time=start, end_time=now(), log_path=spec.log_path)
    return TaskResult(SUCCESS, "", parameters=outputs.parameters, start_time=start, end_time=now(),
                      output_notebook=outputs.notebook, log_path=spec.log_path, metrics=outputs.metrics,
                      data_catalog=outputs.data_catalog)


# ---------------------------------------------------------------- environment


def task_environment(spec: TaskSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a task sees: magnus' ``MAGNUS_PRM_<name>`` JSON values and map variable."""
    env = dict(os.environ if base is None else base)
    env.update(task_variables(spec))
    return env


def task_variables(spec: TaskSpec) -> dict[str, str]:
    """Only the variables a task adds to the worker's environment."""
    extra = dict(spec.env)
    for key, value in {**spec.parameters, **spec.map_variable}.items():
        extra[PARAMETER_PREFIX + key] = json.dumps(value)
    if spec.map_variable:
        extra[MAP_VARIABLE] = json.dumps(spec.map_variable)
    # magnus always has MAGNUS_RUN_ID set, so ``cmd && env | grep MAGNUS`` never fails on grep.
    if "MAGNUS_RUN_ID" not in extra and "MAGNUS_RUN_ID" not in os.environ:
        extra["MAGNUS_RUN_ID"] = ""
    return extra


def written_outputs(spec: TaskSpec, written: dict[str, str], *, what: str,
                    returned: dict[str, Any] | None = None,
                    data_catalog: list[dict[str, Any]] | None = None) -> Outputs:
    """What a task left in its environment, read as magnus reads it after the command: every
    ``MAGNUS_PRM_`` variable (lower-cased, JSON-decoded) is a parameter, ``returned`` values (a function's
    return, a notebook's output cells) win over them, and ``MAGNUS_TRACK_`` variables are metrics.
    Parameters must be JSON a run log can hold (``what`` names them when they are not)."""
    found = changed_parameters(spec, environment_parameters(written, finite=False))
    found.update(returned or {})
    return Outputs(_jsonable(found, what), context.tracked_metrics(written), list(data_catalog or []))


def changed_parameters(spec: TaskSpec, found: dict[str, Any]) -> dict[str, Any]:
    """Drop values a task merely echoed back unchanged.

    ``env | grep MAGNUS`` prints every input parameter too; reporting those as
    updates would let a parallel sibling that never touched a value overwrite a
    real update with the stale one.
    """
    inputs: dict[str, Any] = {}
    for key, value in {**spec.parameters, **spec.map_variable}.items():
        inputs.setdefault(key.lower(), []).append(value)
    return {k: v for k, v in found.items() if k not in inputs or v not in inputs[k]}


def _jsonable(values: dict[str, Any], what: str) -> dict[str, Any]:
    """Values cross processes and land in a strict JSON run log: reject anything else clearly."""
    from .params import NOT_IN_JSON, non_finite

    bad = []
    out = {}
    for key, value in values.items():
        try:
            out[key] = json.loads(json.dumps(value, default=_to_plain))
        except (TypeError, ValueError):
            bad.append(f"{key} ({type(value).__module__}.{type(value).__qualname__})")
            continue
        refused = non_finite(out[key])
        if refused:
            raise TaskError(f"{what}: parameter {key!r} holds {refused}; {NOT_IN_JSON}")
    if bad:
        raise TaskError(f"{what} must be JSON-serialisable; not: {', '.join(bad)}")
    return out


def _to_plain(value: Any) -> Any:
    """numpy scalars/arrays and pydantic models are common; turn them into JSON types."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _tail(text: str, lines: int = 5, chars: int = 600) -> str:
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return tail[-chars:]


# ---------------------------------------------------------------- shell


def run_shell(spec: TaskSpec) -> Outputs:
    """``cmd && env | grep MAGNUS`` as magnus runs it; exported ``MAGNUS_PRM_`` and ``MAGNUS_TRACK_``
    values come back.

    The shell shares the worker's process group (the worker leads its own), so a
    timeout or cancel kills the whole tree with one ``killpg``.
    """
    command = spec.command.strip() + " && env | grep MAGNUS"
    with _log_file(spec.log_path) as log:
        env = task_environment(spec)
        shim = context.magnus_shim()
        if shim:  # a Python the command starts can `import magnus` too
            env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), shim) if p)
        proc = subprocess.run(command, shell=True, cwd=spec.cwd, env=env,
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        log.seek(0)
        output = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise TaskError(f"shell command {_exit_text(proc.returncode)}" + _output_hint(output))
    written: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith((PARAMETER_PREFIX, context.TRACK_PREFIX)) and "=" in line:
            key, value = line.split("=", 1)
            written[key.strip()] = value.strip()
    return written_outputs(spec, written, what="values exported by the shell command")


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    if code > 128:
        try:
            return f"exited with code {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exited with code {code}"


def _output_hint(output: str) -> str:
    tail = _tail("\n".join(ln for ln in output.splitlines() if not ln.startswith("MAGNUS_")))
    return f"; last output:\n{tail}" if tail else ""


@contextlib.contextmanager
def _log_file(path: str | None) -> Iterator[Any]:
    """The task's log, or a throw-away file when the engine asked for none."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w+b") as handle:
            yield handle
    else:
        with tempfile.TemporaryFile() as handle:
            yield handle


# ---------------------------------------------------------------- python


def run_python(spec: TaskSpec) -> Outputs:
    """Call ``module.function`` with arguments bound from the parameters by name.

    As in magnus, the function sees the parameters as ``MAGNUS_PRM_`` variables
    too (the interaction API reads them), and what is left in the environment
    afterwards (``set_parameter``, ``track_this``, or ``os.environ`` written by
    hand) is read back with the returned values (``written_outputs``).

    The worker is long-lived, so everything the call may change is put back
    afterwards: cwd, ``sys.path``, environment, and modules it imported (a later
    task from another folder must not get a stale module of the same name).
    """
    module_name, _, func_name = spec.command.strip().rpartition(".")
    if not module_name or not func_name:
        raise TaskError(f"python command {spec.command!r} must be a dotted path: module.function")
    saved_cwd, saved_path, saved_env = os.getcwd(), list(sys.path), dict(os.environ)
    saved_modules = set(sys.modules)
    try:
        os.chdir(spec.cwd)
        sys.path.insert(0, spec.cwd)
        shim = context.magnus_shim()
        if shim:
            sys.path.append(shim)
        os.environ.update(task_variables(spec))
        with _log_file(spec.log_path) as log, _redirect_output(log.fileno()):
            func = _load_function(module_name, func_name)
            kwargs = _bind_arguments(func, {**spec.parameters, **spec.map_variable}, spec.command)
            try:
                value = func(**kwargs)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt are task failures too
                print_task_traceback(exc)
                raise TaskError(f"{spec.command} raised {type(exc).__name__}: {exc}") from None
        returned = {k.lower(): v for k, v in _returned_parameters(value, spec.command).items()}
        return written_outputs(spec, context.task_writes(os.environ), returned=returned,
                               data_catalog=_interaction_records(), what=f"values set by {spec.command}")
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]


def _interaction_records() -> list[dict[str, Any]]:
    """Catalog entries of the task's interaction-API puts and gets (if the task used the API at all)."""
    api = sys.modules.get("magnus_jupyter.interaction")
    return api.drain_records() if api is not None else []


def trimmed_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without our frames (the runner's call, the interaction API's): the task's own are left."""
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    kept = []
    while tb is not None:
        frame = tb.tb_frame
        if not frame.f_code.co_filename.startswith(ours) and not frame.f_locals.get("__tracebackhide__"):
            kept.append(tb)
        tb = tb.tb_next
    for first, then in zip(kept, [*kept[1:], None], strict=True):
        first.tb_next = then
    return kept[0] if kept else None


def print_task_traceback(exc: BaseException) -> None:
    """The task's traceback, to its log, with only the task's own frames."""
    lines = traceback.format_exception(type(exc), exc, trimmed_traceback(exc.__traceback__))
    sys.stderr.write("".join(lines))


def _load_function(module_name: str, func_name: str) -> Callable[..., Any]:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        traceback.print_exc()
        raise TaskError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TaskError(f"module {module_name!r} has no function {func_name!r}")
    return func


def _bind_arguments(func: Callable[..., Any], params: dict[str, Any], command: str) -> dict[str, Any]:
    """magnus' binding: by name; pydantic-annotated arguments are built from dicts; **kwargs get the rest."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    bound: dict[str, Any] = {}
    takes_rest = False
    for name, arg in signature.parameters.items():
        if arg.kind is inspect.Parameter.VAR_KEYWORD:
            takes_rest = True
            continue
        if arg.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if name not in params:
            if arg.default is inspect.Parameter.empty:
                raise TaskError(f"{command} needs argument {name!r}, which is not a parameter of the run")
            continue
        value = params[name]
        annotation = arg.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_validate"):
            try:
                value = annotation.model_validate(value if isinstance(value, dict) else {name: value})
            except Exception as exc:
                raise TaskError(f"{command}: parameter {name!r} does not fit {annotation.__name__}: {exc}") \
                    from None
        bound[name] = value
    if takes_rest:
        bound.update({k: v for k, v in params.items() if k not in bound})
    return bound


def _returned_parameters(value: Any, command: str) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump") and not isinstance(value, type):
        try:
            value = value.model_dump(by_alias=True)  # magnus dumps a returned model by alias
        except TypeError:  # a model_dump() that takes no options
            value = value.model_dump()
    if not isinstance(value, dict):
        raise TaskError(f"{command} returned {type(value).__name__}; a task function returns a dict, "
                        "a pydantic model or None")
    if not all(isinstance(k, str) for k in value):
        raise TaskError(f"{command} returned a dict whose keys are not all strings")
    return _jsonable(value, f"values returned by {command}")


@contextlib.contextmanager
def _redirect_output(fd: int) -> Iterator[None]:
    """Send stdout and stderr to ``fd``: Python's (whatever ``sys.stdout`` is now), C's and children's."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    stream = open(fd, "w", closefd=False, encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        stream.flush()
        stream.close()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
