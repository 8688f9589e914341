"""The DAG widget: stock ipywidgets subscribed to a ``RunStatus``, updated at most 10 times a second.

An ``HTML`` widget holds the Graphviz SVG (or the tree without Graphviz), a
box of progress bars holds one row per branch, and a line shows elapsed time
and what each running task last printed. Only stock widgets, so JupyterLab 4,
Notebook 7 and VS Code show it without a front-end build. Displayed, it also
carries ``image/svg+xml`` of its last state, so a saved notebook shows the
final DAG where widgets do not render.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..executor import events as ev
from ..model import Pipeline
from .picture import Picture
from .status import FAILED, RUNNING, SUCCESS, Lane, RunStatus, Snapshot
from .throttle import Throttle

MAX_BARS = 40  # more branches than this (a big map) are summed up in one line
_BAR_STYLE = {RUNNING: "info", SUCCESS: "success", FAILED: "danger"}


class DagWidget:
    """The live view of one pipeline; subscribe ``widget.status`` to a run (``subscribers=[...]``)."""

    def __init__(self, pipeline: Pipeline, status: RunStatus | None = None, *,
                 link_base: str | os.PathLike[str] | None = None, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.status = status if status is not None else RunStatus(pipeline)
        self.picture = Picture(pipeline, link_base=link_base)
        self.html = widgets.HTML(layout=widgets.Layout(overflow="auto"))
        self.bars = widgets.VBox()
        self.more = widgets.HTML()
        self.line = widgets.HTML()
        # a background run has no busy cell to interrupt: this button is its stop
        self.stop = widgets.Button(description="Stop run", icon="stop", button_style="danger",
                                   tooltip="cancel the run: its tasks and kernels are stopped",
                                   layout=widgets.Layout(display="none", width="auto"))
        self._on_stop = on_stop
        self.stop.on_click(self._stop_clicked)
        self.box = widgets.VBox([self.html, self.bars, self.more, self.line, self.stop])
        self.renders = 0
        self.last_svg = ""
        self._rows: dict[str, tuple[widgets.HTML, widgets.FloatProgress, widgets.HTML]] = {}
        self._boxes: dict[str, widgets.HBox] = {}
        self._display: Any = None
        self.throttle = Throttle(self.render, interval, clock=clock, tick=1.0, ticking=self._ticking)
        self.status.subscribe(self._changed)
        self.render()

    # ---- updates -----------------------------------------------------------------------------

    def _changed(self, status: RunStatus, event: ev.Event | None) -> None:
        if isinstance(event, ev.RunFinished):
            self.finish()
        else:
            self.throttle.request()

    def finish(self) -> None:
        """The final render, whatever the throttle held back; no more timed updates after it."""
        self.throttle.close()
        self.throttle.flush()

    def _ticking(self) -> bool:
        """Keep the clock and the running tasks' last lines moving between events."""
        snap = self.status.snapshot()
        return snap.started is not None and snap.finished is None

    def render(self) -> None:
        """Apply the status's latest state to the widgets (called by the throttle)."""
        snap = self.status.snapshot()
        self.renders += 1
        markup, self.last_svg = self.picture.views(snap)
        if self.html.value != markup:
            self.html.value = markup
        self._render_bars(snap)
        self.line.value = self.picture.status_html(snap)
        live = self._on_stop is not None and snap.started is not None and snap.finished is None
        self.stop.layout.display = None if live else "none"

    def _stop_clicked(self, _button: object = None) -> None:
        if self._on_stop is not None:
            self.stop.disabled = True
            self.stop.description = "Stopping…"
            self._on_stop()

    def _render_bars(self, snap: Snapshot) -> None:
        lanes = [lane for lane in snap.lanes if lane.total or lane.prefix == ""]
        shown, hidden = lanes[:MAX_BARS], lanes[MAX_BARS:]
        running, finished = self._by_lane(snap)
        children = []
        for lane in shown:
            label, bar, text = self._row(lane.prefix)
            value, detail = self._progress(lane, snap, running.get(lane.prefix, []),
                                           finished.get(lane.prefix, []))
            bar.max = max(lane.total, 1)
            bar.value = min(value, bar.max)
            bar.bar_style = _BAR_STYLE.get(lane.state, "")
            # the bar's title is what a screen reader (and a hover) says about it
            bar.tooltip = (f"{lane.label if lane.prefix else 'pipeline'}: {lane.done} of {lane.total} "
                           f"steps done, {lane.state}")
            name = html.escape(lane.label if lane.prefix else "pipeline")
            label.value = f'<span title="{name}" style="font-size:12px">{name}</span>'
            text.value = f'<span style="font-size:12px">{lane.done}/{lane.total} steps{detail}</span>'
            children.append(self._boxes[lane.prefix])
        if tuple(self.bars.children) != tuple(children):
            self.bars.children = children
        if hidden:
            done = sum(1 for lane in hidden if lane.state == SUCCESS)
            failed = sum(1 for lane in hidden if lane.state == FAILED)
            self.more.value = (f'<span style="font-size:12px">… and {len(hidden)} more branches: '
                               f"{done} done, {failed} failed</span>")
        elif self.more.value:
            self.more.value = ""

    @staticmethod
    def _by_lane(snap: Snapshot) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        """Running tasks and finished tasks' outputs by lane (the internal name up to the step's own
        name, which holds no '.'), so each bar looks at its own, not at every task of the run."""
        running: dict[str, list[Any]] = {}
        for task in snap.running:
            running.setdefault(task.internal.rpartition(".")[0], []).append(task)
        busy = {task.internal for task in snap.running}
        finished: dict[str, list[str]] = {}
        for internal in snap.outputs:
            if internal not in busy:
                finished.setdefault(internal.rpartition(".")[0], []).append(internal)
        return running, finished

    def _progress(self, lane: Lane, snap: Snapshot, running: list[Any], finished: list[str]
                  ) -> tuple[float, str]:
        """Steps done, plus the running notebook's share of cells; links once its tasks finished."""
        value: float = lane.done
        detail = ""
        for task in running:
            if task.cells and task.cells[1]:
                value += task.cells[0] / task.cells[1]
                detail += f" · {html.escape(task.name)}: cell {task.cells[0]}/{task.cells[1]}"
            else:
                detail += f" · {html.escape(task.name)}"
        for internal in finished:
            links = self.picture.links(snap, internal)
            if links:
                detail += f" · {html.escape(internal.rpartition('.')[2])}: {links}"
        return value, detail

    def _row(self, prefix: str) -> tuple[widgets.HTML, widgets.FloatProgress, widgets.HTML]:
        if prefix not in self._rows:
            label = widgets.HTML(layout=widgets.Layout(width="16em", flex="0 0 16em", overflow="hidden"))
            bar = widgets.FloatProgress(min=0, max=1, layout=widgets.Layout(width="14em", flex="0 0 14em"))
            text = widgets.HTML()
            self._rows[prefix] = (label, bar, text)
            self._boxes[prefix] = widgets.HBox([label, bar, text])
        return self._rows[prefix]

    # ---- display -----------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget view plus ``image/svg+xml`` of the last state, for where widgets don't render."""
        bundle = dict(self.box._repr_mimebundle_(**kwargs) or {})
        bundle["image/svg+xml"] = self.last_svg
        bundle["text/plain"] = "magnus pipeline DAG"
        return bundle

    def show(self) -> None:
        """Display the widget; later ``publish()`` replaces the output's static SVG with the latest."""
        from IPython.display import display

        self._display = display(self, display_id=True)

    def publish(self) -> None:
        """Refresh the displayed bundle, so the notebook file keeps the final DAG as SVG."""
        if self._display is not None:
            self._display.update(self)
