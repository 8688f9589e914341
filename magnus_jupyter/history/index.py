"""A small cache of run summaries beside the run logs, so listing 1,000 runs reads 1,000 stats, not logs.

``.run_log_store/.magnus-jupyter-index`` maps each run to the stat key of its
record (inode, size, file count, mtime and ctime in ns: a rewrite by ``os.replace`` gets a
new inode, an in-place rewrite a new mtime) and what was read from it: its
summary, or why it could not be read. A key that differs means read again.
A record changed within ``SETTLE_NS`` of being read is not cached: two
rewrites inside one clock tick with the same size would otherwise look alike
(git's "racily clean" index entries). The file is rewritten atomically and only
when something changed; a folder that cannot be written just goes uncached.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

INDEX_NAME = ".magnus-jupyter-index"  # a dot name: never listed as a run, never served by server.py
VERSION = 1
SETTLE_NS = 2_000_000_000


def load(run_logs: Path) -> dict[str, Any]:
    """The cached entries by run id; empty when absent, unreadable, stale in format or moved."""
    try:
        data = json.loads((run_logs / INDEX_NAME).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("folder") != str(run_logs):
        return {}
    runs = data.get("runs")
    return runs if isinstance(runs, dict) else {}


def settled(key: list[int] | None) -> bool:
    """Whether a record with this stat key is old enough to cache (see the module's docstring)."""
    return key is not None and time.time_ns() - max(key[3], key[4]) > SETTLE_NS


def save(run_logs: Path, runs: dict[str, Any]) -> None:
    """Write the index atomically; silently nothing if the folder is read-only or gone."""
    text = json.dumps({"version": VERSION, "folder": str(run_logs), "runs": runs}, separators=(",", ":"))
    try:
        fd, tmp = tempfile.mkstemp(dir=run_logs, prefix=INDEX_NAME + ".", suffix=".tmp")
    except OSError:
        return
    try:
        os.fchmod(fd, 0o644)  # as readable as the run logs beside it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, run_logs / INDEX_NAME)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
