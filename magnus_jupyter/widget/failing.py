"""Where an executed notebook failed: the cell a link should open it at.

papermill stops at the first failing cell and keeps its error output; it also
marks that cell ``metadata.papermill.exception`` and inserts two markdown cells
(a note at the top, an anchor before the cell), so the index is the one in the
*executed* notebook, which is what a notebook view counts. The file is read as
plain JSON (no nbformat validation: it costs more than the read) and remembered
by size and mtime, so a redraw never parses it twice; a missing, half-written or
foreign file simply has no failing cell.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FailedCell:
    """The failing cell of an executed notebook: its index there, and the count its prompt shows."""

    index: int
    execution_count: int | None = None

    def label(self) -> str:
        """How a reader finds the cell: its prompt number ``[3]`` when it has one."""
        if self.execution_count is not None:
            return f"cell [{self.execution_count}]"
        return f"cell number {self.index + 1}"


def _is_error(output: Any) -> bool:
    """An error output, except ``sys.exit()`` / ``sys.exit(0)``, which papermill does not count."""
    if not isinstance(output, dict) or output.get("output_type") != "error":
        return False
    return not (output.get("ename") == "SystemExit" and str(output.get("evalue", "")) in ("", "0"))


def find_failed_cell(notebook: Any) -> FailedCell | None:
    """The first cell with an error output or papermill's exception mark, in a parsed v4 notebook."""
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return None
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs")
        metadata = cell.get("metadata")
        papermill = metadata.get("papermill") if isinstance(metadata, dict) else None
        marked = isinstance(papermill, dict) and papermill.get("exception") is True
        if marked or (isinstance(outputs, list) and any(_is_error(out) for out in outputs)):
            count = cell.get("execution_count")
            known = isinstance(count, int) and not isinstance(count, bool)
            return FailedCell(index, count if known else None)
    return None


def read_failed_cell(path: str | os.PathLike[str]) -> FailedCell | None:
    """The failing cell of the notebook file at ``path``; ``None`` when there is none or no readable file."""
    try:
        with open(path, "rb") as fh:
            notebook = json.load(fh)
    except (OSError, ValueError):  # missing, unreadable, half-written, not JSON, not UTF-8
        return None
    return find_failed_cell(notebook)


class FailedCells:
    """``read_failed_cell`` remembered per file by (mtime, size): redraws of a finished run stat only."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int], FailedCell | None]] = {}
        self.reads = 0  # files parsed: what tests count

    def __call__(self, path: str) -> FailedCell | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        key = (info.st_mtime_ns, info.st_size)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == key:
            return seen[1]
        self.reads += 1
        found = read_failed_cell(path)
        self._seen[path] = (key, found)
        return found
