"""The DAG widget: state from real runs, escaping, throttling, the no-Graphviz tree.

Runs are real (``run_pipeline`` with worker processes for the shell tasks);
the widget is the real ipywidgets view. Throttling is checked by counting
renders against a frozen clock, never by measuring time.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from magnus_jupyter.executor import events as ev
from magnus_jupyter.executor.engine import run_pipeline
from magnus_jupyter.widget.picture import Picture
from magnus_jupyter.widget.status import RunStatus
from magnus_jupyter.widget.throttle import Throttle
from magnus_jupyter.widget.view import DagWidget
from magnus_jupyter.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[2]
GUARD = 30.0  # seconds: a guard against hangs, never a timing expectation
HOSTILE = "<img src=x onerror=alert(1)>"

SMALL = """
dag:
  start_at: Prepare
  steps:
    Prepare:
      type: task
      command_type: shell
      command: "echo preparing; export MAGNUS_PRM_ITEMS='[1, 2, 3]'"
      next: Train
    Train:
      type: parallel
      next: Score
      branches:
        fast:
          start_at: think
          steps:
            think: {type: stub, next: write}
            write: {type: task, command_type: shell, command: "echo written", next: success}
            success: {type: success}
            fail: {type: fail}
        slow:
          start_at: nap
          steps:
            nap: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
    Score:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: each
        steps:
          each: {type: task, command_type: shell, command: "echo item $MAGNUS_PRM_item", next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


def node_states(svg: str) -> dict[str, str]:
    """Graphviz node/cluster id -> the data-state the picture gave it."""
    return dict(re.findall(r'<g id="((?:n|cluster_)\d+)" class="(?:node|cluster)"[^>]* data-state="(\w+)">',
                           svg))


def visible_text(widget: DagWidget) -> str:
    """Every HTML string the widget sends to the front end."""
    parts = [widget.html.value, widget.line.value, widget.more.value]
    for row in widget.bars.children:
        parts.extend(child.value for child in row.children if isinstance(child.value, str))
    return "\n".join(parts)


def test_real_run_ends_all_success_with_map_branches_and_links(tmp_path: Path) -> None:
    pipeline = load_yaml(SMALL)
    widget = DagWidget(pipeline, link_base=tmp_path)
    before = widget.status.snapshot()
    assert [lane.prefix for lane in before.lanes] == ["", "Train.fast", "Train.slow", "Score.{item}"]
    assert set(node_states(widget.last_svg).values()) == {"pending"}

    result = run_pipeline(pipeline, cwd=tmp_path, workers=2, subscribers=[widget.status])
    assert result.status == "SUCCESS"

    snap = widget.status.snapshot()
    ids = widget.picture._ids
    assert {"Score.1", "Score.2", "Score.3", "Score.2.each"} <= set(ids)  # map branches drawn once known
    expected = {name: ("skipped" if name.rsplit(".", 1)[-1] == "fail" else "success") for name in ids}
    assert {name: snap.state(name) for name in ids} == expected
    drawn = node_states(widget.last_svg)
    assert {drawn[ids[name]] for name in ids if name.rsplit(".", 1)[-1] != "fail"} == {"success"}
    # one bar per branch, each full; the map's template lane gave way to its three real branches
    lanes = {lane.prefix: lane for lane in snap.lanes}
    assert set(lanes) == {"", "Train.fast", "Train.slow", "Score.1", "Score.2", "Score.3"}
    assert len(widget.bars.children) == 6
    for row in widget.bars.children:
        bar = row.children[1]
        assert bar.value == bar.max and bar.bar_style == "success"
        assert re.fullmatch(r".+: succeeded, (\d+) of \1 steps succeeded", bar.tooltip), bar.tooltip
    assert all(lane.succeeded == lane.total and not lane.failed_at for lane in lanes.values())
    # every task links to its log, relative to the notebook's folder, and the file is there
    links = re.findall(r'xlink:href="([^"]+)"', widget.last_svg)
    assert len(links) == 5  # Prepare, Train.fast.write, Score.{1,2,3}.each
    for link in links:
        assert not os.path.isabs(link) and (tmp_path / link).is_file()
    assert "run log" in widget.line.value and "SUCCESS" in widget.line.value
    assert widget.renders >= 2


def test_hostile_names_show_as_text(tmp_path: Path) -> None:
    text = f"""
dag:
  start_at: '{HOSTILE}'
  steps:
    '{HOSTILE}':
      type: task
      command_type: shell
      command: "echo '<script>alert(2)</script>'"
      next: '<b>block</b>'
    '<b>block</b>':
      type: parallel
      next: success
      branches:
        '<i onmouseover=alert(3)>':
          start_at: '<svg onload=alert(4)>'
          steps:
            '<svg onload=alert(4)>': {{type: stub, next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
    success: {{type: success}}
    fail: {{type: fail}}
"""
    pipeline = load_yaml(text)
    widget = DagWidget(pipeline, link_base=tmp_path)
    result = run_pipeline(pipeline, cwd=tmp_path, workers=1, subscribers=[widget.status])
    assert result.status == "SUCCESS"
    # a task still running shows its last output line; hostile output is text too
    log = tmp_path / "task.log"
    log.write_text("first line\n<script>alert(2)</script>\n", encoding="utf-8")
    live = RunStatus(pipeline)
    live(ev.RunStarted("r1", str(tmp_path / "r1.json"), str(tmp_path), {}, 1))
    live(ev.StepStarted(HOSTILE, HOSTILE, "task"))
    live(ev.AttemptStarted(HOSTILE, 1, str(log), None))
    status_line = Picture(pipeline, link_base=tmp_path).status_html(live.snapshot())
    tree = Picture(pipeline, link_base=tmp_path).tree_html(widget.status.snapshot())
    tree_svg = Picture(pipeline, link_base=tmp_path).tree_svg(widget.status.snapshot())

    for markup in (visible_text(widget), widget.last_svg, status_line, tree, tree_svg):
        for tag in ("<img", "<script", "<b>", "<i ", "<svg onload"):
            assert tag not in markup
    assert html.escape(HOSTILE) in tree and html.escape("<script>alert(2)</script>") in status_line
    assert "&lt;img src=x onerror=alert(1)&gt;" in widget.last_svg  # Graphviz's own escaping, still text
    assert html.escape("<b>block</b>") in visible_text(widget)


def test_throttle_coalesces_a_thousand_updates_and_the_last_one_lands() -> None:
    names = [f"s{i}" for i in range(500)]
    steps = "\n".join(f"    {n}: {{type: stub, next: {names[i + 1] if i + 1 < len(names) else 'success'}}}"
                      for i, n in enumerate(names))
    pipeline = load_yaml(f"dag:\n  start_at: s0\n  steps:\n{steps}\n    success: {{type: success}}\n"
                         "    fail: {type: fail}\n")
    widget = DagWidget(pipeline, clock=lambda: 0.0)  # a frozen clock: the interval never passes
    assert widget.renders == 1  # the first picture, drawn on creation
    status = widget.status
    status(ev.RunStarted("r", "r.json", ".", {}, 4))

    def feed(part: list[str]) -> None:
        for name in part:
            status(ev.StepStarted(name, name, "stub"))
            status(ev.StepFinished(name, name, "stub", "SUCCESS", ""))

    threads = [threading.Thread(target=feed, args=(names[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert widget.throttle.requests == 1 + 2 * len(names)  # 1,001 updates asked for a render
    status(ev.RunFinished("r", "SUCCESS", {}, "r.json", "."))
    assert widget.throttle.calls <= 2  # at most one throttled render, then the final flush
    assert widget.renders <= 3
    final = node_states(widget.last_svg)
    assert set(final[widget.picture._ids[n]] for n in names) == {"success"}  # the last state landed
    bar = widget.bars.children[0].children[1]
    assert bar.value == bar.max == 500


def test_throttle_runs_again_once_the_interval_has_passed() -> None:
    now = [0.0]
    calls: list[float] = []
    throttle = Throttle(lambda: calls.append(now[0]), interval=0.1, clock=lambda: now[0])
    throttle.request()
    _wait_for(lambda: len(calls) == 1)
    for _ in range(50):
        throttle.request()
    assert len(calls) == 1  # held back: the clock has not moved
    now[0] = 0.2
    _wait_for(lambda: len(calls) == 2)  # served once the interval passed: 50 requests, one render
    throttle.flush()
    assert calls == [0.0, 0.2, 0.2]
    throttle.close()


def _wait_for(condition: object) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not reached within the guard time")
        time.sleep(0.01)


def test_without_dot_every_step_shows_as_a_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else ():
            target = bin_dir / tool.name
            if tool.name != "dot" and not target.exists():
                target.symlink_to(tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert shutil.which("dot") is None
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pipeline = load_yaml(SMALL)
    widget = DagWidget(pipeline, link_base=run_dir)
    result = run_pipeline(pipeline, cwd=run_dir, workers=2, subscribers=[widget.status])
    assert result.status == "SUCCESS"

    assert widget.picture.error is not None and "dot" in widget.picture.error
    shown = widget.html.value
    assert "Graphviz" in shown and "apt-get install graphviz" in shown
    rows = widget.picture.rows(widget.status.snapshot())
    labels = [label for _, label, _, _ in rows]
    for name in ("Prepare (shell task)", "Train (parallel)", "fast", "write (shell task)", "Score (map)",
                 "1", "2", "3", "each (shell task)"):
        assert html.escape(name) in shown and name in labels
    states = {internal: state for _, _, internal, state in rows}
    assert states["Score.3.each"] == "success" and "Train.slow.fail" not in states  # nothing leads there
    depth = {internal: d for d, _, internal, _ in rows}
    assert depth["Train"] == 0 and depth["Train.fast"] == 1 and depth["Train.fast.write"] == 2
    assert widget.last_svg.startswith("<svg") and "each (shell task) (success)" in widget.last_svg
    assert widget.picture.layouts == 0


def test_the_widget_bundle_carries_a_static_svg() -> None:
    widget = DagWidget(load_yaml(SMALL))
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/svg+xml"].startswith("<svg") and bundle["image/svg+xml"] == widget.last_svg


def test_status_and_picture_stay_free_of_ipywidgets() -> None:
    code = ("import sys, magnus_jupyter.widget.status, magnus_jupyter.widget.picture, "
            "magnus_jupyter.widget.throttle, magnus_jupyter.running, magnus_jupyter.magics\n"
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True, cwd=ROOT)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert not loaded & {"ipywidgets", "papermill", "graphviz", "nbclient"}


def test_a_running_notebook_shows_its_cells_in_its_branch_bar(tmp_path: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                  "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]})]
    notebook.cells += [nbformat.v4.new_code_cell(f"print('cell {i}', n)") for i in range(3)]
    nbformat.write(notebook, tmp_path / "cells.ipynb")
    pipeline = load_yaml("""
dag:
  start_at: Fan
  steps:
    Fan:
      type: parallel
      next: success
      branches:
        nb:
          start_at: Cells
          steps:
            Cells: {type: task, command_type: notebook, command: cells.ipynb, next: success}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
""")
    widget = DagWidget(pipeline, link_base=tmp_path)
    seen: list[tuple[tuple[int, int] | None, float, float, float, str]] = []

    def on_cell(status: RunStatus, event: ev.Event | None) -> None:
        if isinstance(event, ev.CellExecuted):
            widget.render()
            row = widget.bars.children[1]  # the pipeline's row, then Fan.nb's
            _, steps, cells, text = row.children
            seen.append((status.snapshot().running[0].cells, steps.value, cells.value, cells.max, text.value))

    widget.status.subscribe(on_cell)
    result = run_pipeline(pipeline, cwd=tmp_path, workers=1, subscribers=[widget.status])
    assert result.status == "SUCCESS"
    assert seen, "no CellExecuted event reached the status"
    cells, steps, value, top, detail = seen[-1]
    assert cells is not None and cells[0] == cells[1] >= 3
    assert (value, top) == cells and f"Cells: cell {cells[0]}/{cells[1]}" in detail
    # the step bar counts steps that succeeded, nothing else: a running notebook's cells have their own bar
    assert {s for _, s, _, _, _ in seen} == {0.0}
    assert [c for c, _, _, _, _ in seen] == sorted(c for c, _, _, _, _ in seen)  # cells only move forward
    notebook_out, log = widget.status.snapshot().outputs["Fan.nb.Cells"]
    assert notebook_out and Path(notebook_out).is_file() and log and "cell 2 1" in Path(log).read_text()
    assert re.search(r'xlink:href="[^"]*_out\.ipynb"', widget.last_svg)


def test_a_failed_task_shows_failed_with_its_message_and_later_steps_skipped(tmp_path: Path) -> None:
    pipeline = load_yaml("""
dag:
  start_at: Fan
  steps:
    Fan:
      type: parallel
      next: Later
      branches:
        good:
          start_at: ok
          steps:
            ok: {type: task, command_type: shell, command: "echo fine", next: success}
            success: {type: success}
            fail: {type: fail}
        bad:
          start_at: broken
          steps:
            broken: {type: task, command_type: shell, command: "echo '<oops>' >&2; exit 3", next: success}
            success: {type: success}
            fail: {type: fail}
    Later: {type: stub, next: success}
    success: {type: success}
    fail: {type: fail}
""")
    widget = DagWidget(pipeline, link_base=tmp_path)
    result = run_pipeline(pipeline, cwd=tmp_path, workers=2, subscribers=[widget.status])
    assert result.status == "FAIL"
    snap = widget.status.snapshot()
    assert snap.state("Fan.bad.broken") == "failed" and snap.state("Fan.bad.fail") == "failed"
    assert snap.state("Fan.good.ok") == "success" and snap.state("Fan") == "failed"
    assert snap.state("Later") == "skipped" and snap.state("fail") == "failed"
    drawn = node_states(widget.last_svg)
    ids = widget.picture._ids
    assert drawn[ids["Fan.bad.broken"]] == "failed" and drawn[ids["Later"]] == "skipped"
    styles = {row.children[0].value.split(">")[1].split("<")[0]: row.children[1].bar_style
              for row in widget.bars.children}
    assert styles == {"pipeline": "danger", "Fan.good": "success", "Fan.bad": "danger"}
    # a failed step is not a done one: bars count what succeeded and say where a branch failed
    bars = {row.children[0].value.split(">")[1].split("<")[0]: (row.children[1].value, row.children[1].max,
                                                               row.children[3].value)
            for row in widget.bars.children}
    assert bars["Fan.bad"][:2] == (0, 1) and "0/1 steps succeeded" in bars["Fan.bad"][2]
    assert "failed at <b>broken</b>" in bars["Fan.bad"][2]
    assert bars["Fan.good"][:2] == (1, 1) and "failed at" not in bars["Fan.good"][2]
    assert bars["pipeline"][:2] == (0, 2) and "failed at <b>Fan</b>" in bars["pipeline"][2]
    assert "FAIL" in widget.line.value and "✘ Fan.bad.broken" in widget.line.value
    assert "<oops>" not in widget.line.value
