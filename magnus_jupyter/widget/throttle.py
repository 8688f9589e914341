"""Coalescing, thread-safe throttle: many requests, at most one action per interval.

A 1,000-step run publishes thousands of events from engine threads; the front
end should see at most ``1 / interval`` redraws a second, each of the latest
state. Requests only set a flag (cheap, so the engine never waits on a
render); one daemon thread runs the action; ``flush()`` runs it once more in
the caller's thread so the final state always lands. The clock is injectable,
so tests count actions without measuring time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Throttle:
    """Run ``action`` after requests, never twice within ``interval`` seconds of ``clock``.

    ``tick``: while ``ticking()`` is true, act every ``tick`` seconds even with no
    request (an elapsed-time clock, a growing log file).
    """

    def __init__(self, action: Callable[[], None], interval: float = 0.1, *,
                 clock: Callable[[], float] = time.monotonic, tick: float | None = None,
                 ticking: Callable[[], bool] = lambda: False) -> None:
        self.action = action
        self.interval = interval
        self.clock = clock
        self.tick = tick
        self.ticking = ticking
        self.calls = 0  # actions run: what tests count
        self.requests = 0
        self._cond = threading.Condition()
        self._pending = False
        self._busy = False
        self._closed = False
        self._last: float | None = None
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for an action; coalesces with any request not yet served."""
        with self._cond:
            if self._closed:
                return
            self.requests += 1
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="magnus-widget-throttle", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self) -> None:
        """Act now, in this thread, after any action in progress: the latest state always lands."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._pending = False
            self._busy = True
        try:
            self._run()
        finally:
            with self._cond:
                self._busy = False
                self._last = self.clock()
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread; later requests are ignored (flush still works)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _due(self) -> float:
        """Seconds until an action is allowed (<= 0: now)."""
        if self._last is None:
            return 0.0
        return self._last + self.interval - self.clock()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        self._thread = None
                        return
                    if self._pending and not self._busy:
                        wait = self._due()
                        if wait <= 0:
                            break
                        self._cond.wait(min(wait, self.interval))  # a frozen test clock never comes due
                    elif not self._pending and self.tick and self._ticking():
                        self._cond.wait(self.tick)
                        if not self._pending and self._ticking():
                            self._pending = True
                    else:
                        self._cond.wait()
                self._pending = False
                self._busy = True
                self._last = self.clock()
            try:
                self._run()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _ticking(self) -> bool:
        try:
            return bool(self.ticking())
        except Exception:
            return False

    def _run(self) -> None:
        self.calls += 1
        try:
            self.action()
        except Exception:  # a broken view must not stop later updates
            log.exception("widget update failed")
