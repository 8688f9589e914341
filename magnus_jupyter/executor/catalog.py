"""The run's file catalog, ``.catalog/<run_id>/``, as magnus' file-system catalog keeps it.

``put`` copies files matching a glob from the run folder into the catalog,
``get`` copies them back out; each copied file becomes a ``DataCatalog`` entry
(name, sha256, paths, stage) in the step's log. Executed notebooks and task
logs land here too. Paths stay relative to the run folder, as in magnus, and
inside it: a pattern that is absolute or goes up (``..``) is refused, and a
match that a symlink leads out of the run folder or the catalog is not taken.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from ..validate import catalog_pattern_problem
from .runlog import CATALOG_FOLDER, RUN_LOG_FOLDER


class CatalogError(Exception):
    """A get or put matched nothing, or a file could not be copied; the step fails with this message."""


def data_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(name: str, relative: str, location: str, digest: str, stage: str) -> dict[str, Any]:
    return {"name": name, "data_hash": digest, "catalog_relative_path": relative,
            "catalog_handler_location": location, "stage": stage}


class Catalog:
    """One run's catalog folder; ``cwd`` is the compute data folder (magnus' default ``.``).

    ``location`` is the catalog's root as configured (magnus' ``catalog_location``,
    relative to ``cwd`` or absolute), as entries name it; ``folder``, when given,
    is where this run's catalog really is (a copy of it on a Dask worker).
    """

    def __init__(self, cwd: str | os.PathLike[str], run_id: str, location: str = CATALOG_FOLDER,
                 folder: str | os.PathLike[str] | None = None) -> None:
        self.cwd = Path(cwd)
        self.run_id = run_id
        self.location = location
        self.folder = Path(folder) if folder is not None else self.cwd / location / run_id

    def ensure(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def get(self, pattern: str) -> list[dict[str, Any]]:
        """Copy catalog files matching ``pattern`` into the run folder."""
        pattern = _checked("get", pattern)
        if not self.folder.is_dir():
            raise CatalogError(f"catalog get {pattern!r}: nothing has been put in the catalog "
                               f"{self.folder} yet")
        entries, outside = [], 0
        catalog, run_folder = self.folder.resolve(), self.cwd.resolve()
        for file in sorted(self.folder.glob(pattern)):
            if file.is_dir() or file.name.endswith(".execution.log"):
                continue
            relative = file.relative_to(self.folder)
            target = self.cwd / relative
            if (_is_record(relative) or not _inside(file, catalog)
                    or not _inside(target, run_folder)):
                outside += 1  # a symlink out of the catalog or the run folder: not followed
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target)
            entries.append(_entry(str(relative), str(relative), self.location, data_hash(file), "get"))
        if not entries:
            raise CatalogError(f"catalog get {pattern!r}: no file matches in {self.folder}"
                               + _not_taken(outside))
        return entries

    def put(self, pattern: str, synced: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Copy run-folder files matching ``pattern`` into the catalog; unchanged gets are not re-copied."""
        pattern = _checked("put", pattern)
        self.ensure()
        same = {(e["catalog_relative_path"], e["data_hash"]) for e in synced or ()}
        entries, outside = [], 0
        catalog, run_folder = self.folder.resolve(), self.cwd.resolve()
        root = catalog.parent  # every run's catalog: never put into one, when kept in the run folder
        for file in sorted(self.cwd.glob(pattern)):
            if file.is_dir():
                continue
            relative = file.relative_to(self.cwd)
            if _is_record(relative) or (root != run_folder and _inside(file, root)):
                continue
            target = self.folder / relative
            if not _inside(file, run_folder) or not _inside(target, catalog):
                outside += 1  # a symlink out of the run folder or the catalog: not followed
                continue
            digest = data_hash(file)
            entries.append(_entry(str(relative), f"{self.run_id}{os.sep}{relative}", self.location,
                                  digest, "put"))
            if (str(relative), digest) in same:
                continue  # got from the catalog and unchanged
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target)
        if not entries:
            raise CatalogError(f"catalog put {pattern!r}: no file matches in {self.cwd}"
                               + _not_taken(outside))
        return entries

    def record(self, path: str | os.PathLike[str], stage: str = "put") -> dict[str, Any] | None:
        """A file the task wrote (executed notebook, log) as a catalog entry; copied in if outside."""
        file = Path(path)
        if not file.is_file():
            return None
        self.ensure()
        try:
            relative = file.resolve().relative_to(self.folder.resolve())
        except ValueError:
            relative = Path(file.name)
            shutil.copy(file, self.folder / relative)
        relative_path = f"{self.run_id}{os.sep}{relative}"
        return _entry(str(relative), relative_path, self.location, data_hash(file), stage)


def _checked(stage: str, pattern: str) -> str:
    """The pattern, normalised; refused as validate refuses it (a pipeline run unvalidated meets this)."""
    why = catalog_pattern_problem(pattern)
    if why:
        raise CatalogError(f"catalog {stage} pattern {pattern!r} {why}")
    return posixpath.normpath(pattern)


def _is_record(relative: Path) -> bool:
    return bool(relative.parts) and relative.parts[0] in (CATALOG_FOLDER, RUN_LOG_FOLDER)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, symlinks resolved, is ``folder`` (resolved already) or below it."""
    return path.resolve().is_relative_to(folder)


def _not_taken(outside: int) -> str:
    if not outside:
        return ""
    many = outside > 1
    return (f" ({outside} {'matches lead' if many else 'match leads'} outside the run folder or catalog "
            f"through a symlink and {'are' if many else 'is'} not taken)")
