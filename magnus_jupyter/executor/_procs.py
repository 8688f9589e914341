"""Worker processes forked from multiprocessing's forkserver, without re-running ``__main__``.

multiprocessing's spawn and forkserver children re-import the parent's main
script (as ``__mp_main__``) so pickled functions from it resolve. Our workers
only need ``magnus_jupyter``; re-running the orchestrator's script in every
worker would cost its imports each time and run any unguarded code in it (a
benchmark script, a user's script without ``if __name__ == "__main__"``). So
this Popen sends the preparation data without the main-module entries; the
rest is the standard library's ``popen_forkserver.Popen._launch``.
"""

from __future__ import annotations

import io
import os
from multiprocessing import forkserver, popen_forkserver, process, spawn, util
from multiprocessing.context import reduction, set_spawning_popen
from typing import Any

_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")


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
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
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
