"""The server extension serves run records read-only to a DEFAULT Jupyter server, and nothing else hidden.

A real ``jupyter server`` on 127.0.0.1 (no allow_hidden; JUPYTER_* folders from tests/conftest.py)
with the extension enabled, over a temp root holding records, another hidden folder, and
symlinks; every request goes over HTTP with or without the token, as Lab's would.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from magnus_jupyter.server import MAX_RECORD_BYTES

START_TIMEOUT = 90.0  # seconds for the server to answer on a loaded 2-core machine
ROUTE = "/magnus-jupyter/api/contents/"
RECORD = "nb/.catalog/run-1/Train.bad.train_bad_out.ipynb"
LOG = "nb/.catalog/run-1/Train.bad.execution.log"
RUN_LOG = "nb/.run_log_store/run-1.json"
NAN_RECORD = "nb/.catalog/run-1/nan_out.ipynb"


@dataclass
class Server:
    url: str
    token: str
    root: Path
    pid: int

    def get(self, path: str, token: str | None = "") -> tuple[int, dict[str, object]]:
        """GET ``path``: (status, JSON body); token "" is the server's, None sends none."""
        headers = {} if token is None else {"Authorization": f"token {token or self.token}"}
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, {"raw": body.decode("utf-8", "replace")}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nested(depth: int) -> str:
    """A notebook whose metadata holds lists nested ``depth`` deep."""
    return '{"cells": [], "metadata": {"deep": ' + "[" * depth + "]" * depth + '}, "nbformat": 4, ' \
           '"nbformat_minor": 5}'


def _layout(root: Path, outside: Path) -> None:
    """Records where magnus writes them, plus what must stay refused."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('bad')")]
    (root / RECORD).parent.mkdir(parents=True)
    nbformat.write(nb, root / RECORD)
    nbformat.write(nb, root / "nb" / "visible.ipynb")  # the same notebook where /api/contents serves it
    (root / LOG).write_text("step Train.bad failed at cell 1\n", encoding="utf-8")
    (root / RUN_LOG).parent.mkdir(parents=True)
    (root / RUN_LOG).write_text('{"run_id": "run-1"}', encoding="utf-8")
    (root / ".secret").mkdir()
    (root / ".secret" / "key.txt").write_text("not for the web", encoding="utf-8")
    (root / "nb/.catalog/run-1/.private").mkdir()
    (root / "nb/.catalog/run-1/.private/x.txt").write_text("hidden inside a record folder", encoding="utf-8")
    (outside / "escaped.txt").write_text("outside the root", encoding="utf-8")
    (root / "nb/.catalog/run-1/escape.txt").symlink_to(outside / "escaped.txt")
    (root / "nb/.catalog/run-1/key.txt").symlink_to(root / ".secret" / "key.txt")
    (root / "nb/.catalog/linked").symlink_to(root / "nb/.catalog/run-1")
    loop = root / "nb/.catalog/loop"  # hostile: a symlink loop, a FIFO, notebooks nested too deep
    loop.mkdir()
    (loop / "a").symlink_to(loop / "b")
    (loop / "b").symlink_to(loop / "a")
    os.mkfifo(loop / "fifo")
    (root / "nb/.catalog/deep").mkdir()
    (root / "nb/.catalog/deep/very.ipynb").write_text(_nested(100_000), encoding="utf-8")
    (root / "nb/.catalog/deep/deeper.ipynb").write_text(_nested(900), encoding="utf-8")
    nan = nbformat.v4.new_notebook(metadata={"scores": [0.5]})  # Python's json writes NaN, Infinity
    (root / NAN_RECORD).write_text(json.dumps(nan).replace("0.5", "NaN, Infinity, -1e999"), encoding="utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, _jupyter_dirs: None) -> Iterator[Server]:
    """A default jupyter server (hidden files refused) with magnus_jupyter's server extension."""
    root, outside = tmp_path_factory.mktemp("server-root"), tmp_path_factory.mktemp("outside")
    _layout(root, outside)
    config = tmp_path_factory.mktemp("server-config") / "jupyter_server_config.json"
    config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"magnus_jupyter": True}}}))
    port, token = _free_port(), secrets.token_hex(16)
    log = root.parent / f"{root.name}.log"
    command = [
        sys.executable, "-m", "jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--port-retries=0", f"--IdentityProvider.token={token}", "--allow-root", f"--config={config}",
        f"--ServerApp.root_dir={root}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    running = Server(f"http://127.0.0.1:{port}", token, root, process.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            with suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                running.get("/api/status")
                break
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter server did not answer within {START_TIMEOUT:g} s:\n{log.read_text()}")
            time.sleep(0.25)  # polling interval, not an assertion
        yield running
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_the_server_itself_still_refuses_hidden_paths(server: Server) -> None:
    status, _ = server.get(f"/api/contents/{RECORD}")
    assert status == 404, "the test server allows hidden files: it would not test the default case"


def test_a_record_notebook_comes_as_the_contents_api_would_serve_it(server: Server) -> None:
    status, model = server.get(ROUTE + RECORD)
    assert status == 200, model
    _, plain = server.get("/api/contents/nb/visible.ipynb")
    missing = {key for key in plain if not key.startswith("hash")} - set(model)
    assert not missing, f"keys of /api/contents missing: {missing}"
    assert (model["type"], model["format"], model["path"]) == ("notebook", "json", RECORD)
    assert model["name"] == Path(RECORD).name and model["writable"] is False
    assert model["content"] == plain["content"]
    cells = model["content"]["cells"]  # type: ignore[index]
    assert [cell["source"] for cell in cells] == ["x = 1", "raise ValueError('bad')"]


def test_a_record_holding_nan_is_served_as_strict_json(server: Server) -> None:
    """Browsers' JSON.parse refuses NaN and Infinity: such numbers in a record come as text."""
    request = urllib.request.Request(f"{server.url}{ROUTE}{NAN_RECORD}",
                                     headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    model = json.loads(body, parse_constant=refuse)
    assert model["content"]["metadata"]["scores"] == ["NaN", "Infinity", "-1e999"]


def test_logs_and_run_logs_come_as_text_and_without_content_on_request(server: Server) -> None:
    status, model = server.get(ROUTE + LOG)
    assert status == 200, model
    assert (model["type"], model["format"]) == ("file", "text")
    assert model["content"] == (server.root / LOG).read_text()
    status, model = server.get(ROUTE + RUN_LOG + "?content=0")
    assert status == 200 and model["content"] is None and model["type"] == "file", model


@pytest.mark.parametrize("path", [
    "nb/.catalog/../../outside/escaped.txt",
    "nb/.catalog/%2E%2E/%2E%2E/etc/passwd",
    "nb/.catalog/run-1/%2E%2E/run-1/Train.bad.execution.log",
])
def test_dot_dot_is_refused(server: Server, path: str) -> None:
    status, body = server.get(ROUTE + path)
    assert status == 403 and "content" not in body, body
    assert "is not a plain path below the server's root" in str(body.get("message")), body


@pytest.mark.parametrize("path", [
    "nb/.catalog/run-1/escape.txt",  # out of the root
    "nb/.catalog/run-1/key.txt",  # to another hidden folder
    "nb/.catalog/linked/Train.bad.execution.log",  # a folder linked to a record folder
])
def test_no_symlink_is_followed(server: Server, path: str) -> None:
    status, body = server.get(ROUTE + path)
    assert status == 403 and "content" not in body, body
    assert "goes through a symlink" in str(body.get("message")), body


@pytest.mark.parametrize("path", [".secret/key.txt", "nb/.catalog/run-1/.private/x.txt", "nb/visible.ipynb"])
def test_other_paths_are_refused_with_the_reason(server: Server, path: str) -> None:
    status, body = server.get(ROUTE + path)
    assert status == 403, body
    assert "not in a .catalog or .run_log_store folder" in str(body.get("message")), body


def test_a_missing_record_is_not_found(server: Server) -> None:
    status, body = server.get(ROUTE + "nb/.catalog/run-1/nothing.ipynb")
    assert status == 404 and "is not a file" in str(body.get("message")), body


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_without_the_token_nothing_is_served(server: Server, token: str | None) -> None:
    status, body = server.get(ROUTE + RECORD, token=token)
    assert status == 403, body
    assert "content" not in body


# --- hostile input: races, names the file system refuses, deep nesting, size ---

RACE = "nb/.catalog/race/record.txt"
SECRET = "the target of the swapped-in symlink"


def _swap(target: Path, outside: Path, stop: threading.Event) -> int:
    """Swap ``target`` between a regular record and a symlink out of the root, atomically, until stopped."""
    swaps = 0
    regular, link = target.with_name("regular.tmp"), target.with_name("link.tmp")
    while not stop.is_set():
        regular.write_text("a plain record", encoding="utf-8")
        os.replace(regular, target)
        link.symlink_to(outside)
        os.replace(link, target)
        swaps += 1
    regular.write_text("a plain record", encoding="utf-8")
    os.replace(regular, target)
    return swaps


def test_a_file_swapped_with_a_symlink_never_serves_the_link_target(server: Server, tmp_path: Path) -> None:
    """The reproduction: a record swapped between a file and a symlink to a secret outside the root."""
    outside = tmp_path / "secret.txt"
    outside.write_text(SECRET, encoding="utf-8")
    target = server.root / RACE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("a plain record", encoding="utf-8")
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        swapper = pool.submit(_swap, target, outside, stop)
        try:
            statuses: list[int] = []
            leaked = 0
            for _ in range(1200):
                status, body = server.get(ROUTE + RACE)
                statuses.append(status)
                leaked += SECRET in str(body.get("content"))
        finally:
            stop.set()
        assert swapper.result(timeout=30) > 0
    assert leaked == 0, f"{leaked} of {len(statuses)} GETs served the symlink's target"
    served, refused = statuses.count(200), statuses.count(403)
    assert served and refused, f"the race was not exercised: {served} served, {refused} refused"
    assert served + refused == len(statuses), sorted(set(statuses))


@pytest.mark.parametrize(("path", "status"), [
    ("nb/.catalog/run-1/a%00b.txt", 400),
    ("nb/.catalog/run-1/" + "n" * 300 + ".txt", 400),
    ("nb/.catalog/loop/a", 403),
    ("nb/.catalog/loop/a/x.txt", 403),
    ("nb/.catalog/deep/very.ipynb", 400),
    ("nb/.catalog/deep/deeper.ipynb", 400),
    ("nb/.catalog/loop/fifo", 404),  # opened without blocking, then refused: not a file
])
def test_hostile_paths_and_files_get_a_4xx_with_a_short_reason(server: Server, path: str,
                                                                status: int) -> None:
    got, body = server.get(ROUTE + path)
    assert got == status and "content" not in body, (got, str(body)[:500])
    message = str(body.get("message"))
    assert message.startswith("magnus records: ") and len(message) < 240, message


BIG = 20 * 1024 * 1024  # the reproduction's record: 20 MB
GROWTH_BOUND = 64 * 1024 * 1024  # generous: serving it whole cost 370 MB


def _peak_growth(server: Server, path: str) -> tuple[int, int, bytes]:
    """GET ``path`` while sampling the server's RSS: (status, peak growth in bytes, the body's start)."""
    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    peak, done = before, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)  # sampling interval, not an assertion

    sampler = threading.Thread(target=sample)
    sampler.start()
    request = urllib.request.Request(f"{server.url}{ROUTE}{path}",
                                     headers={"Authorization": f"token {server.token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, head = response.status, response.read(4096)
            while response.read(1 << 20):
                pass
    except urllib.error.HTTPError as error:
        status, head = error.code, error.read()
    finally:
        done.set()
        sampler.join()
    return status, peak - before, head


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_a_big_record_is_streamed_not_held_whole(server: Server, kind: str) -> None:
    path = f"nb/.catalog/big/record.{kind}"
    file = server.root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    text = "step Train.bad ✓ — a line of a long execution log\n".encode()
    line = text if kind == "text" else bytes(range(256))
    file.write_bytes(line * (BIG // len(line)))
    status, growth, head = _peak_growth(server, path)
    assert status == 200, head[:500]
    assert growth < GROWTH_BOUND, f"serving a {BIG >> 20} MB record grew the server by {growth >> 20} MB"
    status, model = server.get(ROUTE + path)
    content = str(model["content"])
    data = content.encode() if kind == "text" else base64.b64decode(content)
    assert data == file.read_bytes() and model["size"] == len(data)


def test_a_record_over_the_limit_is_refused_with_the_limit(server: Server) -> None:
    path = "nb/.catalog/big/huge.log"
    file = server.root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("wb") as out:
        out.truncate(MAX_RECORD_BYTES + 1)  # sparse: no disk used
    status, body = server.get(ROUTE + path)
    assert status == 413 and "content" not in body, body
    assert f"{MAX_RECORD_BYTES >> 20} MB" in str(body.get("message")), body
