"""The DAG widget: stock ipywidgets subscribed to a ``RunStatus``, updated at most 10 times a second.

An ``HTML`` widget holds the Graphviz SVG (or the tree without Graphviz), a
box of progress bars holds one row per branch, and a line shows elapsed time
and what each running task last printed. Only stock widgets, so JupyterLab 4,
Notebook 7 and VS Code show it without a front-end build.

A widget lives only as long as its kernel: a saved notebook reopened has no
model for it (Lab and Notebook 7 say "model not found" and show nothing else).
So when the run ends, ``publish()`` replaces the displayed widget with a static
final picture (``Picture.static_bundle``): the coloured DAG and the bars as
HTML, the DAG as ``image/svg+xml``, a text summary. That is what the notebook
file keeps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..executor import events as ev
from ..model import Pipeline
from .picture import Picture, by_lane, lane_name, shown_lanes
from .status import CANCELLED, FAILED, REUSED, RUNNING, SUCCESS, Running, RunStatus, Snapshot
from .throttle import Throttle

_BAR_STYLE = {RUNNING: "info", SUCCESS: "success", REUSED: "success", FAILED: "danger", CANCELLED: "warning"}


class DagWidget:
    """The live view of one pipeline; subscribe ``widget.status`` to a run (``subscribers=[...]``).

    ``on_stop``: a Stop button that calls it, for a run whose cell is not busy (a
    ``--background`` run: the kernel handles the click). A foreground run's kernel
    is busy with the cell and would handle the click only after the run: it shows
    ``hint`` (how to stop it) instead.
    """

    def __init__(self, pipeline: Pipeline, status: RunStatus | None = None, *,
                 link_base: str | os.PathLike[str] | None = None, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic,
                 on_stop: Callable[[], None] | None = None, hint: str = "") -> None:
        self.status = status if status is not None else RunStatus(pipeline)
        self.picture = Picture(pipeline, link_base=link_base)
        self.hint = hint
        self.html = widgets.HTML(layout=widgets.Layout(overflow="auto"))
        self.bars = widgets.VBox()
        self.more = widgets.HTML()
        self.line = widgets.HTML()
        self._on_stop = on_stop
        self.stop: widgets.Button | None = None
        parts: list[widgets.Widget] = [self.html, self.bars, self.more, self.line]
        if on_stop is not None:
            self.stop = widgets.Button(description="Stop run", icon="stop", button_style="danger",
                                       tooltip="cancel the run: its tasks and kernels are stopped",
                                       layout=widgets.Layout(display="none", width="auto"))
            self.stop.on_click(self._stop_clicked)
            parts.append(self.stop)
        self.box = widgets.VBox(parts)
        self.renders = 0
        self.last_svg = ""
        self._rows: dict[str, tuple[widgets.HTML, widgets.FloatProgress, widgets.FloatProgress,
                                    widgets.HTML]] = {}
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
        self.line.value = self.picture.status_html(snap, hint=self.hint)
        if self.stop is not None:
            live = snap.started is not None and snap.finished is None
            self.stop.layout.display = None if live else "none"

    def _stop_clicked(self, _button: object = None) -> None:
        if self._on_stop is not None and self.stop is not None:
            self.stop.disabled = True
            self.stop.description = "Stopping…"
            self._on_stop()

    def _render_bars(self, snap: Snapshot) -> None:
        shown, hidden = shown_lanes(snap)
        running, finished = by_lane(snap)
        children = []
        for lane in shown:
            label, bar, cells, text = self._row(lane.prefix)
            mine = running.get(lane.prefix, [])
            bar.max = max(lane.total, 1)
            bar.value = min(lane.succeeded, bar.max)  # only what succeeded fills a bar
            bar.bar_style = _BAR_STYLE.get(lane.state, "")
            bar.tooltip = self.picture.lane_title(lane)
            self._cells(cells, mine)
            name = lane_name(lane)
            label.value = f'<span title="{name}" style="font-size:12px">{name}</span>'
            text.value = ('<span style="font-size:12px">'
                          f"{self.picture.lane_text(lane, snap, mine, finished.get(lane.prefix, []))}</span>")
            children.append(self._boxes[lane.prefix])
        if tuple(self.bars.children) != tuple(children):
            self.bars.children = children
        more = self.picture.more_text(hidden) if hidden else ""
        if self.more.value != more:
            self.more.value = more

    @staticmethod
    def _cells(bar: widgets.FloatProgress, running: list[Running]) -> None:
        """The running notebook's cells in a bar of their own: a fill means the same in every branch."""
        task = next((t for t in running if t.cells and t.cells[1]), None)
        if task is None or task.cells is None:
            bar.layout.visibility = "hidden"
            return
        done, total = task.cells
        bar.max, bar.value = total, min(done, total)
        bar.tooltip = f"{task.name}: cell {done} of {total}"
        bar.layout.visibility = "visible"

    def _row(self, prefix: str) -> tuple[widgets.HTML, widgets.FloatProgress, widgets.FloatProgress,
                                         widgets.HTML]:
        if prefix not in self._rows:
            label = widgets.HTML(layout=widgets.Layout(width="16em", flex="0 0 16em", overflow="hidden"))
            bar = widgets.FloatProgress(min=0, max=1, layout=widgets.Layout(width="14em", flex="0 0 14em"))
            cells = widgets.FloatProgress(min=0, max=1, bar_style="info",
                                          layout=widgets.Layout(width="5em", flex="0 0 5em",
                                                                visibility="hidden"))
            bar.add_class("magnus-steps")  # what a page (and the browser tests) reads as the branch's bar
            cells.add_class("magnus-cells")
            text = widgets.HTML()
            self._rows[prefix] = (label, bar, cells, text)
            self._boxes[prefix] = widgets.HBox([label, bar, cells, text])
        return self._rows[prefix]

    # ---- display -----------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget view plus ``image/svg+xml`` of the last state, for where widgets don't render."""
        bundle = dict(self.box._repr_mimebundle_(**kwargs) or {})
        bundle["image/svg+xml"] = self.last_svg
        bundle["text/plain"] = "magnus pipeline DAG"
        return bundle

    def static_bundle(self) -> dict[str, str]:
        """The final picture without the widget (see ``Picture.static_bundle``)."""
        return self.picture.static_bundle(self.status.snapshot())

    def show(self, static: bool = False) -> None:
        """Display the widget (``static``: the picture only, for a DAG that will not change)."""
        from IPython.display import display

        if static:
            self._display = display(self.static_bundle(), raw=True, display_id=True)
        else:
            self._display = display(self, display_id=True)

    def publish(self) -> None:
        """Replace the displayed widget with the static final picture: what the notebook file keeps."""
        if self._display is not None:
            self._display.update(self.static_bundle(), raw=True)

