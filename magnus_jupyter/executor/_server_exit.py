"""Preloaded by the forkservers the Dask executor starts, so they end at once when told to.

A forkserver ends when its last user closes its "alive" pipe, and the closing
pool waits for that (so ``close()`` leaves no process behind). Its ordinary exit
then tears down everything it preloaded (``distributed``, papermill): ~0.1 s
the pool waited for, at the end of every dask run. Nothing in a forkserver
needs that teardown: it holds no buffered output and no files of ours, and the
processes it forked exit on their own (``os._exit``), never running this.
"""

from __future__ import annotations

import atexit
import os

atexit.register(os._exit, 0)
