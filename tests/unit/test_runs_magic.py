"""``%magnus_runs`` in IPython's test shell: the table, one run, two compared, live refresh, the saved twin.

Runs are real: ``magnus-jupyter run`` / ``retry`` in a subprocess, and a run
that is still going while the view watches it (its task waits for a file).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output
from ipywidgets.widgets.widget import _instances

from magnus_jupyter.widget.runs import HINT, RunsView

GUARD = 60.0  # seconds: a guard against hangs, never a timing expectation
PIPELINE = """\
dag:
  start_at: prepare
  steps:
    prepare: {type: task, command_type: shell, command: "echo prepared", next: last}
    last:
      type: task
      command_type: shell
      command: "test -f fixed || { echo 'not fixed yet' >&2; exit 3; }"
      next: success
    success: {type: success}
    fail: {type: fail}
"""
WAITING = """\
dag:
  start_at: wait
  steps:
    wait:
      type: task
      command_type: shell
      command: "while [ ! -e go ]; do sleep 0.05; done"
      next: success
    success: {type: success}
    fail: {type: fail}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``first`` fails at ``last``; ``second`` retries it and succeeds."""
    folder = tmp_path_factory.mktemp("runs-magic")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    assert cli(folder, "run", "pipeline.yaml", "--run-id", "first", "--quiet").returncode == 1
    (folder / "fixed").touch()
    assert cli(folder, "retry", "first", "--run-id", "second", "--quiet").returncode == 0
    return folder


@pytest.fixture
def ip(history: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    shell = globalipapp.get_ipython()
    monkeypatch.chdir(history)
    shell.run_line_magic("load_ext", "magnus_jupyter")
    yield shell


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RunsView]]:
    """Every RunsView made during a test, closed after it (no refresh thread outlives a test)."""
    views: list[RunsView] = []
    init = RunsView.__init__

    def tracked(self: RunsView, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        views.append(self)

    monkeypatch.setattr(RunsView, "__init__", tracked)
    yield views
    for view in views:
        view.close()


def _shown(ip: Any, made: list[RunsView], line: str = "") -> tuple[RunsView, dict[str, Any]]:
    """Run ``%magnus_runs line``: the view behind the widget it displayed, and the static twin's bundle."""
    with capture_output() as captured:
        ip.run_line_magic("magnus_runs", line)
    widget, twin = captured.outputs
    box = _instances[widget.data["application/vnd.jupyter.widget-view+json"]["model_id"]]
    (view,) = [v for v in made if v.box is box]
    return view, twin.data


def test_the_magic_shows_the_runs_newest_first_and_a_static_twin(ip: Any, made: list[RunsView]) -> None:
    view, twin = _shown(ip, made)
    assert [value for _, value in view.select.options] == ["second", "first"]
    labels = [label for label, _ in view.select.options]
    assert labels[0].startswith("second · SUCCESS · ") and labels[1].startswith("first · FAIL · ")
    assert re.findall(r'<tr data-run="([^"]+)"', view.table.value) == ["second", "first"]
    assert view.detail.value == HINT
    # the twin: the table as HTML and text, in a box the live widget's own style rule hides
    assert f'<div class="{view.uid}-static magnus-runs-static">' in twin["text/html"]
    assert re.findall(r'<tr data-run="([^"]+)"', twin["text/html"]) == ["second", "first"]
    assert f".{view.uid}-static{{display:none}}" in view.style.value
    assert twin["text/plain"].splitlines()[2].startswith("second  SUCCESS")


def test_selecting_one_run_shows_its_dag_and_timeline_and_two_their_diff(ip: Any,
                                                                          made: list[RunsView]) -> None:
    view, _ = _shown(ip, made)
    view.select.value = ("first",)
    detail = view.detail.value
    assert '<section class="magnus-run" data-run="first">' in detail
    assert 'class="magnus-run-dag"' in detail and 'data-state="failed"' in detail
    assert 'aria-label="timeline of run first"' in detail and 'data-step="last"' in detail
    assert '<tr data-run="first" aria-selected="true"' in view.table.value  # the table marks it
    view.select.value = ("second", "first")
    diff = view.detail.value
    assert '<section class="magnus-diff" data-a="first" data-b="second"' in diff  # A: the older run
    assert re.search(r'<tr class="differs"[^>]*><th scope="row"[^>]*>≠ <code>last</code>', diff)
    view.select.value = ()
    assert view.detail.value == HINT


def test_the_saved_twin_follows_the_selection(ip: Any, made: list[RunsView]) -> None:
    with capture_output() as captured:
        ip.run_line_magic("magnus_runs", "")
        (view,) = made
        view.select.value = ("first",)
    widget, twin, *updates = captured.outputs
    assert updates, "the twin was not updated"
    assert '<tr data-run="first" aria-selected="true"' in updates[-1].data["text/html"]
    assert '<tr data-run="first" aria-selected="true"' not in twin.data["text/html"]


def test_a_running_run_refreshes_by_itself_until_it_ends(tmp_path: Path, made: list[RunsView]) -> None:
    (tmp_path / "pipeline.yaml").write_text(WAITING)
    process = subprocess.Popen([sys.executable, "-m", "magnus_jupyter", "run", "pipeline.yaml", "--run-id",
                                "live", "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + GUARD
        view = RunsView(tmp_path, poll=0.2)
        while not view.rows or view.rows[0]["status"] != "RUNNING":
            assert time.monotonic() < deadline, f"the run never showed as running: {view.rows}"
            time.sleep(0.1)
            view.refresh()
        view.select.value = ("live",)
        assert "RUNNING 0/1" in view.table.value and view.live()
        assert 'data-state="running"' in view.detail.value
        calls = view.throttle.calls
        (tmp_path / "go").touch()
        # no refresh from here on: the view's own ticking must see the run end
        while "SUCCESS" not in view.table.value:
            assert time.monotonic() < deadline, "the view did not refresh itself"
            time.sleep(0.1)
        assert view.throttle.calls > calls and not view.live()
        assert 'data-state="success"' in view.detail.value  # the selected run was drawn again
        settled = view.throttle.calls
        time.sleep(0.6)  # three poll intervals: a finished history is not read again
        assert view.throttle.calls == settled
    finally:
        (tmp_path / "go").touch()
        process.wait(timeout=GUARD)


def test_an_unreadable_log_is_skipped_with_a_warning_and_a_bad_folder_is_one_line(
        ip: Any, tmp_path: Path, made: list[RunsView]) -> None:
    store = tmp_path / ".run_log_store"
    store.mkdir()
    (store / "broken.json").write_text("{not json")
    view = RunsView(tmp_path)
    assert view.rows == [] and "broken.json: not a magnus run log" in view.table.value
    with pytest.raises(UsageError, match=r"^%magnus_runs: nowhere is not a folder$"):
        ip.run_line_magic("magnus_runs", "nowhere")
    with pytest.raises(UsageError, match="unrecognized arguments"):
        ip.run_line_magic("magnus_runs", "a b")


def test_retry_with_nothing_declared_retries_the_pipeline_the_run_recorded(
        history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Lab panel's Retry runs in any notebook of the folder: ``%magnus_retry RUN_ID``."""
    import shutil

    from magnus_jupyter.declare import session
    from magnus_jupyter.history import list_runs

    folder = tmp_path / "copy"
    shutil.copytree(history, folder)
    monkeypatch.chdir(folder)
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "magnus_jupyter")
    session().reset()
    with capture_output():
        shell.run_line_magic("magnus_retry", "first --workers 1")
    rows = list_runs(folder)
    assert len(rows) == 3 and rows[0]["original_run_id"] == "first" and rows[0]["status"] == "SUCCESS", rows
