"""The failed node's link opens its notebook at the failing cell in a DEFAULT JupyterLab.

A Lab started as a user starts it (no ``--ContentsManager.allow_hidden``) refuses the run's
``.catalog/`` folder in its contents API; the click still opens the executed notebook, through
the magnus_jupyter server extension and the lab extension's read-only "magnus" drive, and
saving it is refused with a message saying why.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from .conftest import Lab
from .test_extension_open import (
    OPENED,
    _assert_at_failing_cell,
    _pipeline,
    _run_driver,
    _wait_opened,
    assert_no_record_kernels,
    wait_session_settled,
)

pytestmark = pytest.mark.slow

FOLDER = "open_default"


def _wait_saved(lab: Lab, workspace: str, texts: list[str]) -> None:
    """Poll Lab's saved workspace until it names every text (the open tabs Lab restores on a reload)."""
    deadline = time.monotonic() + OPENED / 1000
    while True:
        saved = json.dumps(lab.api(f"/lab/api/workspaces/{workspace}"))
        if all(text in saved for text in texts):
            return
        assert time.monotonic() < deadline, f"Lab did not save its open tabs {texts}: {saved[:2000]}"
        time.sleep(0.2)  # polling interval, not an assertion


def _wait_restored(page: Page) -> None:
    """Wait until Lab has restored the page: its file browser has opened the page's address. It keeps
    ``jp-mod-restoring`` until then, and while an error it met is on screen: a dialog ends the wait too."""
    page.wait_for_function("""() => window.jupyterapp !== undefined
        && (document.querySelector('#filebrowser:not(.jp-mod-restoring)') !== null
            || document.querySelector('.jp-Dialog') !== null)""", timeout=OPENED)


def test_a_failed_node_opens_its_notebook_in_a_default_lab(default_lab: Lab, page: Page,
                                                           artifacts: Path) -> None:
    folder = default_lab.root / FOLDER
    _pipeline(folder, run=True)
    link, path, cell = _run_driver(page, default_lab, FOLDER, "open-default")
    name = Path(path).name
    # the server's own contents API refuses the record: this Lab is the default case
    with pytest.raises(urllib.error.HTTPError) as refused:
        default_lab.api(f"/api/contents/{FOLDER}/{path}")
    assert refused.value.code == 404
    kernels = {kernel["id"] for kernel in default_lab.api("/api/kernels")}  # type: ignore[attr-defined]

    link.click()
    state = _wait_opened(page, name, cell)
    page.screenshot(path=str(artifacts / "lab-default-open-failing-cell.png"))
    _assert_at_failing_cell(state, name, cell)
    assert state["cells"] == len(nbformat.read(folder / path, as_version=4).cells)
    assert page.get_by_role("dialog").count() == 0
    opened = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert opened == f"magnus:{FOLDER}/{path}", opened
    wait_session_settled(page)

    # the succeeded branch's record too: no kernel for either
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text="driver.ipynb").click()
    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(2).locator(".jp-OutputArea").first
    output.locator('svg[id^="magnus-dag-"] a[data-magnus-path*="good"]').first.click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")).to_contain_text("good")
    wait_session_settled(page)
    assert_no_record_kernels(default_lab, kernels)
    # a reload: Lab restores the open tabs, the records among them, and still starts no kernel for them
    _wait_saved(default_lab, "open-default", [f"magnus:{FOLDER}/{path}", "good"])
    # the page's address names the current tab, a record on the magnus drive: Lab's file browser
    # opens that address on a reload, and its open-path failed for a drive it does not show
    assert re.search(r"/tree/magnus(:|%3A)", page.url), page.url
    page.reload()
    tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
    expect(tabs.filter(has_text=name)).to_have_count(1, timeout=OPENED)
    _wait_restored(page)
    expect(page.get_by_role("dialog")).to_have_count(0)
    wait_session_settled(page)
    assert_no_record_kernels(default_lab, kernels)
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text=name).click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")).to_contain_text(name)

    # a record of what ran: saving it is refused, in words
    page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:save'); }")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_have_count(1)
    expect(dialog).to_contain_text(re.compile("read-only", re.IGNORECASE))
    page.screenshot(path=str(artifacts / "lab-default-save-refused.png"))

    # the record's address given to a Lab with none of these tabs (a link shared, a bookmark): it opens
    page.goto(f"{default_lab.url}/lab/workspaces/open-default-address/tree/magnus:{FOLDER}/{path}"
              f"?token={default_lab.token}", timeout=OPENED)
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")).to_contain_text(
        name, timeout=OPENED)
    _wait_restored(page)
    expect(page.get_by_role("dialog")).to_have_count(0)
    opened = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert opened == f"magnus:{FOLDER}/{path}", opened
    wait_session_settled(page)
    assert_no_record_kernels(default_lab, kernels)
