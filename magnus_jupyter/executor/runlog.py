"""The magnus 0.5 run log: its structure, run ids, and coalesced atomic writes.

``.run_log_store/<run_id>.json`` has the fields of magnus' ``RunLog`` /
``StepLog`` / ``BranchLog`` / ``StepAttempt`` (datastore.py), so tools that
read magnus run logs read ours. Steps and branches are keyed by internal name
at every depth, as magnus keys them.

Writes are atomic (a temp file in the same folder, then ``os.replace``) so a
reader never sees a torn file, and coalesced: the engine marks the log dirty,
a writer thread writes the latest state at most every ``interval`` seconds,
and ``close`` writes the final state. A 1,000-step run writes a handful of
files, not a thousand growing ones. A change is on disk within ``interval``
seconds (plus the write), so an orchestrator killed with SIGKILL leaves a log
that holds every step that had finished a moment before: what a retry reuses.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ExecutionError
from ..model import CATALOG_FOLDER as CATALOG_FOLDER  # re-exported: the executor imports them from here
from ..model import RUN_LOG_FOLDER as RUN_LOG_FOLDER

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files; the log should be as readable as any other
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def now() -> str:
    """A timestamp as magnus writes them (``str(datetime.now())``)."""
    return str(datetime.now())


def duration(start: str, end: str) -> str:
    """``end - start`` as magnus shows it (``0:00:01.234567``); empty if either is missing."""
    try:
        return str(datetime.fromisoformat(end) - datetime.fromisoformat(start))
    except (TypeError, ValueError):
        return ""


def new_run_id() -> str:
    """Sortable and unique enough to never collide: a timestamp plus random hex."""
    return datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise ExecutionError(f"run id {run_id!r}: use letters, digits, '_', '-' and '.', starting with a "
                             "letter or digit (it names a file and a folder)")
    return run_id


def run_log_path(cwd: str | os.PathLike[str], run_id: str) -> Path:
    return Path(cwd) / RUN_LOG_FOLDER / f"{run_id}.json"


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, Linux), so a reused pid is not taken for it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def orchestrator() -> dict[str, Any]:
    """Who runs this run: recorded so a retry can tell a dead run from one still going."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_ticks(os.getpid())}


def orchestrator_alive(who: Any) -> bool | None:
    """Whether the orchestrator recorded as ``who`` (``orchestrator()``) is still that live process;
    None when this machine cannot tell (another host, or nothing recorded)."""
    if not isinstance(who, dict) or not isinstance(who.get("pid"), int) or who.get("started") is None:
        return None
    if who.get("host") != socket.gethostname():
        return None
    return _start_ticks(who["pid"]) == who["started"]


def still_running(run_log: dict[str, Any]) -> int | None:
    """The pid of the run's orchestrator if the run is PROCESSING and that very process is alive."""
    who = (run_log.get("run_config") or {}).get("orchestrator") or {}
    if run_log.get("status") != "PROCESSING" or who.get("pid") == os.getpid():
        return None
    return who["pid"] if orchestrator_alive(who) else None


def step_log(name: str, internal_name: str, step_type: str) -> dict[str, Any]:
    """A new magnus ``StepLog``, PROCESSING."""
    return {
        "name": name,
        "internal_name": internal_name,
        "status": "PROCESSING",
        "step_type": step_type,
        "message": "",
        "mock": False,
        "code_identities": [],
        "attempts": [],
        "user_defined_metrics": {},
        "branches": {},
        "data_catalog": [],
    }


def branch_log(internal_name: str) -> dict[str, Any]:
    """A new magnus ``BranchLog``, PROCESSING."""
    return {"internal_name": internal_name, "status": "PROCESSING", "steps": {}}


def attempt_log(number: int, start: str, end: str, status: str, message: str = "",
                parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A magnus ``StepAttempt``; ``parameters`` are those the attempt was given."""
    return {
        "attempt_number": number,
        "start_time": start,
        "end_time": end,
        "duration": duration(start, end),
        "status": status,
        "message": message,
        "parameters": parameters or {},
    }


def flatten(run_log: dict[str, Any]) -> dict[str, str]:
    """Every step and branch at any depth, by internal name -> status (the compat corpus' view)."""
    out: dict[str, str] = {}
    stack = [run_log.get("steps", {})]
    while stack:
        for key, step in stack.pop().items():
            out[step.get("internal_name", key)] = step["status"]
            for branch_key, branch in step.get("branches", {}).items():
                out[branch.get("internal_name", branch_key)] = branch["status"]
                stack.append(branch.get("steps", {}))
    return out


def iter_steps(run_log: dict[str, Any], branches: bool = False) -> Iterator[dict[str, Any]]:
    """Every step log at any depth, parents before children, in run-log order (with branch logs too)."""
    pending: list[Iterator[dict[str, Any]]] = [iter(run_log.get("steps", {}).values())]
    while pending:
        item = next(pending[-1], None)
        if item is None:
            pending.pop()
            continue
        yield item
        if "step_type" not in item:  # a branch log: its steps follow
            pending.append(iter(item.get("steps", {}).values()))
        elif branches:
            pending.append(iter(item.get("branches", {}).values()))
        else:
            for branch in reversed(list(item.get("branches", {}).values())):
                pending.append(iter(branch.get("steps", {}).values()))


def strict_json(data: Any, indent: int | None = None) -> str:
    """``data`` as strict JSON, which browsers' ``JSON.parse`` reads: no ``NaN`` or ``Infinity``.

    Parameters are refused such numbers where they enter (``params.non_finite``);
    should one arrive anyway (an older run log retried), it is written as text
    rather than lose the log.
    """
    try:
        return json.dumps(data, indent=indent, default=str, allow_nan=False)
    except ValueError:
        plain = json.loads(json.dumps(data, default=str), parse_constant=str)  # NaN -> "NaN"
        return json.dumps(plain, indent=indent, allow_nan=False)


def _link_new(tmp: str, path: Path) -> None:
    """Give the written ``tmp`` the name ``path`` only if no file has it, then drop ``tmp``. A file
    system without hard links: the name is reserved (O_EXCL), then replaced by the written file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        os.replace(tmp, path)
        return
    os.unlink(tmp)


class RunLogStore:
    """Owns one run's log dict; mutate it under ``lock``, then call ``touch``."""

    def __init__(self, path: Path, data: dict[str, Any], interval: float = 0.1) -> None:
        self.path = path
        self.data = data
        self.lock = threading.RLock()
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._writing = threading.Lock()  # one write at a time: an older state never replaces a newer
        self._thread: threading.Thread | None = None
        self.writes = 0  # how many files were written; tests and the bench read it

    @classmethod
    def create(cls, cwd: str | os.PathLike[str], run_id: str | None, parameters: dict[str, Any],
               run_config: dict[str, Any] | None = None, interval: float = 0.1,
               original_run_id: str = "") -> RunLogStore:
        """Create ``<run_id>.json`` with the PROCESSING log, refusing one that exists. It appears whole:
        a reader never finds it empty (a reserved file written afterwards could be read in between).

        ``original_run_id``: the run this one retries (magnus' ``use_cached``).
        """
        folder = Path(cwd) / RUN_LOG_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        given = run_id is not None
        for _ in range(20):
            rid = check_run_id(run_id) if given else new_run_id()
            store = cls(folder / f"{rid}.json", cls._first(rid, parameters, run_config, original_run_id),
                        interval)
            try:
                store.write(exclusive=True)
            except FileExistsError:
                if given:
                    raise ExecutionError(f"run id {rid!r} already exists ({store.path}); choose another "
                                         "--run-id or leave it out for a fresh one") from None
                continue
            return store
        raise ExecutionError(f"could not find a free run id in {folder}")  # pragma: no cover - 20 collisions

    @staticmethod
    def _first(rid: str, parameters: dict[str, Any], run_config: dict[str, Any] | None,
               original_run_id: str) -> dict[str, Any]:
        """A new run's log, PROCESSING."""
        return {
            "run_id": rid,
            "dag_hash": "",
            "use_cached": bool(original_run_id),
            "tag": "",
            "original_run_id": original_run_id,
            "status": "PROCESSING",
            "message": "",
            "steps": {},
            "parameters": dict(parameters),
            "run_config": dict(run_config or {}),
            "warnings": [],
        }

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    def touch(self) -> None:
        """The log changed; the writer thread will write it soon."""
        self._dirty.set()

    def flush(self) -> None:
        """Write now if the log changed: a task about to start reads it (``get_run_log``) from the file."""
        if self._dirty.is_set():
            self._dirty.clear()
            self.write()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"runlog-{self.run_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the writer and write the final state (readable, indented)."""
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.write(indent=1)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            self.write()
            self._stop.wait(self.interval)  # changes made meanwhile go out together

    def write(self, indent: int | None = None, exclusive: bool = False) -> None:
        """Write the current state atomically: temp file in the same folder, then ``os.replace``
        (``exclusive``: a hard link instead, which fails with ``FileExistsError`` if the log exists)."""
        with self._writing:
            with self.lock:
                text = strict_json(self.data, indent)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(tmp, 0o666 & ~_UMASK)
                if exclusive:
                    _link_new(tmp, self.path)
                else:
                    os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self.writes += 1

