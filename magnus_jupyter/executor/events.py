"""What a run tells its watchers: typed events and the bus that delivers them.

The engine publishes; the widget, the terminal progress and tests subscribe.
Events are delivered in the orchestrator process, one at a time (a lock), so a
subscriber never sees two events at once and needs no locking of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every event; ``time`` is ``time.monotonic()`` at publication."""

    time: float = field(default_factory=time.monotonic, kw_only=True)


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    run_log_path: str
    catalog_path: str
    parameters: dict[str, Any]
    workers: int


@dataclass(frozen=True)
class StepStarted(Event):
    internal_name: str  # with map values filled in
    name: str
    step_type: str  # task | stub | parallel | map | dag | success | fail


@dataclass(frozen=True)
class BranchStarted(Event):
    internal_name: str  # "Train Models.XGBoost", "iterate and execute.10"


@dataclass(frozen=True)
class CellExecuted(Event):
    """A notebook task finished cell ``done`` of ``total``."""

    internal_name: str
    done: int
    total: int


@dataclass(frozen=True)
class AttemptStarted(Event):
    """A task attempt went to a slot; where its captured output and executed notebook will be.

    Views tail ``log_path`` for a live last line and link both files after the run.
    """

    internal_name: str
    attempt: int
    log_path: str
    output_notebook: str | None  # notebook tasks only


@dataclass(frozen=True)
class AttemptFinished(Event):
    """One attempt of a task; a task with retries has several."""

    internal_name: str
    attempt: int
    status: str
    message: str


@dataclass(frozen=True)
class StepFinished(Event):
    internal_name: str
    name: str
    step_type: str
    status: str  # SUCCESS | FAIL
    message: str
    reused_from: str = ""  # a task not run but reused: the run its result comes from (as in its step log)


@dataclass(frozen=True)
class BranchFinished(Event):
    internal_name: str
    status: str


@dataclass(frozen=True)
class RunWarning(Event):
    """Something the user should hear of that did not fail the run (parameter conflicts)."""

    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    status: str
    parameters: dict[str, Any]
    run_log_path: str
    catalog_path: str
    warnings: tuple[str, ...] = ()


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to every subscriber, serially; a failing subscriber never stops the run."""

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = list(subscribers)

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: Event) -> None:
        if not self._subscribers:
            return
        with self._lock:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a broken view must not break the pipeline
                    log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)
