"""Notebook 7: a failed node's link opens its executed notebook read-only, at the failing cell, no kernel.

Notebook 7 runs JupyterLab's plugins (ours among them) in a shell of its own that shows one
document per browser tab: a link opens the record in a new tab. A default ``jupyter notebook``
(no allow_hidden) on 127.0.0.1 runs a pipeline whose ``bad`` branch raises; a click on the
failed node must open a tab with the record read-only through the magnus drive, its failing
cell active and in view, and the server must show no kernel for any record opened. The driver,
saved and reopened once its kernel is gone, shows the run's static final picture.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from magnus_jupyter.widget.picture import NODE_FILL

from .conftest import Lab
from .test_extension_open import OPENED, RUN, _pipeline, assert_no_record_kernels, wait_session_settled
from .test_lab import KERNEL_START, _rgb, _run_all
from .test_widget_states import _STATES_JS, NOT_FOUND, WIDGET, _final, _save_and_read, _shutdown

pytestmark = pytest.mark.slow

FOLDER = "nb7_open"
SAVED = "nb7_saved"

# The one document of a Notebook 7 page, read in one go: its path, whether it may be written,
# its active cell and whether that cell is inside the visible part of the page.
_DOCUMENT_JS = """() => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const panel = document.querySelector('.jp-NotebookPanel');
  if (!widget || !widget.context || !panel) {
    return null;
  }
  const cells = Array.from(panel.querySelectorAll('.jp-Cell'));
  const active = panel.querySelector('.jp-Cell.jp-mod-active');
  const box = active ? active.getBoundingClientRect() : null;
  const top = document.getElementById('top-panel-wrapper') || document.getElementById('top-panel');
  const visibleTop = top ? top.getBoundingClientRect().bottom : 0;
  const model = widget.context.contentsModel;
  return {
    path: widget.context.path,
    writable: model ? model.writable : null,
    cells: cells.length,
    index: active ? cells.indexOf(active) : -1,
    source: active ? (active.querySelector('.jp-InputArea-editor') || active).textContent : '',
    inView: !!box && box.top >= visibleTop - 1 && box.top < window.innerHeight && box.bottom > visibleTop,
    commandMode: panel.querySelector('.jp-Notebook').classList.contains('jp-mod-commandMode'),
  };
}"""


def _page(server: Lab, route: str, path: str) -> str:
    return f"{server.url}/{route}/{path}?token={server.token}"


def _document(page: Page) -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.evaluate(_DOCUMENT_JS)
    return result


def _wait_kernel_idle(page: Page) -> None:
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
        timeout=KERNEL_START)


def _wait_all_ran(page: Page, cells: int) -> None:
    """Every code cell shows an execution count, then the kernel is idle (Notebook 7 has no status bar)."""
    deadline = time.monotonic() + RUN / 1000
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")
    expect(prompts).to_have_count(cells)
    for index in range(cells):
        left = max(1_000.0, (deadline - time.monotonic()) * 1000)
        expect(prompts.nth(index)).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=left)
    _wait_kernel_idle(page)


def _wait_at_cell(page: Page, cell: int) -> dict[str, Any] | None:
    """Poll until the record's cell ``cell`` is active and in view; the last state seen."""
    deadline = time.monotonic() + OPENED / 1000
    while True:
        state = _document(page)
        there = state is not None and state["index"] == cell and state["inView"]
        if there or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(200)  # polling interval, not an assertion


def _open_in_new_tab(page: Page, link: Locator) -> Page:
    """Click ``link`` and return the browser tab it opens (Notebook 7 shows one document per tab)."""
    with page.context.expect_page(timeout=OPENED) as opened:
        link.click()
    record = opened.value
    record.wait_for_load_state()
    record.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=OPENED)
    wait_session_settled(record)
    return record


def _run_driver(server: Lab, page: Page, path: str) -> Locator:
    """Open the driver notebook ``path`` in Notebook 7, run all its cells (its pipeline fails in the
    bad branch) and return the output of its run cell."""
    page.goto(_page(server, "notebooks", path), timeout=KERNEL_START)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=KERNEL_START)
    _wait_kernel_idle(page)
    _run_all(page)  # Run > Run All Cells: Notebook 7's menu is Lab's
    _wait_all_ran(page, 3)
    return page.locator(".jp-NotebookPanel .jp-CodeCell").nth(2).locator(".jp-OutputArea").first


def test_a_failed_node_opens_its_record_at_the_failing_cell_without_a_kernel(
        notebook7: Lab, page: Page, artifacts: Path) -> None:
    folder = notebook7.root / FOLDER
    _pipeline(folder, run=True)
    output = _run_driver(notebook7, page, f"{FOLDER}/driver.ipynb")
    failed = output.locator('svg[id^="magnus-dag-"] a[data-magnus-cell]')
    expect(failed).to_have_count(1, timeout=RUN)
    path, cell_attr = failed.get_attribute("data-magnus-path"), failed.get_attribute("data-magnus-cell")
    assert path is not None and cell_attr is not None and path.startswith(".catalog/")
    cell = int(cell_attr)
    record = nbformat.read(folder / path, as_version=4)
    assert "raise ValueError" in record.cells[cell].source
    output.screenshot(path=str(artifacts / "nb7-open-failed-dag.png"))
    driver_kernels = {kernel["id"] for kernel in notebook7.api("/api/kernels")}  # type: ignore[attr-defined]

    tab = _open_in_new_tab(page, failed)
    state = _wait_at_cell(tab, cell)
    tab.screenshot(path=str(artifacts / "nb7-open-failing-cell.png"))
    assert state is not None and state["path"] == f"magnus:{FOLDER}/{path}", state
    assert state["writable"] is False, f"the record did not open read-only: {state}"
    assert state["cells"] == len(record.cells), state
    assert state["index"] == cell and "raise ValueError" in state["source"], f"wrong active cell: {state}"
    assert state["inView"] and state["commandMode"], f"the failing cell is not in view: {state}"

    # the succeeded branch's record too: a second record, still no kernel for either
    good = output.locator('svg[id^="magnus-dag-"] a[data-magnus-path*="good"]').first
    other = _open_in_new_tab(page, good)
    state = _document(other)
    assert state is not None and "good" in state["path"] and state["writable"] is False, state
    assert_no_record_kernels(notebook7, driver_kernels)
    other.close()
    tab.close()


def test_a_saved_notebook_reopened_shows_the_final_picture(notebook7: Lab, page: Page,
                                                            artifacts: Path) -> None:
    """A notebook that ran a pipeline (its bad branch failed), saved in Notebook 7 and reopened after
    its kernel was shut down: the run's widget models are gone with that kernel, and the page shows
    the static final picture (the coloured DAG, the bars, the summary), never "model not found"."""
    folder = notebook7.root / SAVED
    _pipeline(folder, run=True)
    driver = f"{SAVED}/driver.ipynb"
    output = _run_driver(notebook7, page, driver)
    live = _final(page, output, RUN)
    assert live["widget"] == 0 and live["bars"], f"the run did not end with the final picture: {live}"
    nb = _save_and_read(page, folder / "driver.ipynb", 2)
    assert not [out for out in nb.cells[2].outputs if WIDGET in out.get("data", {})], nb.cells[2].outputs
    page.goto("about:blank")  # the tab closed, then its kernel shut down: the run's widget models are gone
    _shutdown(notebook7, driver)
    sessions: list[dict[str, Any]] = notebook7.api("/api/sessions")  # type: ignore[assignment]
    assert not [session for session in sessions if session["path"] == driver], sessions

    # reopened as a user reopens it (Notebook 7 starts a fresh kernel for the page, which knows
    # nothing of the run's widgets)
    page.goto(_page(notebook7, "notebooks", driver), timeout=KERNEL_START)
    panel = page.locator(".jp-NotebookPanel")
    run = panel.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea").first
    drawing = run.locator('svg[id^="magnus-dag-"]')
    expect(drawing).to_be_visible(timeout=KERNEL_START)
    expect(drawing.locator('g.node[data-state="failed"]')).to_have_count(1)
    expect(run.locator('img[id$="-copy"]')).to_be_hidden()  # signed at save (trusted): the linked drawing
    wait_session_settled(page)  # the page's session has started: a widget view would now find no model
    expect(panel.get_by_text(NOT_FOUND)).to_have_count(0)
    state = run.evaluate(_STATES_JS)
    failed = [node for node in state["nodes"].values() if node["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["fill"] == _rgb(NODE_FILL["failed"]), state["nodes"]
    # the pipeline's bar and the bad branch's say failed, the good branch's succeeded
    assert sorted(bar[0] for bar in state["bars"]) == ["failed", "failed", "success"], state["bars"]
    assert "failed at" in state["text"] and "FAIL" in state["text"], state["text"]
    run.screenshot(path=str(artifacts / "nb7-widget-reopened.png"))
