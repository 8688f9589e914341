"""One click from a failed task's DAG node to its executed notebook, at the failing cell, in real Lab.

A notebook declares a two-branch pipeline whose ``bad`` branch raises in the third code
cell of its notebook (below two long outputs, so the cell starts out of view), runs it
with ``%magnus_run``, then clicks that node in the live DAG widget: the executed notebook
must open in a Lab tab with the failing cell active and scrolled into view. Then the
same by keyboard: Tab to the link, Enter. Every wait is for a condition in the page.
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
from .test_lab import KERNEL_START, _open, _run_all, _wait_all_ran, _write_notebook

pytestmark = pytest.mark.slow

RUN = 150_000  # ms for the two-branch run: each branch a papermill kernel on a loaded 2-core machine
OPENED = 30_000  # ms for the output notebook to open in a tab and reach its failing cell
FOLDER = "open_links"  # links are relative to the notebook's folder: not the server root here
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# The DOM facts the assertions need, read in one go: the application's current tab (Lab marks
# it jp-mod-current, whichever dock area it is in), its active cell, whether that cell is inside
# the scrolled notebook's visible area.
_CURRENT_JS = """() => {
  const tab = document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current');
  const panel = tab ? document.getElementById(tab.dataset.id) : null;
  if (!panel || !panel.classList.contains('jp-NotebookPanel')) {
    return {tab: tab ? tab.textContent.trim() : null};
  }
  const cells = Array.from(panel.querySelectorAll('.jp-Cell'));
  const active = panel.querySelector('.jp-Cell.jp-mod-active');
  const scroller = panel.querySelector('.jp-WindowedPanel-outer') || panel.querySelector('.jp-Notebook');
  const view = scroller.getBoundingClientRect();
  const box = active ? active.getBoundingClientRect() : null;
  return {
    tab: tab.querySelector('.lm-TabBar-tabLabel').textContent.trim(),
    cells: cells.length,
    index: active ? cells.indexOf(active) : -1,
    source: active ? (active.querySelector('.jp-InputArea-editor') || active).textContent : '',
    inView: !!box && box.top >= view.top - 1 && box.top < view.bottom && box.bottom > view.top,
    scrollTop: scroller.scrollTop,
    commandMode: panel.querySelector('.jp-Notebook').classList.contains('jp-mod-commandMode'),
  };
}"""


def _task_notebook(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def _current(page: Page) -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.evaluate(_CURRENT_JS)
    return result


def _wait_opened(page: Page, name: str, cell: int) -> dict[str, Any] | None:
    """Poll until the current tab is ``name`` with cell ``cell`` active and in view; the last state."""
    deadline = time.monotonic() + OPENED / 1000
    while True:
        state = _current(page)
        there = state is not None and state["tab"] == name and state.get("index") == cell
        if (there and state is not None and state.get("inView")) or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(200)  # polling interval, not an assertion


def _assert_at_failing_cell(state: dict[str, Any] | None, name: str, cell: int) -> None:
    """The executed notebook ``name`` is the current tab, its failing cell active and scrolled into view."""
    assert state is not None and state["tab"] == name, f"the output notebook did not open in a tab: {state}"
    assert state["index"] == cell and "raise ValueError" in state["source"], f"wrong active cell: {state}"
    assert state["inView"] and state["scrollTop"] > 0, f"the failing cell was not scrolled into view: {state}"


def assert_no_record_kernels(server: Lab, before: set[str]) -> None:
    """No session for any run record and no kernel beyond ``before``: opening a record starts none."""
    sessions: list[dict[str, Any]] = server.api("/api/sessions")  # type: ignore[assignment]
    kernels: list[dict[str, Any]] = server.api("/api/kernels")  # type: ignore[assignment]
    records = [session["path"] for session in sessions if ".catalog/" in session["path"]]
    assert not records, f"opening run records started sessions for them: {records}"
    started = {kernel["id"] for kernel in kernels} - before
    assert not started, f"opening run records started kernels: {started}"


def wait_session_settled(page: Page) -> None:
    """Wait until every open document's session context is ready: a kernel one starts has started."""
    ready = """() => Promise.all(Array.from(window.jupyterapp.shell.widgets('main'))
        .filter(widget => widget.sessionContext).map(widget => widget.sessionContext.ready))
        .then(() => true)"""
    page.wait_for_function(ready, timeout=OPENED)


def _failed_link(output: Locator) -> Locator:
    return output.locator('svg[id^="magnus-dag-"] a[data-magnus-cell]')


def _pipeline(folder: Path, run: bool) -> None:
    """Two branches, ``bad`` raising in its notebook's third code cell, below two long outputs."""
    folder.mkdir(exist_ok=True)
    long_output = "for i in range(60):\n    print('line', i)"
    _task_notebook(folder / "train_ok.ipynb", ["x = 1", "print(x)"])
    _task_notebook(folder / "train_bad.ipynb", [
        long_output, long_output, "raise ValueError('deliberate failure in the third cell')",
        "print('never')",
    ])
    _write_notebook(folder / "driver.ipynb", [
        "%load_ext magnus_jupyter",
        '%%magnus_parallel "Train"\ngood: train_ok.ipynb\nbad: train_bad.ipynb',
        *(["%magnus_run --workers 2"] if run else []),
    ])


def _run_driver(page: Page, lab: Lab, folder_name: str, workspace: str) -> tuple[Locator, str, int]:
    """Run the driver notebook (its pipeline fails in train_bad) and find the failed node's link:
    the link, its path (relative to the driver's folder, in .catalog/) and the failing cell."""
    _open(page, lab, f"{folder_name}/driver.ipynb", workspace)
    _run_all(page)
    _wait_all_ran(page, 3, RUN)
    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(2).locator(".jp-OutputArea").first
    link = _failed_link(output)
    expect(link).to_have_count(1, timeout=RUN)
    path, cell_attr = link.get_attribute("data-magnus-path"), link.get_attribute("data-magnus-cell")
    assert path is not None and cell_attr is not None and path.startswith(".catalog/")
    cell = int(cell_attr)
    assert "raise ValueError" in nbformat.read(lab.root / folder_name / path, as_version=4).cells[cell].source
    return link, path, cell


def test_a_failed_node_opens_its_notebook_at_the_failing_cell(lab: Lab, page: Page, artifacts: Path) -> None:
    folder = lab.root / FOLDER
    _pipeline(folder, run=True)
    link, path, cell = _run_driver(page, lab, FOLDER, "open-links")
    # the toolbar buttons the extension adds are named for screen readers
    run_button = page.locator('.jp-NotebookPanel-toolbar [data-command="magnus:run-pipeline"]')
    expect(run_button).to_have_attribute("aria-label", "Run pipeline", timeout=KERNEL_START)
    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(2).locator(".jp-OutputArea").first
    assert path.endswith("_out.ipynb") and "bad" in path
    label = link.get_attribute("aria-label") or ""
    assert re.fullmatch(r"open output notebook of step .*bad.* \(failed at cell \[\d+\]\)", label), label
    assert link.get_attribute("tabindex") == "0"
    name = Path(path).name
    output.screenshot(path=str(artifacts / "lab-open-failed-dag.png"))
    kernels = {kernel["id"] for kernel in lab.api("/api/kernels")}  # type: ignore[attr-defined]

    # a plain click: the executed notebook opens in a Lab tab at the failing cell
    link.click()
    state = _wait_opened(page, name, cell)
    page.screenshot(path=str(artifacts / "lab-open-failing-cell.png"))
    _assert_at_failing_cell(state, name, cell)
    wait_session_settled(page)
    assert_no_record_kernels(lab, kernels)  # opened as a plain file here, still a record: no kernel
    assert state["commandMode"], "the notebook opened in edit mode: arrows would move the cursor, not cells"
    assert page.get_by_role("dialog").count() == 0
    # this server serves hidden files itself (allow_hidden): the record opens as a plain, writable file
    opened = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert opened == f"{FOLDER}/{path}", opened

    # by keyboard: back to the driver, close the output tab, Tab to the link and press Enter
    tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
    tabs.filter(has_text=name).locator(".lm-TabBar-tabCloseIcon").click()
    # opened to read (no kernel), nothing changed it: closing asks nothing
    expect(tabs.filter(has_text=name)).to_have_count(0)
    assert page.get_by_role("dialog").count() == 0
    tabs.filter(has_text="driver.ipynb").click()
    other = output.locator('svg[id^="magnus-dag-"] a[data-magnus-path]:not([data-magnus-cell])').first
    other.focus()
    reached = False
    for _ in range(12):  # the two task nodes are neighbours in tab order; a bound, not a timing
        page.keyboard.press("Tab")
        if link.evaluate("el => el === document.activeElement"):
            reached = True
            break
    assert reached, "Tab never reached the failed node's link"
    ring = link.evaluate("el => getComputedStyle(el.querySelector('path, polygon, ellipse')).strokeWidth")
    assert ring == "3px", f"no visible focus ring on the focused node: stroke-width {ring}"
    output.screenshot(path=str(artifacts / "lab-open-focused-node.png"))
    page.keyboard.press("Enter")
    state = _wait_opened(page, name, cell)
    assert state is not None and state["tab"] == name and state["index"] == cell and state["inView"], \
        f"Enter on the focused link did not open the failing cell: {state}"
    page.screenshot(path=str(artifacts / "lab-open-by-keyboard.png"))


def test_a_branch_bar_link_in_the_side_panel_opens_the_failing_cell(lab: Lab, page: Page,
                                                                      artifacts: Path) -> None:
    """The toolbar's Run pipeline shows the widget in a panel beside the notebook: its links
    resolve against that notebook's folder, and the failed branch bar's link opens the cell."""
    folder = lab.root / f"{FOLDER}_side"
    _pipeline(folder, run=False)
    _open(page, lab, f"{folder.name}/driver.ipynb", "open-links-side")
    _run_all(page)
    _wait_all_ran(page, 2, RUN)
    run_button = page.locator('.jp-NotebookPanel-toolbar [data-command="magnus:run-pipeline"]')
    expect(run_button).to_have_attribute("aria-disabled", "false", timeout=KERNEL_START)
    run_button.click()
    panel = page.locator(".jp-magnus-output")
    # the bar's link (the SVG's have xlink:href; the failure line links the file by its name)
    link = panel.locator("a[href][data-magnus-cell]").filter(has_text=re.compile(r"^notebook$"))
    expect(link).to_have_count(1, timeout=RUN)
    expect(link).to_have_text("notebook")
    path, cell_attr = link.get_attribute("data-magnus-path"), link.get_attribute("data-magnus-cell")
    assert path is not None and cell_attr is not None
    cell = int(cell_attr)
    assert "raise ValueError" in nbformat.read(folder / path, as_version=4).cells[cell].source
    assert re.fullmatch(r"open output notebook of step Train\.bad\.\S+ \(failed at cell \[\d+\]\)",
                        link.get_attribute("aria-label") or "")
    panel.screenshot(path=str(artifacts / "lab-open-side-panel.png"))

    link.click()
    name = Path(path).name
    state = _wait_opened(page, name, cell)
    page.screenshot(path=str(artifacts / "lab-open-from-bar.png"))
    assert state is not None and state["tab"] == name and state["index"] == cell and state["inView"], \
        f"the bar's link did not open the failing cell: {state}"
    assert "raise ValueError" in state["source"]
