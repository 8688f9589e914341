"""Removing runs: a run log with its catalog, never a run that is still going.

Whether a run still runs is decided from its log as it is on disk at the moment
of removal (summary.py's liveness), not from a cached listing. A PROCESSING
log whose orchestrator this machine cannot check (another host, or magnus' own
log) is kept unless ``force``. ``remove_runs`` checks every id first and removes
nothing if any cannot go. The catalog goes first, the run log last: if removal
is cut short, the run is still listed and removing it again finishes the job.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from .store import RunFile, RunFolder, RunLogError, find_run, read_run_file
from .summary import PROCESSING, RUNNING, list_runs, summary_of


class Removed(TypedDict):
    """``catalog`` is empty when the run had no catalog folder; ``files``: files removed there."""

    run_id: str
    run_log: str
    catalog: str
    files: int


class Kept(TypedDict):
    run_id: str
    reason: str


def why_kept(run: RunFile, force: bool = False) -> str:
    """Why ``run`` must not be removed now ("" if it may); reads its log afresh."""
    summary = summary_of(run, read_run_file(run))
    if summary["status"] == RUNNING:
        return "it is still running"
    if summary["status"] == PROCESSING and not force:
        return f"it may still be running ({summary['note']}); --force removes it anyway"
    return ""


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _remove(run: RunFile, where: RunFolder) -> Removed:
    catalog = where.catalog_of(run.run_id)
    files = 0
    shown = ""
    if catalog.is_symlink():
        catalog.unlink()
        shown = str(catalog)
    elif catalog.is_dir():
        files = _count_files(catalog)
        shutil.rmtree(catalog)
        shown = str(catalog)
    if run.chunked:
        shutil.rmtree(run.path, ignore_errors=False)
    else:
        run.path.unlink(missing_ok=True)
    return {"run_id": run.run_id, "run_log": str(run.path), "catalog": shown, "files": files}


def remove_runs(run_ids: list[str], folder: str | os.PathLike[str] | RunFolder | None = None, *,
                force: bool = False) -> list[Removed]:
    """Remove each run (log and catalog); ``RunLogError`` and nothing removed if any id is unknown,
    unreadable or still running."""
    where = RunFolder.of(folder)
    runs = [find_run(run_id, where) for run_id in dict.fromkeys(run_ids)]
    for run in runs:
        reason = why_kept(run, force)
        if reason:
            raise RunLogError(f"run {run.run_id!r} ({run.path}) is not removed: {reason}; "
                              "nothing was removed")
    return [_remove_checked(run, where, force) for run in runs]


def _remove_checked(run: RunFile, where: RunFolder, force: bool) -> Removed:
    """Checked again just before removing: a run may have been retried into life meanwhile."""
    reason = why_kept(run, force)
    if reason:
        raise RunLogError(f"run {run.run_id!r} ({run.path}) is not removed: {reason}")
    try:
        return _remove(run, where)
    except OSError as exc:
        raise RunLogError(f"run {run.run_id!r}: could not remove {exc.filename or run.path}: "
                          f"{exc.strerror or exc}") from None


def prune_runs(keep: int, folder: str | os.PathLike[str] | RunFolder | None = None, *, force: bool = False,
               warn: Callable[[str], None] | None = None) -> tuple[list[Removed], list[Kept]]:
    """Remove all but the ``keep`` newest runs, except those still running (or, without ``force``,
    that may be). Logs that cannot be read are left alone (``warn`` is told, as by ``list_runs``)."""
    if keep < 0:
        raise RunLogError(f"--keep must be 0 or more, found {keep}")
    where = RunFolder.of(folder)
    rows = list_runs(where, warn=warn)
    removed: list[Removed] = []
    kept: list[Kept] = []
    for row in rows[keep:]:
        try:
            run = find_run(row["run_id"], where)
            reason = why_kept(run, force)
        except RunLogError as exc:
            kept.append({"run_id": row["run_id"], "reason": str(exc)})
            continue
        if reason:
            kept.append({"run_id": row["run_id"], "reason": reason})
            continue
        try:
            removed.append(_remove(run, where))
        except OSError as exc:
            kept.append({"run_id": row["run_id"], "reason": f"could not remove "
                         f"{exc.filename or run.path}: {exc.strerror or exc}"})
    return removed, kept
