"""A task's fingerprint: everything that can change its result, as digests, taken just before it runs.

One function builds it for the engine and for ``execute-step`` (Argo) alike,
from what is known at that moment, so a task whose upstream ran again but
gave the same values and files has the same fingerprint as before:

- ``task``: the definition fields that change what it does (command_type,
  command, returns, output_cell_tag, catalog, inputs), one digest each;
- ``notebook``: each code cell's source and tags, by its position in the
  notebook counted from 1 (``notebook changed: cell 3``); outputs, execution
  counts and metadata do not count; ``kernel``: the kernel it runs in;
- ``python``: the function's source and its module's source, the module found
  as ``import`` would find it from the run folder, without importing it (the
  orchestrator never runs user code); modules it imports in turn are not
  covered: declare them in ``inputs``;
- ``parameters``: a digest of each value the task receives (``values`` keeps
  the short ones as they are, for messages);
- ``catalog``: the sha256 of each catalog ``get`` file; ``inputs``: the sha256
  of each project file its ``inputs`` globs match (a symlink leading out of the
  run folder is not followed);
- ``environment``: the interpreter and the versions of installed
  distributions (one digest; the list itself is in the run log's
  ``run_config.environment``, read once per run).

Content decides, never timestamps: within one run a file's sha256 is
remembered by (path, size, mtime_ns, inode), so a 1,000-iteration map reads its
notebook once, and an edit always changes the key.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import json
import os
import platform
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..model import CATALOG_FOLDER, RUN_LOG_FOLDER, Task
from .catalog import data_hash

DEFINITION = ("command_type", "command", "returns", "output_cell_tag", "catalog", "inputs")
SHORT_VALUE = 64  # parameter values up to this many characters of JSON are kept as they are, for messages
MANY_INPUTS = 100  # more files than this under ``inputs``: one digest for them all, not one line each


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(text: str | bytes, size: int = 16) -> str:
    """Hex sha256, cut to ``size`` characters (64 bits tell changes apart; this is not for security)."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:size]


def read_environment() -> dict[str, Any]:
    """The interpreter and every installed distribution's version (the first found, as import finds)."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            found.setdefault(name.lower().replace("_", "-").replace(".", "-"), str(dist.version))
    return {"python": f"{platform.python_implementation()} {platform.python_version()}",
            "machine": platform.machine(), "distributions": dict(sorted(found.items()))}


def _stat_key(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_size, st.st_mtime_ns, st.st_ino


class Fingerprints:
    """One run's fingerprinting: file digests remembered by stat, the environment read once."""

    def __init__(self, cwd: str | os.PathLike[str]) -> None:
        self.cwd = Path(cwd).resolve()
        self._lock = threading.Lock()
        self._environment: dict[str, Any] | None = None
        self._environment_digest = ""
        self._files: dict[tuple[str, int, int, int], Any] = {}  # stat key -> what was read from the file

    # ---- the environment ----

    def environment(self) -> dict[str, Any]:
        """The run's environment (``read_environment``), read on first use."""
        with self._lock:
            if self._environment is None:
                self._environment = read_environment()
                self._environment_digest = digest(_json(self._environment))
            return self._environment

    # ---- files, by content ----

    def _cached(self, path: Path, read: Any) -> Any:
        key = _stat_key(path)
        if key is None:
            return None
        found = self._files.get(key)
        if found is None:
            found = read(path)
            self._files[key] = found
        return found

    def file_digest(self, path: Path) -> str | None:
        """The file's sha256 (as the data catalog records it), or None when it cannot be read."""
        def read(p: Path) -> str | None:
            try:
                return data_hash(p)
            except OSError:
                return None

        return self._cached(path, read)

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.cwd).as_posix()
        except ValueError:
            return str(path)

    # ---- the parts ----

    def _notebook(self, command: str) -> tuple[dict[str, Any], str]:
        path = self.cwd / command.strip()
        found = self._cached(path, _read_notebook)
        if found is None:
            return {"path": command.strip(), "missing": True}, "python3"
        cells, kernel = found
        return {"path": command.strip(), "cells": cells}, kernel

    def _python(self, command: str) -> dict[str, Any]:
        module, _, function = command.strip().rpartition(".")
        origin = module_file(module, [str(self.cwd), *(p or os.getcwd() for p in sys.path)])
        read = self._cached(origin, _read_module) if origin is not None else None
        if origin is None or read is None:
            return {"name": command.strip(), "module": module, "missing": True}
        source, functions = read
        return {"name": command.strip(), "module": self._relative(origin), "source": source,
                "function": functions.get(function)}

    def _inputs(self, patterns: Iterable[str]) -> dict[str, str]:
        files: dict[str, str] = {}
        for pattern in patterns:
            try:
                matches = sorted(self.cwd.glob(pattern))
            except (ValueError, OSError):  # validate refuses such patterns; an unvalidated run meets nothing
                continue
            for path in matches:
                relative = path.relative_to(self.cwd)
                if relative.parts and relative.parts[0] in (CATALOG_FOLDER, RUN_LOG_FOLDER):
                    continue
                if not path.is_file() or not path.resolve().is_relative_to(self.cwd):
                    continue  # folders, and symlinks leading out of the run folder
                sha = self.file_digest(path)
                if sha is not None:
                    files[relative.as_posix()] = sha
        if len(files) > MANY_INPUTS:
            return {"*": f"{len(files)} files {digest(_json(files))}"}
        return files

    def task(self, step: Task, parameters: Mapping[str, Any],
             data_catalog: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """The fingerprint of ``step`` given ``parameters`` (its values, map variables included) and the
        catalog entries of its ``get`` files, as recorded in its step log."""
        self.environment()
        definition = {"command_type": step.kind, "command": step.command.strip(), "returns": step.returns,
                      "output_cell_tag": step.output_cell_tag, "catalog": step.catalog, "inputs": step.inputs}
        parts: dict[str, Any] = {
            "task": {k: digest(_json(v)) for k, v in definition.items() if v is not None}}
        if step.kind == "notebook":
            parts["notebook"], parts["kernel"] = self._notebook(step.command)
        elif step.kind == "python":
            parts["python"] = self._python(step.command)
        texts = {k: _json(v) for k, v in parameters.items()}
        parts["parameters"] = {k: digest(t) for k, t in sorted(texts.items())}
        parts["catalog"] = {str(e.get("name")): str(e.get("data_hash")) for e in data_catalog
                            if e.get("stage") == "get"}
        parts["inputs"] = self._inputs(step.inputs or ())
        parts["environment"] = self._environment_digest
        values = {k: parameters[k] for k, t in sorted(texts.items()) if len(t) <= SHORT_VALUE}
        code = parts.get("notebook")  # its cells' code counts, not where they are: markdown may move them
        counted = {**parts, "notebook": [c[1] for c in code["cells"]]} if code and "cells" in code else parts
        return {"digest": digest(_json(counted), 32), **parts, "values": values}


def _read_notebook(path: Path) -> tuple[list[list[Any]], str] | None:
    """A notebook's code cells as [position, digest of source and tags], and its kernel's name."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    cells = data.get("cells")
    if not isinstance(cells, list):  # not a v4 notebook: the whole file is its one "cell"
        return [[1, digest(path.read_bytes())]], "python3"
    out: list[list[Any]] = []
    for position, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        metadata = cell.get("metadata")
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else []
        tags = sorted(str(t) for t in tags) if isinstance(tags, list) else []
        out.append([position, digest(source + "\0" + "\n".join(tags))])
    metadata = data.get("metadata")
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    kernel = spec.get("name") if isinstance(spec, dict) else None
    return out, str(kernel or "python3")


def _read_module(path: Path) -> tuple[str, dict[str, str]] | None:
    """A module's source digest, and the digest of each top-level function's (or class's) source."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    functions: dict[str, str] = {}
    if path.suffix == ".py":
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            tree = None
        lines = data.decode("utf-8", "replace").splitlines()
        for node in tree.body if tree is not None else ():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                functions[node.name] = digest("\n".join(lines[first - 1:node.end_lineno]))
    return digest(data), functions


def module_file(name: str, roots: list[str]) -> Path | None:
    """The file ``import name`` would load when searching ``roots``, found without importing anything
    (a package's ``__init__`` is not run, unlike ``importlib.util.find_spec``)."""
    suffixes = (importlib.machinery.EXTENSION_SUFFIXES + importlib.machinery.SOURCE_SUFFIXES
                + importlib.machinery.BYTECODE_SUFFIXES)
    parts = name.split(".")
    if not name or not all(p.isidentifier() for p in parts):
        return None
    folders = [Path(r) for r in roots]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        namespace: list[Path] = []
        found: Path | None = None
        for folder in folders:
            package = folder / part
            init = next((package / f"__init__{s}" for s in suffixes if (package / f"__init__{s}").is_file()),
                        None)
            if init is not None:
                found = init
                break
            module = next((folder / f"{part}{s}" for s in suffixes if (folder / f"{part}{s}").is_file()),
                          None)
            if module is not None:
                found = module
                break
            if package.is_dir():
                namespace.append(package)
        if last:
            return found
        if found is not None and found.stem == "__init__":
            folders = [found.parent]
        elif namespace and found is None:
            folders = namespace
        else:
            return None
    return None


# ---- comparing two fingerprints ----


def differences(new: Mapping[str, Any], old: Mapping[str, Any],
                new_environment: Mapping[str, Any] | None = None,
                old_environment: Mapping[str, Any] | None = None) -> list[str]:
    """What differs between two fingerprints, one short line each, most telling first: the task's
    definition, its code, kernel, parameters, catalog files, inputs, then the environment."""
    if new.get("digest") == old.get("digest"):
        return []
    out: list[str] = []
    new_task, old_task = new.get("task") or {}, old.get("task") or {}
    for field in DEFINITION:
        if new_task.get(field) != old_task.get(field):
            out.append(f"{field} changed")
    out.extend(_code(new, old))
    if new.get("kernel") != old.get("kernel") and new.get("kernel") and old.get("kernel"):
        out.append(f"kernel changed: {old.get('kernel')} -> {new.get('kernel')}")
    out.extend(_parameters(new, old))
    out.extend(_files("catalog file", new.get("catalog") or {}, old.get("catalog") or {}))
    out.extend(_files("input", new.get("inputs") or {}, old.get("inputs") or {}))
    if new.get("environment") != old.get("environment"):
        out.append(environment_change(new_environment, old_environment))
    return out or ["fingerprint changed"]


def _code(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    nb_new, nb_old = new.get("notebook"), old.get("notebook")
    if isinstance(nb_new, dict) and isinstance(nb_old, dict) and nb_new != nb_old:
        if nb_new.get("missing"):
            out.append(f"notebook {nb_new.get('path')} is missing")
        else:
            out.append(_cells(nb_new.get("cells") or [], nb_old.get("cells") or []))
    py_new, py_old = new.get("python"), old.get("python")
    if isinstance(py_new, dict) and isinstance(py_old, dict) and py_new != py_old:
        if py_new.get("missing"):
            out.append(f"module {py_new.get('module')} is not found")
        elif py_new.get("function") != py_old.get("function"):
            out.append(f"function changed: {py_new.get('name')}")
        else:
            out.append(f"module changed: {py_new.get('module')}")
    return [line for line in out if line]


def _cells(new: list[list[Any]], old: list[list[Any]]) -> str:
    for (position, a), (_, b) in zip(new, old, strict=False):
        if a != b:
            return f"notebook changed: cell {position}"
    if len(new) > len(old):
        return f"notebook changed: cell {new[len(old)][0]} added"
    if len(old) > len(new):
        return f"notebook changed: cell {old[len(new)][0]} removed"
    return ""  # the code cells moved (markdown added or removed), their code is the same


def _parameters(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    new_params, old_params = new.get("parameters") or {}, old.get("parameters") or {}
    new_values, old_values = new.get("values") or {}, old.get("values") or {}
    for name in sorted(set(new_params) | set(old_params)):
        if name not in old_params:
            out.append(f"parameter '{name}' added" + (f": {_json(new_values[name])}" if name in new_values
                                                       else ""))
        elif name not in new_params:
            out.append(f"parameter '{name}' removed")
        elif new_params[name] != old_params[name]:
            if name in new_values and name in old_values:
                shown = f"{_json(old_values[name])} -> {_json(new_values[name])}"
                out.append(f"parameter '{name}' changed: {shown}")
            else:
                out.append(f"parameter '{name}' changed")
    return out


def _files(what: str, new: Mapping[str, str], old: Mapping[str, str]) -> list[str]:
    if "*" in new or "*" in old:  # too many files to name each
        return [f"{what}s changed"] if new != old else []
    out = []
    for name in sorted(set(new) | set(old)):
        if name not in old:
            out.append(f"{what} {name} added")
        elif name not in new:
            out.append(f"{what} {name} removed")
        elif new[name] != old[name]:
            out.append(f"{what} {name} changed")
    return out


def environment_change(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> str:
    """``environment changed: numpy 1.26.4 -> 2.0.0`` (the first difference, and how many more)."""
    if not new or not old:
        return "environment changed"
    changes: list[str] = []
    for key in ("python", "machine"):
        if new.get(key) != old.get(key):
            changes.append(f"{key} {old.get(key)} -> {new.get(key)}")
    new_dists, old_dists = new.get("distributions") or {}, old.get("distributions") or {}
    for name in sorted(set(new_dists) | set(old_dists)):
        if name not in old_dists:
            changes.append(f"{name} {new_dists[name]} added")
        elif name not in new_dists:
            changes.append(f"{name} {old_dists[name]} removed")
        elif new_dists[name] != old_dists[name]:
            changes.append(f"{name} {old_dists[name]} -> {new_dists[name]}")
    if not changes:
        return "environment changed"
    more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
    return f"environment changed: {changes[0]}{more}"
