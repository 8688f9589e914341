"""Links from the DAG widget to a task's files: the failing cell, the extension's attributes, labels.

The failing-cell finder is checked on notebooks papermill really executed (a
real kernel through a real run) and on hand-broken files (half-written, foreign,
``sys.exit(0)``), the attributes on the widget of that real run.
"""

from __future__ import annotations

import html
import json
import os
import re
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from magnus_jupyter.executor.engine import run_pipeline
from magnus_jupyter.widget.failing import FailedCell, FailedCells, find_failed_cell, read_failed_cell
from magnus_jupyter.widget.view import DagWidget
from magnus_jupyter.yaml_io import load_yaml

KERNELSPEC = {"name": "python3", "language": "python", "display_name": "Python 3"}

PIPELINE = """
dag:
  start_at: Train
  steps:
    Train:
      type: parallel
      next: success
      branches:
        good:
          start_at: train_ok
          steps:
            train_ok: {type: task, command_type: notebook, command: ok.ipynb, next: success}
            success: {type: success}
            fail: {type: fail}
        bad:
          start_at: train_bad
          steps:
            train_bad: {type: task, command_type: notebook, command: bad.ipynb, next: success}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


def _notebook(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_markdown_cell("# a task notebook")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def _anchors(svg: str) -> dict[str, dict[str, str]]:
    """SVG node id -> the attributes of its ``<a>`` (only the linked ones)."""
    found = {}
    for node, attrs in re.findall(r'<g id="a_(n\d+)"><a ([^>]*)>', svg):
        parsed = {k: html.unescape(v) for k, v in re.findall(r'([\w:-]+)="([^"]*)"', attrs)}
        if "xlink:href" in parsed:
            found[node] = parsed
    return found


def _html_links(markup: str) -> list[dict[str, str]]:
    return [{k: html.unescape(v) for k, v in re.findall(r'([\w:-]+)="([^"]*)"', attrs)}
            for attrs in re.findall(r"<a ([^>]*)>", markup)]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DagWidget, Path]:
    """One real run: ``train_ok`` succeeds, ``train_bad`` raises in its third code cell."""
    work = tmp_path_factory.mktemp("links")
    _notebook(work / "ok.ipynb", ["x = 1", "print(x)"])
    _notebook(work / "bad.ipynb", ["x = 1", "y = x + 1", "raise ValueError('deliberate')", "print('never')"])
    pipeline = load_yaml(PIPELINE)
    widget = DagWidget(pipeline, link_base=work)
    result = run_pipeline(pipeline, cwd=work, workers=2, subscribers=[widget.status])
    assert result.status == "FAIL"
    return widget, work


def test_the_failing_cell_of_a_really_executed_notebook(failed_run: tuple[DagWidget, Path]) -> None:
    widget, _ = failed_run
    notebook, _log = widget.status.snapshot().outputs["Train.bad.train_bad"]
    assert notebook is not None
    cell = read_failed_cell(notebook)
    assert cell is not None
    executed = nbformat.read(notebook, as_version=4)
    failing = executed.cells[cell.index]
    assert failing.cell_type == "code" and "raise ValueError" in failing.source
    assert [out.ename for out in failing.outputs if out.output_type == "error"] == ["ValueError"]
    assert cell.execution_count == failing.execution_count is not None
    # papermill put its note on top and an anchor before the cell: the index is the executed one's
    assert "papermill-error-cell" in executed.cells[cell.index - 1].source
    ok, _ = widget.status.snapshot().outputs["Train.good.train_ok"]
    assert ok is not None and read_failed_cell(ok) is None


def test_svg_nodes_carry_path_cell_and_label(failed_run: tuple[DagWidget, Path]) -> None:
    widget, work = failed_run
    ids = widget.picture._ids
    anchors = _anchors(widget.last_svg)
    assert set(anchors) == {ids["Train.good.train_ok"], ids["Train.bad.train_bad"]}
    snap = widget.status.snapshot()
    for internal in ("Train.good.train_ok", "Train.bad.train_bad"):
        attrs = anchors[ids[internal]]
        notebook, _ = snap.outputs[internal]
        assert notebook is not None
        # the path is relative to the notebook's folder; the href is the same path URL-quoted
        assert not os.path.isabs(attrs["data-magnus-path"])
        assert (work / attrs["data-magnus-path"]).resolve() == Path(notebook).resolve()
        assert urllib.parse.unquote(attrs["xlink:href"]) == attrs["data-magnus-path"]
        assert attrs["data-magnus-kind"] == "notebook" and attrs["tabindex"] == "0"
    bad, good = anchors[ids["Train.bad.train_bad"]], anchors[ids["Train.good.train_ok"]]
    cell = read_failed_cell(snap.outputs["Train.bad.train_bad"][0] or "")
    assert cell is not None and bad["data-magnus-cell"] == str(cell.index)
    assert bad["aria-label"] == f"open output notebook of step Train.bad.train_bad (failed at {cell.label()})"
    assert "data-magnus-cell" not in good
    assert good["aria-label"] == "open output notebook of step Train.good.train_ok"


def test_branch_bar_links_carry_the_same_attributes(failed_run: tuple[DagWidget, Path]) -> None:
    widget, work = failed_run
    texts = {row.children[0].value.split(">")[1].split("<")[0]: row.children[-1].value
             for row in widget.bars.children}
    bad = {link["data-magnus-kind"]: link for link in _html_links(texts["Train.bad"])}
    assert set(bad) == {"notebook", "log"}
    svg = _anchors(widget.last_svg)[widget.picture._ids["Train.bad.train_bad"]]
    for key in ("data-magnus-path", "data-magnus-cell", "aria-label"):
        assert bad["notebook"][key] == svg[key]
    assert "data-magnus-cell" not in bad["log"]
    assert bad["log"]["aria-label"] == "open log of step Train.bad.train_bad (failed)"
    assert (work / bad["log"]["data-magnus-path"]).is_file()
    good = _html_links(texts["Train.good"])
    assert good and all("data-magnus-cell" not in link for link in good)


def _raw(cells: list[dict[str, object]]) -> dict[str, object]:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def _code(outputs: list[dict[str, object]], count: int | None = None,
          **metadata: object) -> dict[str, object]:
    return {"cell_type": "code", "source": "", "metadata": metadata, "outputs": outputs,
            "execution_count": count}


ERROR = {"output_type": "error", "ename": "KeyError", "evalue": "'x'", "traceback": []}


def test_the_finder_follows_papermills_rules() -> None:
    assert find_failed_cell(_raw([_code([]), _code([ERROR], 2)])) == FailedCell(1, 2)
    # sys.exit(0) is not a failure; a later real error is
    exit0 = {"output_type": "error", "ename": "SystemExit", "evalue": "0", "traceback": []}
    exit1 = {**exit0, "evalue": "1"}
    assert find_failed_cell(_raw([_code([exit0], 1), _code([ERROR], 2)])) == FailedCell(1, 2)
    assert find_failed_cell(_raw([_code([exit1], 1)])) == FailedCell(0, 1)
    # a cell papermill marked (a timeout leaves no error output) counts; markdown never does
    marked = _code([], None, papermill={"exception": True})
    markdown = {"cell_type": "markdown", "source": "", "metadata": {"papermill": {"exception": True}}}
    assert find_failed_cell(_raw([markdown, _code([]), marked])) == FailedCell(2, None)
    assert find_failed_cell(_raw([_code([{"output_type": "stream", "name": "stderr", "text": "x"}])])) is None


@pytest.mark.parametrize("content", [
    b"", b'{"cells": [{"cell_type": "code", "outputs": [', b"\xff\xfe not utf-8", b"[1, 2]",
    b'{"cells": {"0": 1}}', b'{"cells": [1, "x", null, {"cell_type": "code", "outputs": 5}]}',
])
def test_broken_files_have_no_failing_cell(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content)
    assert read_failed_cell(path) is None
    assert read_failed_cell(tmp_path / "missing.ipynb") is None


def test_the_cache_rereads_only_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "out.ipynb"
    path.write_text(json.dumps(_raw([_code([])]))[:20], encoding="utf-8")  # half-written
    cells = FailedCells()
    assert cells(str(path)) is None and cells(str(path)) is None and cells.reads == 1
    path.write_text(json.dumps(_raw([_code([]), _code([ERROR], 7)])), encoding="utf-8")
    os.utime(path, ns=(1, 10**18))  # a distinct mtime, whatever the filesystem's resolution
    assert cells(str(path)) == FailedCell(1, 7) and cells(str(path)) == FailedCell(1, 7)
    assert cells.reads == 2
    assert cells(str(tmp_path / "gone.ipynb")) is None and cells.reads == 2
    assert FailedCell(1, 7).label() == "cell [7]" and FailedCell(4).label() == "cell number 5"


def test_a_failed_shell_task_links_its_log_without_a_cell(tmp_path: Path) -> None:
    pipeline = load_yaml("""
dag:
  start_at: broken
  steps:
    broken: {type: task, command_type: shell, command: "echo '<oops>'; exit 3", next: success}
    success: {type: success}
    fail: {type: fail}
""")
    widget = DagWidget(pipeline, link_base=tmp_path)
    assert run_pipeline(pipeline, cwd=tmp_path, workers=1, subscribers=[widget.status]).status == "FAIL"
    attrs = _anchors(widget.last_svg)[widget.picture._ids["broken"]]
    assert attrs["data-magnus-kind"] == "log" and "data-magnus-cell" not in attrs
    assert attrs["aria-label"] == "open log of step broken (failed)"
    assert "<oops>" in (tmp_path / attrs["data-magnus-path"]).read_text()
    assert widget.picture.failed_cells.reads == 0  # a log is never parsed as a notebook


def test_nodes_run_from_here_can_start_at_carry_their_internal_name() -> None:
    """data-magnus-step (what the extension's "Run from here" reads) is on task and composite nodes,
    map iterations by value once known, never on a success or fail node; names are escaped."""
    from magnus_jupyter.executor import events as ev

    pipeline = load_yaml("""
dag:
  start_at: a "quoted" <step>
  steps:
    a "quoted" <step>: {type: task, command_type: shell, command: echo, next: m}
    m:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: w
        steps:
          w: {type: task, command_type: shell, command: echo, next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
""")
    widget = DagWidget(pipeline)
    steps = set(re.findall(r'data-magnus-step="([^"]*)"', widget.last_svg))
    assert html.escape('a "quoted" <step>') in steps and "m.{item}.w" in steps
    assert not any(s.endswith(("success", "fail")) for s in steps)
    widget.status(ev.RunStarted("r", "r.json", ".", {}, 1))
    widget.status(ev.StepStarted("m", "m", "map"))
    for value in (1, 2):
        widget.status(ev.BranchStarted(f"m.{value}"))
    widget.status(ev.RunFinished("r", "SUCCESS", {}, "r.json", "."))
    steps = set(re.findall(r'data-magnus-step="([^"]*)"', widget.last_svg))
    assert {"m.1.w", "m.2.w"} <= steps
