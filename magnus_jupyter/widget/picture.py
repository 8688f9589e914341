"""What the DAG view shows, as strings: the coloured SVG, the no-Graphviz tree, the status line,
the branch bars' words, and the static final picture a saved notebook keeps.

Graphviz lays the pipeline out once (render.py, with its generated node and
cluster ids, and a legend of the states added below) and again only when map
branches appear; a state change only re-tags each node and cluster with its
state and fill colour in one pass, so 1,000 updates cost no ``dot`` run. The
colours are attributes, not a ``<style>`` rule: the copies outside the live
view (nbconvert, a sanitised output) keep them.
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
notebook. An ``aria-label`` says the same in words for screen readers. A node
of a step ``--from`` can start at carries ``data-magnus-step``, its internal
name: the extension's "Run from here" (index.ts) reads it.
"""

from __future__ import annotations

import base64
import html
import os
import re
import secrets
import time
import urllib.parse
from pathlib import Path

from .. import render
from ..errors import PipelineError
from ..executor.partial import runnable
from ..model import Map, Pipeline, Step, Task, join_name, map_placeholder
from .failing import FailedCells
from .status import (
    CANCELLED,
    FAILED,
    PENDING,
    REUSED,
    RUNNING,
    SKIPPED,
    STATES,
    SUCCESS,
    Lane,
    Running,
    Snapshot,
)

NODE_FILL = {PENDING: "#ffffff", RUNNING: render.NODE_FILL["PROCESSING"],
             SUCCESS: render.NODE_FILL["SUCCESS"], REUSED: "#b9d7f0", FAILED: render.NODE_FILL["FAIL"],
             CANCELLED: "#f8cfa0", SKIPPED: "#e4e4e4"}
CLUSTER_FILL = {RUNNING: render.CLUSTER_FILL["PROCESSING"], SUCCESS: render.CLUSTER_FILL["SUCCESS"],
                REUSED: "#e8f1fa", FAILED: render.CLUSTER_FILL["FAIL"], CANCELLED: "#fdf0e0",
                SKIPPED: "#f3f3f3"}
MARK = {PENDING: "○", RUNNING: "◔", SUCCESS: "✔", REUSED: "↺", FAILED: "✘", CANCELLED: "⊘", SKIPPED: "–"}
LEGEND = {PENDING: "pending", RUNNING: "running", SUCCESS: "succeeded", REUSED: "reused",
          FAILED: "failed", CANCELLED: "cancelled", SKIPPED: "not run"}
BAR_COLOUR = {RUNNING: "#2196f3", SUCCESS: "#4caf50", REUSED: "#4caf50", FAILED: "#f44336",
              CANCELLED: "#ff9800"}
INSTALL_HINT = ("Graphviz's <code>dot</code> is not installed, so the DAG is shown as a tree: install "
                "Graphviz (<code>apt-get install graphviz</code>, <code>conda install graphviz</code> or "
                "<code>brew install graphviz</code>) for the drawing.")
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK_STYLE = 'style="color:#1565c0;text-decoration:underline"'  # Lab's widget CSS leaves links plain
_TAIL_BYTES = 4096
_GROUP = re.compile(r'<g id="((?:n|cluster_)\d+)" class="(node|cluster)">')
_ANCHOR = re.compile(r'<g id="a_(n\d+)"><a ')
_NODE_FILL = re.compile(r'fill="(?!none")[^"]*"')  # a node's shape: the first filled one (not a periphery)
_CLUSTER_FILL = re.compile(r'fill="[^"]*"')  # a cluster's box: its first shape, filled or not
_SIZE = re.compile(r'width="([\d.]+)pt" height="([\d.]+)pt"\s+viewBox="[^"]*"')
# an absolute path in a message, up to a space, quote, ';' or ',' (a trailing '.' or ':' is prose)
_PATH = re.compile(r"(?<![\w./])/[^\s;,'\"<>]*[^\s;,'\"<>.:)]")
_WRAP = "white-space:pre-wrap;overflow-wrap:anywhere"
MAX_BARS = 40  # more branches than this (a big map) are summed up in one line
MAX_FAILURES = 5  # failed tasks listed by name under the DAG; the rest are counted
MAX_COPY = 2_000_000  # characters of SVG up to which the final picture carries an <img> copy (both())


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
        self._runnable: set[str] = set()  # nodes "Run from here" offers (data-magnus-step): not success/fail
        self._files: set[str] = set()
        self.failed_cells = FailedCells()

    # ---- layout ------------------------------------------------------------------------------

    def layout(self, snap: Snapshot) -> str | None:
        """The bare SVG for the branches known so far; ``None`` (and ``error``) without Graphviz."""
        key = tuple(sorted(snap.map_branches, key=_natural))
        if key == self._key:
            return self._svg
        states = dict.fromkeys(key, "SEEN")  # map values shape the layout only; svg() paints the states
        drawing = render.draw(self.pipeline, states)
        try:
            svg = drawing.svg()
        except PipelineError as exc:
            self.error, self._svg = str(exc), None
        else:
            self.layouts += 1
            svg = with_legend(_COMMENT.sub("", _PROLOG.sub("", svg, count=1)))
            svg = svg.replace("<svg ", f'<svg id="{self.uid}" style="max-width:100%;height:auto" '
                              'role="group" aria-label="pipeline DAG" ', 1)
            self.error, self._svg = None, svg
        self._key, self._ids = key, drawing.ids
        self._runnable = {name for name in drawing.ids if runnable(self.pipeline, name)}
        return self._svg

    # ---- the drawing -------------------------------------------------------------------------

    def svg(self, snap: Snapshot) -> str | None:
        """The laid-out SVG, each node and cluster tagged ``data-state`` and filled with its state's
        colour (as attributes: a viewer that drops ``<style>`` keeps them), finished tasks linked.

        One regular-expression pass each, so a 1,000-node picture updates in linear time.
        """
        base = self.layout(snap)
        if base is None:
            return None
        names = {node: name for name, node in self._ids.items()}
        parts: list[str] = []
        fill: tuple[re.Pattern[str], str] | None = None
        end = 0
        for match in _GROUP.finditer(base):
            parts.append(_paint(base[end:match.start()], fill))
            name = names.get(match.group(1))
            state = snap.state(name) if name is not None else PENDING
            step = f' data-magnus-step="{html.escape(name)}"' if name in self._runnable else ""
            parts.append(f'{match.group(0)[:-1]}{step} data-state="{state}">')
            colour = (NODE_FILL if match.group(2) == "node" else CLUSTER_FILL).get(state)
            fill = (_NODE_FILL if match.group(2) == "node" else _CLUSTER_FILL, colour) if colour else None
            end = match.end()
        parts.append(_paint(base[end:], fill))
        svg = "".join(parts)
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
        """A running step's thicker outline, for this view's SVG only (the ``id`` scopes it)."""
        return (f'<style>#{self.uid} g.node[data-state="{RUNNING}"] :is(path,polygon,ellipse)'
                "{stroke-width:2.5px}</style>")

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
        state = snap.state(internal)
        if state == FAILED:
            cell = self.failed_cells(path) if kind == "notebook" else None
            if cell is not None:
                attrs.append(f'data-magnus-cell="{cell.index}"')
                label += f" (failed at {cell.label()})"
            else:
                label += " (failed)"
        elif state == CANCELLED:
            label += " (cancelled)"
        elif state == REUSED:
            label += f" (reused from run {snap.reused.get(internal) or 'retried'})"
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
        if parts and internal in snap.reused:
            parts[-1] += f" (↺ run <code>{html.escape(snap.reused[internal])}</code>)"
        return " · ".join(parts)

    # ---- without Graphviz: an indented tree ----------------------------------------------------

    def rows(self, snap: Snapshot) -> list[tuple[int, str, str, str]]:
        """(depth, label, internal name, state) for every step and branch, in pipeline order."""
        out: list[tuple[int, str, str, str]] = []
        stack: list[tuple[int, str, str, Pipeline | None, Step | None]] = []

        def push(depth: int, prefix: str, graph: Pipeline) -> None:
            for name, step in reversed(graph.steps.items()):
                internal = join_name(prefix, name)
                if not render.shown(graph, step, internal in snap.states):
                    continue  # as in the drawing: no unconnected fail step
                stack.append((depth, internal, name, None, step))

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

    def status_html(self, snap: Snapshot, now: float | None = None, hint: str = "") -> str:
        """Elapsed time, one line per running task (its cells, the last line it printed), then every
        failed or cancelled task with its whole message; ``hint`` shows while the run runs."""
        now = time.monotonic() if now is None else now  # event times are time.monotonic()
        elapsed = seconds(snap.elapsed(now))
        if snap.run_id is None:
            head = "not run yet: <code>%magnus_run</code> runs it"
        elif snap.finished is None:
            head = f"run <code>{html.escape(snap.run_id)}</code> · running · {elapsed}"
        else:
            state = self.run_state(snap)
            log = ""
            if snap.run_log_path:
                log = (f' · <a href="{html.escape(href(snap.run_log_path, self.link_base))}" '
                       f'target="_blank" {LINK_STYLE}>run log</a>')
            head = (f"run <code>{html.escape(snap.run_id)}</code> · <b style=\"background:"
                    f"{NODE_FILL[state]};padding:0 .3em\">{html.escape(snap.run_status or '')}</b>"
                    f"{' (cancelled)' if state == CANCELLED else ''} in {elapsed}{log}")
        lines = [head]
        if hint and snap.run_id is not None and snap.finished is None:
            lines.append(f"<i>{html.escape(hint)}</i>")
        for task in snap.running:
            cells = f" · cell {task.cells[0]}/{task.cells[1]}" if task.cells else ""
            since = seconds(max(0.0, now - task.start))
            tail = last_line(task.log_path)
            lines.append(f"▶ {html.escape(task.internal)}{cells} · {since}"
                         + (f" · <code>{html.escape(tail)}</code>" if tail else ""))
        failures = list(snap.failures.items())
        for internal, message in failures[:MAX_FAILURES]:
            mark = MARK[CANCELLED] if snap.state(internal) == CANCELLED else MARK[FAILED]
            lines.append(f"{mark} {html.escape(internal)}: "
                         f'<code style="{_WRAP}">{self.message_html(snap, internal, message)}</code>')
        if len(failures) > MAX_FAILURES:
            lines.append(f"✘ … and {len(failures) - MAX_FAILURES} more failed or cancelled tasks")
        for warning in snap.warnings[-3:]:
            lines.append(f"⚠ {html.escape(warning)}")
        return '<div style="font-size:12px;line-height:1.5">' + "<br>".join(lines) + "</div>"

    @staticmethod
    def run_state(snap: Snapshot) -> str:
        """How the run ended, as a view state: a FAIL that nothing failed in was a cancel."""
        if snap.run_status == "SUCCESS":
            return SUCCESS
        return FAILED if "" in snap.failed else CANCELLED

    def message_html(self, snap: Snapshot, internal: str, message: str) -> str:
        """A task's whole message as HTML; a path in it to a file that is there becomes a short link
        (its file name, the full path on hover) instead of a line a narrow output would cut."""
        message = message.strip() or "failed"
        notebook, log = snap.outputs.get(internal, (None, None))
        known = {path for path in (notebook, log) if path}
        parts: list[str] = []
        end = 0
        for match in _PATH.finditer(message):
            path = match.group(0)
            if path not in known and not os.path.isfile(path):
                continue
            parts.append(html.escape(message[end:match.start()]))
            kind = "notebook" if path.endswith(".ipynb") else "log"
            parts.append(f'<a href="{html.escape(href(path, self.link_base))}" target="_blank" {LINK_STYLE} '
                         f'{self.open_attributes(snap, internal, path, kind)} '
                         f'title="{html.escape(path)}">{html.escape(os.path.basename(path))}</a>')
            end = match.end()
        parts.append(html.escape(message[end:]))
        return "".join(parts)

    # ---- branch bars ---------------------------------------------------------------------------

    def lane_text(self, lane: Lane, snap: Snapshot, running: list[Running], finished: list[str]) -> str:
        """What a branch's bar says: the steps that succeeded of its steps, where it failed or was
        cancelled, the running notebook's cells, and links to its finished tasks' files."""
        parts = [f"{lane.succeeded}/{lane.total} steps succeeded"]
        if lane.reused:
            parts.append(f"{MARK[REUSED]} {lane.reused} reused")
        if lane.failed_at:
            names = ", ".join(f"<b>{html.escape(n)}</b>" for n in lane.failed_at)
            parts.append(f"{MARK[FAILED]} failed at {names}")
        if lane.cancelled_at:
            names = ", ".join(html.escape(n) for n in lane.cancelled_at)
            parts.append(f"{MARK[CANCELLED]} cancelled at {names}")
        elif lane.state == CANCELLED:
            parts.append(f"{MARK[CANCELLED]} cancelled")
        for task in running:
            cells = f": cell {task.cells[0]}/{task.cells[1]}" if task.cells and task.cells[1] else ""
            parts.append(f"{MARK[RUNNING]} {html.escape(task.name)}{cells}")
        for internal in finished:
            links = self.links(snap, internal)
            if links:
                parts.append(f"{html.escape(internal.rpartition('.')[2])}: {links}")
        return " · ".join(parts)

    @staticmethod
    def lane_title(lane: Lane) -> str:
        """The bar's title: what a screen reader (and a hover) says about it."""
        name = lane.label if lane.prefix else "pipeline"
        state = LEGEND.get(lane.state, lane.state)
        return f"{name}: {state}, {lane.succeeded} of {lane.total} steps succeeded"

    @staticmethod
    def more_text(hidden: list[Lane]) -> str:
        """One line for the branches past ``MAX_BARS``."""
        counts = [(sum(1 for lane in hidden if lane.state == state), LEGEND[state])
                  for state in (SUCCESS, FAILED, CANCELLED, RUNNING)]
        said = ", ".join(f"{n} {word}" for n, word in counts if n)
        return (f'<span style="font-size:12px">… and {len(hidden)} more branches'
                f'{": " + said if said else ""}</span>')

    # ---- the final picture, for the notebook file ------------------------------------------------

    def static_bundle(self, snap: Snapshot, timeline: str = "") -> dict[str, str]:
        """What the output keeps once the run is over: no widget (a saved notebook has no model for
        it), but the coloured DAG and the branch bars as HTML, the DAG as ``image/svg+xml`` and
        a text summary, for a fresh session, ``nbconvert`` and GitHub. ``timeline``: the run's
        timeline (an SVG document), shown below in a ``<details>`` section that starts open: with no
        script to switch views, both pictures are there, and the reader may fold one away."""
        markup, svg = self.views(snap)
        lanes, hidden = shown_lanes(snap)
        running, finished = by_lane(snap)
        rows = []
        for lane in lanes:
            text = self.lane_text(lane, snap, running.get(lane.prefix, []), finished.get(lane.prefix, []))
            rows.append(f'<tr><td style="text-align:left;padding:0 .6em 0 0;white-space:nowrap">'
                        f"{lane_name(lane)}</td>"
                        f'<td style="padding:0">{self.bar_html(lane)}</td>'
                        f'<td style="text-align:left;padding:0 0 0 .6em">{text}</td></tr>')
        table = ('<table class="magnus-bars" style="font-size:12px;border-collapse:collapse;margin:.3em 0">'
                 + "".join(rows) + "</table>")
        more = self.more_text(hidden) if hidden else ""
        drawing = self.both(svg) if markup == svg else markup
        after = ""
        if timeline:
            label = f"timeline of run {snap.run_id or ''}"
            shown = self.both(inline_svg(timeline, label), "-timeline", label, timeline)
            after = ('<details open class="magnus-timeline-view"><summary style="cursor:pointer">Timeline'
                     f"</summary>{shown}</details>")
        page = f'<div class="magnus-dag">{drawing}{table}{more}{self.status_html(snap)}{after}</div>'
        return {"text/html": page, "image/svg+xml": svg, "text/plain": self.plain(snap)}

    def bar_html(self, lane: Lane) -> str:
        """A branch's bar as plain HTML: filled by the steps that succeeded, its track tinted by how
        the branch ended (a ``<progress>`` element's colours differ from browser to browser)."""
        share = 100 * lane.succeeded / lane.total if lane.total else 0.0
        track, fill = CLUSTER_FILL.get(lane.state, "#eeeeee"), BAR_COLOUR.get(lane.state, "#9e9e9e")
        return (f'<div class="magnus-bar" role="progressbar" aria-valuemin="0" aria-valuemax="{lane.total}" '
                f'aria-valuenow="{lane.succeeded}" data-state="{lane.state}" data-value="{lane.succeeded}" '
                f'data-max="{lane.total}" title="{html.escape(self.lane_title(lane))}" '
                f'style="display:inline-block;vertical-align:middle;width:14em;height:.8em;overflow:hidden;'
                f'border:1px solid #bbbbbb;border-radius:3px;background:{track}">'
                f'<div style="width:{share:.1f}%;height:100%;background:{fill}"></div></div>')

    def both(self, svg: str, name: str = "", alt: str = "pipeline DAG", image: str = "") -> str:
        """The linked drawing, and the same drawing as an ``<img>``: one of them shows.

        JupyterLab and Notebook 7 sanitise the HTML of a notebook they did not sign (one papermill
        ran, one from a colleague): ``<svg>`` and ``<style>`` go (the SVG's text would stay, as a
        line of words), ``style`` attributes and an ``<img>`` with a ``data:`` URL stay. So the
        drawing sits in a box hidden by its ``style`` attribute and the ``<style>`` rule, which
        survives only where the HTML is trusted (or not sanitised, as by nbconvert), shows the box
        and hides the image; where it was removed the image shows, without links. ``name`` tells a
        second picture's ids from the first's (the timeline: ``-timeline``); ``alt`` words the image;
        ``image``: the SVG document the image shows, when ``svg`` is that document set in a page.
        """
        if len(image or svg) > MAX_COPY:
            return svg
        data = base64.b64encode((image or svg).encode("utf-8")).decode("ascii")
        uid = self.uid + name
        return (f"<style>#{uid}-box{{display:block !important}}#{uid}-copy{{display:none}}</style>"
                f'<div id="{uid}-box" style="display:none">{svg}</div>'
                f'<img id="{uid}-copy" alt="{html.escape(alt)}" style="max-width:100%" '
                f'src="data:image/svg+xml;base64,{data}">')

    def plain(self, snap: Snapshot) -> str:
        """The summary as text, for a viewer that shows nothing else."""
        if snap.run_id is None:
            head = "magnus pipeline DAG (not run yet)"
        else:
            head = f"magnus run {snap.run_id}: {snap.run_status or 'running'} in {seconds(snap.elapsed())}"
        lines = [head]
        for lane in shown_lanes(snap)[0]:
            text = re.sub(r"<[^>]+>", "", self.lane_text(lane, snap, [], []))
            lines.append(f"  {lane.label if lane.prefix else 'pipeline'}: {html.unescape(text)}")
        return "\n".join(lines)


def inline_svg(svg: str, label: str) -> str:
    """A standalone SVG document (the run's timeline) made to sit in a page: no XML prolog, scaled down
    to its box but not below a readable size (a narrow box scrolls it), labelled for screen readers."""
    start = svg.find("<svg")
    if start < 0:
        return ""
    head = (f'<svg style="max-width:100%;min-width:60em;height:auto" role="img" '
            f'aria-label="{html.escape(label)}" ')
    body = svg[start:].replace("<svg ", head, 1)
    return f'<div style="overflow-x:auto">{body}</div>'


def lane_name(lane: Lane) -> str:
    """A bar's name as HTML: the branch's internal name, or ``pipeline``."""
    return html.escape(lane.label if lane.prefix else "pipeline")


def shown_lanes(snap: Snapshot) -> tuple[list[Lane], list[Lane]]:
    """The branches that get a bar (the pipeline and every branch with steps), and those past ``MAX_BARS``."""
    lanes = [lane for lane in snap.lanes if lane.total or lane.prefix == ""]
    return lanes[:MAX_BARS], lanes[MAX_BARS:]


def by_lane(snap: Snapshot) -> tuple[dict[str, list[Running]], dict[str, list[str]]]:
    """Running tasks and finished tasks' outputs by lane (the internal name up to the step's own
    name, which holds no '.'), so each bar looks at its own, not at every task of the run."""
    running: dict[str, list[Running]] = {}
    for task in snap.running:
        running.setdefault(task.internal.rpartition(".")[0], []).append(task)
    busy = {task.internal for task in snap.running}
    finished: dict[str, list[str]] = {}
    for internal in snap.outputs:
        if internal not in busy:
            finished.setdefault(internal.rpartition(".")[0], []).append(internal)
    return running, finished


def _paint(segment: str, fill: tuple[re.Pattern[str], str] | None) -> str:
    """A group's shape filled with its state's colour: the first fill in the text after its tag."""
    if fill is None:
        return segment
    pattern, colour = fill
    return pattern.sub(f'fill="{colour}"', segment, count=1)


def legend_svg(width: float) -> tuple[str, float]:
    """The states' legend as SVG rows that fit ``width`` points, and its height."""
    parts, x, y = [], 4.0, 12.0
    for state in STATES:
        label = LEGEND[state]
        size = 18 + 5.6 * len(label) + 12
        if x > 4 and x + size > width:
            x, y = 4.0, y + 16
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="11" height="11" rx="2" '
                     f'fill="{NODE_FILL[state]}" stroke="#444444"/>'
                     f'<text x="{x + 15:.1f}" y="{y:.1f}" font-family="Helvetica,sans-Serif" '
                     f'font-size="10.00">{label}</text>')
        x += size
    return "".join(parts), y + 6


def with_legend(svg: str) -> str:
    """Graphviz's SVG grown at the bottom by a legend of the states (so every copy carries one)."""
    match = _SIZE.search(svg)
    if match is None:
        return svg
    width, height = float(match.group(1)), float(match.group(2))
    size = max(width, 330.0)  # the legend in two rows
    legend, extra = legend_svg(size)
    total = height + extra
    svg = (svg[:match.start()] + f'width="{size:.2f}pt" height="{total:.2f}pt"\n viewBox="0.00 0.00 '
           f'{size:.2f} {total:.2f}"' + svg[match.end():])
    group = (f'<g class="legend" role="list" aria-label="legend of the states" '
             f'transform="translate(0 {height:.2f})">{legend}</g>')
    end = svg.rindex("</svg>")
    return svg[:end] + group + svg[end:]


def _natural(text: str) -> list[tuple[int, int | str]]:
    """Map values in human order: 2 before 10."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part]


def _kind(step: Step) -> str:
    return f"{step.kind} task" if isinstance(step, Task) else step.type
