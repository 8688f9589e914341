"""magnus 0.5 config files: ``-c/--config-file``, ``configuration_file=``, ``MAGNUS_CONFIGURATION_FILE``.

A magnus config names five services, each ``{type: ..., config: {...}}``:

- ``executor``: ``local`` (tasks in this machine's worker pool), ``mocked``
  (tasks not run but marked successful, except those its ``patches`` change),
  ``local-container`` (each task in a docker image: needs a docker engine) and
  ``argo`` (a workflow: ``magnus-jupyter export --to argo`` writes it); the last
  two are refused in one line (containers are not run here yet);
- ``run_log_store``: ``buffered``, ``file-system``, ``chunked-fs`` (the run log
  is always one JSON file in ``.run_log_store/``: retry and the DAG widget read
  it there);
- ``catalog``: ``file-system`` (``catalog_location``, default ``.catalog``) or
  ``do-nothing``;
- ``secrets``: ``do-nothing``, ``dotenv`` (``location``, default ``.env``) or
  ``env-secrets-manager`` (``prefix``, ``suffix``);
- ``experiment_tracker``: ``do-nothing`` or ``mlflow`` (``server_url``,
  ``autolog``; the ``[mlflow]`` extra).

A service left out takes magnus' default, or the ``defaults:`` of a
``magnus-config.yaml`` in the run folder, as magnus does. ``$name`` in the
executor's config is replaced by the ``MAGNUS_VAR_name`` variable. Anything
else (an unknown service, type or setting, a value of the wrong kind) is a
``ConfigError``: one line naming the file, line and key.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError, Problem
from .executor.runlog import CATALOG_FOLDER, RUN_LOG_FOLDER

ENV_FILE = "MAGNUS_CONFIGURATION_FILE"
USER_DEFAULTS = "magnus-config.yaml"
VARIABLE_PREFIX = "MAGNUS_VAR_"

_TEXT, _BOOL, _MAPPING, _ANY = "text", "true/false", "a mapping", "anything"

# service -> type -> setting -> the kind of value it takes (magnus 0.5.1's settings for each)
SERVICES: dict[str, dict[str, dict[str, str]]] = {
    "executor": {
        "local": {"enable_parallel": _BOOL, "overrides": _MAPPING},
        "mocked": {"enable_parallel": _BOOL, "overrides": _MAPPING, "patches": _MAPPING},
        "local-container": {"docker_image": _TEXT, "environment": _MAPPING, "auto_remove_container": _BOOL,
                            "run_in_local": _BOOL, "enable_parallel": _BOOL, "overrides": _MAPPING},
        "argo": {},  # any settings: it is refused as a whole (see check_runnable)
    },
    "run_log_store": {"buffered": {}, "file-system": {"log_folder": _TEXT},
                      "chunked-fs": {"log_folder": _TEXT}},
    "catalog": {"do-nothing": {}, "file-system": {"catalog_location": _TEXT}},
    "secrets": {"do-nothing": {}, "dotenv": {"location": _TEXT},
                "env-secrets-manager": {"prefix": _TEXT, "suffix": _TEXT}},
    "experiment_tracker": {"do-nothing": {}, "mlflow": {"server_url": _TEXT, "autolog": _BOOL}},
}
REQUIRED = {("executor", "local-container"): ("docker_image",),
            ("experiment_tracker", "mlflow"): ("server_url",)}


class ConfigError(PipelineError):
    """A magnus config file magnus-jupyter cannot use; the message names the file, line and key."""


def _service(type_: str) -> dict[str, Any]:
    return {"type": type_, "config": {}}


@dataclass
class MagnusConfig:
    """The five services of a run, as ``{"type": ..., "config": {...}}`` each, and the run's tag."""

    executor: dict[str, Any] = field(default_factory=lambda: _service("local"))
    run_log_store: dict[str, Any] = field(default_factory=lambda: _service("buffered"))
    catalog: dict[str, Any] = field(default_factory=lambda: _service("file-system"))
    secrets: dict[str, Any] = field(default_factory=lambda: _service("do-nothing"))
    experiment_tracker: dict[str, Any] = field(default_factory=lambda: _service("do-nothing"))
    tag: str = ""
    file: str | None = None  # where it came from, for messages

    @property
    def catalog_location(self) -> str:
        return str(self.catalog["config"].get("catalog_location", CATALOG_FOLDER))

    def catalog_folder(self, cwd: Path, run_id: str) -> Path | None:
        """The run's catalog folder; None for a do-nothing catalog (task outputs still go to .catalog)."""
        if self.catalog["type"] == "do-nothing":
            return None
        return cwd / self.catalog_location / run_id

    @property
    def patches(self) -> dict[str, dict[str, Any]] | None:
        """For a mocked executor: step name -> the task fields its patch sets; None otherwise."""
        if self.executor["type"] != "mocked":
            return None
        return dict(self.executor["config"].get("patches") or {})

    def as_dict(self) -> dict[str, Any]:
        """As the run log's ``run_config`` records it (and a retry reads it back)."""
        return {name: getattr(self, name) for name in SERVICES} | {"tag": self.tag}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MagnusConfig:
        """Back from ``as_dict`` (a run log); missing services take the defaults."""
        out = cls()
        for name in SERVICES:
            value = (data or {}).get(name)
            if isinstance(value, dict) and "type" in value:
                setattr(out, name, {"type": value["type"], "config": dict(value.get("config") or {})})
        out.tag = str((data or {}).get("tag") or "")
        return out

    def check_runnable(self, how: str = "run") -> None:
        """What magnus-jupyter cannot run here gets its one line (exit 2): argo, local-container (saying
        when there is no docker engine either), a run log folder other than .run_log_store."""
        where = self.file or "the config"
        kind = self.executor["type"]
        if kind == "argo":
            raise ConfigError(f"{where}: executor: type argo: magnus-jupyter does not submit workflows "
                              f"from `{how}`; write one with `magnus-jupyter export PIPELINE.yaml --to argo "
                              "--image IMAGE -o workflow.yaml` and submit it with `argo submit`")
        if kind == "local-container":
            from .executor.containers import docker_problem

            problem = docker_problem()
            if problem:
                raise ConfigError(f"{where}: executor: type local-container needs a docker engine: {problem}")
            raise ConfigError(f"{where}: executor: type local-container: magnus-jupyter does not run tasks "
                              "in containers yet; leave the executor out to run them here, or run them on a "
                              "Dask cluster of such images (--executor dask --scheduler ADDRESS)")
        folder = self.run_log_store["config"].get("log_folder")
        if folder is not None and Path(folder) != Path(RUN_LOG_FOLDER):
            raise ConfigError(f"{where}: run_log_store: log_folder {folder!r}: magnus-jupyter keeps run logs "
                              f"in {RUN_LOG_FOLDER}/ of the run folder (retry and the DAG widget read them "
                              "there); leave log_folder out")


def config_file(given: str | None) -> str | None:
    """The config to use: the one given, else ``MAGNUS_CONFIGURATION_FILE``, else none."""
    return given or os.environ.get(ENV_FILE) or None


def load_config(path: str | os.PathLike[str] | None, *, tag: str = "",
                cwd: str | os.PathLike[str] | None = None) -> MagnusConfig:
    """The config of ``path`` over the run folder's ``magnus-config.yaml`` defaults over magnus' own."""
    folder = Path(cwd) if cwd is not None else Path.cwd()
    out = MagnusConfig(tag=tag or "", file=str(path) if path else None)
    sources: list[tuple[str, Any]] = []
    user = folder / USER_DEFAULTS
    if user.is_file():
        data = _read(str(user))
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{user}: a magnus-config.yaml is a mapping (with 'defaults:')")
        defaults = (data or {}).get("defaults")
        if defaults is not None:
            sources.append((str(user), defaults))
    if path:
        sources.append((str(path), _read(str(path))))
    for file, data in sources:
        for name, value in _sections(file, data).items():
            setattr(out, name, value)
    out.executor = {"type": out.executor["type"], "config": _variables(out.executor["config"])}
    return out


def _read(path: str) -> Any:
    from .yaml_io import parse_yaml, read_text

    try:
        return parse_yaml(read_text(path), path)
    except PipelineError as exc:
        raise ConfigError(str(exc)) from None


def _where(file: str, data: Any, key: Any) -> str:
    lines = getattr(data, "key_lines", None) or {}
    return str(Problem("", file=file, line=lines.get(key)))


def _suggest(word: Any, options: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(word, options, n=1) if isinstance(word, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _sections(file: str, data: Any) -> dict[str, dict[str, Any]]:
    """Each service of one file, checked: a known type, known settings of the right kinds."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a magnus config is a mapping of services ({', '.join(SERVICES)})")
    out: dict[str, dict[str, Any]] = {}
    for name, section in data.items():
        here = _where(file, data, name)
        if name not in SERVICES:
            raise ConfigError(f"{here}{name}: not a magnus service{_suggest(name, tuple(SERVICES))}; "
                              f"a config has {', '.join(SERVICES)}")
        if section is None:
            continue
        if not isinstance(section, dict) or "type" not in section:
            raise ConfigError(f"{here}{name}: must be a mapping with 'type' (and 'config')")
        for key in section:
            if key not in ("type", "config"):
                raise ConfigError(f"{_where(file, section, key)}{name}.{key}: not allowed; a service has "
                                  "'type' and 'config'")
        kind = section["type"]
        types = SERVICES[name]
        if kind not in types:
            raise ConfigError(f"{_where(file, section, 'type')}{name}.type: unknown type {kind!r}"
                              f"{_suggest(kind, tuple(types))}; magnus 0.5 has {', '.join(types)}")
        settings = section.get("config") or {}
        if not isinstance(settings, dict):
            raise ConfigError(f"{_where(file, section, 'config')}{name}.config: must be a mapping")
        allowed = types[kind]
        for key, value in settings.items():
            at = f"{_where(file, settings, key)}{name}.config.{key}"
            if kind == "argo":
                break
            if key not in allowed:
                known = ", ".join(allowed) or "none"
                raise ConfigError(f"{at}: not a setting of {name} {kind}{_suggest(key, tuple(allowed))} "
                                  f"(its settings: {known})")
            problem = _kind_problem(allowed[key], value)
            if problem:
                raise ConfigError(f"{at}: {problem}")
        for key in REQUIRED.get((name, kind), ()):
            if key not in settings:
                raise ConfigError(f"{_where(file, section, 'type')}{name}: type {kind} needs config.{key}")
        if kind == "mocked":
            _check_patches(file, settings.get("patches") or {})
        out[name] = {"type": kind, "config": _plain(settings)}
    return out


def _kind_problem(kind: str, value: Any) -> str | None:
    ok = {_TEXT: isinstance(value, str), _BOOL: isinstance(value, bool), _MAPPING: isinstance(value, dict),
          _ANY: True}[kind]
    return None if ok else f"must be {kind}, found {type(value).__name__} {value!r:.60}"


PATCHABLE = ("command", "command_type", "notebook_output_path", "output_cell_tag", "optional_ploomber_args",
             "returns")


def _check_patches(file: str, patches: Any) -> None:
    if not isinstance(patches, dict):
        raise ConfigError(f"{file}: executor.config.patches: must be a mapping of step name: task fields")
    for step, fields in patches.items():
        at = f"{_where(file, patches, step)}executor.config.patches.{step}"
        if not isinstance(fields, dict):
            raise ConfigError(f"{at}: must be a mapping of task fields (command, command_type, ...)")
        for key in fields:
            if key not in PATCHABLE:
                raise ConfigError(f"{_where(file, fields, key)}executor.config.patches.{step}.{key}: not a "
                                  f"task field a patch can set ({', '.join(PATCHABLE)})")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _variables(settings: dict[str, Any]) -> dict[str, Any]:
    """``$name`` / ``${name}`` in text settings -> ``MAGNUS_VAR_name``; unknown names stay as written."""
    names = {k[len(VARIABLE_PREFIX):]: v for k, v in os.environ.items() if k.startswith(VARIABLE_PREFIX)}

    def apply(value: Any) -> Any:
        if isinstance(value, str):
            return string.Template(value).safe_substitute(names)
        if isinstance(value, dict):
            return {k: apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [apply(v) for v in value]
        return value

    return apply(settings)
