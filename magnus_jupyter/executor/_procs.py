"""Worker processes forked from multiprocessing's forkserver, without re-running ``__main__``.

multiprocessing's spawn and forkserver children re-import the parent's main
script (as ``__mp_main__``) so pickled functions from it resolve. Our workers
only need ``magnus_jupyter``; re-running the orchestrator's script in every
worker would cost its imports each time and run any unguarded code in it (a
benchmark script, a user's script without ``if __name__ == "__main__"``). So
this Popen sends the preparation data without the main-module entries; the
rest is the standard library's ``popen_forkserver.Popen._launch``.

Besides multiprocessing's own forkserver (one per process, started on first
use), ``start_forkserver`` starts another that a different process uses
through ``use_forkserver(address)``: the Dask workers of our LocalCluster fork
their task slots from one the client started with papermill preloaded, instead
of each starting a forkserver and importing papermill on the way to a first task.
"""

from __future__ import annotations

import io
import os
import socket
import sys
from multiprocessing import forkserver, popen_forkserver, process, resource_tracker, spawn, util
from multiprocessing.context import reduction, set_spawning_popen
from typing import Any

_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")
# ``_connect`` repeats the request of Python 3.11-3.13's forkserver; 3.14 adds an authentication
# handshake to it, so there each process keeps to forkservers it started itself.
SHARED_FORKSERVER = sys.version_info < (3, 14)
_server: tuple[str, int] | None = None  # another process's forkserver: (address, fd sent as "alive")


def start_forkserver(preload: list[str]) -> tuple[forkserver.ForkServer, str]:
    """A forkserver besides multiprocessing's, started now (it imports ``preload`` meanwhile), and its
    address. Only this process holds its "alive" pipe (its users send /dev/null instead), so
    ``server._stop()`` ends it at once, whoever it forked."""
    server = forkserver.ForkServer()
    server.set_forkserver_preload(preload)
    server.ensure_running()
    return server, str(server._forkserver_address)


def use_forkserver(address: str) -> None:
    """Fork this process's ``WorkerProcess``es from the forkserver another process started at
    ``address`` (which the standard library cannot: it only knows forkservers it started)."""
    global _server
    if _server is None or _server[0] != address:
        _server = (address, os.open(os.devnull, os.O_RDONLY))


def _connect(fds: list[int]) -> tuple[int, int]:
    """``forkserver.connect_to_new_process``, or the same request to the forkserver at ``_server``."""
    if _server is None:
        return forkserver.connect_to_new_process(fds)
    address, alive = _server
    if len(fds) + 4 >= forkserver.MAXFDS_TO_SEND:
        raise ValueError("too many fds")
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(address)
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        try:
            reduction.sendfds(client, [child_r, child_w, alive, resource_tracker.getfd(), *fds])
        except BaseException:
            os.close(parent_r)
            os.close(parent_w)
            raise
        finally:
            os.close(child_r)
            os.close(child_w)
    return parent_r, parent_w


class _Popen(popen_forkserver.Popen):
    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        for key in _MAIN_KEYS:
            prep_data.pop(key, None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = _connect(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class WorkerProcess(process.BaseProcess):
    """A forkserver process that does not import the parent's ``__main__``."""

    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)
