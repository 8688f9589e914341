"""The long-lived worker process: runs one task at a time, keeps a warm kernel ready.

Started by ``TaskSlots`` from multiprocessing's forkserver, which has already
imported papermill (``_preload.py``), so a new worker costs a fork, not an
import. The worker leads its own process group: killing that group kills the
worker and any shell tree it started; kernels live in their own sessions and
are reported to the orchestrator by pid so they can be killed too.

Messages to the orchestrator (one duplex pipe per worker):
``("hello", pid)``, ``("kernel", pid, alive, connection_file)``, ``("warm", ready)``,
``("progress", task_id, done, total)``, ``("result", task_id, TaskResult)``.
From it: ``("task", task_id, TaskSpec)``; anything else (or EOF) ends the worker. The pool
stops workers with SIGKILL to their group, so nothing here needs a clean exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any


class _Sender:
    """The pipe is shared by the task loop and the kernel warm-up thread.

    It also remembers the kernels it announced, for the lifeline to kill.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.kernels: dict[str, int | None] = {}

    def __call__(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            if message[0] == "kernel":
                _, pid, alive, connection_file = message
                if alive:
                    self.kernels[connection_file] = pid
                else:
                    self.kernels.pop(connection_file, None)
            with contextlib.suppress(OSError, ValueError):  # orchestrator gone: the lifeline ends us
                self._conn.send(message)


def _hold_lifeline(lifeline: Connection, send: _Sender) -> None:
    """The orchestrator never writes here; EOF means it died without closing us: take our
    kernels and our process group (shells, the zygote, ourselves) down."""
    with contextlib.suppress(EOFError, OSError):
        while True:
            lifeline.recv()
    for connection_file, pid in list(send.kernels.items()):
        if pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.unlink(connection_file)
    os.killpg(os.getpgid(0), signal.SIGKILL)


def worker_main(conn: Connection, lifeline: Connection, environ: dict[str, str], path: list[str],
                warm_kernels: bool, quiet: bool = True) -> None:
    """Serve tasks from ``conn`` until told to stop or the pipe closes."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's to handle
    os.environ.clear()
    os.environ.update(environ)  # the forkserver's environment may be older than the orchestrator's
    sys.path[:] = path
    if quiet:  # papermill/kernel chatter must not scribble over the orchestrator's terminal
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    zygote = None
    try:  # before any thread starts: forking is only safe while single-threaded
        from .zygote import Zygote

        zygote = Zygote(close_in_child=[conn.fileno(), lifeline.fileno()])
    except Exception:  # kernels then start the ordinary way (zygote stays None)
        pass
    send = _Sender(conn)
    threading.Thread(target=_hold_lifeline, args=(lifeline, send), daemon=True).start()

    from .runners import run_task

    kernels = None
    try:
        from .kernels import KernelPool

        kernels = KernelPool(warm=warm_kernels, send=send, zygote=zygote)
    except Exception:  # notebooks then fail with the import error; shell/python tasks still run
        kernels = None
    send(("hello", os.getpid()))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message[0] != "task":
                break
            _, task_id, spec = message

            def progress(done: int, total: int, task_id: int = task_id) -> None:
                send(("progress", task_id, done, total))

            result = run_task(spec, progress=progress, kernels=kernels)
            send(("result", task_id, result))
            if kernels is not None:
                kernels.after_task()
    finally:
        if kernels is not None:
            kernels.close()
        if zygote is not None:
            zygote.close()
