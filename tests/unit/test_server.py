"""The server extension serves run records read-only to a DEFAULT Jupyter server, and nothing else hidden.

A real ``jupyter server`` on 127.0.0.1 (no allow_hidden; JUPYTER_* folders from tests/conftest.py)
with the extension enabled, over a temp root holding records, another hidden folder, and
symlinks; every request goes over HTTP with or without the token, as Lab's would.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

START_TIMEOUT = 90.0  # seconds for the server to answer on a loaded 2-core machine
ROUTE = "/magnus-jupyter/api/contents/"
RECORD = "nb/.catalog/run-1/Train.bad.train_bad_out.ipynb"
LOG = "nb/.catalog/run-1/Train.bad.execution.log"
RUN_LOG = "nb/.run_log_store/run-1.json"


@dataclass
class Server:
    url: str
    token: str
    root: Path

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
    running = Server(f"http://127.0.0.1:{port}", token, root)
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


def test_a_symlink_out_of_the_root_is_refused(server: Server) -> None:
    status, body = server.get(ROUTE + "nb/.catalog/run-1/escape.txt")
    assert status == 403, body
    assert "outside the server's root" in str(body.get("message")), body


def test_a_symlink_from_a_record_folder_to_another_hidden_one_is_refused(server: Server) -> None:
    status, body = server.get(ROUTE + "nb/.catalog/run-1/key.txt")
    assert status == 403 and "content" not in body, body
    assert "leads out of the record folders" in str(body.get("message")), body


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
