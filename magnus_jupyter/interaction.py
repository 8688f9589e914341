"""magnus 0.5's interaction API, for code running as a task (or in an interactive session).

Same names, signatures and behaviour as ``magnus.interaction`` 0.5.1. A task
runs in a worker process, a kernel, on a Dask worker or in an Argo pod; what it
needs of the run comes in environment variables (``executor/context.py``) and
what it writes goes back the way magnus reads it: ``set_parameter`` and
``track_this`` set ``MAGNUS_PRM_`` / ``MAGNUS_TRACK_`` variables, which the
process running the task reads once the task is over; catalog puts and gets
are done here, in the run's catalog folder, and noted for the step's log.

Outside a task every call is an error, as in magnus, unless
``start_interactive_session`` began a run in this process. A call that cannot
be answered (a parameter or object that is not there, a secret the secrets
manager does not know, a value that does not fit ``cast_as``) raises
``InteractionError`` naming the step and what was missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .errors import ParameterError
from .executor import context as ctx
from .executor.params import PARAMETER_PREFIX, environment_parameters

log = logging.getLogger(__name__)

PICKLE_SUFFIX = ".pickle"
INTERACTIVE_STEP = "interactive"

_records: list[dict[str, Any]] = []  # data catalog entries of this task's puts and gets, for its step log


class InteractionError(Exception):
    """A call of the interaction API that cannot be answered; the message names the step and what."""


class RunLog(dict):  # type: ignore[type-arg]
    """A run log read as magnus' ``RunLog`` is (``run_log.status``, ``run_log.steps[...]``), or as a dict."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        return RunLog(value) if isinstance(value, dict) and not isinstance(value, RunLog) else value


def _where(api: str) -> str:
    """The running step's internal name; outside a task (and any session) a clear error."""
    __tracebackhide__ = True
    step = os.environ.get(ctx.STEP)
    if not step:
        raise InteractionError(f"{api}: no magnus run here: the interaction API works in a task of a running "
                               "pipeline, or after start_interactive_session()")
    return step


def _fail(api: str, message: str) -> InteractionError:
    return InteractionError(f"step '{os.environ.get(ctx.STEP, '')}': {api}: {message}")


def _dumped(value: Any, by_alias: bool = False) -> Any:
    """A pydantic model as its dict (magnus dumps models so); anything else as it is."""
    if hasattr(value, "model_dump") and not isinstance(value, type):
        return value.model_dump(by_alias=by_alias)
    return value


def _json(api: str, key: str, value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise _fail(api, f"{key!r} cannot be stored: {exc} (values must be JSON-serialisable or "
                         "pydantic models)") from None


# ---------------------------------------------------------------- parameters


def get_parameter(key: str | None = None, cast_as: Any = None) -> Any:
    """A parameter by name (all of them when ``key`` is not given), cast as ``cast_as`` if given.

    ``cast_as`` may be a pydantic model (built from the parameter's mapping), a
    dict type, or a plain type called on the value.
    """
    __tracebackhide__ = True
    _where("get_parameter")
    try:
        params = environment_parameters(os.environ)
    except ParameterError as exc:
        raise _fail("get_parameter", str(exc)) from None
    if not key:
        return _cast(params, cast_as, "get_parameter", "all parameters")
    if key not in params:
        known = ", ".join(sorted(params)) or "none"
        raise _fail("get_parameter", f"no parameter {key!r} in run {get_run_id()} (its parameters: {known})")
    return _cast(params[key], cast_as, "get_parameter", repr(key))


def _cast(value: Any, cast_as: Any, api: str, what: str) -> Any:
    __tracebackhide__ = True
    if cast_as is None:
        return value
    name = getattr(cast_as, "__name__", repr(cast_as))
    try:
        if hasattr(cast_as, "model_validate"):
            return cast_as(**value)
        if isinstance(cast_as, type) and issubclass(cast_as, dict):
            return dict(value)
        if type(value) is not cast_as:
            log.warning("casting %r of %s to %s seems wrong", value, type(value), cast_as)
        return cast_as(value)
    except Exception as exc:
        first = str(exc).strip().splitlines()
        raise _fail(api, f"{what} does not fit {name}: {type(exc).__name__}: "
                         f"{'; '.join(first[:3])}") from None


def set_parameter(**kwargs: Any) -> None:
    """Store parameters for the steps after this one (kept when the task succeeds)."""
    __tracebackhide__ = True
    _where("set_parameter")
    for key, value in kwargs.items():
        os.environ[PARAMETER_PREFIX + key] = _json("set_parameter", key, _dumped(value))


# ---------------------------------------------------------------- metrics


def track_this(step: int = 0, **kwargs: Any) -> None:
    """Record metrics at ``step`` (0 unless given): the step log's ``user_defined_metrics``, and the
    experiment tracker's."""
    __tracebackhide__ = True
    _where("track_this")
    for key, value in kwargs.items():
        name = f"{ctx.TRACK_PREFIX}{key}{ctx.STEP_INDICATOR}{step}"
        os.environ[name] = _json("track_this", key, _dumped(value, by_alias=True))


def get_experiment_tracker_context() -> contextlib.AbstractContextManager[Any]:
    """The experiment tracker's session (``with get_experiment_tracker_context(): ...``): mlflow's run of
    this magnus run, or a context that does nothing."""
    __tracebackhide__ = True
    _where("get_experiment_tracker_context")
    from .executor.tracking import tracker_for

    config = json.loads(os.environ.get(ctx.TRACKER) or "{}")
    return tracker_for(config, get_run_id(), get_tag()).client_context()


# ---------------------------------------------------------------- run


def get_run_id() -> str:
    """The run's id (also in ``MAGNUS_RUN_ID``)."""
    __tracebackhide__ = True
    _where("get_run_id")
    return os.environ.get(ctx.RUN_ID, "")


def get_tag() -> str:
    """The run's tag, "" when it has none."""
    __tracebackhide__ = True
    _where("get_tag")
    return os.environ.get(ctx.TAG, "")


def get_run_log() -> RunLog:
    """A copy of the run's log as it is now on disk (attribute or key access)."""
    __tracebackhide__ = True
    _where("get_run_log")
    path = os.environ.get(ctx.RUN_LOG, "")
    try:
        return RunLog(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise _fail("get_run_log", f"cannot read the run log {path}: {exc}") from None


# ---------------------------------------------------------------- secrets


def get_secret(secret_name: str) -> str:
    """A secret from the run's secrets manager (do-nothing: "", dotenv: its file, env-secrets-manager:
    the environment)."""
    __tracebackhide__ = True
    _where("get_secret")
    config = json.loads(os.environ.get(ctx.SECRETS) or "{}")
    kind, settings = config.get("type", "do-nothing"), config.get("config") or {}
    if kind == "do-nothing":
        return ""
    if kind == "env-secrets-manager":
        name = f"{settings.get('prefix', '')}{secret_name}{settings.get('suffix', '')}"
        if name not in os.environ:
            raise _fail("get_secret", f"no secret {secret_name!r}: the environment has no variable {name!r} "
                                      "(secrets: env-secrets-manager)")
        return os.environ[name]
    location = str(settings.get("location", ".env"))
    secrets = _dotenv(location)
    if secret_name not in secrets:
        raise _fail("get_secret", f"no secret {secret_name!r} in {location} (secrets: dotenv)")
    return secrets[secret_name]


def _dotenv(location: str) -> dict[str, str]:
    """magnus' dotenv format: ``key=value``, optional ``export``/``set`` before, ``#`` comments, quotes."""
    __tracebackhide__ = True
    try:
        text = Path(location).read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail("get_secret", f"cannot read the secrets file {location}: {exc.strerror or exc}") from None
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        for word in ("export", "EXPORT", "set", "SET"):
            if line.startswith(word):
                line = line[len(word):].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or "=" in value:
            raise _fail("get_secret", f"{location}:{number}: a secret is written name=value")
        found[key.strip()] = value.strip().strip('"')
    return found


# ---------------------------------------------------------------- catalog


def _catalog(api: str, cwd: str = ".") -> Any:
    """The run's catalog seen from here, or None for a do-nothing catalog."""
    __tracebackhide__ = True
    _where(api)
    folder = os.environ.get(ctx.CATALOG, "")
    if not folder:
        return None
    from .executor.catalog import Catalog

    return Catalog(cwd, get_run_id(), os.environ.get(ctx.CATALOG_LOCATION) or ".catalog", folder)


def get_from_catalog(name: str, destination_folder: str = "") -> None:
    """Copy catalog files matching the glob ``name`` into ``destination_folder`` (default: the run folder)."""
    __tracebackhide__ = True
    catalog = _catalog("get_from_catalog", destination_folder or ".")
    if catalog is None:
        return
    from .executor.catalog import CatalogError

    try:
        _records.extend(catalog.get(name))
    except (CatalogError, OSError) as exc:
        raise _fail("get_from_catalog", str(exc)) from None


def put_in_catalog(filepath: str) -> None:
    """Copy run-folder files matching the glob ``filepath`` into the run's catalog."""
    __tracebackhide__ = True
    catalog = _catalog("put_in_catalog")
    if catalog is None:
        return
    from .executor.catalog import CatalogError

    try:
        _records.extend(catalog.put(filepath))
    except (CatalogError, OSError) as exc:
        raise _fail("put_in_catalog", str(exc)) from None


def put_object(data: Any, name: str) -> None:
    """Pickle ``data`` into the run's catalog as ``name``."""
    __tracebackhide__ = True
    import pickle

    _where("put_object")
    path = f"{name}{PICKLE_SUFFIX}"
    try:
        with open(path, "wb") as handle:
            pickle.dump(data, handle)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        with contextlib.suppress(OSError):
            os.remove(path)
        raise _fail("put_object", f"{name!r} cannot be pickled: {exc}") from None
    try:
        put_in_catalog(path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)


def get_object(name: str) -> Any:
    """The object ``put_object`` stored as ``name`` in this run's catalog."""
    __tracebackhide__ = True
    import pickle

    path = f"{name}{PICKLE_SUFFIX}"
    catalog = _catalog("get_object")
    if catalog is None or not (catalog.folder / path).is_file():
        raise _fail("get_object", f"no object {name!r} was put in the catalog of run {get_run_id()}")
    get_from_catalog(path, destination_folder=".")
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)


def hide_our_frames() -> None:
    """In a notebook task's kernel: an ``InteractionError`` shows the notebook's frames, not ours (IPython
    always shows the frame that raised, ``__tracebackhide__`` or not)."""
    from IPython import get_ipython

    from .executor.runners import trimmed_traceback

    shell = get_ipython()
    if shell is None:
        return

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> Any:
        stb = shell.InteractiveTB.structured_traceback(etype, value, trimmed_traceback(tb),
                                                       tb_offset=tb_offset)
        shell._showtraceback(etype, value, stb)  # IPython shows a custom handler's traceback only so
        return stb

    shell.set_custom_exc((InteractionError,), handler)


def drain_records() -> list[dict[str, Any]]:
    """The catalog entries this task's puts and gets made (the runner adds them to the step log)."""
    out = list(_records)
    _records.clear()
    return out


# ---------------------------------------------------------------- interactive sessions


class _Session:
    """An interactive session's run log and the variables it set in this process."""

    def __init__(self, store: Any, environ: dict[str, str]) -> None:
        self.store = store
        self.environ = environ


_session: _Session | None = None


def start_interactive_session(run_id: str = "", config_file: str = "", tag: str = "",
                              parameters_file: str = "") -> None:
    """Begin a run in this process (a notebook, IPython) so the interaction API works outside a pipeline.

    It has one step, ``interactive``; ``end_interactive_session`` records what
    was tracked and the parameters set, and ends the run. Inside a task this does
    nothing (the task has its run already).
    """
    global _session
    if os.environ.get(ctx.STEP):
        log.warning("start_interactive_session: ignored: this is a task of a run, or a session has begun")
        return
    from .config import load_config
    from .executor.params import initial_parameters
    from .executor.runlog import RunLogStore, step_log

    services = load_config(config_file or None, tag=tag)
    folder = Path.cwd()
    parameters = initial_parameters(parameters_file or None)
    store = RunLogStore.create(folder, run_id or None, parameters,
                               {"executor": {"type": "interactive"}, "services": services.as_dict()})
    with store.lock:
        store.data["tag"] = tag
        store.data["steps"][INTERACTIVE_STEP] = step_log(INTERACTIVE_STEP, INTERACTIVE_STEP, "task")
    store.write()
    catalog = services.catalog_folder(folder, store.run_id)
    if catalog is not None:
        catalog.mkdir(parents=True, exist_ok=True)
    context = ctx.run_context(store.run_id, catalog, services.catalog_location, store.path, services)
    environ = context.env(INTERACTIVE_STEP)
    environ.update({PARAMETER_PREFIX + k: json.dumps(v) for k, v in parameters.items()})
    os.environ.update(environ)
    _session = _Session(store, environ)


def end_interactive_session() -> None:
    """End the session's run: its step gets the metrics tracked and catalog entries made, the run the
    parameters set; both end ``SUCCESS``. Without a session this does nothing."""
    global _session
    if _session is None:
        log.warning("end_interactive_session: no interactive session to end")
        return
    session, _session = _session, None
    written = ctx.task_writes(os.environ)
    store = session.store
    with store.lock:
        entry = store.data["steps"][INTERACTIVE_STEP]
        entry["user_defined_metrics"] = ctx.tracked_metrics(written)
        entry["data_catalog"].extend(drain_records())
        entry["status"] = "SUCCESS"
        store.data["parameters"].update(environment_parameters(written))
        store.data["status"] = "SUCCESS"
    store.write(indent=1)
    for key in [*session.environ, *written]:
        os.environ.pop(key, None)
