"""The JupyterLab extension (labextension/) in a real Lab and Chromium: active, highlighting, commands.

The extension must be installed in the environment Lab runs from (``make test`` builds and
installs it); where it is not, every test fails saying so, instead of skipping.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from magnus_jupyter.model import Pipeline
from magnus_jupyter.yaml_io import load_yaml

from .conftest import ROOT, Lab
from .test_lab import (
    DEMO,
    DEMO_RUN,
    KERNEL_START,
    SMOKE_RUN,
    _done,
    _errors,
    _expected_nodes,
    _open,
    _run_all,
    _wait_all_ran,
    _wait_idle,
    _wait_widget,
    _write_notebook,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("installed")]

EXTENSION = "magnus-jupyter-labextension"
PLUGIN = f"{EXTENSION}:plugin"
RUN, SHOW, EXPORT = "magnus:run-pipeline", "magnus:show-pipeline", "magnus:export-yaml"
LABELS = {RUN: "Run pipeline", SHOW: "Show pipeline", EXPORT: "Export pipeline YAML…"}
NOT_LOADED = "%load_ext magnus_jupyter"  # the disabled commands' tooltip names the cure
NO_NOTEBOOK = "Open a notebook to use magnus pipelines"
EXPORT_WRITTEN = 60_000  # ms for %magnus_yaml PATH to write the file once the dialog is accepted


class _ConfigData(HTMLParser):
    """The JSON of Lab's ``<script id="jupyter-config-data">``: what the page loads, extensions too."""

    def __init__(self) -> None:
        super().__init__()
        self._inside = False
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._inside = tag == "script" and ("id", "jupyter-config-data") in attrs

    def handle_endtag(self, tag: str) -> None:
        self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.text += data


def _page_config(lab: Lab) -> dict[str, Any]:
    request = urllib.request.Request(f"{lab.url}/lab", headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        parser = _ConfigData()
        parser.feed(response.read().decode("utf-8"))
    if not parser.text:
        pytest.fail(f"{lab.url}/lab has no jupyter-config-data script: not a JupyterLab page")
    return dict(json.loads(parser.text))


@pytest.fixture(scope="module")
def installed(lab: Lab) -> dict[str, Any]:
    """Lab's entry for the extension; a clear failure (not a skip) where it is not installed."""
    federated = _page_config(lab).get("federated_extensions", [])
    entries = [entry for entry in federated if entry.get("name") == EXTENSION]
    if not entries:
        names = sorted(entry.get("name", "?") for entry in federated)
        pytest.fail(f"the JupyterLab extension {EXTENSION} is not installed in this environment "
                    f"(Lab loads only {names}): run `make test` (or `make setup`), which builds it "
                    "and installs it with the Python package")
    return dict(entries[0])


@pytest.fixture
def own_kernels(lab: Lab) -> Iterator[list[str]]:
    """Notebook paths whose kernels are shut down after the test, so later tests share fewer cores."""
    paths: list[str] = []
    yield paths
    sessions = lab.api("/api/sessions")
    assert isinstance(sessions, list)
    for session in sessions:
        if session.get("path") in paths:
            request = urllib.request.Request(f"{lab.url}/api/sessions/{session['id']}", method="DELETE",
                                             headers={"Authorization": f"token {lab.token}"})
            urllib.request.urlopen(request, timeout=30).close()


def _wait_app(page: Page) -> None:
    """Lab has started and restored its layout, and exposes itself as window.jupyterapp."""
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=KERNEL_START)
    page.evaluate("() => window.jupyterapp.restored")


def _palette(page: Page, query: str) -> Locator:
    """Open the command palette (Ctrl+Shift+C), type ``query``; the palette's item list."""
    page.keyboard.press("Control+Shift+C")
    search = page.locator(".lm-CommandPalette-input")
    expect(search).to_be_focused()
    search.fill(query)
    return page.locator(".lm-CommandPalette-content")


def _palette_item(page: Page, command: str) -> Locator:
    return page.locator(f".lm-CommandPalette-item[data-command='{command}']")


def test_extension_is_active(lab: Lab, installed: dict[str, Any], page: Page, artifacts: Path) -> None:
    """Lab loads the extension's bundle, activates its plugin and lists its commands in the palette."""
    assert installed.get("extension"), f"{EXTENSION} has no extension entry point: {installed}"
    page.goto(f"{lab.url}/lab/workspaces/ext-active?token={lab.token}", timeout=KERNEL_START)
    _wait_app(page)
    state = page.evaluate("""([plugin, commands]) => {
      const app = window.jupyterapp;
      return {has: app.hasPlugin(plugin), active: app.isPluginActivated(plugin),
              commands: commands.map(id => [id, app.commands.hasCommand(id), app.commands.label(id)])};
    }""", [PLUGIN, list(LABELS)])
    assert state["has"], f"Lab has no plugin {PLUGIN}"
    assert state["active"], f"the plugin {PLUGIN} is registered but not activated"
    assert state["commands"] == [[cid, True, label] for cid, label in LABELS.items()], state["commands"]

    content = _palette(page, "magnus")
    header = content.locator(".lm-CommandPalette-header", has_text=re.compile("^magnus$", re.I))
    expect(header).to_have_count(1)  # the commands' category
    for command, label in LABELS.items():  # no notebook open: listed, disabled, saying why
        item = _palette_item(page, command)
        expect(item).to_be_visible()
        expect(item.locator(".lm-CommandPalette-itemLabel")).to_have_text(label)
        expect(item).to_have_class(re.compile(r"\blm-mod-disabled\b"))
        expect(item.locator(".lm-CommandPalette-itemCaption")).to_have_text(NO_NOTEBOOK)
    page.screenshot(path=str(artifacts / "lab-extension-palette.png"))


# ---- highlighting --------------------------------------------------------------------------------

BRANCHES_CELL = (
    '%%magnus_parallel "Train Models" --next Report\n'
    "# one branch per line\n"
    "train_a: prepare.ipynb >> `python train.py --fast` >> Report\n"
    "train_b: b.ipynb"
)
YAML_CELL = (
    '%%magnus_parallel "Train YAML"\n'
    "XGBoost:\n"
    "  start_at: Train XGBoost\n"
    "  steps:\n"
    "    Train XGBoost:\n"
    "      command: train_xgboost.ipynb  # the notebook\n"
)
MAP_CELL = (
    '%%magnus_map "Each Model" --iterate-on models --iterate-as model\n'
    "train.ipynb >> `echo done`"
)
STEP_CELL = (
    '%%magnus_step "Report" --returns total\n'
    "import math\n"
    'total = math.floor(2.5)  # two\n'
    'print("total", total)'
)

# Each line of each cell: the magnus marks on it, in order, as (token type, marked text).
BRANCHES_MARKS = [
    [("magic", "%%magnus_parallel"), ("name", '"Train Models"'), ("flag", "--next"), ("value", "Report")],
    [("comment", "# one branch per line")],
    [("branch", "train_a"), ("punct", ":"), ("notebook", "prepare.ipynb"), ("arrow", ">>"),
     ("shell", "`python train.py --fast`"), ("arrow", ">>"), ("step", "Report")],
    [("branch", "train_b"), ("punct", ":"), ("notebook", "b.ipynb")],
]
YAML_MARKS = [
    [("magic", "%%magnus_parallel"), ("name", '"Train YAML"')],
    [("yaml-key", "XGBoost"), ("punct", ":")],
    [("yaml-key", "start_at"), ("punct", ":"), ("yaml-value", "Train XGBoost")],
    [("yaml-key", "steps"), ("punct", ":")],
    [("yaml-key", "Train XGBoost"), ("punct", ":")],
    [("yaml-key", "command"), ("punct", ":"), ("notebook", "train_xgboost.ipynb"),
     ("comment", "# the notebook")],
    [],
]
MAP_MARKS = [
    [("magic", "%%magnus_map"), ("name", '"Each Model"'), ("flag", "--iterate-on"), ("value", "models"),
     ("flag", "--iterate-as"), ("value", "model")],
    [("notebook", "train.ipynb"), ("arrow", ">>"), ("shell", "`echo done`")],
]
# Typed into an empty cell, key by key: marks follow the edits.
TYPED = ["x = 1", "%magnus_run --workers 4 --executor dask"]
TYPED_MARKS = [[], [("magic", "%magnus_run"), ("flag", "--workers"), ("value", "4"), ("flag", "--executor"),
                    ("value", "dask")]]
STEP_MAGIC_MARKS = [("magic", "%%magnus_step"), ("name", '"Report"'), ("flag", "--returns"),
                    ("value", "total")]

# Per line of a cell's editor: its classes, the runs of magnus-marked text (consecutive text under
# marks of one type is one run: CodeMirror may split a mark around the syntax highlighter's spans),
# and every text node's computed colour with the mark type it is under.
_LINES_JS = """(cell) => {
  const markOf = (node, line) => {
    for (let el = node.parentElement; el && el !== line; el = el.parentElement) {
      const cls = Array.from(el.classList).find(c => c.startsWith('cm-magnus-'));
      if (cls) return {type: cls.slice('cm-magnus-'.length), el};
    }
    return null;
  };
  return Array.from(cell.querySelectorAll('.cm-content .cm-line')).map(line => {
    const runs = [], texts = [];
    let last = null;
    const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const mark = markOf(node, line);
      texts.push({text: node.textContent, type: mark ? mark.type : null,
                  color: getComputedStyle(node.parentElement).color,
                  markColor: mark ? getComputedStyle(mark.el).color : null});
      if (!mark) { last = null; continue; }
      if (last && last[0] === mark.type) last[1] += node.textContent;
      else { last = [mark.type, node.textContent]; runs.push(last); }
    }
    return {classes: Array.from(line.classList), runs, texts, text: line.textContent};
  });
}"""

# The colour a CSS variable of Lab's editor theme resolves to, as computed styles spell colours.
_VAR_COLOR_JS = """(name) => {
  const probe = document.createElement('span');
  probe.style.color = `var(${name})`;
  document.body.appendChild(probe);
  const color = getComputedStyle(probe).color;
  probe.remove();
  return color;
}"""


def _marks(lines: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    return [[(kind, text) for kind, text in line["runs"]] for line in lines]


def test_magnus_cells_are_highlighted(lab: Lab, page: Page, artifacts: Path, own_kernels: list[str]) -> None:
    """Branch lines and YAML bodies get magnus marks; a %%magnus_step body keeps Python's colours."""
    _write_notebook(lab.root / "ext_highlight.ipynb", [BRANCHES_CELL, YAML_CELL, MAP_CELL, STEP_CELL, ""])
    own_kernels.append("ext_highlight.ipynb")
    _open(page, lab, "ext_highlight.ipynb", "ext-highlight")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    expect(cells).to_have_count(5)
    expect(cells.nth(0).locator(".cm-magnus-arrow")).to_have_count(2)  # the state field has run
    cells.nth(4).locator(".cm-content").click()
    page.keyboard.type(TYPED[0])
    page.keyboard.press("Enter")
    page.keyboard.type(TYPED[1])
    expect(cells.nth(4).locator(".cm-magnus-value").last).to_have_text("dask")
    branches, yaml, each, step, typed = (cells.nth(i).evaluate(_LINES_JS) for i in range(5))
    page.screenshot(path=str(artifacts / "lab-extension-highlight.png"))

    assert _marks(branches) == BRANCHES_MARKS, json.dumps(branches, indent=1)
    assert _marks(yaml) == YAML_MARKS, json.dumps(yaml, indent=1)
    assert _marks(each) == MAP_MARKS, json.dumps(each, indent=1)
    assert [line["text"] for line in typed] == TYPED
    assert _marks(typed) == TYPED_MARKS, json.dumps(typed, indent=1)
    assert "cm-magnus-line" not in typed[0]["classes"], "a plain Python line got the magnus line class"
    for line in branches + yaml[:-1] + each + typed[1:]:
        assert "cm-magnus-line" in line["classes"], f"no cm-magnus-line class on {line['text']!r}"
        # On a magnus line Python's colours give way: everything under a mark has the mark's colour.
        wrong = [t for t in line["texts"] if t["type"] and t["color"] != t["markColor"]]
        assert not wrong, f"Python colours inside magnus marks on {line['text']!r}: {wrong}"
    assert len({t["markColor"] for line in branches for t in line["texts"] if t["type"]}) >= 4, \
        "the magnus token types are not told apart by colour"

    magic, *body = step
    assert _marks([magic]) == [STEP_MAGIC_MARKS], json.dumps(magic, indent=1)
    assert [line["text"] for line in body] == STEP_CELL.splitlines()[1:]
    for line in body:
        assert not line["runs"] and "cm-magnus-line" not in line["classes"], \
            f"magnus marks in the Python body of a %%magnus_step cell: {line}"
    colours = {(t["text"], t["color"]) for line in body for t in line["texts"]}
    for text, var in (("import", "--jp-mirror-editor-keyword-color"),
                      ('"total"', "--jp-mirror-editor-string-color"),
                      ("# two", "--jp-mirror-editor-comment-color"),
                      ("2.5", "--jp-mirror-editor-number-color")):
        expected = page.evaluate(_VAR_COLOR_JS, var)
        assert (text, expected) in colours, \
            f"{text!r} is not in Python's {var} ({expected}): {sorted(colours)}"


# ---- commands ------------------------------------------------------------------------------------

def _declaring_cells() -> list[str]:
    """The demo's code cells that declare its pipeline: all but %magnus_show / _run / _yaml."""
    nb = nbformat.read(DEMO, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code"
            and not re.match(r"\s*%magnus_(show|run|yaml)\b", cell.source)]


def _shape(pipeline: Pipeline) -> dict[str, tuple[str, str | None]]:
    """Internal name -> (type, next) of every step at any depth: what two YAMLs of one DAG share."""
    return {internal: (step.type, step.next) for internal, step, _ in pipeline.walk()}


def _run_from_palette(page: Page, query: str, command: str) -> None:
    """Ctrl+Shift+C, type ``query``, check the highlighted item is ``command`` and press Enter."""
    _palette(page, query)
    item = _palette_item(page, command)
    expect(item).to_be_visible()
    expect(item).not_to_have_class(re.compile(r"\blm-mod-disabled\b"))
    expect(item.locator(".lm-CommandPalette-itemCaption")).to_be_hidden()  # Lab's style when enabled
    expect(page.locator(".lm-CommandPalette-item.lm-mod-active")).to_have_attribute("data-command", command)
    page.keyboard.press("Enter")


def test_commands_run_export_the_demo(lab: Lab, page: Page, artifacts: Path, own_kernels: list[str]) -> None:
    """Disabled with the reason until %load_ext; then the palette exports the YAML and runs the demo."""
    sources = _declaring_cells()
    assert sources[0].strip() == "%load_ext magnus_jupyter", f"the demo's first code cell: {sources[0]!r}"
    _write_notebook(lab.root / "notebooks" / "ext_commands.ipynb", sources)
    page.set_viewport_size({"width": 1600, "height": 1400})
    own_kernels.append("notebooks/ext_commands.ipynb")
    _open(page, lab, "notebooks/ext_commands.ipynb", "ext-commands")

    toolbar = page.locator(".jp-NotebookPanel-toolbar")
    buttons = {command: toolbar.locator(f"[data-command='{command}']") for command in LABELS}
    for command, label in LABELS.items():  # named for screen readers, and disabled with the reason
        expect(buttons[command]).to_have_attribute("aria-label", label)
        expect(buttons[command]).to_have_attribute("aria-disabled", "true")
        expect(buttons[command]).to_have_attribute("title", re.compile(re.escape(NOT_LOADED)))

    expect(buttons[RUN]).to_be_visible()

    # Lab's modal palette hides disabled items and captions; ours stay listed, greyed, with the reason.
    _palette(page, "Run pipeline")
    item = _palette_item(page, RUN)
    expect(item).to_be_visible()
    expect(item).to_have_class(re.compile(r"\blm-mod-disabled\b"))
    caption = item.locator(".lm-CommandPalette-itemCaption")
    expect(caption).to_be_visible()
    expect(caption).to_contain_text(NOT_LOADED)
    page.screenshot(path=str(artifacts / "lab-extension-disabled.png"))
    page.keyboard.press("Escape")

    _run_all(page)
    _wait_all_ran(page, len(sources), SMOKE_RUN)
    assert _errors(page) == []
    expect(buttons[RUN]).to_have_attribute("aria-disabled", "false")
    expect(buttons[RUN]).to_have_attribute("title", re.compile(r"%magnus_run"))

    # Export pipeline YAML…: a path with a space, which the magic line must quote.
    _run_from_palette(page, "Export pipeline YAML", EXPORT)
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Export pipeline YAML")
    dialog.locator("input").fill("ext export.yaml")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    output = page.locator(".jp-magnus-output")
    expect(output).to_contain_text("wrote ext export.yaml", timeout=EXPORT_WRITTEN)
    exported = lab.root / "notebooks" / "ext export.yaml"
    assert exported.is_file(), f"the panel says written but {exported} does not exist"
    pipeline = load_yaml(exported)
    assert _shape(pipeline) == _shape(load_yaml(ROOT / "notebooks" / "pipeline.yaml")), \
        f"the exported pipeline differs from notebooks/pipeline.yaml:\n{exported.read_text()}"
    expected, fails, branches = _expected_nodes(pipeline)

    # Run pipeline: the live DAG in the panel beside the notebook ends all green, every bar full.
    _run_from_palette(page, "Run pipeline", RUN)
    expect(output.locator('svg[id^="magnus-dag-"]')).to_have_count(1, timeout=DEMO_RUN)
    state = _wait_widget(page, output, lambda st: _done(st, expected, fails), DEMO_RUN)
    output.screenshot(path=str(artifacts / "lab-extension-run-dag.png"))
    page.screenshot(path=str(artifacts / "lab-extension-run.png"))
    assert {node["id"]: node["label"] for node in state["nodes"]} == expected
    assert len(state["bars"]) == 1 + branches, "one progress bar for the pipeline and one per branch"
    assert _done(state, expected, fails), f"the DAG did not end all green with full bars: {state}"
    expect(output).to_contain_text(re.compile(r"\bSUCCESS\b"), timeout=DEMO_RUN)

    # The panel opened beside the notebook without taking focus: the Kernel menu is the notebook's.
    expect(page.get_by_role("tab", name="ext_commands.ipynb", exact=True)).to_have_class(
        re.compile(r"\bjp-mod-current\b"))
    # A restarted kernel has no magnus_jupyter loaded: the commands are disabled again.
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
    page.locator(".lm-Menu").get_by_role("menuitem", name=re.compile(r"^Restart Kernel…")).click()
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    _wait_idle(page, KERNEL_START)
    expect(buttons[RUN]).to_have_attribute("aria-disabled", "true")
    expect(buttons[RUN]).to_have_attribute("title", re.compile(re.escape(NOT_LOADED)))
