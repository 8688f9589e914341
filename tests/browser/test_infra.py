"""The browser fixtures' own promises: nothing outlives a server, skips happen only without Chromium and apt.

No browser here: these check the plumbing the browser tests rely on, so a leak or a
silent skip shows up as a failure rather than as a quietly green run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from . import conftest

# A "server" that ignores SIGTERM and starts a "kernel" in a session of its own, which ignores it
# too: the shape of jupyter_server with a hung kernel. Each prints its pid once it is ready.
_STUBBORN = r"""
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kid = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(600)"], start_new_session=True, stdout=subprocess.PIPE, text=True)
kid.stdout.readline()
print(kid.pid, flush=True)
time.sleep(600)
"""


def test_stop_kills_a_stubborn_tree_across_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM ignored and a child in another session: both still end, and are reported."""
    monkeypatch.setattr(conftest, "STOP_TIMEOUT", 1.0)
    process = subprocess.Popen([sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        kid = int(process.stdout.readline())  # blocks until the child runs: no timing guess
        assert psutil.pid_exists(kid)
        stubborn, survivors = conftest._stop(process)
        assert survivors == []
        assert len(stubborn) == 2, stubborn
        assert not psutil.pid_exists(kid) or psutil.Process(kid).status() == psutil.STATUS_ZOMBIE
        assert process.poll() is not None
    finally:
        if process.poll() is None:  # only if the code under test failed to
            process.kill()
            process.wait(timeout=10)


def test_skip_only_without_chromium_and_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Chromium but apt-get there: a failure that says `make setup`; neither: a skip."""
    monkeypatch.setattr(conftest, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setattr(conftest.shutil, "which", lambda name: "/usr/bin/apt-get")
    with pytest.raises(pytest.fail.Exception, match="make setup"):
        conftest._chromium_or_skip()
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="no apt-get"):
        conftest._chromium_or_skip()
    present = tmp_path / "chromium"
    present.touch()
    monkeypatch.setattr(conftest, "CHROMIUM", present)
    assert conftest._chromium_or_skip() == str(present)


def test_free_port_is_loopback_and_free() -> None:
    """The server's port comes from the kernel, bound on 127.0.0.1, and is free again."""
    port = conftest._free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
    assert 0 < port < 65536
