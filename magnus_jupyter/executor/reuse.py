"""Reusing a task's earlier result instead of running it: ``--reuse``, ``retry``, ``--from``, ``--only``.

One mechanism, four ways of choosing. Just before a task's first attempt would
be submitted, the engine takes its fingerprint (``fingerprint.py``) and asks
``Reuse.decide``:

- ``--reuse``: the newest successful attempt of the same internal name, in any
  earlier run of this folder's run log store, whose fingerprint is equal and
  whose catalog files still exist;
- ``retry RUN_ID``: the same, with the candidates restricted to that run's
  succeeded tasks (a step it logged without a fingerprint, e.g. by magnus
  itself, is reused by name, as magnus' ``use_cached`` does);
- ``--from STEP`` / ``--only STEP``: a task the selection names runs; any other
  is reused from its newest successful attempt, whatever its fingerprint (the
  user said where to start; a fingerprint that differs is a warning).

A task with ``cache: false`` always runs. A reused task's step log is the
earlier one with ``reused_from`` (and magnus' ``mock: true``); its catalog
files are copied into this run's catalog, the files it put are put back in the
run folder when they differ there (as running it would have left them), and
its parameter updates are merged again. A task that runs gets ``rerun_reason``:
the first difference from the nearest earlier successful attempt.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExecutionError
from ..history.store import RunFile, RunLogError, read_run_file, run_files
from ..model import Pipeline, Task
from .catalog import Catalog, data_hash
from .fingerprint import differences
from .partial import Selection
from .runlog import CATALOG_FOLDER, iter_steps
from .task import SUCCESS

log = logging.getLogger(__name__)

NO_EARLIER_RUN = "no earlier run"


def catalog_folder_of(run_log: Mapping[str, Any], cwd: Path) -> Path:
    """Where a run's catalog files are: its magnus config's catalog_location, else ``.catalog``."""
    services = (run_log.get("run_config") or {}).get("services") or {}
    location = ((services.get("catalog") or {}).get("config") or {}).get("catalog_location")
    return cwd / (location or CATALOG_FOLDER) / str(run_log.get("run_id", ""))


@dataclass(frozen=True)
class Earlier:
    """A task's successful step log in an earlier run."""

    run_id: str
    entry: dict[str, Any]
    catalog: Path  # that run's catalog folder
    environment: dict[str, Any] | None  # that run's run_config.environment

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        found = self.entry.get("fingerprint")
        return found if isinstance(found, dict) else None

    @property
    def ended(self) -> str:
        attempts = self.entry.get("attempts") or [{}]
        return str(attempts[-1].get("end_time", ""))


class _Run:
    """One earlier run log, reduced to what reuse reads: its task step logs by internal name."""

    def __init__(self, data: dict[str, Any], cwd: Path) -> None:
        self.run_id = str(data.get("run_id", ""))
        self.catalog = catalog_folder_of(data, cwd)
        environment = (data.get("run_config") or {}).get("environment")
        self.environment = environment if isinstance(environment, dict) else None
        self.succeeded: dict[str, dict[str, Any]] = {}
        self.tasks: set[str] = set()
        for step in iter_steps(data):
            if step.get("step_type") != "task" or "internal_name" not in step:
                continue
            self.tasks.add(step["internal_name"])
            if step.get("status") == SUCCESS:
                self.succeeded[step["internal_name"]] = step


class EarlierRuns:
    """Task results of earlier runs in a folder, newest run first, read from disk only as far as needed.

    ``run_log``: one run only (a retry). ``exclude``: this run's own id. Thread-safe: the engine's
    helper threads ask at the same time.
    """

    def __init__(self, cwd: str | os.PathLike[str], *, exclude: str = "",
                 run_log: dict[str, Any] | None = None) -> None:
        self.cwd = Path(cwd)
        self._lock = threading.Lock()
        self._runs: list[_Run] = []
        self._pending: list[RunFile] = []
        if run_log is not None:
            self._runs.append(_Run(run_log, self.cwd))
        else:
            self._pending = _newest_first(self.cwd, exclude)

    def _run(self, index: int) -> _Run | None:
        with self._lock:
            while len(self._runs) <= index and self._pending:
                record = self._pending.pop(0)
                try:
                    self._runs.append(_Run(read_run_file(record), self.cwd))
                except RunLogError:  # half written, removed meanwhile, another tool's: not a candidate
                    log.debug("run log %s left out of reuse", record.path, exc_info=True)
            return self._runs[index] if index < len(self._runs) else None

    def runs(self) -> Iterator[_Run]:
        index = 0
        while (run := self._run(index)) is not None:
            yield run
            index += 1

    def succeeded(self, internal: str, before: str | None = None) -> Iterator[Earlier]:
        """The task's successful step logs, newest run first (``before``: those that ended before)."""
        for run in self.runs():
            entry = run.succeeded.get(internal)
            if entry is not None:
                found = Earlier(run.run_id, entry, run.catalog, run.environment)
                if before is None or found.ended < before:
                    yield found

    def attempted(self, internal: str) -> bool:
        """Whether any earlier run ran the task at all (successful or not)."""
        return any(internal in run.tasks for run in self.runs())


def _newest_first(cwd: Path, exclude: str) -> list[RunFile]:
    """The folder's run records (magnus' chunked ones too), the last written first."""
    try:
        records = [r for r in run_files(cwd) if r.run_id != exclude]
    except RunLogError:
        return []
    stamped = [(key[3], r.run_id, r) for r in records if (key := r.stat_key()) is not None]
    return [r for _, _, r in sorted(stamped, key=lambda s: (s[0], s[1]), reverse=True)]


def bring(earlier: Earlier, step: Task, catalog: Catalog, cwd: Path) -> tuple[dict[str, Any] | None, str]:
    """A copy of the earlier step log, its catalog files copied into ``catalog`` and the files it put
    back in the run folder where they differ; or None and why not (a catalog file is gone)."""
    entry = copy.deepcopy(earlier.entry)
    prefix = earlier.run_id + os.sep
    copies: list[tuple[Path, Path]] = []
    for item in entry.get("data_catalog", []):
        relative = str(item.get("catalog_relative_path", ""))
        if item.get("stage") != "put" or not relative.startswith(prefix):
            continue
        inside = relative[len(prefix):]
        source = earlier.catalog / inside
        if not source.is_file():
            return None, f"its catalog file {source} is gone"
        copies.append((source, catalog.folder / inside))
        item["catalog_relative_path"] = f"{catalog.run_id}{os.sep}{inside}"
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    _put_back(earlier, step, cwd)
    entry["mock"] = True  # magnus marks a step skipped on re-run so
    entry["reused_from"] = earlier.run_id
    entry.pop("rerun_reason", None)
    return entry, ""


def _put_back(earlier: Earlier, step: Task, cwd: Path) -> None:
    """The files the task put into the catalog, back in the run folder where they are not the same:
    running it would have left them there, and a later task may read them."""
    patterns = (step.catalog or {}).get("put") or []
    if not patterns:
        return
    put: set[Path] = set()  # what the put patterns match in that run's catalog (not its notebooks, logs)
    for pattern in patterns:
        try:
            put.update(p.relative_to(earlier.catalog) for p in earlier.catalog.glob(pattern))
        except (ValueError, OSError):
            continue
    folder = cwd.resolve()
    for item in earlier.entry.get("data_catalog", []):
        relative = Path(str(item.get("name", "")))
        if item.get("stage") != "put" or relative not in put:
            continue
        source, target = earlier.catalog / relative, cwd / relative
        if not source.is_file() or not target.resolve().is_relative_to(folder) \
                or _same(target, source, str(item.get("data_hash", ""))):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _same(target: Path, source: Path, sha256: str) -> bool:
    try:
        return target.is_file() and target.stat().st_size == source.stat().st_size \
            and data_hash(target) == sha256
    except OSError:
        return False


@dataclass(frozen=True)
class Decision:
    """What to do with one task: adopt ``reused``; or run it, for ``reason``; or fail with ``error``."""

    reused: dict[str, Any] | None = None
    reason: str = ""
    warning: str = ""
    error: str = ""


class Reuse:
    """Decides, per task, between reusing an earlier result and running it (see the module's notes)."""

    def __init__(self, earlier: EarlierRuns, cwd: Path, *, by_name: bool = False,
                 selection: Selection | None = None) -> None:
        self.earlier = earlier
        self.cwd = cwd
        self.by_name = by_name  # a retry: a step logged without a fingerprint is reused by its name
        self.selection = selection  # --from / --only

    def decide(self, step: Task, internal: str, trail: tuple[tuple[str, str], ...],
               fingerprint: dict[str, Any], environment: dict[str, Any] | None, catalog: Catalog) -> Decision:
        if step.cache is False:
            return Decision(reason="cache: false")
        if self.selection is not None:
            return self._partial(step, internal, trail, fingerprint, environment, catalog)
        nearest: Earlier | None = None
        gone = warning = ""
        for earlier in self.earlier.succeeded(internal):
            nearest = nearest or earlier
            old = earlier.fingerprint
            if old is None and not self.by_name:
                continue
            if old is not None and old.get("digest") != fingerprint["digest"]:
                continue
            entry, why = bring(earlier, step, catalog, self.cwd)
            if entry is not None:
                return Decision(reused=entry)
            gone = gone or f"its result in run {earlier.run_id} cannot be reused: {why}"
            warning = warning or f"step '{internal}' succeeded in run {earlier.run_id} but runs again: {why}"
        reason = self._reason(internal, fingerprint, environment, nearest, gone)
        return Decision(reason=reason, warning=warning)

    def _reason(self, internal: str, fingerprint: dict[str, Any], environment: dict[str, Any] | None,
               nearest: Earlier | None, gone: str = "") -> str:
        """Why the task runs: the first difference from the nearest earlier successful attempt."""
        if nearest is None:
            return "no earlier successful run" if self.earlier.attempted(internal) else NO_EARLIER_RUN
        old = nearest.fingerprint
        if old is None:
            return gone or f"run {nearest.run_id} recorded no fingerprint"
        found = differences(fingerprint, old, environment, nearest.environment)
        return found[0] if found else gone

    def _partial(self, step: Task, internal: str, trail: tuple[tuple[str, str], ...],
                 fingerprint: dict[str, Any], environment: dict[str, Any] | None,
                 catalog: Catalog) -> Decision:
        selection = self.selection
        assert selection is not None
        if selection.runs(trail + ((step.name, ""),)):
            return Decision(reason=selection.reason)
        why = ""
        for earlier in self.earlier.succeeded(internal):
            entry, why = bring(earlier, step, catalog, self.cwd)
            if entry is None:
                continue
            old = earlier.fingerprint  # kept in the reused log: the result is that fingerprint's
            found = differences(fingerprint, old, environment, earlier.environment) if old else []
            warning = (f"step '{internal}' reused from run {earlier.run_id} ({selection.flag}) although "
                       f"{found[0]}" if found else "")
            return Decision(reused=entry, warning=warning)
        return Decision(error=f"{selection.flag}: '{internal}' has no earlier successful run to reuse"
                              + (f" ({why})" if why else ""))


def plan(pipeline: Pipeline, cwd: Path, *, reuse: bool = False, from_step: str | None = None,
         only: Sequence[str] | None = None, original_run_log: dict[str, Any] | None = None) -> Reuse | None:
    """The run's ``Reuse`` for its options (None: every task runs, magnus' behaviour). Bad options, and
    a ``--from``/``--only`` run that needs an earlier result that does not exist, are refused here,
    before the run starts, with one line."""
    partial = from_step is not None or bool(only)
    if original_run_log is not None:
        if reuse or partial:
            raise ExecutionError("a retry reuses the old run's results already; --reuse, --from and --only "
                                 "are options of run")
        return Reuse(EarlierRuns(cwd, run_log=original_run_log), cwd, by_name=True)
    if partial:
        if reuse:
            raise ExecutionError("--reuse does not go with --from or --only: those reuse every step they "
                                 "do not run")
        selection = Selection(pipeline, from_step, only or ())
        earlier = EarlierRuns(cwd)
        for internal in selection.needed():
            if next(earlier.succeeded(internal), None) is None:
                option = selection.flag.split()[0]
                raise ExecutionError(f"{selection.flag}: step '{internal}' would be reused, but no earlier "
                                     f"run in {cwd} succeeded in it; run the pipeline without {option} first")
        return Reuse(earlier, cwd, selection=selection)
    return Reuse(EarlierRuns(cwd), cwd) if reuse else None
