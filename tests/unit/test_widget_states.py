"""What the DAG widget says about a run that did not simply succeed: failed, cancelled, reused.

Real runs (shell tasks as worker processes, notebook tasks through papermill):
the widget's status, its bars and its picture are read after the run, and the
static final picture that replaces the widget in the notebook file is read too.
Waits are for files the tasks write, never for time.
"""

from __future__ import annotations

import base64
import html
import io
import re
import threading
import time
from pathlib import Path

import nbformat
import pytest

from magnus_jupyter.executor.engine import run_pipeline
from magnus_jupyter.executor.retry import load_run_log, retry_run
from magnus_jupyter.progress import TerminalProgress
from magnus_jupyter.widget.picture import LEGEND, NODE_FILL
from magnus_jupyter.widget.status import RunStatus
from magnus_jupyter.widget.view import DagWidget
from magnus_jupyter.yaml_io import load_yaml

GUARD = 60.0  # seconds: a guard against hangs, never a timing expectation
KERNELSPEC = {"name": "python3", "language": "python", "display_name": "Python 3"}

FAIL_FAST = """
dag:
  start_at: Fan
  steps:
    Fan:
      type: parallel
      failure_policy: fail_fast
      next: success
      branches:
        bad:
          start_at: broken
          steps:
            broken:
              type: task
              command_type: shell
              command: "while [ ! -e started ]; do sleep 0.05; done; exit 3"
              next: success
            success: {type: success}
            fail: {type: fail}
        slow:
          start_at: nap
          steps:
            nap: {type: task, command_type: shell, command: "touch started; sleep 60", next: after}
            after: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""

TWO_SLEEPERS = """
dag:
  start_at: Fan
  steps:
    Fan:
      type: parallel
      next: success
      branches:
        a:
          start_at: nap
          steps:
            nap: {type: task, command_type: shell, command: "touch a; sleep 60", next: success}
            success: {type: success}
            fail: {type: fail}
        b:
          start_at: nap
          steps:
            nap: {type: task, command_type: shell, command: "touch b; sleep 60", next: success}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""

RETRIED = """
dag:
  start_at: Make
  steps:
    Make: {type: task, command_type: notebook, command: make.ipynb, next: Check}
    Check: {type: task, command_type: shell, command: "test -e fixed", next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _bars(widget: DagWidget) -> dict[str, tuple[float, float, str, str]]:
    """Bar name -> (value, max, style, text) of every branch bar."""
    out = {}
    for row in widget.bars.children:
        label, bar, _cells, text = row.children
        name = html.unescape(re.sub(r"<[^>]+>", "", label.value))
        out[name] = (bar.value, bar.max, bar.bar_style, text.value)
    return out


def _node(svg: str, node: str) -> str:
    """A node's or cluster's group in the SVG, up to the next group."""
    start = svg.index(f'<g id="{node}" class=')
    following = re.compile(r'<g id="(?:n|cluster_)\d+" class=').search(svg, start + 1)
    return svg[start:following.start() if following else len(svg)]


def _wait_for(*paths: Path) -> None:
    deadline = time.monotonic() + GUARD
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            pytest.fail(f"the tasks never wrote {paths}")
        time.sleep(0.05)


def test_fail_fast_shows_the_failed_branch_failed_and_the_stopped_one_cancelled(tmp_path: Path) -> None:
    pipeline = load_yaml(FAIL_FAST)
    widget = DagWidget(pipeline, link_base=tmp_path)
    result = run_pipeline(pipeline, cwd=tmp_path, workers=2, subscribers=[widget.status])
    assert result.status == "FAIL"
    snap = widget.status.snapshot()
    assert snap.state("Fan.bad.broken") == "failed" and snap.state("Fan.bad") == "failed"
    assert snap.state("Fan.slow.nap") == "cancelled" and snap.state("Fan.slow") == "cancelled"
    assert snap.state("Fan.slow.after") == "skipped" and snap.state("Fan") == "failed"
    bars = _bars(widget)
    value, top, style, text = bars["Fan.slow"]
    assert (value, top, style) == (0, 2, "warning")
    assert "0/2 steps succeeded" in text and "cancelled at nap" in text and "failed" not in text
    value, top, style, text = bars["Fan.bad"]
    assert (value, top, style) == (0, 1, "danger") and "failed at <b>broken</b>" in text
    ids = widget.picture._ids
    cancelled = _node(widget.last_svg, ids["Fan.slow.nap"])
    assert 'data-state="cancelled"' in cancelled and f'fill="{NODE_FILL["cancelled"]}"' in cancelled
    assert 'data-state="cancelled"' in _node(widget.last_svg, ids["Fan.slow"])
    assert "⊘ Fan.slow.nap" in widget.line.value and "✘ Fan.bad.broken" in widget.line.value


def test_an_interrupted_run_reads_cancelled_not_failed(tmp_path: Path) -> None:
    pipeline = load_yaml(TWO_SLEEPERS)
    widget = DagWidget(pipeline, link_base=tmp_path)
    cancel = threading.Event()

    def stop_when_running() -> None:
        _wait_for(tmp_path / "a", tmp_path / "b")
        cancel.set()

    threading.Thread(target=stop_when_running, daemon=True).start()
    result = run_pipeline(pipeline, cwd=tmp_path, workers=2, subscribers=[widget.status], cancel=cancel)
    assert result.status == "FAIL"
    snap = widget.status.snapshot()
    for name in ("Fan.a.nap", "Fan.b.nap", "Fan.a", "Fan.b", "Fan"):
        assert snap.state(name) == "cancelled", name
    assert widget.picture.run_state(snap) == "cancelled"
    assert {style for _, _, style, _ in _bars(widget).values()} == {"warning"}
    assert "FAIL</b> (cancelled)" in widget.line.value
    assert "failed" not in " ".join(text for *_, text in _bars(widget).values())


def _make_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell("made = 1\nprint('made it')")]
    nbformat.write(nb, path)


def test_a_retry_shows_reused_steps_and_links_them_to_the_run_they_came_from(tmp_path: Path) -> None:
    _make_notebook(tmp_path / "make.ipynb")
    pipeline = load_yaml(RETRIED)
    first = run_pipeline(pipeline, cwd=tmp_path, workers=1)
    assert first.status == "FAIL"
    (tmp_path / "fixed").write_text("now it passes")
    old = load_run_log(first.run_id, tmp_path)
    widget = DagWidget(pipeline, RunStatus(pipeline, retry_of=old), link_base=tmp_path)
    terminal = io.StringIO()
    second = retry_run(first.run_id, pipeline, cwd=tmp_path, workers=1,
                       subscribers=[widget.status, TerminalProgress(terminal, live=False)])
    assert second.status == "SUCCESS"
    snap = widget.status.snapshot()
    assert snap.state("Make") == "reused" and snap.state("Check") == "success"
    assert snap.reused == {"Make": first.run_id}
    # the reused step opens what ran: the executed notebook in the old run's catalog
    notebook, log = snap.outputs["Make"]
    assert notebook is not None and log is not None
    old_catalog = (tmp_path / ".catalog" / first.run_id).resolve()
    assert Path(notebook).resolve().parent == old_catalog and Path(notebook).is_file()
    assert "made it" in Path(notebook).read_text()
    node = _node(widget.last_svg, widget.picture._ids["Make"])
    assert 'data-state="reused"' in node and f'fill="{NODE_FILL["reused"]}"' in node
    link = re.search(r'data-magnus-path="([^"]+)"[^>]*aria-label="([^"]+)"', node)
    assert link is not None and link.group(1) == f".catalog/{first.run_id}/{Path(notebook).name}"
    assert link.group(2) == f"open output notebook of step Make (reused from run {first.run_id})"
    value, top, _style, text = _bars(widget)["pipeline"]
    assert (value, top) == (2, 2) and "↺ 1 reused" in text and first.run_id in text
    assert "reused" in LEGEND.values() and ">reused</text>" in widget.last_svg  # the legend says it
    lines = terminal.getvalue().splitlines()
    assert any(line.startswith("REUSED  Make (task,") and first.run_id in line for line in lines), lines
    assert any(line.startswith("SUCCESS Check (task,") for line in lines), lines


def test_a_failure_message_is_whole_and_its_path_a_link(tmp_path: Path) -> None:
    reason = "x" * 300 + " the end of a long reason"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell(f"raise ValueError({reason!r})")]
    nbformat.write(nb, tmp_path / "deep name of a broken notebook.ipynb")
    pipeline = load_yaml("""
dag:
  start_at: Work
  steps:
    Work:
      type: parallel
      next: success
      branches:
        broken:
          start_at: Broken branch out
          steps:
            Broken branch out:
              type: task
              command_type: notebook
              command: deep name of a broken notebook.ipynb
              next: success
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
""")
    widget = DagWidget(pipeline, link_base=tmp_path)
    assert run_pipeline(pipeline, cwd=tmp_path, workers=1, subscribers=[widget.status]).status == "FAIL"
    notebook, _ = widget.status.snapshot().outputs["Work.broken.Broken branch out"]
    assert notebook is not None
    line = widget.line.value
    assert "the end of a long reason" in line  # the whole message, not the first 200 characters
    shown = re.sub(r"<[^>]+>", "", line)
    assert notebook not in html.unescape(shown)  # the long path became a short link ...
    link = re.search(r'<a href="([^"]+)"[^>]*data-magnus-path="([^"]+)"[^>]*title="([^"]+)">([^<]+)</a>',
                     line)
    assert link is not None, line
    assert html.unescape(link.group(3)) == notebook and link.group(4) == Path(notebook).name  # ... to it
    assert (tmp_path / html.unescape(link.group(2))).resolve() == Path(notebook).resolve()


def test_the_static_picture_holds_the_coloured_dag_the_bars_and_the_legend(tmp_path: Path) -> None:
    pipeline = load_yaml(FAIL_FAST)
    widget = DagWidget(pipeline, link_base=tmp_path)
    run_pipeline(pipeline, cwd=tmp_path, workers=2, subscribers=[widget.status])
    bundle = widget.static_bundle()
    assert set(bundle) == {"text/html", "image/svg+xml", "text/plain"}  # no widget view: nothing to miss
    page, svg = bundle["text/html"], bundle["image/svg+xml"]
    assert svg.startswith("<svg") and svg in page
    ids = widget.picture._ids
    # colours are attributes, so a viewer that drops <style> still shows them
    assert f'fill="{NODE_FILL["failed"]}"' in _node(svg, ids["Fan.bad.broken"])
    for label in LEGEND.values():
        assert f">{label}</text>" in svg
    bars = re.findall(r'<div class="magnus-bar" [^>]*data-state="(\w+)" data-value="(\d+)" '
                      r'data-max="(\d+)"', page)
    assert bars == [("failed", "0", "1"), ("failed", "0", "1"), ("cancelled", "0", "2")]
    assert "failed at <b>broken</b>" in page and "cancelled at nap" in page and "FAIL</b>" in page
    assert "Fan.bad: 0/1 steps succeeded · ✘ failed at broken" in bundle["text/plain"]
    # for a notebook whose HTML is sanitised (untrusted: no <svg>, no <style>), a hidden <img> copy
    # the drawing in a box its style attribute hides and a <style> rule shows; an <img> copy the rule
    # hides: where HTML is sanitised (an untrusted notebook: no <svg>, no <style>) the copy shows
    box = re.search(r'<style>#(magnus-dag-\w+)-box\{display:block !important\}'
                    r'#\1-copy\{display:none\}</style><div id="\1-box" style="display:none"><svg ', page)
    assert box is not None
    copy = re.search(rf'<img id="{box.group(1)}-copy" [^>]*src="data:image/svg\+xml;base64,([^"]+)">', page)
    assert copy is not None and base64.b64decode(copy.group(1)).decode() == svg
