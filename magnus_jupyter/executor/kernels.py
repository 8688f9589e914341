"""Fresh kernels for notebook tasks, the next one already booting before it is needed.

A cold kernel costs ~0.7 s here, most of it the kernel importing IPython. Each
worker therefore keeps one kernel starting in the background: when a notebook
task arrives it usually finds a kernel that already answered ``kernel_info``.
One kernel runs exactly one notebook and is then shut down (``now=True``);
the replacement is launched at once. Start failures (a port taken between
choosing and binding it, a kernel that never answers) are retried here and
never reach the task as failures, unless they keep happening.

Worker-only module: it imports jupyter_client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from queue import Empty
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.kernelspec import NoSuchKernel
from jupyter_core.paths import jupyter_runtime_dir

from .runners import TaskError
from .zygote import ZygoteKernelManager

START_ATTEMPTS = 3
START_TIMEOUT = 60.0  # per attempt; generous, a loaded 2-core machine boots kernels slowly
DEFAULT_KERNEL = "python3"
# nbclient's own default: no sqlite history file, which many kernels at once would fight over
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]

Send = Callable[[tuple[Any, ...]], None]


class KernelStartError(TaskError):
    """The kernel could not be started, even after retries."""


class UnknownKernelError(KernelStartError):
    """No kernelspec of that name: retrying cannot help."""


def _pid(km: KernelManager) -> int | None:
    process = getattr(km.provisioner, "process", None)
    return getattr(process, "pid", None)


def start_kernel(kernel_name: str, send: Send, cwd: str | None = None, zygote: Any = None) -> KernelManager:
    """Launch a kernel (forked by ``zygote`` when given) and wait until it answers; retry failures."""
    errors: list[str] = []
    for _ in range(START_ATTEMPTS):
        # nbclient drives the kernel through an asyncio client, so hand it one; the connection
        # file goes where Jupyter keeps them (not a stray /tmp/tmpXXXX.json)
        runtime = jupyter_runtime_dir()
        os.makedirs(runtime, exist_ok=True)
        connection_file = os.path.join(runtime, f"kernel-magnus-{uuid.uuid4()}.json")
        km = ZygoteKernelManager(kernel_name=kernel_name,
                                 client_class="jupyter_client.asynchronous.AsyncKernelClient",
                                 connection_file=connection_file)
        km.zygote = zygote
        # announced before the launch: if this worker is killed mid-launch, the pool still
        # finds the kernel (by this file on its command line) and removes the file
        send(("kernel", None, True, connection_file))
        with tempfile.TemporaryFile() as stderr:
            try:
                km.start_kernel(extra_arguments=KERNEL_ARGUMENTS, stdout=subprocess.DEVNULL, stderr=stderr,
                                cwd=cwd)
            except NoSuchKernel:
                _forget(connection_file, send)
                raise UnknownKernelError(f"no such kernel: {kernel_name!r} (see `jupyter kernelspec list`)") \
                    from None
            except Exception as exc:
                with contextlib.suppress(Exception):
                    km.cleanup_resources()
                _forget(connection_file, send)
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            send(("kernel", _pid(km), True, connection_file))
            problem = _wait_ready(km)
            if problem is None:
                return km
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            errors.append(problem + (f" ({' / '.join(tail)})" if tail else ""))
            shutdown_kernel(km, send)
    raise KernelStartError(f"kernel {kernel_name!r} did not start after {START_ATTEMPTS} attempts: "
                           f"{errors[-1] if errors else 'unknown error'}")


def _wait_ready(km: KernelManager) -> str | None:
    """None when the kernel answered ``kernel_info``; otherwise why not.

    Not ``wait_for_ready``: that ends by draining IOPub until it is quiet for
    0.2 s, and this client is thrown away anyway — a shell reply is enough.
    """
    client = BlockingKernelClient(parent=km, **km.get_connection_info(session=True))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        client.start_channels()
        while True:
            msg_id = client.kernel_info()
            try:
                while True:
                    reply = client.get_shell_msg(timeout=1)
                    if reply.get("parent_header", {}).get("msg_id") == msg_id:
                        return None
            except Empty:
                pass
            if not km.is_alive():
                return "Kernel died before replying to kernel_info"
            if time.monotonic() > deadline:
                return f"Kernel didn't respond in {START_TIMEOUT:g} seconds"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            client.stop_channels()


def shutdown_kernel(km: KernelManager, send: Send) -> None:
    """SIGKILL at once: the kernel ran its one notebook, nothing in it needs a clean exit.

    Not ``km.shutdown_kernel(now=True)``: that polls every 0.1 s for the exit,
    which this worker's next task would wait for.
    """
    pid = _pid(km)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # the kernel leads its own session
        with contextlib.suppress(Exception):
            km.provisioner.process.wait(timeout=5)  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        km.cleanup_resources()
    _forget(km.connection_file, send, pid)


def _forget(connection_file: str, send: Send, pid: int | None = None) -> None:
    """The kernel is gone: its connection file too, whatever jupyter_client did about it."""
    with contextlib.suppress(OSError):
        os.unlink(connection_file)
    send(("kernel", pid, False, connection_file))


class _Warming:
    """A kernel starting in a background thread of the worker."""

    def __init__(self, kernel_name: str, send: Send, zygote: Any = None) -> None:
        self.kernel_name = kernel_name
        self._send = send
        self._zygote = zygote
        self._km: KernelManager | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="magnus-warm-kernel", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._km = start_kernel(self.kernel_name, self._send, zygote=self._zygote)
            self._send(("warm", True))
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float | None = None) -> KernelManager:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise KernelStartError("kernel start still in progress")
        if self._error is not None:
            raise self._error
        assert self._km is not None
        return self._km


class KernelPool:
    """The worker's kernels: one warming for the next notebook, the ones in use."""

    def __init__(self, *, warm: bool, send: Send, kernel_name: str = DEFAULT_KERNEL,
                 zygote: Any = None) -> None:
        self._warm = warm
        self._send = send
        self._kernel_name = kernel_name
        self._zygote = zygote
        self._next: _Warming | None = _Warming(kernel_name, send, zygote) if warm else None
        self._used: list[KernelManager] = []

    def take(self, kernel_name: str | None, cwd: str | None = None) -> KernelManager:
        """A started, answering kernel of ``kernel_name``, used for one notebook only."""
        name = kernel_name or self._kernel_name
        km: KernelManager | None = None
        if self._next is not None and self._next.kernel_name == name:
            warming, self._next = self._next, None
            try:
                km = warming.result()
            except UnknownKernelError:
                raise
            except KernelStartError:
                km = None  # it failed in the background; a fresh start below retries again
            if km is not None and not km.is_alive():
                shutdown_kernel(km, self._send)
                km = None
        if km is None:
            km = start_kernel(name, self._send, cwd=cwd, zygote=self._zygote)
        self._used.append(km)
        return km

    def after_task(self) -> None:
        """Start the next kernel first, then shut down the one the notebook used."""
        if self._warm and self._next is None:
            self._next = _Warming(self._kernel_name, self._send, self._zygote)
        while self._used:
            shutdown_kernel(self._used.pop(), self._send)

    def close(self) -> None:
        while self._used:
            shutdown_kernel(self._used.pop(), self._send)
        if self._next is not None:
            warming, self._next = self._next, None
            with contextlib.suppress(BaseException):
                shutdown_kernel(warming.result(timeout=2.0), self._send)
