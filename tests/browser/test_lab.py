"""The magics and the live DAG widget as a user meets them: JupyterLab in Chromium.

Every wait is for a condition in the page (kernel idle, an output, a colour in
the SVG) with an explicit timeout; nothing sleeps and then asserts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from magnus_jupyter import render
from magnus_jupyter.model import Fail, Pipeline, Step
from magnus_jupyter.yaml_io import load_yaml

from .conftest import ROOT, Lab

pytestmark = pytest.mark.slow

KERNEL_START = 90_000  # ms for the kernel to start and go idle on a loaded 2-core machine
SMOKE_RUN = 60_000  # ms for the smoke notebook's cells (declaring only, nothing executes)
DEMO_RUN = 120_000  # ms for the whole demo: every step a papermill kernel, branches in parallel
WIDGET_FINAL = 30_000  # ms for the widget's last update to show once its cell has finished
DEMO = ROOT / "notebooks" / "parallel_demo.ipynb"


def _write_notebook(path: Path, sources: list[str]) -> None:
    """A notebook with a kernelspec, so Lab starts the kernel without asking which one."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def _open(page: Page, lab: Lab, path: str, workspace: str) -> None:
    """Open a notebook in Lab (the only open document) and wait until its kernel is idle."""
    page.goto(lab.tree(path, workspace), timeout=KERNEL_START)
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=KERNEL_START)
    expect(page.locator(".jp-NotebookPanel")).to_have_count(1)
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
    """Every code cell shows an execution count (no `[*]`, no blank), and the kernel is idle.

    One deadline for all cells: the cells run one after another, so ``timeout`` bounds the whole run.
    """
    deadline = time.monotonic() + timeout / 1000
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")
    expect(prompts).to_have_count(cells, timeout=30_000)
    for index in range(cells):
        left = max(1_000.0, (deadline - time.monotonic()) * 1000)
        expect(prompts.nth(index)).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=left)
    _wait_idle(page, max(1_000.0, (deadline - time.monotonic()) * 1000))


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
    _open(page, lab, "smoke.ipynb", "smoke")
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


def _rgb(colour: str) -> str:
    """``#b7e4c7`` as the browser's computed style spells it: ``rgb(183, 228, 199)``."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def _code_cell_index(nb: nbformat.NotebookNode, magic: str) -> int:
    """The position among code cells of the first cell whose source starts with ``magic``."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for index, cell in enumerate(code):
        if re.match(rf"\s*{re.escape(magic)}\b", cell.source):
            return index
    pytest.fail(f"{DEMO.name} has no cell starting with {magic}")


def _expected_nodes(pipeline: Pipeline) -> tuple[dict[str, str], set[str], int]:
    """(node id -> step name, ids of fail steps, number of branches) as render.draw numbers them."""
    names: dict[str, str] = {}
    branches = 0
    fails: set[str] = set()
    stack: list[tuple[str, Pipeline]] = [("", pipeline)]
    steps: dict[str, Step] = {}
    while stack:  # internal name -> step, walked like render does (parallel branches only here)
        prefix, graph = stack.pop()
        for name, step in graph.steps.items():
            internal = f"{prefix}.{name}" if prefix else name
            steps[internal] = step
            for branch, graph_ in step.branches().items():
                stack.append((step.branch_prefix(internal, branch), graph_))
                branches += 1
    for internal, node in render.draw(pipeline).ids.items():
        if node.startswith("n"):
            names[node] = steps[internal].name
            if isinstance(steps[internal], Fail):
                fails.add(node)
    return names, fails, branches


# Read in the page: every node and cluster of the run widget's SVG, with its computed fill, and
# every progress bar's width, so one poll sees one consistent moment of the live view.
_WIDGET_STATE_JS = """(output) => {
  const svg = output.querySelector('svg[id^="magnus-dag-"]');
  const fill = (g) => {
    const shape = g.querySelector('path, polygon, ellipse');
    return shape ? getComputedStyle(shape).fill : '';
  };
  const groups = svg ? Array.from(svg.querySelectorAll('g.node[id^="n"], g.cluster')) : [];
  return {
    nodes: groups.filter(g => g.classList.contains('node')).map(g => ({
      id: g.id, state: g.getAttribute('data-state'), fill: fill(g),
      label: Array.from(g.querySelectorAll('text')).map(t => t.textContent).join(' ')})),
    clusters: groups.filter(g => g.classList.contains('cluster')).map(g => ({id: g.id, fill: fill(g)})),
    // a branch's bar: the live widget's steps bar, or the bar of the final static picture
    bars: Array.from(output.querySelectorAll('.widget-hprogress.magnus-steps, .magnus-bar')).map(b => {
      if (b.classList.contains('magnus-bar')) return +b.dataset.max ? b.dataset.value / b.dataset.max : -1;
      const outer = b.querySelector('.progress'), inner = b.querySelector('.progress-bar');
      return outer && inner ? inner.getBoundingClientRect().width / outer.getBoundingClientRect().width : -1;
    }),
  };
}"""


# Installed before the run: on every DOM change, remember each DAG view's node states whenever some
# step is running, so the test can tell a live view from one drawn only at the end.
_WATCH_LIVE_JS = """() => {
  window.__magnusLive = [];
  new MutationObserver(() => {
    for (const svg of document.querySelectorAll('svg[id^="magnus-dag-"]')) {
      const states = Array.from(svg.querySelectorAll('g.node[data-state]')).map(g => g.dataset.state);
      if (states.includes('running')) window.__magnusLive.push({svg: svg.id, states: states});
    }
  }).observe(document.body, {childList: true, subtree: true, attributes: true});
}"""


def _done(state: dict[str, Any], expected: dict[str, str], fails: set[str]) -> bool:
    """Every step node in the success colour (fail steps not), every cluster too, every bar full."""
    node_ok = _rgb(render.NODE_FILL["SUCCESS"])
    cluster_ok = _rgb(render.CLUSTER_FILL["SUCCESS"])
    nodes = {node["id"]: node for node in state["nodes"]}
    return (set(nodes) == set(expected)
            and all((nodes[i]["fill"] == node_ok) != (i in fails) for i in expected)
            and bool(state["clusters"]) and all(c["fill"] == cluster_ok for c in state["clusters"])
            and bool(state["bars"]) and all(abs(width - 1.0) < 0.01 for width in state["bars"]))


def _wait_widget(page: Page, output: Locator, check: Callable[[dict[str, Any]], bool],
                 timeout: float) -> dict[str, Any]:
    """Poll the widget's state until ``check`` holds or ``timeout`` ms pass; the last state either way.

    The caller asserts on what comes back, so a timeout fails with the page's actual state.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        state = output.evaluate(_WIDGET_STATE_JS)
        if check(state) or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(200)  # polling interval, not an assertion


@pytest.mark.skipif(not DEMO.exists(),
                    reason=f"{DEMO.relative_to(ROOT)} does not exist yet (issue 4, item 6)")
def test_parallel_demo_lights_up(lab: Lab, page: Page, artifacts: Path) -> None:
    """The issue's test: run the demo in Lab; the live DAG ends all green with every branch bar full."""
    nb = nbformat.read(DEMO, as_version=4)
    code_cells = sum(1 for cell in nb.cells if cell.cell_type == "code")
    run_index, yaml_index = _code_cell_index(nb, "%magnus_run"), _code_cell_index(nb, "%magnus_yaml")
    page.set_viewport_size({"width": 1400, "height": 2000})  # the whole widget in one screenshot

    _open(page, lab, f"notebooks/{DEMO.name}", "demo")
    page.evaluate(_WATCH_LIVE_JS)
    _run_all(page)
    _wait_all_ran(page, code_cells, DEMO_RUN)
    assert _errors(page) == []

    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    yaml_text = cells.nth(yaml_index).locator(".jp-OutputArea-output").first.inner_text()
    expected, fails, branches = _expected_nodes(load_yaml(yaml_text, validate=False))
    assert len(expected) - len(fails) >= 9, f"the demo's pipeline is too small: {sorted(expected.values())}"

    output = cells.nth(run_index).locator(".jp-OutputArea").first
    state = _wait_widget(page, output, lambda st: _done(st, expected, fails), WIDGET_FINAL)
    output.screenshot(path=str(artifacts / "lab-parallel-demo-dag.png"))
    page.screenshot(path=str(artifacts / "lab-parallel-demo.png"))
    labels = {node["id"]: node["label"] for node in state["nodes"]}
    assert labels == expected, "the widget's SVG nodes differ from the pipeline's"
    assert len(state["bars"]) == 1 + branches, "one progress bar for the pipeline and one per branch"
    assert _done(state, expected, fails), f"the DAG did not end all green with full bars: {state}"
    live = page.evaluate("window.__magnusLive")
    run_svg = output.locator('svg[id^="magnus-dag-"]').get_attribute("id")
    assert any(seen["svg"] == run_svg for seen in live), "the DAG never showed a running step: not live"
    status = output.inner_text()
    assert re.search(r"\bSUCCESS\b", status), f"no SUCCESS in the run's status line:\n{status}"
