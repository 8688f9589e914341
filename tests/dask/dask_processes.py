"""Which processes a Dask cluster of ours runs, and waiting for them to end (a generous bound)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import psutil

from magnus_jupyter.executor.dask_slots import DaskSlots


def tree(pid: int) -> set[int]:
    """``pid`` and every process under it."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return {pid} | {p.pid for p in psutil.Process(pid).children(recursive=True)}
    return set()


def cluster_processes(slots: DaskSlots) -> set[int]:
    """The Dask worker processes and everything under them, and (our LocalCluster) the forkserver their
    task slots are forked by and everything under it: slot workers, zygotes, kernels, tasks."""
    pids: set[int] = set()
    for pid in slots.client.run(os.getpid).values():
        pids |= tree(pid)
    server = slots._server
    if server is not None:
        pids |= tree(server._forkserver_pid)
    return pids


def wait_until(check: Callable[[], Any], what: str, limit: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true; a generous bound so a stuck run fails, not hangs."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def alive(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                found.add(pid)
        except psutil.NoSuchProcess:
            pass
    return found


def wait_gone(pids: set[int], what: str) -> None:
    """Every process in ``pids`` ends (within a generous bound); else name the ones left."""
    try:
        wait_until(lambda: not alive(pids), what, 30)
    except AssertionError:
        left = []
        for pid in alive(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                left.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:160]}")
        raise AssertionError(f"{what}: still running:\n" + "\n".join(left)) from None
