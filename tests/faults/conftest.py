"""Fault tests: real orchestrators, workers, kernels and signals; then the process table is checked.

Every process a fault test starts carries a marker in its environment
(``MAGNUS_FAULT_MARK``): kernels and workers orphaned by a killed
orchestrator are no longer our descendants, but they still carry it. After each
test, nothing marked may be alive and no new descendant of the test process
may survive. Waits poll the run log on disk with a generous guard; the guard
is never an expectation of speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

GUARD = 90.0  # seconds before a wait gives up: a hang detector, not a timing goal
MARK = "MAGNUS_FAULT_MARK"
PYTHON = sys.executable


def write_notebook(path: Path, *cells: str, parameters: str | None = "x = 0",
                   kernel: str = "python3") -> Path:
    """A small notebook: an optional cell tagged ``parameters``, then ``cells``."""
    nb_cells = []
    if parameters is not None:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb_cells.append(cell)
    nb_cells.extend(new_code_cell(c) for c in cells)
    metadata = {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
                "language_info": {"name": "python"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=nb_cells, metadata=metadata), path)
    return path


def wait_for(what: str, check: Callable[[], Any], guard: float = GUARD) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``guard`` s."""
    deadline = time.monotonic() + guard
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def read_log(cwd: Path, run_id: str) -> dict[str, Any] | None:
    """The run log as it is on disk now (None before it exists); it must always parse."""
    path = cwd / ".run_log_store" / f"{run_id}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())  # a torn or invalid file fails the test right here


def steps(run_log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step log at any depth by internal name."""
    from magnus_jupyter.executor.runlog import iter_steps

    return {s["internal_name"]: s for s in iter_steps(run_log)}


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Cli:
    """``python -m magnus_jupyter`` as a user runs it, in its own session (like a shell job)."""

    def __init__(self, cwd: Path, mark: str) -> None:
        self.cwd = cwd
        self.env = {**os.environ, MARK: mark, "PYTHONUNBUFFERED": "1"}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([PYTHON, "-m", "magnus_jupyter", *args], cwd=self.cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args)
        try:
            out, err = proc.communicate(timeout=GUARD * 2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"magnus-jupyter {' '.join(args)} hung:\n{out}\n{err}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def marked(mark: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries ``mark``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARK) == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kernels(mark: str) -> list[psutil.Process]:
    """Marked processes listening on TCP: kernels (exec'd or forked from a zygote, whatever the cmdline)."""
    found = []
    for proc in marked(mark):
        try:
            if any(c.status == psutil.CONN_LISTEN for c in proc.net_connections(kind="tcp")):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def live_descendants() -> set[int]:
    out = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def describe(pids: Any) -> str:
    lines = []
    for pid in pids:
        try:
            proc = pid if isinstance(pid, psutil.Process) else psutil.Process(pid)
            lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:150]}")
        except psutil.Error:
            continue
    return "\n".join(lines)


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> str:
    """A marker in this test's environment, so in-process pools and their kernels carry it too."""
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARK, value)
    return value


@pytest.fixture
def cli(tmp_path: Path, mark: str) -> Cli:
    return Cli(tmp_path, mark)


@pytest.fixture(autouse=True)
def no_leftovers(mark: str) -> Iterator[None]:
    """After the test: no marked process and no new descendant may be alive.

    Orphans of a killed orchestrator get a moment to notice (their watchdogs
    poll); the wait below is that grace, and the assertion is that it ends.
    """
    before = live_descendants()
    yield
    deadline = time.monotonic() + 10.0
    while True:
        left = marked(mark)
        new = live_descendants() - before
        if not left and not new:
            return
        if time.monotonic() > deadline:
            for proc in left:  # clean up so one failure does not poison the next test
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGKILL)
            pytest.fail(f"processes survived the test:\n{describe(left)}\n{describe(new)}")
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
