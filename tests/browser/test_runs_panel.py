"""The "magnus runs" side panel in a DEFAULT JupyterLab (no allow_hidden) and Debian's Chromium.

Runs are real: a failing run made by the CLI, a run still going (its task waits for a file), and a
Retry from the panel that runs ``%magnus_retry`` in the kernel of a notebook of the folder. The panel
is driven as a user drives it: the left sidebar's tab, its buttons and checkboxes (by their
accessible names, from the keyboard too), and the tab that shows a run or two compared. A step named
like an HTML tag must stay text (no dialog, no element). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from .conftest import Lab
from .test_lab import KERNEL_START, _open, _run_all, _wait_all_ran, _write_notebook
from .test_widget_states import _reopen, _shutdown

pytestmark = pytest.mark.slow

FOLDER = "history"
HOSTILE = "<img src=x onerror=alert(1)>"
RUN = 180_000  # ms for a run or a retry: shell tasks on a loaded 2-core machine
SEEN = 60_000  # ms for the panel to show what the server says (a poll, a fetch, a redraw)
PIPELINE = f"""\
dag:
  start_at: prepare
  steps:
    prepare: {{type: task, command_type: shell, command: "echo 1 > out.txt", catalog: {{put: [out.txt]}},
              next: fan}}
    fan:
      type: parallel
      next: "{HOSTILE}"
      branches:
        left:
          start_at: sleep left
          steps:
            sleep left: {{type: task, command_type: shell, command: "sleep 0.3", next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
        right:
          start_at: sleep right
          steps:
            sleep right: {{type: task, command_type: shell, command: "sleep 0.3", next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
    "{HOSTILE}":
      type: task
      command_type: shell
      command: "test -f fixed || {{ echo 'not fixed yet' >&2; exit 3; }}"
      next: success
    success: {{type: success}}
    fail: {{type: fail}}
"""
WAITING = """\
dag:
  start_at: wait
  steps:
    wait: {type: task, command_type: shell, command: "while [ ! -e go ]; do sleep 0.05; done", next: success}
    success: {type: success}
    fail: {type: fail}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def folder(default_lab: Lab) -> Path:
    """``first``: a run that failed at the hostile step; a notebook of the folder, declaring nothing."""
    where = default_lab.root / FOLDER
    where.mkdir()
    (where / "pipeline.yaml").write_text(PIPELINE)
    (where / "waiting.yaml").write_text(WAITING)
    made = cli(where, "run", "pipeline.yaml", "--run-id", "first", "--quiet")
    assert made.returncode == 1, made.stdout + made.stderr
    _write_notebook(where / "runs.ipynb", ["print('a notebook of the folder')"])
    return where


@pytest.fixture
def dialogs(page: Page) -> Iterator[list[str]]:
    """Every dialog the page opens (a step name run as HTML would open one): none is expected."""
    seen: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    yield seen
    assert seen == [], f"the page opened dialogs: {seen}"


def _panel(page: Page) -> Locator:
    """Open the left sidebar's "magnus runs" panel; the panel."""
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="magnus-runs-panel"]')
    expect(tab).to_have_count(1, timeout=KERNEL_START)
    panel = page.locator("#magnus-runs-panel")
    if not panel.is_visible():
        tab.click()
    expect(panel).to_be_visible()
    return panel


def _row(panel: Locator, run_id: str) -> Locator:
    return panel.locator(f'li.jp-magnus-run[data-run="{run_id}"]')


def _detail(page: Page) -> Locator:
    return page.locator(".jp-magnus-runs-detail")


def test_the_panel_lists_the_folders_runs_and_shows_one_with_its_dag_timeline_and_summary(
        default_lab: Lab, folder: Path, page: Page, artifacts: Path, dialogs: list[str]) -> None:
    _open(page, default_lab, f"{FOLDER}/runs.ipynb", "runs-panel")
    panel = _panel(page)
    expect(panel.locator(".jp-magnus-runs-folder")).to_have_text(f"in {FOLDER}/")
    first = _row(panel, "first")
    expect(first).to_have_attribute("data-status", "FAIL", timeout=SEEN)
    expect(first.locator(".jp-magnus-run-status")).to_have_text("FAIL")
    # what a screen reader says of the run, and of its actions
    open_first = panel.get_by_role("button", name=re.compile(r"^run first, FAIL, started .*, 3 succeeded, "
                                                             r"1 failed, 0 reused: open$"))
    expect(open_first).to_have_count(1)
    expect(panel.get_by_role("button", name="retry run first")).to_be_visible()
    expect(panel.get_by_role("checkbox", name="select run first to compare")).to_be_visible()

    # from the keyboard: focus the run, Enter opens it in a tab
    open_first.focus()
    page.keyboard.press("Enter")
    detail = _detail(page)
    expect(detail).to_have_attribute("aria-label", "magnus run first", timeout=SEEN)
    dag = detail.locator(".jp-magnus-runs-dag svg")
    expect(dag.locator("g.node").first).to_be_visible(timeout=SEEN)
    states = dict(dag.locator("g.node").evaluate_all(
        "gs => gs.map(g => [Array.from(g.querySelectorAll('text')).map(t => t.textContent).join(' '), "
        "g.dataset.state])"))
    assert {name: states.get(name) for name in ("prepare", "sleep left", "sleep right", HOSTILE)} == {
        "prepare": "success", "sleep left": "success", "sleep right": "success", HOSTILE: "failed"}, states
    timeline = detail.locator(".jp-magnus-runs-timeline svg")
    expect(timeline).to_have_attribute("aria-label", "timeline of run first")
    rows = timeline.locator("g.row.task")
    expect(rows).to_have_count(4)
    names = rows.evaluate_all("gs => gs.map(g => g.getAttribute('data-step'))")
    assert set(names) == {"prepare", "fan.left.sleep left", "fan.right.sleep right", HOSTILE}
    summary = detail.locator(".jp-magnus-runs-summary")
    expect(summary.locator('.magnus-status[data-status="FAIL"]')).to_have_text("FAIL")
    expect(summary.locator(f'tr[data-step="{HOSTILE}"]')).to_contain_text("shell command exited with code 3")
    expect(summary).to_contain_text(HOSTILE)  # the name as text...
    assert detail.locator("img").count() == 0  # ...never an element
    assert detail.locator("script, [onerror], [onclick]").count() == 0
    panel.screenshot(path=str(artifacts / "lab-runs-panel.png"))
    page.screenshot(path=str(artifacts / "lab-runs-run.png"))

    # a DAG node opens the task's log in a Lab tab, through the read-only magnus drive
    dag.locator('a[data-magnus-path*="prepare"]').first.click()
    current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current")
    expect(current).to_contain_text("prepare.execution.log", timeout=SEEN)
    opened = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert opened == f"magnus:{FOLDER}/.catalog/first/prepare.execution.log", opened


def test_a_running_run_is_live_in_the_panel_until_it_ends(default_lab: Lab, folder: Path, page: Page,
                                                          artifacts: Path, dialogs: list[str]) -> None:
    _open(page, default_lab, f"{FOLDER}/runs.ipynb", "runs-live")
    panel = _panel(page)
    expect(_row(panel, "first")).to_be_visible(timeout=SEEN)
    process = subprocess.Popen([sys.executable, "-m", "magnus_jupyter", "run", "waiting.yaml", "--run-id",
                                "live", "--quiet"], cwd=folder, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SEEN / 1000
        live = _row(panel, "live")
        while live.count() == 0:  # the user presses Refresh once the run has started
            assert time.monotonic() < deadline, "the running run never appeared"
            panel.get_by_role("button", name="Refresh").click()
            page.wait_for_timeout(500)  # polling interval, not an assertion
        expect(live.locator(".jp-magnus-run-status")).to_have_text("RUNNING 0/1", timeout=SEEN)
        live.locator(".jp-magnus-run-open").click()
        detail = _detail(page)
        nodes = detail.locator(".jp-magnus-runs-dag g.node")
        expect(nodes.and_(page.locator('[data-state="running"]'))).to_have_count(1, timeout=SEEN)
        panel.screenshot(path=str(artifacts / "lab-runs-panel-running.png"))
        (folder / "go").touch()
        # nothing pressed from here: the panel and the open run follow the run to its end
        expect(live.locator(".jp-magnus-run-status")).to_have_text("SUCCESS", timeout=SEEN)
        expect(panel.locator(".jp-magnus-runs-live")).to_contain_text("run live: SUCCESS")
        expect(nodes.and_(page.locator('[data-state="success"]'))).to_have_count(2, timeout=SEEN)  # + success
        expect(nodes.and_(page.locator('[data-state="running"]'))).to_have_count(0)
    finally:
        (folder / "go").touch()
        process.wait(timeout=60)


def test_retry_on_a_failed_run_runs_in_the_notebooks_kernel_and_two_runs_compare(
        default_lab: Lab, folder: Path, page: Page, artifacts: Path, dialogs: list[str]) -> None:
    _open(page, default_lab, f"{FOLDER}/runs.ipynb", "runs-retry")
    panel = _panel(page)
    first = _row(panel, "first")
    expect(first).to_be_visible(timeout=SEEN)
    expect(_row(panel, "live").get_by_role("button", name="retry run live")).to_be_hidden()  # succeeded
    (folder / "fixed").touch()
    before = {row.get_attribute("data-run") for row in panel.locator("li.jp-magnus-run").all()}
    panel.get_by_role("button", name="retry run first").click()
    # the retry runs beside the notebook, with the live DAG widget; the panel lists the new run
    side = page.locator('[id^="magnus-output-"]')
    expect(side).to_be_visible(timeout=SEEN)
    retried = panel.locator("li.jp-magnus-run").first
    expect(retried).not_to_have_attribute("data-run", re.compile(rf"^({'|'.join(map(re.escape, before))})$"),
                                          timeout=RUN)
    expect(retried).to_have_attribute("data-status", "SUCCESS", timeout=RUN)
    new = retried.get_attribute("data-run")
    assert new and new not in before
    expect(retried.locator(".jp-magnus-run-open")).to_have_attribute("aria-label",
                                                                     re.compile("retry of first"))
    # the widget's final picture beside the notebook carries the run's timeline
    timeline = side.locator("details.magnus-timeline-view")
    expect(timeline).to_be_visible(timeout=RUN)
    expect(timeline.locator("summary")).to_have_text("Timeline")
    expect(timeline.locator("svg g.row.task")).to_have_count(4)
    reused = timeline.locator("svg g.row.task", has=page.locator("text", has_text="↺"))
    expect(reused).to_have_count(3)  # prepare and both sleeps: not run again
    # a narrow output scrolls the timeline rather than shrink it past reading
    assert timeline.locator("svg").first.evaluate("svg => svg.getBoundingClientRect().width") >= 700
    side.screenshot(path=str(artifacts / "lab-widget-timeline.png"))

    # compare: two checkboxes (Space from the keyboard for one), then Compare; A is the older run
    compare = panel.get_by_role("button", name="Compare")
    expect(compare).to_be_disabled()
    panel.get_by_role("checkbox", name=f"select run {new} to compare").check()
    box = panel.get_by_role("checkbox", name="select run first to compare")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    expect(compare).to_be_enabled()
    compare.click()
    diff = _detail(page).locator(".magnus-diff")
    expect(diff).to_have_attribute("data-a", "first", timeout=SEEN)
    expect(diff).to_have_attribute("data-b", new)
    differs = diff.locator("tr.differs")
    expect(differs.filter(has_text=HOSTILE)).to_contain_text("FAIL")
    expect(differs.filter(has_text=HOSTILE)).to_contain_text("SUCCESS")
    expect(diff.locator("tr.same").filter(has_text="out.txt")).to_have_count(1)  # reused: the same content
    page.screenshot(path=str(artifacts / "lab-runs-diff.png"))


def test_retry_without_a_notebook_of_the_folder_says_how(default_lab: Lab, folder: Path, page: Page,
                                                         dialogs: list[str]) -> None:
    (folder / "fixed").unlink(missing_ok=True)
    made = cli(folder, "run", "pipeline.yaml", "--run-id", "again", "--quiet")
    assert made.returncode == 1, made.stdout + made.stderr
    page.goto(default_lab.tree(FOLDER, "runs-no-notebook"), timeout=KERNEL_START)  # the file browser only
    panel = _panel(page)
    expect(panel.locator(".jp-magnus-runs-folder")).to_have_text(f"in {FOLDER}/", timeout=SEEN)
    panel.get_by_role("button", name="retry run again").click()
    status = panel.get_by_role("status")
    expect(status).to_contain_text(f"No notebook in {FOLDER}/ is open to retry run again")
    expect(status).to_contain_text("magnus-jupyter retry again")


def test_magnus_runs_in_a_notebook_selects_runs_and_the_saved_notebook_keeps_the_table(
        default_lab: Lab, folder: Path, page: Page, artifacts: Path, dialogs: list[str]) -> None:
    _write_notebook(folder / "history.ipynb", ["%load_ext magnus_jupyter", "%magnus_runs"])
    page.set_viewport_size({"width": 1400, "height": 2000})
    _open(page, default_lab, f"{FOLDER}/history.ipynb", "magnus-runs-magic")
    _run_all(page)
    _wait_all_ran(page, 2, RUN)
    output = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(1).locator(".jp-OutputArea")
    listing = output.locator(".magnus-runs-select select")
    expect(listing).to_be_visible(timeout=SEEN)
    expect(output.locator(".magnus-runs-static")).to_be_hidden()  # the twin hides while the widget shows
    widget = output.locator(".magnus-runs")
    expect(widget.locator('.magnus-runs-table tr[data-run="first"] .magnus-status')).to_have_text("FAIL")
    option = listing.locator('option[value^="first · FAIL · "]')  # ipywidgets shows its spaces as &nbsp;
    listing.select_option(value=option.get_attribute("value"))
    detail = output.locator(".magnus-runs-detail")
    expect(detail.locator('section.magnus-run[data-run="first"]')).to_be_visible(timeout=SEEN)
    expect(detail.locator('.magnus-run-dag svg g.node[data-state="failed"]')).to_have_count(1)
    expect(detail.locator('.magnus-run-timeline svg[aria-label="timeline of run first"]')).to_be_visible()
    expect(detail).to_contain_text(HOSTILE)
    output.screenshot(path=str(artifacts / "lab-magnus-runs.png"))

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while "magnus-runs-static" not in (folder / "history.ipynb").read_text():
        assert time.monotonic() < deadline, "Lab did not save the notebook"
        time.sleep(0.2)  # polling interval, not an assertion
    _shutdown(default_lab, f"{FOLDER}/history.ipynb")
    panel = _reopen(page, default_lab, f"{FOLDER}/history.ipynb", "magnus-runs-reopened")
    twin = panel.locator(".jp-CodeCell").nth(1).locator(".magnus-runs-static")
    expect(twin).to_be_visible(timeout=SEEN)  # no widget, no rule hiding the table: it shows
    expect(twin.locator('tr[data-run="first"]')).to_have_attribute("aria-selected", "true")
    expect(twin).to_contain_text("run %magnus_runs again to browse it")
    twin.screenshot(path=str(artifacts / "lab-magnus-runs-reopened.png"))
