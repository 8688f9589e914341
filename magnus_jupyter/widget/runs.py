"""``%magnus_runs``: a folder's run history as stock ipywidgets, live while a run runs.

The table of runs (pages.py's HTML), a list to select runs from (a native
multiple-selection list: keyboard and screen reader work as they do everywhere),
and what the selection shows: one run's summary, DAG (replayed from its run
log, as the live widget drew it) and timeline; two runs compared side by side.
While any run is RUNNING the view refreshes itself every ``POLL`` seconds (the
widget throttle's tick), and stops when none is.

A widget lives only as long as its kernel, and a saved notebook keeps no model
for it. So the view also displays a static twin: the table as HTML (and as
text), kept up to date. While the widget shows, a ``<style>`` rule inside it
hides the twin; in a notebook reopened without the kernel, the rule is gone
with the widget and the twin shows the table as it last was.
"""

from __future__ import annotations

import html
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..history.store import RunFolder, RunLogError, load_run
from ..history.summary import RUNNING, RunSummary, list_runs, seconds
from ..history.tables import status_text
from .pages import RunPictures, detail_html, diff_html, h, run_detail, runs_table_html
from .throttle import Throttle

POLL = 2.0  # seconds between refreshes while a run is running
HINT = "Select a run to see its summary, DAG and timeline; select two to compare them."


class RunsView:
    """The run history of ``folder`` (default: here); links are made relative to ``link_base`` (the
    notebook's folder, the kernel's working directory)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None, *,
                 link_base: str | os.PathLike[str] | None = None, poll: float = POLL) -> None:
        self.folder = Path(folder if folder is not None else os.getcwd())
        self.shown = "" if str(folder or ".") == "." else str(self.folder)  # "": this folder, said so
        self.where = RunFolder.of(self.folder)
        self.link_base = Path(link_base if link_base is not None else os.getcwd())
        self.uid = "magnus-runs-" + secrets.token_hex(4)
        self.rows: list[RunSummary] = []
        self.warnings: list[str] = []
        self.pictures = RunPictures(8)
        self.style = widgets.HTML(f"<style>.{self.uid}-static{{display:none}}</style>")
        self.heading = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             tooltip="read the run logs again",
                                             layout=widgets.Layout(width="auto"))
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.table = widgets.HTML(layout=widgets.Layout(overflow="auto", max_height="24em"))
        self.select = widgets.SelectMultiple(description="Runs", rows=8,
                                             layout=widgets.Layout(width="auto", min_width="28em"),
                                             style={"description_width": "initial"})
        self.select.add_class("magnus-runs-select")
        self.select.observe(self._selected, names="value")
        self.detail = widgets.HTML(HINT, layout=widgets.Layout(overflow="auto"))
        self.detail.add_class("magnus-runs-detail")
        self.box = widgets.VBox([self.style, widgets.HBox([self.heading, self.refresh_button]), self.table,
                                 self.select, self.detail])
        self.box.add_class("magnus-runs")
        self._twin: Any = None
        self._selection: tuple[str, ...] = ()
        self._lock = threading.RLock()  # a refresh runs in the throttle's thread, a selection in the kernel's
        self._quiet = False
        self.throttle = Throttle(self.refresh, poll, tick=poll, ticking=self.live)
        self.refresh()

    # ---- reading -------------------------------------------------------------------------------

    def live(self) -> bool:
        """Whether a run shown is running (then the view refreshes itself)."""
        return any(row["status"] == RUNNING for row in self.rows)

    def refresh(self) -> None:
        """Read the runs again; the selection stays on the runs still there, and is drawn again if one
        of them moved on."""
        with self._lock:
            before = {row["run_id"]: (row["status"], row["done"]) for row in self.rows}
            warnings: list[str] = []
            self.rows = list_runs(self.where, warn=warnings.append)
            self.warnings = warnings
            now = {row["run_id"]: (row["status"], row["done"]) for row in self.rows}
            options = [(self._option(row), row["run_id"]) for row in self.rows]
            if list(self.select.options) != options:
                keep = tuple(run_id for run_id in self.select.value if run_id in now)
                self._quiet = True  # new options reset the value: no detail for the passing empty one
                try:
                    self.select.options = options
                    self.select.value = keep
                finally:
                    self._quiet = False
            self._show(force=any(before.get(run_id) != now.get(run_id) for run_id in self._selection))
            self._render_table()
        if self.live():
            self.throttle.request()  # the next refresh comes by itself, and the next, while one runs

    @staticmethod
    def _option(row: RunSummary) -> str:
        start = row["start"][:19] or "not started"
        return f"{row['run_id']} · {status_text(row)} · {start} · {seconds(row['duration'])}"

    def _render_table(self) -> None:
        table = runs_table_html(self.rows, self._selection, folder=self.shown, warnings=self.warnings)
        if self.table.value != table:
            self.table.value = table
        live = " · live: refreshing while a run runs" if self.live() else ""
        where = f"<code>{h(self.shown)}</code>" if self.shown else "this folder"
        self.heading.value = (f'<b style="font-size:13px">magnus runs in {where}</b>'
                              f'<span style="font-size:12px">{live}</span>')
        if self._twin is not None:
            self._twin.update(self.static_bundle(), raw=True)

    # ---- the selection -----------------------------------------------------------------------------

    def _selected(self, _change: object = None) -> None:
        if self._quiet:
            return
        with self._lock:
            self._show()
            self._render_table()

    def _show(self, force: bool = False) -> None:
        """The detail of the selection: one run, two compared, or how to choose; ``force`` draws the
        same selection again."""
        order = {row["run_id"]: i for i, row in enumerate(self.rows)}
        chosen = tuple(sorted(self.select.value, key=lambda run_id: order.get(run_id, 0)))  # newest first
        if chosen == self._selection and not force:
            return
        self._selection = chosen
        try:
            if not chosen:
                page = HINT
            elif len(chosen) == 1:
                page = detail_html(run_detail(chosen[0], self.where, link_base=self.link_base,
                                              pictures=self.pictures))
            elif len(chosen) == 2:
                from ..history.diff import diff_runs

                newer, older = chosen  # A is the older run
                diff = diff_runs(load_run(older, self.where), load_run(newer, self.where), self.where)
                page = diff_html(diff)
            else:
                page = f"{len(chosen)} runs selected: select one to see it, or two to compare them."
        except RunLogError as exc:
            page = f'<span style="color:#b71c1c">{html.escape(str(exc))}</span>'
        self.detail.value = page

    # ---- display -------------------------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        """The twin: what a notebook reopened without its kernel shows in place of the widget."""
        from ..history.tables import format_runs

        table = runs_table_html(self.rows, self._selection, folder=self.shown, warnings=self.warnings)
        note = ('<div style="font-size:12px;color:#555">the run history as it was when the notebook was '
                "saved; run <code>%magnus_runs</code> again to browse it</div>")
        text = format_runs(self.rows) if self.rows else f"no runs in {self.shown or 'this folder'}"
        return {"text/html": f'<div class="{self.uid}-static magnus-runs-static">{table}{note}</div>',
                "text/plain": text}

    def show(self) -> None:
        """Display the widget, then its static twin (hidden while the widget shows)."""
        from IPython.display import display

        display(self.box)
        self._twin = display(self.static_bundle(), raw=True, display_id=True)

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        self.throttle.close()
        self.box.close()
