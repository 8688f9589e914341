"""The failed node's link opens its notebook at the failing cell in a DEFAULT JupyterLab.

A Lab started as a user starts it (no ``--ContentsManager.allow_hidden``) refuses the run's
``.catalog/`` folder in its contents API; the click still opens the executed notebook, through
the magnus_jupyter server extension and the lab extension's read-only "magnus" drive, and
saving it is refused with a message saying why.
"""

from __future__ import annotations

import re
import urllib.error
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from .conftest import Lab
from .test_extension_open import _assert_at_failing_cell, _pipeline, _run_driver, _wait_opened

pytestmark = pytest.mark.slow

FOLDER = "open_default"


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

    link.click()
    state = _wait_opened(page, name, cell)
    page.screenshot(path=str(artifacts / "lab-default-open-failing-cell.png"))
    _assert_at_failing_cell(state, name, cell)
    assert state["cells"] == len(nbformat.read(folder / path, as_version=4).cells)
    assert page.get_by_role("dialog").count() == 0
    opened = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert opened == f"magnus:{FOLDER}/{path}", opened

    # a record of what ran: saving it is refused, in words
    page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:save'); }")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_have_count(1)
    expect(dialog).to_contain_text(re.compile("read-only", re.IGNORECASE))
    page.screenshot(path=str(artifacts / "lab-default-save-refused.png"))
