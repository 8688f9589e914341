"""The run's parameters: where they start (file, environment, ``--param``) and how updates merge.

magnus 0.5 keeps one mapping per run; every task sees the current values and
a successful task's updates are merged back. Between parallel branches the
last to finish wins; ``ParameterStore`` notes who wrote what so the engine can
warn about it, naming the parameter and the branches.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ParameterError, PipelineYAMLError

PARAMETER_PREFIX = "MAGNUS_PRM_"


def load_parameters_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping of initial parameters (``-p FILE``); anything else is a located error."""
    from ..yaml_io import parse_yaml, read_text

    try:
        data = parse_yaml(read_text(path), str(path))
    except PipelineYAMLError as exc:
        raise ParameterError(f"parameters file {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__ if not isinstance(data, list) else "a list"
        raise ParameterError(f"{path}:1: a parameters file must be a mapping of name: value, found {kind}")
    for key, value in data.items():
        line = getattr(data, "key_lines", {}).get(key)
        where = f"{path}:{line}" if line else str(path)
        if not isinstance(key, str) or not key:
            raise ParameterError(f"{where}: parameter names must be text, found {key!r}")
        _finite(value, f"{where}: parameter {key!r}")
    return _plain(data)


NOT_IN_JSON = "the run log is strict JSON, which has no NaN or infinity (use null or text)"


def non_finite(value: Any) -> str | None:
    """``"NaN"`` or ``"infinity"`` if ``value`` holds one at any depth: strict JSON (and the browser's
    ``JSON.parse``) has neither, so no parameter may."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return "NaN" if math.isnan(item) else "infinity"
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _finite(value: Any, what: str) -> Any:
    """``value``, or a ParameterError naming ``what`` (where the value came from) if it is not finite."""
    refused = non_finite(value)
    if refused:
        raise ParameterError(f"{what} holds {refused}; {NOT_IN_JSON}")
    return value


def _plain(value: Any) -> Any:
    """The YAML loader's line-tracking mappings as ordinary dicts (they go to JSON and pickles)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_param(text: str) -> tuple[str, Any]:
    """``--param k=v``: v is JSON if it parses (``3``, ``[1,2]``, ``true``), else the raw text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ParameterError(f"--param {text!r}: expected NAME=VALUE (VALUE as JSON, or plain text)")
    return key, _finite(decode_value(raw), f"--param {text!r}")


def decode_value(raw: str) -> Any:
    """magnus' rule for parameter text: JSON-decoded, the raw string as fallback."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def environment_parameters(environ: Mapping[str, str] | None = None, finite: bool = True) -> dict[str, Any]:
    """``MAGNUS_PRM_<name>`` variables set when the run starts, as magnus reads them (lower-cased keys);
    ``finite=False``: NaN and infinity are left for the caller to refuse (a task's writes, by name)."""
    environ = os.environ if environ is None else environ
    out = {}
    for name, text in environ.items():
        if name.startswith(PARAMETER_PREFIX) and len(name) > len(PARAMETER_PREFIX):
            value = decode_value(text)
            out[name[len(PARAMETER_PREFIX):].lower()] = \
                _finite(value, f"environment variable {name}") if finite else value
    return out


def initial_parameters(file: str | os.PathLike[str] | None = None, params: Iterable[str] = (),
                       environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run's starting mapping: the file, then ``MAGNUS_PRM_`` variables, then ``--param`` (last wins)."""
    out: dict[str, Any] = {}
    if file is not None:
        if not Path(file).exists():
            raise ParameterError(f"{file}: no such parameters file")
        out.update(load_parameters_file(file))
    out.update(environment_parameters(environ))
    for text in params:
        key, value = parse_param(text)
        out[key] = value
    return out


def changed(seen: Mapping[str, Any], returned: Mapping[str, Any]) -> dict[str, Any]:
    """The updates a task really made: new names, or values that differ from what it was given.

    A shell task hands back every ``MAGNUS_PRM_`` variable, including those it
    only received; counting those as writes would make every parallel branch
    "write" every parameter.
    """
    missing = object()
    return {k: v for k, v in returned.items() if seen.get(k, missing) != v}


class WriteLog:
    """Which branches of one parallel/map step wrote which parameters, in merge order."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.writes: dict[str, list[str]] = {}

    def conflicts(self) -> list[tuple[str, list[str]]]:
        """(parameter, branches in the order of their last write) where two or more branches wrote it."""
        out = []
        for name, writers in self.writes.items():
            distinct = list(reversed(dict.fromkeys(reversed(writers))))  # a, b, a: b then a, a won
            if len(distinct) > 1:
                out.append((name, distinct))
        return out

    def warnings(self) -> list[str]:
        """The run's warning for each parameter two or more branches wrote, naming the winner."""
        return [f"parameter '{name}' was written by parallel branches {', '.join(repr(w) for w in writers)} "
                f"of '{self.step}'; the last to finish ({writers[-1]!r}) wins"
                for name, writers in self.conflicts()]


class ParameterStore:
    """The run's one mapping, shared by every branch thread."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = copy.deepcopy(dict(initial or {}))
        for name, value in self._values.items():  # given in code (run_pipeline): the CLI named the source
            _finite(value, f"parameter {name!r}")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        with self._lock:
            return copy.deepcopy(self._values.get(name, default))

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._values

    def merge(self, updates: Mapping[str, Any], writers: Iterable[tuple[WriteLog, str]] = ()) -> None:
        """Apply a successful task's updates; note them in each enclosing fan-out's write log."""
        if not updates:
            return
        with self._lock:
            self._values.update(copy.deepcopy(dict(updates)))
            for log, branch in writers:
                for name in updates:
                    log.writes.setdefault(name, []).append(branch)
