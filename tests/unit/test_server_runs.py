"""The run history endpoints of the server extension: a real jupyter server on 127.0.0.1, real runs.

``nb/`` holds runs the CLI made (one failed, its retry) plus a corrupt log and a
symlinked one; ``live/`` a run still going; other folders what must be refused
(a hidden one, one reached through a symlink, one whose run log store is a
symlink). Every request goes over HTTP with the server's token, as Lab's would.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_server import Server, serve

GUARD = 60.0  # seconds: a guard against hangs, never a timing expectation
API = "/magnus-jupyter/api/"
HOSTILE = "<img src=x onerror=alert(1)>"
PIPELINE = f"""\
dag:
  start_at: prepare
  steps:
    prepare: {{type: task, command_type: shell, command: "echo 1 > out.txt", catalog: {{put: [out.txt]}},
              next: "{HOSTILE}"}}
    "{HOSTILE}":
      type: task
      command_type: shell
      command: "test -f fixed || {{ echo 'not fixed yet' >&2; exit 3; }}"
      next: success
    success: {{type: success}}
    fail: {{type: fail}}
"""
WAITING = """\
dag:
  start_at: wait
  steps:
    wait: {type: task, command_type: shell, command: "while [ ! -e go ]; do sleep 0.05; done", next: success}
    success: {type: success}
    fail: {type: fail}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


def _layout(root: Path, outside: Path) -> None:
    nb = root / "nb"
    nb.mkdir()
    (nb / "pipeline.yaml").write_text(PIPELINE)
    assert cli(nb, "run", "pipeline.yaml", "--run-id", "first", "--quiet").returncode == 1
    (nb / "fixed").touch()
    assert cli(nb, "retry", "first", "--run-id", "second", "--quiet").returncode == 0
    (nb / ".run_log_store" / "bad.json").write_text("{not json")
    # a valid run log elsewhere, linked in: never listed, never read
    (outside / "pipeline.yaml").write_text(PIPELINE)
    assert cli(outside, "run", "pipeline.yaml", "--run-id", "secret", "--quiet").returncode == 1
    (nb / ".run_log_store" / "linked.json").symlink_to(outside / ".run_log_store" / "secret.json")
    (root / ".hidden").mkdir()
    (root / "link").symlink_to(nb)
    (root / "store-link").mkdir()
    (root / "store-link" / ".run_log_store").symlink_to(nb / ".run_log_store")
    (root / "live").mkdir()
    (root / "live" / "pipeline.yaml").write_text(WAITING)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, _jupyter_dirs: None) -> Iterator[Server]:
    root, outside = tmp_path_factory.mktemp("runs-root"), tmp_path_factory.mktemp("runs-outside")
    _layout(root, outside)
    with serve(root, tmp_path_factory.mktemp("runs-config")) as running:
        yield running


def _get(server: Server, path: str, token: str | None = "") -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, body text); token "" is the server's, None sends none."""
    status, body = server.get(API + path, token)
    return status, body, json.dumps(body)


def _no_server_paths(server: Server, text: str) -> None:
    assert str(server.root) not in text and "/proc/self/fd" not in text, "a file system path was served"


def test_the_runs_of_a_folder_newest_first_with_skipped_logs_named_and_no_link_followed(server: Server,
                                                                                        ) -> None:
    status, body, text = _get(server, "runs?folder=nb")
    assert status == 200, body
    assert body["folder"] == "nb" and body["running"] is False
    assert [row["run_id"] for row in body["runs"]] == ["second", "first"]  # "linked" is not there
    first = body["runs"][1]
    assert (first["status"], first["succeeded"], first["failed"]) == ("FAIL", 1, 1)
    assert body["runs"][0]["original_run_id"] == "first" and body["runs"][0]["reused"] == 1
    assert first["path"] == "nb/.run_log_store/first.json" and first["pipeline"] == "nb/pipeline.yaml"
    assert body["warnings"] == [
        "nb/.run_log_store/bad.json: not a magnus run log (corrupt JSON at line 1, column 2: "
        "Expecting property name enclosed in double quotes)"]
    _no_server_paths(server, text)
    assert "secret" not in text
    # the server read the runs and wrote nothing: no summary index beside the logs
    assert not (server.root / "nb" / ".run_log_store" / ".magnus-jupyter-index").exists()


def test_one_run_with_its_summary_dag_and_timeline(server: Server) -> None:
    status, body, text = _get(server, "runs/first?folder=nb")
    assert status == 200, body
    assert body["run"]["run_id"] == "first" and body["run"]["status"] == "FAIL"
    assert [row["internal_name"] for row in body["steps"]] == ["prepare", HOSTILE, "fail"]
    assert body["dag_note"] == "" and 'data-state="failed"' in body["dag"]
    # the DAG's links are the run's files as server paths relative to the folder: the panel opens them
    links = [html.unescape(part.split('"', 1)[0]) for part in body["dag"].split('data-magnus-path="')[1:]]
    assert links and all((server.root / "nb" / link).is_file() for link in links), links
    timeline = ET.fromstring(body["timeline"])
    steps = {g.get("data-step") for g in timeline.iter("{http://www.w3.org/2000/svg}g")}
    assert {"prepare", HOSTILE} <= steps
    assert HOSTILE not in body["summary_html"] and HOSTILE not in body["dag"]  # names are text
    _no_server_paths(server, text)


def test_two_runs_compared(server: Server) -> None:
    status, body, text = _get(server, "diff?folder=nb&a=first&b=second")
    assert status == 200, body
    steps = {pair["internal_name"]: pair for pair in body["diff"]["steps"]}
    assert steps[HOSTILE]["a"]["status"] == "FAIL" and steps[HOSTILE]["b"]["status"] == "SUCCESS"
    assert not steps[HOSTILE]["same"]
    catalog = {pair["key"]: pair for pair in body["diff"]["catalog"]}
    assert catalog["out.txt"]["same"] is True  # the retry reused prepare: the same file, by content
    assert 'class="magnus-diff" data-a="first" data-b="second"' in body["html"]
    _no_server_paths(server, text)


@pytest.mark.parametrize(("path", "code", "words"), [
    ("runs/nope?folder=nb", 404, "run 'nope': no run log at nb/.run_log_store/nope.json; recent runs: "),
    ("runs/linked?folder=nb", 404, "nb/.run_log_store/linked.json is a symbolic link"),
    ("runs/bad?folder=nb", 422, "nb/.run_log_store/bad.json: not a magnus run log"),
    ("runs/a..b?folder=nb", 400, "run id 'a..b'"),
    ("diff?folder=nb&a=first", 400, "a diff needs two runs"),
    ("diff?folder=nb&a=first&b=nope", 404, "run 'nope'"),
    ("runs?folder=.hidden", 403, "is hidden"),
    ("runs?folder=nb/.run_log_store", 403, "is hidden"),
    ("runs?folder=nb/../nb", 403, "not a plain path below the server's root"),
    ("runs?folder=/etc", 403, "not a plain path below the server's root"),
    ("runs?folder=link", 403, "goes through a symlink"),
    ("runs?folder=store-link", 403, "its .run_log_store is a symlink"),
    ("runs?folder=missing", 404, "is not a folder below the server's root"),
    ("runs/first?folder=link", 403, "goes through a symlink"),
    ("diff?folder=store-link&a=x&b=y", 403, "its .run_log_store is a symlink"),
])
def test_bad_requests_are_one_clear_refusal(server: Server, path: str, code: int, words: str) -> None:
    status, body, text = _get(server, path)
    assert status == code, body
    assert words in str(body.get("message")), body
    _no_server_paths(server, text)
    assert "secret" not in text


@pytest.mark.parametrize("path", ["runs?folder=nb", "runs/first?folder=nb",
                                  "diff?folder=nb&a=first&b=second"])
def test_every_endpoint_needs_the_token(server: Server, path: str) -> None:
    status, body, _ = _get(server, path, token=None)
    assert status == 403 and "runs" not in body and "diff" not in body, body


def test_nothing_is_written_through_the_endpoints(server: Server) -> None:
    request = urllib.request.Request(f"{server.url}{API}runs?folder=nb", method="POST", data=b"{}",
                                     headers={"Authorization": f"token {server.token}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405


def test_the_root_folder_and_a_folder_without_runs_list_nothing(server: Server) -> None:
    for folder in ("", "live"):
        status, body, _ = _get(server, f"runs?folder={folder}")
        assert status == 200 and body["runs"] == [] and body["folder"] == folder, body


def test_a_running_run_shows_running_with_its_progress_until_it_ends(server: Server) -> None:
    live = server.root / "live"
    process = subprocess.Popen([sys.executable, "-m", "magnus_jupyter", "run", "pipeline.yaml", "--run-id",
                                "going", "--quiet"], cwd=live, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + GUARD
        while True:
            _, body, _ = _get(server, "runs?folder=live")
            if body["runs"] and body["runs"][0]["status"] == "RUNNING":
                break
            assert time.monotonic() < deadline, f"never RUNNING: {body}"
            time.sleep(0.1)
        row = body["runs"][0]
        assert body["running"] is True and (row["done"], row["total"]) == (0, 1)
        _, detail, _ = _get(server, "runs/going?folder=live")
        assert 'data-state="running"' in detail["dag"] and detail["run"]["status"] == "RUNNING"
        (live / "go").touch()
        while body["running"]:
            assert time.monotonic() < deadline, f"never ended: {body}"
            time.sleep(0.1)
            _, body, _ = _get(server, "runs?folder=live")
        assert body["runs"][0]["status"] == "SUCCESS"
    finally:
        (live / "go").touch()
        process.wait(timeout=GUARD)


def test_the_summary_index_a_listing_left_is_read_through_the_servers_descriptor(tmp_path: Path) -> None:
    """The server reads a folder through ``/proc/self/fd/N``: the index the CLI wrote for the folder's
    own path must still count (else the server reads every log at every poll)."""
    from magnus_jupyter.history import index, list_runs

    (tmp_path / "pipeline.yaml").write_text(WAITING.replace("while [ ! -e go ]; do sleep 0.05; done", "true"))
    assert cli(tmp_path, "run", "pipeline.yaml", "--run-id", "one", "--quiet").returncode == 0
    store = tmp_path / ".run_log_store"
    deadline = time.monotonic() + GUARD
    while set(index.load(store)) != {"one"}:  # a log is cached once settled (a couple of seconds old)
        assert time.monotonic() < deadline, "the listing never cached the run"
        time.sleep(0.2)
        list_runs(tmp_path)
    fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert set(index.load(Path(f"/proc/self/fd/{fd}"))) == {"one"}
    finally:
        os.close(fd)
    other = tmp_path / "copy"
    shutil.copytree(store, other)
    assert index.load(other) == {}  # a copy of the folder is not the folder
