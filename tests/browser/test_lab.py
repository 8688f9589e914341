"""The magics and the live DAG widget as a user meets them: JupyterLab in Chromium.

Every wait is for a condition in the page (kernel idle, an output, a colour in
the SVG) with an explicit timeout; nothing sleeps and then asserts.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT, Lab

pytestmark = pytest.mark.slow

KERNEL_START = 90_000  # ms for the kernel to start and go idle on a loaded 2-core machine
SMOKE_RUN = 60_000  # ms for the smoke notebook's cells (declaring only, nothing executes)
DEMO_RUN = 120_000  # ms for the whole demo: every step a papermill kernel, branches in parallel
DEMO = ROOT / "notebooks" / "parallel_demo.ipynb"


def _write_notebook(path: Path, sources: list[str]) -> None:
    """A notebook with a kernelspec, so Lab starts the kernel without asking which one."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def _open(page: Page, lab: Lab, path: str) -> None:
    """Open a notebook in Lab and wait until its kernel is idle."""
    page.goto(lab.tree(path), timeout=KERNEL_START)
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=KERNEL_START)
    _wait_idle(page, KERNEL_START)


def _wait_idle(page: Page, timeout: float) -> None:
    """The status bar says the kernel is connected and idle.

    (The toolbar's execution indicator reads "idle" before any kernel is connected, and
    a run started then makes Lab ask which kernel to use.)
    """
    status = page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"^Python 3.* \| Idle$"))
    expect(status).to_be_visible(timeout=timeout)


def _run_all(page: Page) -> None:
    """Run > Run All Cells, through Lab's own menu, as a user does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu").get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()


def _wait_all_ran(page: Page, cells: int, timeout: float) -> None:
    """Every code cell shows an execution count (no `[*]`, no blank), and the kernel is idle."""
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")
    expect(prompts).to_have_count(cells)
    for index in range(cells):
        expect(prompts.nth(index)).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=timeout)
    _wait_idle(page, timeout)


def _errors(page: Page) -> list[str]:
    """Texts of error outputs (tracebacks and UsageErrors) in the notebook."""
    errors = ".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']"
    return page.locator(errors).all_inner_texts()


def test_magics_declare_and_show_yaml(lab: Lab, page: Page, artifacts: Path) -> None:
    """%load_ext, two %%magnus_step cells and %magnus_yaml, run from Lab's menu, show the YAML."""
    _write_notebook(lab.root / "smoke.ipynb", [
        "%load_ext magnus_jupyter",
        '%%magnus_step "Get Features" --returns n_rows\nn_rows = 10',
        '%%magnus_step "Report"\nprint(n_rows)',
        "%magnus_yaml",
    ])
    _open(page, lab, "smoke.ipynb")
    _run_all(page)
    _wait_all_ran(page, 4, SMOKE_RUN)

    outputs = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(3).locator(".jp-OutputArea-output")
    expect(outputs).to_have_count(1)
    text = outputs.first.inner_text()
    for expected in ("start_at: Get Features", "Get Features:", "command_type: notebook",
                     "next: Report", "- n_rows", "type: success", "type: fail"):
        assert expected in text, f"{expected!r} missing from the %magnus_yaml output:\n{text}"
    assert _errors(page) == []
    page.screenshot(path=str(artifacts / "lab-smoke-yaml.png"), full_page=True)
