"""The DAG widget's states in real JupyterLab: failed, cancelled, reused, and the saved picture.

A notebook runs a pipeline that fails (one branch fails, fail_fast cancels the
other), then retries it (the succeeded step is reused); another is interrupted
from Lab's toolbar. Each state is read from the page (node states and computed
colours, the bars) and kept as a screenshot in test-artifacts/. Then the saved
notebook is reopened without a kernel: the final picture is there, not "Error
displaying widget: model not found", trusted or not.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from magnus_jupyter.widget.picture import NODE_FILL

from .conftest import Lab
from .test_lab import KERNEL_START, _open, _rgb, _run_all, _wait_all_ran, _wait_idle, _write_notebook

pytestmark = pytest.mark.slow

RUN = 180_000  # ms for the run and its retry: a papermill kernel and shell tasks on a loaded 2-core machine
WIDGET = "application/vnd.jupyter.widget-view+json"
NOT_FOUND = "model not found"

# Every node of an output's DAG by its label: its state and computed fill; every bar's state.
_STATES_JS = """(output) => {
  const svg = output.querySelector('svg[id^="magnus-dag-"]');
  const nodes = {};
  for (const g of svg ? svg.querySelectorAll('g.node[data-state]') : []) {
    const shape = g.querySelector('path, polygon, ellipse');
    const label = Array.from(g.querySelectorAll('text')).map(t => t.textContent).join(' ');
    const link = g.querySelector('a[data-magnus-path]');
    nodes[label] = {state: g.dataset.state, fill: shape ? getComputedStyle(shape).fill : '',
                    path: link ? link.getAttribute('data-magnus-path') : null,
                    label: link ? link.getAttribute('aria-label') : null};
  }
  const clusters = {};
  for (const g of svg ? svg.querySelectorAll('g.cluster[data-state]') : []) {
    clusters[g.querySelector('text').textContent] = g.dataset.state;
  }
  return {
    nodes, clusters,
    bars: Array.from(output.querySelectorAll('.magnus-bar')).map(
      b => [b.dataset.state, +b.dataset.value, +b.dataset.max]),
    widget: output.querySelectorAll('.jupyter-widgets, .widget-hprogress').length,
    legend: svg ? Array.from(svg.querySelectorAll('g.legend text')).map(t => t.textContent) : [],
    text: output.innerText,
  };
}"""


def _cell_output(page: Page, index: int) -> Locator:
    return page.locator(".jp-NotebookPanel .jp-CodeCell").nth(index).locator(".jp-OutputArea").first


def _final(page: Page, output: Locator, timeout: float) -> dict[str, Any]:
    """Poll until the output holds the final static picture (progress bars, no widget); its state."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        state: dict[str, Any] = output.evaluate(_STATES_JS)
        if (state["bars"] and not state["widget"]) or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(200)  # polling interval, not an assertion


def _run_log(folder: Path, status: str) -> dict[str, Any]:
    logs = [json.loads(p.read_text()) for p in (folder / ".run_log_store").glob("*.json")]
    [log] = [log for log in logs if log["status"] == status]
    return log


def _save_and_read(page: Page, saved: Path, cell: int) -> nbformat.NotebookNode:
    """Save the page's notebook as its user would (Lab's and Notebook 7's save command) and read the
    file once its cell ``cell`` holds a display_data output (the picture a run leaves)."""
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while True:
        nb = nbformat.read(saved, as_version=4)
        if any(out.get("output_type") == "display_data" for out in nb.cells[cell].get("outputs", [])):
            return nb
        assert time.monotonic() < deadline, f"the notebook was not saved: {saved}"
        time.sleep(0.2)  # polling interval, not an assertion


def test_a_failed_run_and_its_retry_show_failed_cancelled_and_reused(lab: Lab, page: Page,
                                                                       artifacts: Path) -> None:
    folder = lab.root / "states"
    folder.mkdir()
    _write_notebook(folder / "states.ipynb", [
        "%load_ext magnus_jupyter",
        '%%magnus_step "Prepare"\nprepared = 1\nprint("prepared")',
        '%%magnus_step "Broken" --shell --branch Fan/bad\n'
        "test -e fixed || { while [ ! -e started ]; do sleep 0.1; done; exit 3; }",
        '%%magnus_step "Slow" --shell --branch Fan/slow\ntest -e fixed || { touch started; sleep 120; }',
        '%magnus_parallel "Fan" --failure-policy fail_fast',
        "%magnus_run --workers 2",
        "from pathlib import Path; Path('fixed').touch()",
        "%magnus_retry",
    ])
    page.set_viewport_size({"width": 1400, "height": 2400})
    _open(page, lab, "states/states.ipynb", "widget-states")
    _run_all(page)
    _wait_all_ran(page, 8, RUN)

    # the first run: Broken failed, fail_fast cancelled Slow; each says so, in its own colour
    first = _cell_output(page, 5)
    state = _final(page, first, RUN)
    first.screenshot(path=str(artifacts / "lab-widget-failed.png"))
    assert state["widget"] == 0 and NOT_FOUND not in state["text"]
    nodes = state["nodes"]
    tasks = ("Prepare", "Broken", "Slow")
    assert {name: nodes[name]["state"] for name in tasks} == {
        "Prepare": "success", "Broken": "failed", "Slow": "cancelled"}, nodes
    for name in ("Broken", "Slow", "Prepare"):
        assert nodes[name]["fill"] == _rgb(NODE_FILL[nodes[name]["state"]]), nodes[name]
    assert state["clusters"]["bad"] == "failed" and state["clusters"]["slow"] == "cancelled"
    # bars count what succeeded: 1 of 2 for the pipeline, none in either branch
    assert state["bars"] == [["failed", 1, 2], ["failed", 0, 1], ["cancelled", 0, 1]], state["bars"]
    assert "failed at Broken" in state["text"] and "cancelled at Slow" in state["text"]
    assert state["legend"] == ["pending", "running", "succeeded", "reused", "failed", "cancelled", "not run"]
    old = _run_log(folder, "FAIL")["run_id"]

    # the retry: Prepare is reused from the first run, and opens that run's executed notebook
    second = _cell_output(page, 7)
    state = _final(page, second, RUN)
    second.screenshot(path=str(artifacts / "lab-widget-reused.png"))
    nodes = state["nodes"]
    assert {name: nodes[name]["state"] for name in tasks} == {
        "Prepare": "reused", "Broken": "success", "Slow": "success"}, nodes
    assert nodes["Prepare"]["fill"] == _rgb(NODE_FILL["reused"])
    assert nodes["Prepare"]["path"] == f".catalog/{old}/Prepare_out.ipynb"
    assert (folder / nodes["Prepare"]["path"]).is_file()
    assert nodes["Prepare"]["label"] == f"open output notebook of step Prepare (reused from run {old})"
    assert state["bars"][0] == ["success", 2, 2] and "1 reused" in state["text"]

    # saved as Lab saves it: the file keeps the pictures, no widget view that would find no model
    nb = _save_and_read(page, folder / "states.ipynb", 5)
    shown = [out for cell in nb.cells for out in cell.get("outputs", [])
             if out.get("output_type") == "display_data"]
    assert len(shown) == 2 and not [out for out in shown if WIDGET in out["data"]]


def _shutdown(lab: Lab, path: str) -> None:
    """Shut down the kernel of ``path``'s session: the notebook is reopened with none running."""
    sessions = lab.api("/api/sessions")
    assert isinstance(sessions, list)
    for session in sessions:
        if session.get("path") == path:
            request = urllib.request.Request(f"{lab.url}/api/sessions/{session['id']}", method="DELETE",
                                             headers={"Authorization": f"token {lab.token}"})
            urllib.request.urlopen(request, timeout=30).close()


def _reopen(page: Page, lab: Lab, path: str, workspace: str) -> Locator:
    """Open ``path`` in a fresh page of Lab without starting a kernel; its notebook panel."""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}?token={lab.token}", timeout=KERNEL_START)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=KERNEL_START)
    page.evaluate("() => window.jupyterapp.restored")
    page.evaluate("(path) => window.jupyterapp.commands.execute('docmanager:open', "
                  "{path, kernelPreference: {shouldStart: false}})", path)
    panel = page.locator(".jp-NotebookPanel")
    expect(panel).to_have_count(1, timeout=KERNEL_START)
    expect(panel.locator(".jp-OutputArea-output").first).to_be_visible(timeout=KERNEL_START)
    return panel


def test_a_saved_notebook_reopened_without_a_kernel_shows_the_final_picture(lab: Lab, page: Page,
                                                                              artifacts: Path) -> None:
    """After the test above saved it. Signed by this server (trusted): the linked drawing; changed
    elsewhere (untrusted, Lab sanitises its HTML): the drawing's image copy. Never "model not found"."""
    saved = lab.root / "states" / "states.ipynb"
    if not saved.is_file():
        pytest.fail("the run test before this one did not leave its saved notebook")
    _shutdown(lab, "states/states.ipynb")
    page.set_viewport_size({"width": 1400, "height": 2400})
    panel = _reopen(page, lab, "states/states.ipynb", "widget-reopened")
    expect(page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"^No Kernel"))).to_be_visible()
    run = panel.locator(".jp-CodeCell").nth(5).locator(".jp-OutputArea").first
    expect(run.locator('svg[id^="magnus-dag-"] g.node[data-state="failed"]')).to_have_count(1)
    expect(run.locator('svg[id^="magnus-dag-"]')).to_be_visible()
    expect(run.locator('img[id$="-copy"]')).to_be_hidden()  # trusted: the linked drawing, not its copy
    expect(panel.get_by_text(NOT_FOUND)).to_have_count(0)
    state = run.evaluate(_STATES_JS)
    assert state["nodes"]["Broken"]["fill"] == _rgb(NODE_FILL["failed"])
    run.screenshot(path=str(artifacts / "lab-widget-reopened.png"))

    # the same notebook changed outside Lab (its signature no longer matches): untrusted
    nb = nbformat.read(saved, as_version=4)
    nb.metadata["edited"] = "elsewhere"
    nbformat.write(nb, saved.with_name("untrusted.ipynb"))
    panel = _reopen(page, lab, "states/untrusted.ipynb", "widget-untrusted")
    run = panel.locator(".jp-CodeCell").nth(5).locator(".jp-OutputArea").first
    expect(run.locator("svg g.node")).to_have_count(0)  # the drawing was sanitised away
    copy = run.locator('img[src^="data:image/svg+xml;base64,"]')
    expect(copy).to_be_visible()
    assert copy.evaluate("img => img.naturalWidth") > 0, "the image copy did not load"
    expect(run.locator(".magnus-bar")).to_have_count(3)
    expect(run).to_contain_text("failed at Broken")
    assert "cluster_0" not in run.inner_text(), "the sanitised drawing's words show as text"
    expect(panel.get_by_text(NOT_FOUND)).to_have_count(0)
    run.screenshot(path=str(artifacts / "lab-widget-untrusted.png"))


def test_an_interrupted_run_reads_cancelled_and_ends_with_one_line(lab: Lab, page: Page,
                                                                    artifacts: Path) -> None:
    folder = lab.root / "interrupt"
    folder.mkdir()
    _write_notebook(folder / "interrupt.ipynb", [
        "%load_ext magnus_jupyter",
        '%%magnus_step "Nap" --shell\ntouch napping; sleep 120',
        "%magnus_run",
        "print('the cell after the run')",
    ])
    _open(page, lab, "interrupt/interrupt.ipynb", "widget-interrupt")
    _run_all(page)
    output = _cell_output(page, 2)
    running = output.locator('svg[id^="magnus-dag-"] g.node[data-state="running"]')
    expect(running).to_have_count(1, timeout=RUN)
    # the cell is busy with the run: no Stop button that could not be handled, but how to stop it
    expect(output.get_by_role("button", name=re.compile("Stop"))).to_have_count(0)
    expect(output).to_contain_text("interrupt the kernel")
    deadline = time.monotonic() + RUN / 1000
    while not (folder / "napping").exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:interrupt-kernel']").click()
    state = _final(page, output, RUN)
    _wait_idle(page, RUN)
    output.screenshot(path=str(artifacts / "lab-widget-cancelled.png"))
    assert state["nodes"]["Nap"]["state"] == "cancelled", state["nodes"]
    assert state["nodes"]["Nap"]["fill"] == _rgb(NODE_FILL["cancelled"])
    assert state["bars"] == [["cancelled", 0, 1]] and "FAIL (cancelled)" in state["text"]
    errors = output.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert [text.strip() for text in errors] == ["interrupted: the run was cancelled, its tasks stopped"]
    # the interrupt stopped Run All: the next cell did not run
    after = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(3)
    expect(after.locator(".jp-OutputArea-output")).to_have_count(0)
