"""A real JupyterLab server and Debian's Chromium under Playwright, for the browser tests.

The server runs on 127.0.0.1 with a random token, in a process group of its
own, over a temp copy of ``notebooks/`` so runs never write into the repo.
Kernels are started by jupyter_client in sessions of their own (and papermill
kernels below them), so teardown walks the whole process tree, not just the
server's group, and fails the test if anything survives.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# The machine's network is closed: without the background-networking flags Chromium keeps
# dialling out (and failing). Playwright gives every launch a new empty profile directory
# itself (it refuses --user-data-dir in args), so the "new empty --user-data-dir" is implied.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 90.0  # seconds for the server to answer /api/status on a loaded 2-core machine
STOP_TIMEOUT = 20.0  # seconds for a graceful shutdown (it shuts its kernels down) before SIGKILL

# Lab's news / update checks would pop a toast over the notebook and dial out; windowing
# would keep cells scrolled out of view out of the DOM, where the tests could not read them.
_LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab: where it serves, its token, and the folder it serves."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def tree(self, path: str, workspace: str) -> str:
        """The Lab URL that opens ``path`` (relative to the root) in a workspace of its own.

        Lab stores open tabs per workspace on the server: a fresh one per test keeps the
        notebooks an earlier test opened out of this test's page.
        """
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"

    def api(self, path: str) -> object:
        """GET a server REST endpoint as JSON (token in the header, as Lab sends it)."""
        headers = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _wait_ready(lab: Lab) -> None:
    """Poll /api/status until the server answers; fail early if the process dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        code = lab.process.poll()
        if code is not None:
            pytest.fail(f"JupyterLab exited with code {code} before it answered:\n{lab.log_tail()}")
        try:
            lab.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer /api/status within {START_TIMEOUT:g} s:\n"
                        f"{lab.log_tail()}")
        time.sleep(0.25)  # polling interval, not an assertion


def _stop(process: subprocess.Popen[bytes]) -> tuple[list[str], list[str]]:
    """Stop the server and every process below it: (what needed SIGKILL, what survived it).

    Descendants are collected before the server goes: once it exits, kernels in their
    own sessions would be re-parented and out of reach of a tree walk.
    """
    try:
        server = psutil.Process(process.pid)
        tree = [server, *server.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    # Graceful first: SIGTERM makes jupyter_server shut its kernels down cleanly.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=STOP_TIMEOUT)
    stubborn = [f"{p.pid} {_cmd(p)}" for p in alive]
    for proc in alive:  # each, and its process group (a kernel's own session)
        with suppress(ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        with suppress(psutil.NoSuchProcess):
            proc.kill()
    _, survivors = psutil.wait_procs(alive, timeout=10)
    process.wait(timeout=10)
    return stubborn, [f"{p.pid} {_cmd(p)}" for p in survivors]


def _cmd(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[:160]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"


@contextmanager
def _running_lab(tmp_path_factory: pytest.TempPathFactory, name: str, allow_hidden: bool,
                 app: str = "lab") -> Iterator[Lab]:
    """A real JupyterLab (or Notebook 7: app "notebook") on 127.0.0.1 over a temp copy of notebooks/,
    stopped with all its kernels."""
    work = tmp_path_factory.mktemp(name)
    shutil.copytree(NOTEBOOKS, work / "notebooks", ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", ".run_log_store", ".catalog", "__pycache__"))
    settings = Path(os.environ["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings"
    for setting, values in _LAB_SETTINGS.items():
        path = settings / setting
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = _free_port(), secrets.token_hex(16)
    ARTIFACTS.mkdir(exist_ok=True)
    # kept after the run: the first place to look when a test fails
    log = ARTIFACTS / ("jupyterlab.log" if name == "lab-root" else f"jupyterlab-{name}.log")
    env = dict(os.environ)  # carries JUPYTER_*_DIR and IPYTHONDIR from tests/conftest.py
    env["PYTHONUNBUFFERED"] = "1"
    command = [
        sys.executable, "-m", "jupyter", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--port-retries=0", f"--IdentityProvider.token={token}", "--allow-root",
        # window.jupyterapp: the browser tests ask Lab itself which plugins and commands it has.
        f"--{'LabApp' if app == 'lab' else 'JupyterNotebookApp'}.expose_app_in_browser=True",
        f"--ServerApp.root_dir={work}", "--LabApp.news_url=", "--ServerApp.open_browser=False",
        # runs keep executed notebooks in .catalog/: with this the server's own contents API opens
        # them; without it (a default server) the magnus_jupyter server extension does
        *(["--ContentsManager.allow_hidden=True"] if allow_hidden else []),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, work, process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        stubborn, survivors = _stop(process)
    if stubborn:
        print("needed SIGKILL after JupyterLab stopped:\n" + "\n".join(stubborn))
    assert not survivors, "processes left after stopping JupyterLab:\n" + "\n".join(survivors)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, _jupyter_dirs: None) -> Iterator[Lab]:
    """A real JupyterLab that serves hidden files itself (allow_hidden), over a temp copy of notebooks/."""
    with _running_lab(tmp_path_factory, "lab-root", allow_hidden=True) as server:
        yield server


@pytest.fixture(scope="module")
def default_lab(tmp_path_factory: pytest.TempPathFactory, _jupyter_dirs: None) -> Iterator[Lab]:
    """A JupyterLab as a user starts it: no allow_hidden, so its contents API refuses .catalog/."""
    with _running_lab(tmp_path_factory, "default-lab-root", allow_hidden=False) as server:
        yield server


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory, _jupyter_dirs: None) -> Iterator[Lab]:
    """Notebook 7 (`jupyter notebook`) as a user starts it: no allow_hidden, one document per browser tab."""
    with _running_lab(tmp_path_factory, "notebook7-root", allow_hidden=False, app="notebook") as server:
        yield server


def _chromium_or_skip() -> str:
    """Debian's Chromium; skipped only where it is absent and apt-get cannot install it."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if shutil.which("apt-get") is None:
        pytest.skip(f"no Chromium at {CHROMIUM} and no apt-get to install it (Debian's 'chromium' package)")
    pytest.fail(f"no Chromium at {CHROMIUM}: run `make setup` (it installs Debian's chromium with apt-get)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (sync API); never a downloaded browser.

    Per module, not per session: Playwright's sync API keeps an event loop running in the main
    thread, and Chromium starts helper processes when it likes; neither may outlive the browser
    tests into the rest of the suite (the engine takes a running loop for a Jupyter cell's, and
    the fault tests count every process that appears)."""
    executable = _chromium_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True,
                                              timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


_TOKEN = re.compile(r"token=\w+")


def _record_console(page: Page, lines: list[str], start: float) -> None:
    """Append what ``page`` logs, throws and navigates to ``lines`` (seconds since ``start``): kept
    in test-artifacts, where a test that fails now and then shows why."""
    where = f"page {len(page.context.pages)}"

    def add(text: str) -> None:
        lines.append(f"{time.monotonic() - start:8.2f} {where} {_TOKEN.sub('token=...', text)}")

    page.on("console", lambda message: add(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: add(f"pageerror: {error.stack or error}"))
    page.on("framenavigated", lambda frame: add(f"at {frame.url}") if frame == page.main_frame else None)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page per test; its pages' consoles are kept, and a screenshot if
    the test fails."""
    failed_shot = ARTIFACTS / f"{request.node.name}-FAILED.png"
    failed_shot.unlink(missing_ok=True)  # the artifacts show the latest run only
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    console: list[str] = []
    start = time.monotonic()
    # every page of the context (Notebook 7 opens links in new tabs): what its console said
    context.on("page", lambda opened: _record_console(opened, console, start))
    tab = context.new_page()
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{request.node.name}-console.log").write_text("\n".join(console) + "\n",
                                                                    encoding="utf-8")
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                tab.screenshot(path=str(failed_shot), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"could not take the failure screenshot: {exc}")
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (git-ignored test-artifacts/ at the repo root)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
