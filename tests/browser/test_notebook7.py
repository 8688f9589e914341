"""Notebook 7: a failed node's link opens its executed notebook read-only, at the failing cell, no kernel.

Notebook 7 runs JupyterLab's plugins (ours among them) in a shell of its own that shows one
document per browser tab: a link opens the record in a new tab. A default ``jupyter notebook``
(no allow_hidden) on 127.0.0.1 runs a pipeline whose ``bad`` branch raises; a click on the
failed node must open a tab with the record read-only through the magnus drive, its failing
cell active and in view, and the server must show no kernel for any record opened.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import Lab
from .test_extension_open import OPENED, RUN, _pipeline, assert_no_record_kernels, wait_session_settled
from .test_lab import KERNEL_START, _run_all

pytestmark = pytest.mark.slow

FOLDER = "nb7_open"

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


def test_a_failed_node_opens_its_record_at_the_failing_cell_without_a_kernel(
        notebook7: Lab, page: Page, artifacts: Path) -> None:
    folder = notebook7.root / FOLDER
    _pipeline(folder, run=True)
    page.goto(_page(notebook7, "notebooks", f"{FOLDER}/driver.ipynb"), timeout=KERNEL_START)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=KERNEL_START)
    _wait_kernel_idle(page)
    _run_all(page)  # Run > Run All Cells: Notebook 7's menu is Lab's
    _wait_all_ran(page, 3)
    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(2).locator(".jp-OutputArea").first
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
