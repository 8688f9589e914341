"""The bounded pool of task slots: long-lived worker processes, each with a warm kernel.

The engine traverses the pipeline in the orchestrator process and hands every
leaf task attempt to ``TaskSlots.submit``; at most ``workers`` tasks run at
once, the rest wait in a FIFO queue. Each slot is a worker process (see
``worker.py``) forked from multiprocessing's forkserver — never from the
orchestrator, which has threads — with papermill already imported, so a task
costs a pipe message instead of an interpreter start.

One monitor thread owns the workers: it reads their pipes, reports cell
progress, enforces timeouts, honours cancels and replaces a worker that died
or was killed. A task-level problem always comes back as a ``FAIL`` result;
the future never raises.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from multiprocessing.connection import Connection, wait
from typing import Any

from .task import FAIL, TaskResult, TaskSpec

ProgressCallback = Callable[[str, int, int], None]

_PRELOAD = ["magnus_jupyter.executor._preload"]
_MAX_EARLY_DEATHS = 3  # workers dying before saying hello, in a row, before the pool gives up

_pools_lock = threading.Lock()
_open_pools = 0
_own_helpers = False  # whether our first pool started the forkserver and resource tracker
_live_pools: weakref.WeakSet[TaskSlots] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    """A pool nobody closed still takes its workers and kernels down at interpreter exit."""
    for pool in list(_live_pools):
        with contextlib.suppress(Exception):
            pool.close()


def _now() -> str:
    from datetime import datetime

    return str(datetime.now())


class _Job:
    __slots__ = ("id", "spec", "future", "deadline", "start_time")

    def __init__(self, job_id: int, spec: TaskSpec) -> None:
        self.id = job_id
        self.spec = spec
        self.future: Future[TaskResult] = Future()
        self.deadline: float | None = None
        self.start_time = ""


class _Worker:
    __slots__ = ("process", "conn", "job", "kernels", "kernel_ready", "warming_since", "eof", "hello")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.job: _Job | None = None
        self.kernels: dict[str, int | None] = {}  # connection file -> kernel pid (None: launching)
        self.kernel_ready = False
        self.warming_since = time.monotonic()  # when its current kernel began to boot
        self.eof = False  # pipe closed: the worker is dead or dying
        self.hello = False

    @property
    def pid(self) -> int:
        return int(self.process.pid)


class TaskSlots:
    """Run task specs in at most ``workers`` worker processes at once."""

    def __init__(self, workers: int, *, on_progress: ProgressCallback | None = None,
                 warm_kernels: bool = True) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self._size = workers
        self._on_progress = on_progress
        self._warm = warm_kernels
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)  # no effect if the forkserver already runs
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._workers: list[_Worker] = []
        self._dying: list[_Worker] = []  # killed, not yet reaped
        self._ids = itertools.count(1)
        self._closed = False
        self._broken = ""  # set when workers cannot even start
        self._early_deaths = 0
        self._wake_r, self._wake_w = os.pipe()
        # workers block reading this; its only write end is ours, so if this process dies
        # without close() (SIGKILL), they see EOF and take their kernels and shells down
        self._lifeline_r, self._lifeline_w = self._ctx.Pipe(duplex=False)
        os.set_blocking(self._wake_w, False)
        _hold_forkserver()
        try:
            for _ in range(workers):
                self._workers.append(self._spawn())
        except BaseException:
            self._closed = True
            self._shutdown_workers([])
            _release_forkserver()
            raise
        self._thread = threading.Thread(target=self._loop, name="magnus-task-slots", daemon=True)
        self._thread.start()
        _live_pools.add(self)

    # ------------------------------------------------------------ public API

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        """Queue ``spec``; its future resolves to a ``TaskResult`` (FAIL on any task-level problem)."""
        job = _Job(next(self._ids), spec)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit a task to a closed TaskSlots")
            if self._broken:
                job.future.set_result(self._fail(job, self._broken))
                return job.future
            self._queue.append(job)
        self._wake()
        return job.future

    def cancel(self, internal_name: str) -> None:
        """Stop every queued or running attempt of ``internal_name``: FAIL "cancelled"."""
        finished: list[tuple[_Job, TaskResult]] = []
        with self._lock:
            for job in [j for j in self._queue if j.spec.internal_name == internal_name]:
                self._queue.remove(job)
                finished.append((job, self._fail(job, "cancelled")))
            for worker in list(self._workers):
                job = worker.job
                if job is not None and job.spec.internal_name == internal_name:
                    worker.job = None
                    self._kill(worker)
                    finished.append((job, self._fail(job, "cancelled")))
        self._resolve(finished)
        self._wake()

    def close(self) -> None:
        """Stop every worker, kernel and task this pool started; pending tasks FAIL. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._queue) + [w.job for w in self._workers if w.job is not None]
            self._queue.clear()
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._shutdown_workers(pending)
        _live_pools.discard(self)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        for end in (self._lifeline_r, self._lifeline_w):
            end.close()
        _release_forkserver()

    def __enter__(self) -> TaskSlots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def workers(self) -> int:
        return self._size

    @property
    def ready_kernels(self) -> int:
        """How many idle workers have a kernel that already answered (benchmarks wait for this)."""
        with self._lock:
            return sum(1 for w in self._workers if w.kernel_ready and w.job is None)

    # ------------------------------------------------------------ workers

    def _spawn(self) -> _Worker:
        from ._procs import WorkerProcess
        from .worker import worker_main

        parent, child = self._ctx.Pipe()
        process = WorkerProcess(
            target=worker_main, args=(child, self._lifeline_r, dict(os.environ), list(sys.path), self._warm),
            name="magnus-task-slot", daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def _kill(self, worker: _Worker) -> None:
        """SIGKILL a worker's process group and its kernels; a fresh worker takes the slot."""
        _kill_group(worker.pid)
        _kill_kernels(worker)
        if worker in self._workers:
            self._workers.remove(worker)
            self._dying.append(worker)
            if not self._closed:
                self._replace()

    def _replace(self) -> None:
        try:
            self._workers.append(self._spawn())
        except Exception as exc:  # forkserver gone or out of resources: fail the queue, loudly
            self._broken = f"cannot start a worker process: {type(exc).__name__}: {exc}"

    def _shutdown_workers(self, pending: list[_Job]) -> None:
        """SIGKILL every worker group and kernel at once: nothing in them needs a clean exit.

        A graceful stop would wait for kernels still booting; killing takes milliseconds.
        """
        workers = self._workers + self._dying
        for worker in workers:
            self._drain(worker, [], [])
            _kill_group(worker.pid)
            _kill_kernels(worker, forget=False)
        for worker in workers:
            worker.process.join(5)
            self._drain(worker, [], [])  # kernels announced at the last moment
            _kill_kernels(worker)  # again: a dying kernel may have rewritten its file
            with contextlib.suppress(Exception):
                worker.process.close()
            worker.conn.close()
        self._workers, self._dying = [], []
        self._resolve([(job, self._fail(job, "cancelled: the task pool was closed")) for job in pending])

    # ------------------------------------------------------------ monitor thread

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                waitables: dict[Any, tuple[str, _Worker | None]] = {self._wake_r: ("wake", None)}
                for worker in self._workers + self._dying:
                    if not worker.eof:
                        waitables[worker.conn] = ("conn", worker)
                    waitables[worker.process.sentinel] = ("exit", worker)
                deadlines = [w.job.deadline for w in self._workers if w.job and w.job.deadline is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = wait(list(waitables), timeout)
            finished: list[tuple[_Job, TaskResult]] = []
            progress: list[tuple[str, int, int]] = []
            with self._lock:
                if self._closed:
                    return
                for obj in ready:
                    kind, worker = waitables[obj]
                    if kind == "wake":
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                    elif kind == "conn" and worker is not None:
                        self._drain(worker, finished, progress)
                    elif worker is not None:
                        self._reap(worker, finished, progress)
                self._expire(finished)
                self._dispatch(finished)
            self._report(progress)
            self._resolve(finished)

    def _drain(self, worker: _Worker, finished: list[tuple[_Job, TaskResult]],
               progress: list[tuple[str, int, int]]) -> None:
        try:
            while not worker.eof and worker.conn.poll():
                self._handle(worker, worker.conn.recv(), finished, progress)
        except (EOFError, OSError):
            worker.eof = True
        except Exception:  # a torn message from a worker killed mid-send
            worker.eof = True

    def _handle(self, worker: _Worker, message: tuple[Any, ...], finished: list[tuple[_Job, TaskResult]],
                progress: list[tuple[str, int, int]]) -> None:
        kind = message[0]
        job = worker.job
        if kind == "hello":
            worker.hello = True
            self._early_deaths = 0
        elif kind == "kernel":
            _, pid, alive, connection_file = message
            if alive:
                worker.kernels[connection_file] = pid
            else:
                worker.kernels.pop(connection_file, None)
        elif kind == "warm":
            worker.kernel_ready = bool(message[1])
        elif kind == "progress" and job is not None and job.id == message[1]:
            progress.append((job.spec.internal_name, message[2], message[3]))
        elif kind == "result" and job is not None and job.id == message[1]:
            result: TaskResult = message[2]
            result.start_time = result.start_time or job.start_time
            result.end_time = result.end_time or _now()
            worker.job = None
            if job.spec.kind == "notebook":
                worker.warming_since = time.monotonic()
            finished.append((job, result))

    def _reap(self, worker: _Worker, finished: list[tuple[_Job, TaskResult]],
              progress: list[tuple[str, int, int]]) -> None:
        """A worker process ended: its result may still be in the pipe; otherwise its task FAILs."""
        self._drain(worker, finished, progress)
        worker.process.join(1)
        _kill_kernels(worker)
        with contextlib.suppress(Exception):
            worker.conn.close()
        if worker in self._dying:
            self._dying.remove(worker)
            with contextlib.suppress(Exception):
                worker.process.close()
            return
        if worker not in self._workers:
            return
        self._workers.remove(worker)
        _kill_group(worker.pid)  # anything it left in its group (a shell tree)
        reason = _exit_reason(worker.process.exitcode)
        with contextlib.suppress(Exception):
            worker.process.close()
        if worker.job is not None:
            finished.append((worker.job, self._fail(worker.job, f"the worker process died ({reason}) "
                                                                "while running the task")))
            worker.job = None
        if not worker.hello:
            self._early_deaths += 1
            if self._early_deaths >= _MAX_EARLY_DEATHS:
                self._broken = f"worker processes die on start-up ({reason})"
        if self._broken:
            finished.extend((job, self._fail(job, self._broken)) for job in self._queue)
            self._queue.clear()
        elif not self._closed:
            self._replace()

    def _expire(self, finished: list[tuple[_Job, TaskResult]]) -> None:
        clock = time.monotonic()
        for worker in list(self._workers):
            job = worker.job
            if job is not None and job.deadline is not None and clock >= job.deadline:
                worker.job = None
                self._kill(worker)
                finished.append((job, self._fail(job, f"timed out after {job.spec.timeout:g} s")))

    def _dispatch(self, finished: list[tuple[_Job, TaskResult]]) -> None:
        while self._queue:
            idle = [w for w in self._workers if w.job is None and not w.eof]
            if not idle:
                return
            job = self._queue.popleft()
            if job.future.cancelled():
                continue  # the caller cancelled the future itself
            if not job.future.running() and not job.future.set_running_or_notify_cancel():
                continue
            # notebooks go where a kernel is warm (else booting longest); other tasks leave those alone
            wants_kernel = job.spec.kind == "notebook"
            if wants_kernel:
                worker = max(idle, key=lambda w: (w.kernel_ready, -w.warming_since))
            else:
                worker = max(idle, key=lambda w: (not w.kernel_ready, w.warming_since))
            try:
                worker.conn.send(("task", job.id, job.spec))
            except (OSError, ValueError, EOFError):
                worker.eof = True  # its exit sentinel follows; the job waits for another slot
                self._queue.appendleft(job)
                continue
            except Exception as exc:  # the spec does not pickle
                finished.append((job, self._fail(job, f"the task cannot be sent to a worker: {exc}")))
                continue
            if wants_kernel:
                worker.kernel_ready = False
            worker.job = job
            job.start_time = _now()
            if job.spec.timeout is not None:
                job.deadline = time.monotonic() + float(job.spec.timeout)

    # ------------------------------------------------------------ results

    @staticmethod
    def _fail(job: _Job, message: str) -> TaskResult:
        return TaskResult(FAIL, message, start_time=job.start_time or _now(), end_time=_now(),
                          log_path=job.spec.log_path)

    @staticmethod
    def _resolve(finished: list[tuple[_Job, TaskResult]]) -> None:
        for job, result in finished:
            if job.future.done():
                continue
            with contextlib.suppress(InvalidStateError):
                if not job.future.running():
                    job.future.set_running_or_notify_cancel()
                if not job.future.cancelled():
                    job.future.set_result(result)

    def _report(self, progress: list[tuple[str, int, int]]) -> None:
        if self._on_progress is None:
            return
        for name, done, total in progress:
            with contextlib.suppress(Exception):  # a broken display must not stop the pool
                self._on_progress(name, done, total)


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (workers and kernels lead their own), else the pid."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _kill_kernels(worker: _Worker, forget: bool = True) -> None:
    """Kernels lead their own sessions, so a worker's death does not take them along; and the
    worker cannot remove their connection files any more."""
    for connection_file, pid in worker.kernels.items():
        for kernel in [pid] if pid is not None else _pids_running(connection_file):
            _kill_group(kernel)
        with contextlib.suppress(OSError):
            os.unlink(connection_file)
    if forget:
        worker.kernels.clear()


def _pids_running(connection_file: str) -> list[int]:
    """A kernel whose worker died mid-launch: found by its connection file on its command line."""
    found = []
    needle = connection_file.encode()
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(entry.name))
    return found


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _hold_forkserver() -> None:
    global _open_pools, _own_helpers
    from multiprocessing import forkserver, resource_tracker

    with _pools_lock:
        if _open_pools == 0:
            _own_helpers = (getattr(forkserver._forkserver, "_forkserver_pid", 0) is None
                            and getattr(resource_tracker._resource_tracker, "_pid", 0) is None)
        _open_pools += 1


def _release_forkserver() -> None:
    """The last pool to close stops the forkserver (and its resource tracker) if it started them,
    so close() leaves no child process behind."""
    global _open_pools
    from multiprocessing import forkserver, resource_tracker

    with _pools_lock:
        _open_pools -= 1
        if _open_pools > 0 or not _own_helpers:
            return
        for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
            stop = getattr(helper, "_stop", None)
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop()
