""""Run from here" in a DAG node's context menu, in real JupyterLab: the run starts at that step.

A notebook declares three shell steps in a chain and runs them with ``%magnus_run``;
then a right click on the middle step's node in the live DAG widget and "Run from
here" runs ``%magnus_run --from "Second"`` in the notebook's kernel (its output in the
panel beside the notebook): the new run log has the first step reused from the first
run and the other two run, with ``rerun_reason`` saying why. Every wait is for a
condition in the page or on disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import Lab
from .test_lab import _open, _run_all, _wait_all_ran, _write_notebook

pytestmark = pytest.mark.slow

RUN = 120_000  # ms for the three shell steps' first run, the pool's start included, on a loaded machine
FOLDER = "run_from_here"


def _logs(folder: Path) -> list[dict[str, Any]]:
    logs = []
    for path in sorted((folder / ".run_log_store").glob("*.json")):
        try:
            logs.append(json.loads(path.read_text()))
        except ValueError:  # written atomically: never torn, but be plain about it
            continue
    return logs


def test_run_from_here_starts_the_run_at_the_node(lab: Lab, page: Page, artifacts: Path) -> None:
    folder = lab.root / FOLDER
    folder.mkdir()
    _write_notebook(folder / "chain.ipynb", [
        "%load_ext magnus_jupyter",
        '%%magnus_step "First" --shell\necho first >> calls.txt',
        '%%magnus_step "Second" --shell\necho second >> calls.txt',
        '%%magnus_step "Third" --shell\necho third >> calls.txt',
        "%magnus_run --workers 1",
    ])
    _open(page, lab, f"{FOLDER}/chain.ipynb", "run-from-here")
    _run_all(page)
    _wait_all_ran(page, 5, RUN)
    assert (folder / "calls.txt").read_text().split() == ["first", "second", "third"]
    (first,) = _logs(folder)

    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(4).locator(".jp-OutputArea").first
    node = output.locator('svg[id^="magnus-dag-"] g.node[data-magnus-step="Second"]')
    expect(node).to_have_count(1, timeout=RUN)
    assert output.locator('g.node[data-magnus-step="success"]').count() == 0  # no "Run from here" there
    node.click(button="right")
    item = page.locator(".lm-Menu").get_by_role("menuitem", name="Run from here")
    expect(item).to_be_visible(timeout=10_000)
    page.screenshot(path=str(artifacts / "lab-run-from-here-menu.png"))
    item.click()

    deadline = time.monotonic() + RUN / 1000
    while True:
        logs = [log for log in _logs(folder) if log["run_id"] != first["run_id"]]
        if logs and logs[0]["status"] in ("SUCCESS", "FAIL"):
            break
        assert time.monotonic() < deadline, "the run from the context menu did not end"
        page.wait_for_timeout(200)  # polling interval, not an assertion
    (second,) = logs
    assert second["status"] == "SUCCESS", second
    steps = second["steps"]
    assert steps["First"]["reused_from"] == first["run_id"]
    assert steps["Second"]["rerun_reason"] == "asked to run (--from 'Second')"
    assert steps["Third"]["rerun_reason"] == "asked to run (--from 'Second')"
    assert (folder / "calls.txt").read_text().split() == ["first", "second", "third", "second", "third"]
    side = page.locator('[id^="magnus-output-"] .jp-OutputArea')
    expect(side.locator('svg[id^="magnus-dag-"]')).to_have_count(1, timeout=30_000)
    page.screenshot(path=str(artifacts / "lab-run-from-here-done.png"))
