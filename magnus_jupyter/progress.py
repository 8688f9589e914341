"""Run progress on a terminal: an event subscriber, and the summary table printed at the end.

On a TTY a live block shows one line per running branch (its current step and
a notebook's cell bar), redrawn in place; finished branches, failures and
warnings scroll above it. Anywhere else (CI logs, pipes) it prints one plain
line per finished step. No third-party dependency; the engine knows nothing
of this module.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

from .executor import events as ev
from .text import clean

MAIN = "(pipeline)"


@dataclass
class _Lane:
    start: float
    step: str = ""
    composite: bool = False  # waiting for its own branches, which have lanes of their own
    step_start: float = 0.0
    cells: tuple[int, int] | None = None


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


class TerminalProgress:
    """Subscribe an instance to a run (``subscribers=[TerminalProgress()]``)."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, refresh: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.refresh = refresh
        self._lock = threading.RLock()
        self._lanes: dict[str, _Lane] = {}
        self._shown = 0  # lines of the live block now on screen
        self._last_draw = 0.0
        self._start = time.monotonic()
        self._succeeded = 0
        self._failed = 0
        self._reused = 0
        self._attempted: set[str] = set()  # tasks that began an attempt: a task that did not was reused
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ---- events ----

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            handler = getattr(self, "_on_" + type(event).__name__, None)
            if handler is not None:
                handler(event)

    def _on_RunStarted(self, event: ev.RunStarted) -> None:
        self._start = event.time
        self._lanes = {MAIN: _Lane(event.time)}
        if self.live:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def _lane_of(self, internal: str) -> str:
        name = internal
        while "." in name:
            name = name.rsplit(".", 1)[0]
            if name in self._lanes:
                return name
        return MAIN

    def _on_BranchStarted(self, event: ev.BranchStarted) -> None:
        self._lanes[event.internal_name] = _Lane(event.time)
        self._draw()

    def _on_StepStarted(self, event: ev.StepStarted) -> None:
        lane = self._lanes.get(self._lane_of(event.internal_name))
        if lane is not None:
            lane.step, lane.step_start, lane.cells = event.internal_name, event.time, None
            lane.composite = event.step_type in ("parallel", "map", "dag")
        self._draw()

    def _on_AttemptStarted(self, event: ev.AttemptStarted) -> None:
        self._attempted.add(event.internal_name)

    def _on_CellExecuted(self, event: ev.CellExecuted) -> None:
        lane = self._lanes.get(self._lane_of(event.internal_name))
        if lane is not None and lane.step == event.internal_name:
            lane.cells = (event.done, event.total)
        self._draw()

    def _on_StepFinished(self, event: ev.StepFinished) -> None:
        lane = self._lanes.get(self._lane_of(event.internal_name))
        failed = event.status != "SUCCESS"
        # the engine starts no attempt of a task it reuses from the run being retried
        reused = not failed and event.step_type == "task" and event.internal_name not in self._attempted
        self._attempted.discard(event.internal_name)
        self._failed += failed
        self._succeeded += not failed
        self._reused += reused
        took = event.time - lane.step_start if lane is not None and lane.step == event.internal_name else 0.0
        if not self.live or failed or reused:
            note = f": {clean(event.message)}" if (failed or reused) and event.message else ""
            what = f"{event.step_type}, {_seconds(took)}"
            status = "REUSED" if reused else event.status
            self._print(f"{status:<7} {clean(event.internal_name, False)} ({what}){note}")
        self._draw()

    def _on_BranchFinished(self, event: ev.BranchFinished) -> None:
        lane = self._lanes.pop(event.internal_name, None)
        if self.live:
            took = _seconds(event.time - lane.start) if lane else ""
            self._print(f"{event.status:<7} branch {clean(event.internal_name, False)} ({took})")
        self._draw(force=True)

    def _on_RunWarning(self, event: ev.RunWarning) -> None:
        self._print(f"warning: {clean(event.message)}")

    def _on_RunFinished(self, event: ev.RunFinished) -> None:
        self._stop.set()
        self._lanes.clear()
        self._clear()
        self.stream.flush()

    # ---- drawing ----

    def _print(self, line: str) -> None:
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()
        self._draw(force=True)

    def _clear(self) -> None:
        if self.live and self._shown:
            self.stream.write(f"\x1b[{self._shown}F\x1b[J")
            self._shown = 0

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh):
            with self._lock:
                self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.live or self._stop.is_set():
            return
        clock = time.monotonic()
        if not force and clock - self._last_draw < self.refresh:
            return
        self._last_draw = clock
        width = max(40, shutil.get_terminal_size((100, 20)).columns - 1)
        lines = [f"{_seconds(clock - self._start)}  steps succeeded {self._succeeded}"
                 + (f" ({self._reused} reused)" if self._reused else "")
                 + (f", failed {self._failed}" if self._failed else "")
                 + f"  |  running branches {max(0, len(self._lanes) - 1)}"]
        lanes = [(n, lane) for n, lane in self._lanes.items() if lane.step and not lane.composite]
        for name, lane in lanes[:12]:
            step = lane.step[len(name) + 1:] if name != MAIN else lane.step
            if lane.cells:
                done, total = lane.cells
                fill = int(20 * done / total) if total else 0
                detail = f"[{'#' * fill}{'-' * (20 - fill)}] cell {done}/{total}"
            else:
                detail = _seconds(clock - lane.step_start)
            lines.append(f"  {clean(name, False)} > {clean(step, False)}  {detail}"[:width])
        if len(lanes) > 12:
            lines.append(f"  ... and {len(lanes) - 12} more branches")
        self._clear()
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._shown = len(lines)


def summary_table(run_log: dict[str, Any], limit: int = 60) -> str:
    """Steps and branches with status, type, attempts and time; long runs show failures and counts."""
    from .executor.runlog import iter_steps

    rows: list[tuple[str, str, str, str, str, str]] = []
    counts: dict[str, int] = {}
    for step in iter_steps(run_log, branches=True):
        counts[step["status"]] = counts.get(step["status"], 0) + 1
        name = clean(step["internal_name"], False)
        if "step_type" not in step:  # a branch of a parallel / map / dag step
            rows.append((name, "branch", clean(step["status"]), "", "", ""))
            continue
        attempts = step.get("attempts", [])
        took = attempts[-1]["duration"] if attempts else ""
        took = took[:-4] if len(took) > 4 and "." in took else took  # 0:00:01.234567 -> 0:00:01.23
        message = clean(step.get("message", "")).strip().splitlines()
        if step.get("reused_from"):
            message = [f"reused from run {clean(step['reused_from'], False)}"]
        rows.append((name, clean(step["step_type"]), clean(step["status"]),
                     str(len(attempts)) if attempts else "", took, message[0][:70] if message else ""))
    if len(rows) > limit:
        kept = [r for r in rows if r[2] != "SUCCESS"][:limit]
        note = (f"{len(rows)} steps and branches: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                + (f"; showing the {len(kept)} not successful" if kept else ""))
        rows = kept
        if not rows:
            return note
    else:
        note = ""
    head = ("step", "type", "status", "tries", "time", "message")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    widths[0] = min(widths[0], 70)

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(cell[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)).rstrip()

    lines = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
    if note:
        lines.append(note)
    return "\n".join(lines)
