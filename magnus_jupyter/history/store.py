"""Where a folder's runs are, and reading one run log whole and checked.

magnus keeps a run's record in ``.run_log_store``: one ``<run_id>.json`` (its
``file-system`` store, and ours), or a folder ``<run_id>/`` of chunks (its
``chunked-fs`` store: ``RunLog.json``, ``Parameter-<name>.json``, and
``StepLog-<internal name>-<ns>.json`` / ``BranchLog-...`` per step and branch),
which is put back together here as magnus' ``_prepare_full_run_log`` does. The
catalog is ``.catalog/<run_id>/``.

Every log is checked down to its attempts before anything reads it, so the
views never meet a field of the wrong type: a corrupt log or another tool's
JSON is one ``RunLogError`` naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExecutionError, PipelineError
from ..executor.runlog import CATALOG_FOLDER, RUN_LOG_FOLDER, check_run_id

CHUNK_HEAD = "RunLog.json"  # a chunked-fs run's own record; its steps are files beside it


class RunLogError(ExecutionError):
    """A run that is not there, or whose log cannot be read as a magnus run log; names the file."""


@dataclass(frozen=True)
class RunFolder:
    """A run folder's record folders (magnus' defaults unless a config names others)."""

    run_logs: Path
    catalog: Path

    @classmethod
    def of(cls, folder: str | os.PathLike[str] | RunFolder | None = None) -> RunFolder:
        if isinstance(folder, RunFolder):
            return folder
        base = Path(folder if folder is not None else os.getcwd())
        return cls(base / RUN_LOG_FOLDER, base / CATALOG_FOLDER)

    def catalog_of(self, run_id: str) -> Path:
        return self.catalog / run_id


@dataclass(frozen=True)
class RunFile:
    """One run's record on disk: a ``<run_id>.json`` file or a chunked-fs folder."""

    run_id: str
    path: Path
    chunked: bool = False

    def stat_key(self) -> list[int] | None:
        """``[inode, size, files, mtime_ns, ctime_ns]``: changes whenever the record does (index.py);
        for a chunked-fs folder the sizes and files added up, the times the newest. None if gone."""
        try:
            st = os.stat(self.path)
            if not self.chunked:
                return [st.st_ino, st.st_size, 1, st.st_mtime_ns, st.st_ctime_ns]
            key = [st.st_ino, 0, 0, st.st_mtime_ns, st.st_ctime_ns]
            with os.scandir(self.path) as entries:
                for entry in entries:
                    est = entry.stat(follow_symlinks=False)
                    key[1] += est.st_size
                    key[2] += 1
                    key[3] = max(key[3], est.st_mtime_ns)
                    key[4] = max(key[4], est.st_ctime_ns)
            return key
        except OSError:
            return None


def run_files(folder: str | os.PathLike[str] | RunFolder | None = None) -> list[RunFile]:
    """Every run record in the folder's run log store, in no particular order."""
    where = RunFolder.of(folder)
    found: dict[str, RunFile] = {}
    try:
        entries = list(os.scandir(where.run_logs))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise RunLogError(f"{where.run_logs}: cannot list the run logs: {exc.strerror or exc}") from None
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue  # temp files of a write in progress, the summary index
        if name.endswith(".json") and entry.is_file():
            found[name[:-5]] = RunFile(name[:-5], Path(entry.path))
        elif entry.is_dir() and os.path.isfile(os.path.join(entry.path, CHUNK_HEAD)):
            found.setdefault(name, RunFile(name, Path(entry.path), chunked=True))
    return list(found.values())


def find_run(run_id: str, folder: str | os.PathLike[str] | RunFolder | None = None) -> RunFile:
    """The record of ``run_id``; an unknown id is a ``RunLogError`` naming where it was looked for."""
    where = RunFolder.of(folder)
    try:
        check_run_id(run_id)
    except PipelineError as exc:
        raise RunLogError(str(exc)) from None
    path = where.run_logs / f"{run_id}.json"
    if path.is_file():
        return RunFile(run_id, path)
    if (where.run_logs / run_id / CHUNK_HEAD).is_file():
        return RunFile(run_id, where.run_logs / run_id, chunked=True)
    known = sorted(r.run_id for r in run_files(where))[-3:]
    hint = f"; recent runs: {', '.join(known)}" if known else "; there are no runs in this folder"
    raise RunLogError(f"run {run_id!r}: no run log at {path}{hint}")


def _load_json(path: Path, shown: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunLogError(f"{shown}: the run log was removed while being read") from None
    except OSError as exc:
        raise RunLogError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise RunLogError(f"{shown}: the run log is empty (a run just starting, or a write cut short)")
    try:
        return json.loads(data.decode("utf-8"))  # as magnus writes it; not json's guess at UTF-16/32
    except UnicodeDecodeError:
        raise RunLogError(f"{shown}: not a magnus run log (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise RunLogError(f"{shown}: not a magnus run log (corrupt JSON at line {exc.lineno}, "
                          f"column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise RunLogError(f"{shown}: not a magnus run log ({exc})") from None


def read_run_file(run: RunFile) -> dict[str, Any]:
    """The whole run log of ``run``, checked (``check_run_log``); a ``RunLogError`` names the file."""
    data = _assemble_chunks(run.path) if run.chunked else _load_json(run.path, run.path)
    check_run_log(data, run.path)
    return data


def load_run(run_id: str, folder: str | os.PathLike[str] | RunFolder | None = None) -> dict[str, Any]:
    """The checked run log of ``run_id`` in ``folder`` (default: here)."""
    return read_run_file(find_run(run_id, folder))


# ---- magnus' chunked-fs store -------------------------------------------------------------------


def _chunk_time(name: str) -> int:
    stem = name[:-5] if name.endswith(".json") else name
    tail = stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _assemble_chunks(folder: Path) -> dict[str, Any]:
    """A chunked-fs run as one run log: steps put into their branches by internal name, in creation order."""
    head = folder / CHUNK_HEAD
    run_log = _load_json(head, head)
    if not isinstance(run_log, dict) or not isinstance(run_log.setdefault("steps", {}), dict):
        raise RunLogError(f"{head}: not a magnus run log (not a mapping with a 'steps' mapping)")
    names = sorted(os.listdir(folder))
    parameters: dict[str, Any] = {}
    steps: list[tuple[int, dict[str, Any], Path]] = []
    branches: dict[str, dict[str, Any]] = {}
    for name in names:
        path = folder / name
        if name.startswith("Parameter-") and name.endswith(".json"):
            value = _load_json(path, path)
            if isinstance(value, dict):
                parameters.update(value)
        elif name.startswith(("StepLog-", "BranchLog-")) and name.endswith(".json"):
            chunk = _load_json(path, path)
            inside = "steps" if name.startswith("BranchLog-") else "branches"
            if (not isinstance(chunk, dict) or not isinstance(chunk.get("internal_name"), str)
                    or not isinstance(chunk.setdefault(inside, {}), dict)):
                raise RunLogError(f"{path}: not a magnus step or branch log (no internal_name, or its "
                                  f"{inside} not a mapping)")
            if inside == "steps":
                branches[chunk["internal_name"]] = chunk
            else:
                steps.append((_chunk_time(name), chunk, path))
    if parameters or "parameters" not in run_log:
        run_log["parameters"] = parameters
    by_name = {s["internal_name"]: s for _, s, _ in steps}
    for _, step, path in sorted(steps, key=lambda item: item[0]):
        internal = step["internal_name"]
        parts = internal.split(".")
        if len(parts) == 1:
            run_log["steps"][internal] = step
            continue
        branch = branches.get(".".join(parts[:-1]))
        parent = by_name.get(".".join(parts[:-2]))
        if branch is None or parent is None:
            raise RunLogError(f"{path}: step {internal!r} has no branch or parent step log in {folder}")
        parent["branches"][branch["internal_name"]] = branch
        branch["steps"][internal] = step
    return run_log


# ---- the check --------------------------------------------------------------------------------


def _where(path: Path, place: str) -> str:
    return f"{path}: not a magnus run log ({place})"


def check_run_log(data: Any, path: Path) -> None:
    """Raise ``RunLogError`` unless ``data`` has the shape of a magnus run log at every depth.

    Checked: the fields the views read and their types (strings, mappings, lists
    of attempt mappings). Fields a view does not read may be anything.
    """
    if not isinstance(data, dict):
        raise RunLogError(_where(path, f"a JSON {type(data).__name__}, not a mapping"))
    missing = [k for k in ("run_id", "status", "steps") if k not in data]
    if missing:
        raise RunLogError(_where(path, "no " + ", ".join(repr(k) for k in missing)))
    for key, kind in (("run_id", str), ("status", str), ("steps", dict), ("parameters", dict),
                      ("run_config", dict), ("tag", str), ("original_run_id", str), ("message", str)):
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise RunLogError(_where(path, f"{key!r} is a {type(value).__name__}"))
    try:
        check_run_id(data["run_id"])  # it names the catalog folder: no path may hide in it
    except PipelineError:
        raise RunLogError(_where(path, f"run_id {data['run_id']!r} cannot name a run")) from None
    stack: list[tuple[str, dict[str, Any]]] = [("steps", data["steps"])]
    while stack:
        place, steps = stack.pop()
        for key, step in steps.items():
            here = f"{place}[{key!r}]"
            if not isinstance(step, dict):
                raise RunLogError(_where(path, f"{here} is not a mapping"))
            _check_fields(path, here, step, (("status", str), ("internal_name", str), ("name", str),
                                             ("step_type", str), ("message", str), ("attempts", list),
                                             ("branches", dict), ("user_defined_metrics", dict),
                                             ("data_catalog", list), ("reused_from", str)))
            if not isinstance(step.get("status"), str):
                raise RunLogError(_where(path, f"{here} has no status"))
            for i, attempt in enumerate(step.get("attempts") or []):
                if not isinstance(attempt, dict):
                    raise RunLogError(_where(path, f"{here}.attempts[{i}] is not a mapping"))
                _check_fields(path, f"{here}.attempts[{i}]", attempt,
                              (("start_time", str), ("end_time", str), ("status", str), ("message", str)))
            for i, item in enumerate(step.get("data_catalog") or []):
                if not isinstance(item, dict):
                    raise RunLogError(_where(path, f"{here}.data_catalog[{i}] is not a mapping"))
            for bkey, branch in (step.get("branches") or {}).items():
                there = f"{here}.branches[{bkey!r}]"
                if not isinstance(branch, dict) or not isinstance(branch.get("steps", {}), dict):
                    raise RunLogError(_where(path, f"{there} is not a branch log"))
                _check_fields(path, there, branch, (("status", str), ("internal_name", str)))
                stack.append((f"{there}.steps", branch.get("steps", {})))


def _check_fields(path: Path, here: str, item: dict[str, Any], fields: tuple[tuple[str, type], ...]) -> None:
    for key, kind in fields:
        value = item.get(key)
        if value is not None and not isinstance(value, kind):
            raise RunLogError(_where(path, f"{here}.{key} is a {type(value).__name__}"))
