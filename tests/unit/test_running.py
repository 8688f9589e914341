"""%magnus_run / %magnus_show in a real InteractiveShell, and the in-kernel run behind them.

Real runs: cell steps become notebooks executed by papermill in worker
processes, shell steps are subprocesses. Cancelling is checked on the
processes themselves (the task's pid must be gone), never by timing.
"""

from __future__ import annotations

import _thread
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing import globalipapp

from magnus_jupyter import running
from magnus_jupyter.declare import session
from magnus_jupyter.yaml_io import load_yaml

GUARD = 60.0  # seconds: a guard against hangs, never a timing expectation

SLEEPY = """
dag:
  start_at: Both
  steps:
    Both:
      type: parallel
      next: After
      branches:
        a:
          start_at: sleep
          steps:
            sleep: {type: task, command_type: shell, command: "echo $$ > pid_a; sleep 60", next: success}
            success: {type: success}
            fail: {type: fail}
        b:
          start_at: sleep
          steps:
            sleep: {type: task, command_type: shell, command: "echo $$ > pid_b; sleep 60", next: success}
            success: {type: success}
            fail: {type: fail}
    After: {type: stub, next: success}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A real shell with the extension loaded, declaring into an empty session in a temp folder."""
    monkeypatch.chdir(tmp_path)
    globalipapp.start_ipython()  # returns the shell only on its first call in a process
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "magnus_jupyter")
    session().reset()
    yield shell
    session().reset()


def _wait_for(condition: object) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not reached within the guard time")
        time.sleep(0.05)


def _pids(folder: Path) -> list[int]:
    return [int((folder / name).read_text()) for name in ("pid_a", "pid_b")]


def test_cell_returns_reach_later_steps_end_to_end(ip: object, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell_magic("magnus_step", '"Make" --returns x,label', "x = 41 + 1\nlabel = 'made'")
    ip.run_cell_magic("magnus_step", '"Use" --shell',
                      'export MAGNUS_PRM_Y=$((MAGNUS_PRM_x + 1)); export MAGNUS_PRM_SEEN="$MAGNUS_PRM_label"')
    ip.run_cell_magic("magnus_step", '"Check"', "assert y == 43, y\nok = label == 'made'")
    (tmp_path / "params.yaml").write_text("start: 0\nfrom_file: [1, 2]\n", encoding="utf-8")
    ip.run_line_magic("magnus_run", "--workers 2 -p params.yaml --param start=1")
    run = running.last_run()
    assert run is not None and run.result is not None
    assert run.result.status == "SUCCESS", run.result.steps()
    assert run.result.parameters == {"start": 1, "from_file": [1, 2], "x": 42, "label": "made", "y": 43,
                                     "seen": "made"}
    log = json.loads(run.result.run_log_path.read_text())
    assert log["status"] == "SUCCESS"
    assert f"run {run.result.run_id}: SUCCESS" in capsys.readouterr().out
    snap = run.widget.status.snapshot()
    assert {snap.state(n) for n in ("Make", "Use", "Check")} == {"success"}
    assert (tmp_path / snap.outputs["Make"][0]).is_file()  # the executed cell notebook, for its link


def test_show_draws_the_declared_pipeline_all_pending(ip: object) -> None:
    ip.run_cell_magic("magnus_step", '"Only" --stub', "# a placeholder")
    widget = running.show()
    assert widget.status.snapshot().run_id is None
    assert 'data-state="pending"' in widget.last_svg and "Only" in widget.last_svg


@pytest.mark.parametrize("line, message", [
    ("--workers 0", "--workers must be at least 1"),
    ("-p nowhere.yaml", "nowhere.yaml"),
    ("--param novalue", "novalue"),
    ("--bogus", "unrecognized arguments"),
])
def test_run_errors_are_one_usage_line(ip: object, line: str, message: str) -> None:
    ip.run_cell_magic("magnus_step", '"Only" --stub', "# a placeholder")
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("magnus_run", line)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_run_with_nothing_declared_is_a_usage_error(ip: object) -> None:
    with pytest.raises(UsageError, match="nothing is declared"):
        ip.run_line_magic("magnus_run", "")
    with pytest.raises(UsageError, match="nothing is declared"):
        ip.run_line_magic("magnus_show", "")


def test_background_run_returns_at_once_and_its_stop_button_kills_its_tasks(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = running.start(pipeline=load_yaml(SLEEPY), workers=2, background=True, display=False)
    assert run.thread is not None and run.thread.is_alive()  # the call came back while tasks run
    _wait_for(lambda: (tmp_path / "pid_a").is_file() and (tmp_path / "pid_b").is_file()
              and all(p.read_text().strip() for p in (tmp_path / "pid_a", tmp_path / "pid_b")))
    pids = _pids(tmp_path)
    assert all(psutil.pid_exists(pid) for pid in pids)
    with pytest.raises(Exception, match="still going on"):
        running.start(pipeline=load_yaml(SLEEPY), background=True, display=False)
    stop = run.widget.stop
    assert stop is not None
    _wait_for(lambda: stop.layout.display is None)  # the stop button shows while it runs
    stop.click()  # a background run has no busy cell to interrupt: its button stops it
    _wait_for(lambda: run.done)
    assert run.result is not None and run.result.status == "FAIL"
    log = json.loads(run.result.run_log_path.read_text())
    assert log["status"] == "FAIL" and any("cancelled" in w for w in log["warnings"])
    assert "After" not in log["steps"]  # nothing started after the cancel
    _wait_for(lambda: not any(psutil.pid_exists(pid) for pid in pids))
    snap = run.widget.status.snapshot()
    assert snap.state("Both.a.sleep") == "cancelled" and snap.state("After") == "skipped"
    assert run.widget.stop is not None and run.widget.stop.layout.display == "none"


def test_kernel_interrupt_cancels_a_blocking_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    hint_seen = []

    def interrupt_when_running() -> None:
        _wait_for(lambda: (tmp_path / "pid_b").is_file() and (tmp_path / "pid_b").read_text().strip())
        run = running.last_run()
        assert run is not None
        _wait_for(lambda: "interrupt the kernel" in run.widget.line.value)
        hint_seen.append(True)
        _thread.interrupt_main()  # what the kernel's stop button does: KeyboardInterrupt in the cell

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as caught:
        running.start(pipeline=load_yaml(SLEEPY), workers=2, display=False)
    # what IPython shows instead of the traceback: the one line
    assert caught.value._render_traceback_() == [running.INTERRUPTED]  # type: ignore[attr-defined]
    run = running.last_run()
    assert run is not None and run.done and run.result is not None
    # a busy cell's kernel would handle a click only after the run: no Stop button, the way to stop instead
    assert run.widget.stop is None and hint_seen
    assert run.result.status == "FAIL"
    assert json.loads(run.result.run_log_path.read_text())["status"] == "FAIL"
    _wait_for(lambda: not any(psutil.pid_exists(pid) for pid in _pids(tmp_path)))


def test_magnus_retry_reuses_what_succeeded_and_reruns_the_fixed_step(ip: InteractiveShell,
                                                                      tmp_path: Path) -> None:
    """Fail a step, fix its cell, %magnus_retry: the succeeded step is not run again."""
    ip.run_cell_magic("magnus_step", '"Count" --shell', "echo run >> calls.txt")
    ip.run_cell_magic("magnus_step", '"Check" --shell', "test -e fixed.txt")
    ip.run_line_magic("magnus_run", "--workers 1")  # a failed run is a result, not an error
    first = running.last_run()
    assert first is not None and first.result is not None and first.result.status == "FAIL"
    (tmp_path / "fixed.txt").write_text("now it passes")
    ip.run_line_magic("magnus_retry", "")
    second = running.last_run()
    assert second is not None and second.result is not None and second.result.status == "SUCCESS"
    log = json.loads(second.result.run_log_path.read_text())
    assert log["original_run_id"] == first.result.run_id
    assert (tmp_path / "calls.txt").read_text().splitlines() == ["run"]  # "Count" was reused, not rerun


def test_magnus_retry_names_a_missing_run(ip: InteractiveShell) -> None:
    ip.run_cell_magic("magnus_step", '"Only" --stub', "# nothing to do")
    with pytest.raises(UsageError, match="no-such-run"):
        ip.run_line_magic("magnus_retry", "no-such-run")


def test_a_failing_cell_step_names_the_line_of_the_cell_that_raised(ip: InteractiveShell,
                                                                     tmp_path: Path) -> None:
    """The person wrote one %%magnus_step cell: its line is what the message names, not a cell of the
    generated notebook; a real notebook keeps its cell number."""
    ip.run_cell_magic("magnus_step", '"Compute"',
                      "\n# a blank line and a comment above\ndef check(v):\n    if v > 1:\n"
                      "        raise ValueError(f'too big: {v}')\n\ncheck(1)\ncheck(2)\n")
    plain = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                               "display_name": "Python 3"}})
    plain.cells = [nbformat.v4.new_code_cell("raise KeyError('k')")]
    nbformat.write(plain, tmp_path / "plain.ipynb")
    ip.run_line_magic("magnus_step", '"Plain" --notebook plain.ipynb')
    ip.run_line_magic("magnus_run", "--workers 1")
    run = running.last_run()
    assert run is not None and run.result is not None and run.result.status == "FAIL"
    failures = run.widget.status.snapshot().failures
    # the magic is line 1, the blank line 2: the raise inside check() is the cell's line 6
    assert failures["Compute"].startswith("line 6 of the %%magnus_step 'Compute' cell raised ValueError: "
                                          "too big: 2; the executed notebook is at ")
    ip.run_cell_magic("magnus_step", '"Compute"', "x = 1")  # fixed: the plain notebook's error is next
    ip.run_line_magic("magnus_retry", "")
    run = running.last_run()
    assert run is not None and run.result is not None
    message = run.widget.status.snapshot().failures["Plain"]
    assert re.match(r"cell \d+ \(execution count \d+\) raised KeyError: 'k'; ", message), message


def test_magnus_run_reuse_from_and_only_in_the_kernel(ip: InteractiveShell, tmp_path: Path) -> None:
    """%magnus_run --reuse reuses what is unchanged; --from and --only choose what runs; a bad step name
    or an option that cannot be met is one UsageError line, and nothing runs."""
    ip.run_cell_magic("magnus_step", '"First" --shell --inputs data.txt', "echo first >> calls.txt")
    ip.run_cell_magic("magnus_step", '"Second" --shell --no-cache', "echo second >> calls.txt")
    ip.run_cell_magic("magnus_step", '"Third" --shell', "echo third >> calls.txt")
    (tmp_path / "data.txt").write_text("one")

    def run(line: str) -> dict[str, dict[str, object]]:
        (tmp_path / "calls.txt").write_text("")
        ip.run_line_magic("magnus_run", f"--workers 1 {line}")
        last = running.last_run()
        assert last is not None and last.result is not None and last.result.ok
        return {s["internal_name"]: s for s in last.result.run_log["steps"].values()}

    run("")
    steps = run("--reuse")
    assert (tmp_path / "calls.txt").read_text().split() == ["second"]  # --no-cache: it always runs
    assert steps["Second"]["rerun_reason"] == "cache: false" and steps["First"]["reused_from"]
    (tmp_path / "data.txt").write_text("two")
    steps = run("--reuse")
    assert steps["First"]["rerun_reason"] == "input data.txt changed"
    run('--from "Third"')
    assert (tmp_path / "calls.txt").read_text().split() == ["second", "third"]
    run("--only First --only Third")
    assert (tmp_path / "calls.txt").read_text().split() == ["first", "second", "third"]
    with pytest.raises(UsageError, match="--from 'Fourth': no such step"):
        ip.run_line_magic("magnus_run", '--from "Fourth"')
    with pytest.raises(UsageError, match="--reuse does not go with --from or --only"):
        ip.run_line_magic("magnus_run", "--reuse --only First")
    with pytest.raises(UsageError, match="--inputs pattern '../x' goes up"):
        ip.run_cell_magic("magnus_step", '"Bad" --shell --inputs ../x', "echo")
