"""What the DAG view shows, as strings: the coloured SVG, the no-Graphviz tree, the status line.

Graphviz lays the pipeline out once (render.py, with its generated node and
cluster ids) and again only when map branches appear; a state change only
rewrites a small scoped ``<style>`` block, so 1,000 updates cost no ``dot`` run.
Every name that reaches HTML goes through ``html.escape``; names inside the SVG
were escaped by render.py and Graphviz. No ipywidgets here.

Each link to a task's file (an SVG node, a branch bar's ``notebook · log``) is a
plain relative ``href``, which opens the file wherever the widget shows (Lab,
Notebook 7, VS Code), plus what the JupyterLab extension (labextension/src/
open.ts) reads to open it in a Lab tab: ``data-magnus-path``, the file's path
relative to the notebook's folder (the kernel's working directory, the widget's
``link_base``; the kernel cannot know the server's root, the front end can),
``data-magnus-kind`` (``notebook`` or ``log``) and, for a failed task's
notebook, ``data-magnus-cell``, the index of the failing cell in the executed
notebook. An ``aria-label`` says the same in words for screen readers.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import time
import urllib.parse
from pathlib import Path

from .. import render
from ..errors import PipelineError
from ..model import Map, Pipeline, Step, Task, join_name, map_placeholder
from .failing import FailedCells
from .status import FAILED, PENDING, RUNNING, SKIPPED, SUCCESS, Snapshot

NODE_FILL = {RUNNING: render.NODE_FILL["PROCESSING"], SUCCESS: render.NODE_FILL["SUCCESS"],
             FAILED: render.NODE_FILL["FAIL"], SKIPPED: "#e4e4e4"}
CLUSTER_FILL = {RUNNING: render.CLUSTER_FILL["PROCESSING"], SUCCESS: render.CLUSTER_FILL["SUCCESS"],
                FAILED: render.CLUSTER_FILL["FAIL"], SKIPPED: "#f3f3f3"}
MARK = {PENDING: "○", RUNNING: "◔", SUCCESS: "✔", FAILED: "✘", SKIPPED: "–"}
INSTALL_HINT = ("Graphviz's <code>dot</code> is not installed, so the DAG is shown as a tree: install "
                "Graphviz (<code>apt-get install graphviz</code>, <code>conda install graphviz</code> or "
                "<code>brew install graphviz</code>) for the drawing.")
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK_STYLE = 'style="color:#1565c0;text-decoration:underline"'  # Lab's widget CSS leaves links plain
_TAIL_BYTES = 4096
_GROUP = re.compile(r'<g id="((?:n|cluster_)\d+)" class="(?:node|cluster)">')
_ANCHOR = re.compile(r'<g id="a_(n\d+)"><a ')


def relative(path: str, base: str | os.PathLike[str]) -> str:
    """``path`` relative to the notebook's folder, with ``/`` separators (what the front end joins)."""
    return os.path.relpath(path, base).replace(os.sep, "/")


def href(path: str, base: str | os.PathLike[str]) -> str:
    """A relative, URL-quoted link from the notebook's folder: JupyterLab opens it in a tab."""
    return urllib.parse.quote(relative(path, base), safe="/")


def last_line(path: str | None, limit: int = 160) -> str:
    """The last non-empty line a running task wrote to its log ('' if none yet)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _TAIL_BYTES))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in data.replace("\r", "\n").splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {int(value % 60):02d} s"


class Picture:
    """The pipeline's picture for one view: a cached layout plus state colours and links."""

    def __init__(self, pipeline: Pipeline, *, link_base: str | os.PathLike[str] | None = None) -> None:
        self.pipeline = pipeline
        self.link_base = str(link_base) if link_base is not None else os.getcwd()
        self.uid = "magnus-dag-" + secrets.token_hex(4)  # scopes the style block to this view
        self.layouts = 0  # dot runs: what the benchmark and tests count
        self.error: str | None = None  # why there is no drawing (Graphviz missing)
        self._key: tuple[str, ...] | None = None
        self._svg: str | None = None
        self._ids: dict[str, str] = {}
        self._files: set[str] = set()
        self.failed_cells = FailedCells()

    # ---- layout ------------------------------------------------------------------------------

    def layout(self, snap: Snapshot) -> str | None:
        """The bare SVG for the branches known so far; ``None`` (and ``error``) without Graphviz."""
        key = tuple(sorted(snap.map_branches, key=_natural))
        if key == self._key:
            return self._svg
        states = dict.fromkeys(key, "SEEN")  # map values shape the layout only; colours come from CSS
        drawing = render.draw(self.pipeline, states)
        try:
            svg = drawing.svg()
        except PipelineError as exc:
            self.error, self._svg = str(exc), None
        else:
            self.layouts += 1
            svg = _COMMENT.sub("", _PROLOG.sub("", svg, count=1))
            svg = svg.replace("<svg ", f'<svg id="{self.uid}" style="max-width:100%;height:auto" '
                              'role="group" aria-label="pipeline DAG" ', 1)
            self.error, self._svg = None, svg
        self._key, self._ids = key, drawing.ids
        return self._svg

    # ---- the drawing -------------------------------------------------------------------------

    def svg(self, snap: Snapshot) -> str | None:
        """The laid-out SVG, each node and cluster tagged ``data-state``, finished tasks linked.

        One regular-expression pass each, so a 1,000-node picture updates in linear time.
        """
        base = self.layout(snap)
        if base is None:
            return None
        names = {node: name for name, node in self._ids.items()}

        def tag(match: re.Match[str]) -> str:
            name = names.get(match.group(1))
            state = snap.state(name) if name is not None else PENDING
            return f'{match.group(0)[:-1]} data-state="{state}">'

        svg = _GROUP.sub(tag, base)
        if snap.outputs:
            def link(match: re.Match[str]) -> str:
                name = names.get(match.group(1))
                if name is None:
                    return match.group(0)
                notebook, log = snap.outputs.get(name, (None, None))
                target = self._target(notebook, log)
                if target is None:
                    return match.group(0)
                path, kind = target
                return (f'{match.group(0)}xlink:href="{html.escape(href(path, self.link_base))}" '
                        f'target="_blank" tabindex="0" {self.open_attributes(snap, name, path, kind)} ')

            svg = _ANCHOR.sub(link, svg)
        head = svg.index(">", svg.index("<svg")) + 1
        return svg[:head] + self.style() + svg[head:]

    def style(self) -> str:
        """State colours for this view's SVG only (the ``id`` scopes it on a page of many views)."""
        scope = f"#{self.uid}"
        rules = []
        for state, fill in NODE_FILL.items():
            rules.append(f'{scope} g.node[data-state="{state}"] :is(path,polygon,ellipse):not([fill="none"])'
                         f"{{fill:{fill}}}")
        for state, fill in CLUSTER_FILL.items():
            rules.append(f'{scope} g.cluster[data-state="{state}"]>path{{fill:{fill}}}')
        rules.append(f'{scope} g.node[data-state="running"] :is(path,polygon,ellipse){{stroke-width:2.5px}}')
        return "<style>" + "".join(rules) + "</style>"

    def _exists(self, path: str | None) -> bool:
        """Whether a task's file is there; remembered once seen, so redraws don't stat it again."""
        if not path:
            return False
        if path not in self._files and Path(path).is_file():
            self._files.add(path)
        return path in self._files

    def _target(self, notebook: str | None, log: str | None) -> tuple[str, str] | None:
        """The file a node opens, and its kind: the notebook if there is one, else the log."""
        for path, kind in ((notebook, "notebook"), (log, "log")):
            if path and self._exists(path):
                return path, kind
        return None

    def open_attributes(self, snap: Snapshot, internal: str, path: str, kind: str) -> str:
        """The extension's attributes and the screen reader's label of a link to a task's file.

        Only a failed task's notebook is read (once per file version), for its failing cell.
        """
        what = "output notebook" if kind == "notebook" else "log"
        label = f"open {what} of step {internal}"
        attrs = [f'data-magnus-path="{html.escape(relative(path, self.link_base))}"',
                 f'data-magnus-kind="{kind}"']
        if snap.state(internal) == FAILED:
            cell = self.failed_cells(path) if kind == "notebook" else None
            if cell is not None:
                attrs.append(f'data-magnus-cell="{cell.index}"')
                label += f" (failed at {cell.label()})"
            else:
                label += " (failed)"
        attrs.append(f'aria-label="{html.escape(label)}"')
        return " ".join(attrs)

    def links(self, snap: Snapshot, internal: str) -> str:
        """``notebook · log`` links of a finished task, as HTML ('' while nothing exists)."""
        notebook, log = snap.outputs.get(internal, (None, None))
        parts = []
        for label, path in (("notebook", notebook), ("log", log)):
            if path and self._exists(path):
                target = html.escape(href(path, self.link_base))
                parts.append(f'<a href="{target}" target="_blank" {LINK_STYLE} '
                             f'{self.open_attributes(snap, internal, path, label)} '
                             f'title="{html.escape(path)}">{label}</a>')
        return " · ".join(parts)

    # ---- without Graphviz: an indented tree ----------------------------------------------------

    def rows(self, snap: Snapshot) -> list[tuple[int, str, str, str]]:
        """(depth, label, internal name, state) for every step and branch, in pipeline order."""
        out: list[tuple[int, str, str, str]] = []
        stack: list[tuple[int, str, str, Pipeline | None, Step | None]] = []

        def push(depth: int, prefix: str, graph: Pipeline) -> None:
            for name, step in reversed(graph.steps.items()):
                stack.append((depth, join_name(prefix, name), name, None, step))

        push(0, "", self.pipeline)
        while stack:
            depth, internal, label, graph, step = stack.pop()
            if graph is not None:  # a branch heading
                out.append((depth, label, internal, snap.state(internal)))
                push(depth + 1, internal, graph)
                continue
            assert step is not None
            out.append((depth, f"{label} ({_kind(step)})", internal, snap.state(internal)))
            branches: list[tuple[str, str, Pipeline]] = []
            if isinstance(step, Map) and step.branch is not None:
                values = [b for b, owner in snap.map_branches.items() if owner == internal]
                for branch in values or [join_name(internal, map_placeholder(step.iterate_as))]:
                    branches.append((branch[len(internal) + 1:], branch, step.branch))
            else:
                for name, graph_ in step.branches().items():
                    branches.append((name, step.branch_prefix(internal, name), graph_))
            for name, prefix, graph_ in reversed(branches):
                stack.append((depth + 1, prefix, name, graph_, None))
        return out

    def tree_html(self, snap: Snapshot) -> str:
        lines = []
        for depth, label, internal, state in self.rows(snap):
            colour = NODE_FILL.get(state, "#ffffff")
            links = self.links(snap, internal)
            lines.append(
                f'<div style="padding-left:{1.4 * depth:.1f}em;white-space:pre">'
                f'<span style="background:{colour};border:1px solid #888;padding:0 .3em">'
                f"{MARK[state]}</span> "
                f"{html.escape(label)} <i>{state}</i>{' · ' + links if links else ''}</div>")
        return (f'<div id="{self.uid}" style="font-family:monospace;font-size:12px">{"".join(lines)}</div>'
                f'<div style="color:#8a6d3b;margin-top:.4em">{INSTALL_HINT}</div>')

    def tree_svg(self, snap: Snapshot) -> str:
        """The tree as a plain SVG, for the static fallback when Graphviz is missing."""
        rows = self.rows(snap)
        height = 18 * len(rows) + 12
        width = max((14 * d + 7 * len(label) + 120 for d, label, _, _ in rows), default=200)
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'font-family="monospace" font-size="12">']
        for i, (depth, label, _, state) in enumerate(rows):
            y = 18 * i + 6
            x = 14 * depth + 4
            fill = NODE_FILL.get(state, "#fff")
            parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{fill}" '
                         f'stroke="#888"/><text x="{x + 18}" y="{y + 11}">'
                         f"{html.escape(label)} ({state})</text>")
        parts.append("</svg>")
        return "".join(parts)

    # ---- the whole view, as strings ------------------------------------------------------------

    def views(self, snap: Snapshot) -> tuple[str, str]:
        """What the HTML widget holds (the drawing, or the tree plus the install hint) and the
        ``image/svg+xml`` fallback for where widgets don't render: one picture, built once."""
        svg = self.svg(snap)
        if svg is not None:
            return svg, svg
        return self.tree_html(snap), self.tree_svg(snap)

    def status_html(self, snap: Snapshot, now: float | None = None) -> str:
        """Elapsed time, then one line per running task: its cells and the last line it printed."""
        now = time.monotonic() if now is None else now  # event times are time.monotonic()
        elapsed = seconds(snap.elapsed(now))
        if snap.run_id is None:
            head = "not run yet: <code>%magnus_run</code> runs it"
        elif snap.finished is None:
            head = f"run <code>{html.escape(snap.run_id)}</code> · running · {elapsed}"
        else:
            colour = NODE_FILL[SUCCESS] if snap.run_status == "SUCCESS" else NODE_FILL[FAILED]
            log = ""
            if snap.run_log_path:
                log = (f' · <a href="{html.escape(href(snap.run_log_path, self.link_base))}" '
                       f'target="_blank" {LINK_STYLE}>run log</a>')
            head = (f"run <code>{html.escape(snap.run_id)}</code> · <b style=\"background:{colour};"
                    f"padding:0 .3em\">{html.escape(snap.run_status or '')}</b> in {elapsed}{log}")
        lines = [head]
        for task in snap.running:
            cells = f" · cell {task.cells[0]}/{task.cells[1]}" if task.cells else ""
            since = seconds(max(0.0, now - task.start))
            tail = last_line(task.log_path)
            lines.append(f"▶ {html.escape(task.internal)}{cells} · {since}"
                         + (f" · <code>{html.escape(tail)}</code>" if tail else ""))
        for internal, message in list(snap.failures.items())[:5]:
            first = message.strip().splitlines()[0] if message.strip() else "failed"
            lines.append(f"✘ {html.escape(internal)}: <code>{html.escape(first[:200])}</code>")
        if len(snap.failures) > 5:
            lines.append(f"✘ … and {len(snap.failures) - 5} more failed tasks")
        for warning in snap.warnings[-3:]:
            lines.append(f"⚠ {html.escape(warning)}")
        return '<div style="font-size:12px;line-height:1.5">' + "<br>".join(lines) + "</div>"


def _natural(text: str) -> list[tuple[int, int | str]]:
    """Map values in human order: 2 before 10."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part]


def _kind(step: Step) -> str:
    return f"{step.kind} task" if isinstance(step, Task) else step.type
