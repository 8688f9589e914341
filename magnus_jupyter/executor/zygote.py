"""Kernels forked from a process that already imported ipykernel and IPython.

A kernel started as ``python -m ipykernel_launcher`` spends about half its
start-up importing IPython and ipykernel. The worker forks one small "zygote"
at its start, while it still has a single thread (fork with threads is
unsafe); the zygote forks a kernel per request, which only has to initialise
``IPKernelApp``: a fresh process, a fresh kernel, a fraction of the CPU. On a
2-core machine starting many kernels at once, CPU is what kernel start-up waits on.

``ZygoteKernelManager`` is jupyter_client's ``KernelManager`` with
``_async_launch_kernel`` overridden, as its docstring invites; the connection
file, ports and everything else stay jupyter_client's. Kernels that are not the
native ipykernel (another kernelspec) launch the ordinary way.

Worker-only module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from jupyter_client import KernelManager


class Zygote:
    """A forked helper that forks kernels on request. Create it before starting any thread."""

    def __init__(self, close_in_child: list[int] | None = None) -> None:
        import ipykernel.kernelapp  # noqa: F401  # loaded once here, shared by every kernel forked

        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the zygote
            ours.close()
            for fd in close_in_child or []:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _serve(Connection(theirs.detach()))
        theirs.close()
        self.pid = pid
        self._conn = Connection(ours.detach())
        self._lock = threading.Lock()

    def spawn(self, args: list[str], env: dict[str, str], cwd: str | None) -> int:
        """Fork a kernel running ``ipykernel_launcher ARGS``; return its pid."""
        with self._lock:
            self._conn.send((args, env, cwd))
            answer = self._conn.recv()
        if isinstance(answer, str):
            raise RuntimeError(f"the kernel zygote could not fork: {answer}")
        return int(answer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (OSError, ChildProcessError):
            pass


def _serve(conn: Connection) -> None:
    """The zygote's loop: fork a kernel per request until the worker goes away."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped automatically
    while True:
        try:
            args, env, cwd = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        try:
            pid = os.fork()
        except OSError as exc:
            conn.send(str(exc))
            continue
        if pid == 0:
            conn.close()
            _run_kernel(args, env, cwd)
        conn.send(pid)


def _run_kernel(args: list[str], env: dict[str, str], cwd: str | None) -> None:
    """In the forked kernel process: what ``python -m ipykernel_launcher ARGS`` would do."""
    code = 1
    try:
        zygote = os.getppid()
        _die_with_parent(zygote)
        os.setsid()  # like jupyter_client's launcher: the kernel leads its own session
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 65536)  # nothing of the worker's: pipes, sockets
        os.environ.clear()
        os.environ.update(env)
        os.environ["JPY_PARENT_PID"] = str(os.getppid())
        if cwd:
            os.chdir(cwd)
        if sys.path and sys.path[0] in ("", os.getcwd()):
            del sys.path[0]
        # IPKernelApp read JPY_PARENT_PID when the zygote imported it: say it again, so the
        # kernel's parent poller ends it when the zygote (killed with its worker) is gone
        args = [*args, f"--IPKernelApp.parent_handle={os.getppid()}"]
        sys.argv = ["ipykernel_launcher", *args]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance(argv=args)
        code = 0
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this kernel the moment the zygote dies (it dies with its worker's group).

    A kernel forked while its worker is being killed has no pid the pool could know yet;
    without this it would live on until ipykernel's parent poller noticed, and rewrite its
    connection file after the pool removed it.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the zygote died before the prctl took effect
        os._exit(1)


class ForkedKernelProcess:
    """What jupyter_client's provisioner needs of a ``Popen``, for a kernel that is not our child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -signal.SIGKILL  # the zygote reaped it; the real status is unknown
            except PermissionError:
                pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _is_native_ipykernel(cmd: list[str]) -> bool:
    return (len(cmd) >= 3 and cmd[1:3] == ["-m", "ipykernel_launcher"]
            and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable))


class ZygoteKernelManager(KernelManager):
    """A ``KernelManager`` whose native ipykernel kernels are forked by a ``Zygote``."""

    zygote: Any = None  # set on the instance; None: launch as jupyter_client does

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.zygote is None or not _is_native_ipykernel(kernel_cmd):
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        provisioner: Any = self.provisioner
        env = dict(kw.get("env") or os.environ)
        pid = self.zygote.spawn(kernel_cmd[3:], env, kw.get("cwd"))
        provisioner.process = ForkedKernelProcess(pid)
        provisioner.pid = pid
        provisioner.pgid = pid
        self._reconcile_connection_info(provisioner.connection_info)
