"""A folder's run history as HTML: the table of runs, one run (summary, DAG, timeline), two runs compared.

What ``%magnus_runs`` shows (and its saved, static form keeps) and what the
Jupyter server extension sends the Lab panel: one renderer for both. The data
comes from ``magnus_jupyter.history`` (rows, step rows, the timeline, the diff);
the DAG is the widget's own picture of the run, replayed from its log
(replay.py). Every name, value and message comes from a pipeline, a task or a
run log someone else wrote: each goes through ``html.escape`` with its control
characters shown (``text.one_line``), so a step named ``<script>`` stays text.
No ipywidgets here.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from .. import render
from ..history.gantt import timeline, timeline_svg
from ..history.store import RunFile, RunFolder, RunLogError, find_run, load_run, read_run_file
from ..history.summary import (
    ABANDONED,
    PROCESSING,
    RUNNING,
    RunSummary,
    recorded_pipeline,
    seconds,
    summary_of,
)
from ..history.tables import status_text
from ..history.tree import StepRow, step_rows
from ..text import clean, one_line
from .picture import Picture, inline_svg

if TYPE_CHECKING:
    from ..history.diff import RunDiff

STATUS_FILL = {"SUCCESS": render.NODE_FILL["SUCCESS"], "FAIL": render.NODE_FILL["FAIL"],
               RUNNING: render.NODE_FILL["PROCESSING"], PROCESSING: "#eeeeee", ABANDONED: "#f8cfa0"}
MAX_ROWS = 200  # runs in the table; the rest are counted (``magnus-jupyter runs`` lists all)
CELL = 120  # characters of a value shown in a diff cell; the whole value is its title
HASH = 18  # characters of a catalog file's sha256 shown (with its quotes): enough to tell two apart
NO_PIPELINE = ("this run log records no pipeline (magnus' own logs do not), so its DAG cannot be drawn; "
               "its steps are listed in the summary")
_PICTURES = 32  # run pictures kept laid out (``RunPictures``)


class RunDetail(TypedDict):
    """One run: its row, its step rows, its timeline (SVG), its DAG (the widget's SVG, or its tree as
    HTML without Graphviz; "" with ``dag_note`` saying why when there is none)."""

    run: RunSummary
    steps: list[StepRow]
    timeline: str
    dag: str
    dag_note: str


def h(value: object) -> str:
    """Untrusted text as HTML: escaped, its control characters shown, on one line."""
    return html.escape(one_line(value), quote=True)


def block(value: object) -> str:
    """Untrusted text as HTML that keeps its lines (a message, a traceback)."""
    return html.escape(clean(value), quote=True)


def status_badge(row: RunSummary) -> str:
    """The run's status as words on its colour (the words say it, the colour only helps)."""
    text = status_text(row)
    fill = STATUS_FILL.get(row["status"], "#eeeeee")
    title = f' title="{h(row["note"])}"' if row["note"] else ""
    return (f'<span class="magnus-status" data-status="{h(row["status"])}"{title} style="background:{fill};'
            f'padding:0 .35em;border-radius:3px;white-space:nowrap">{h(text)}</span>')


# ---- the table --------------------------------------------------------------------------------

_TABLE_STYLE = "font-size:12px;border-collapse:collapse;margin:.3em 0"
_CELL_STYLE = "text-align:left;padding:.1em .6em .1em 0;border-bottom:1px solid #e0e0e0;vertical-align:top"
_DIFFERS = ' style="background:#fff3cd"'
_H4 = '<h4 style="margin:.6em 0 .2em">'


def _cells(values: Sequence[str]) -> str:
    return "".join(f'<td style="{_CELL_STYLE}">{value}</td>' for value in values)


def runs_table_html(rows: Sequence[RunSummary], selected: Sequence[str] = (), *, folder: str = "",
                    warnings: Sequence[str] = ()) -> str:
    """The runs, newest first as given, as an HTML table; ``selected`` run ids are marked."""
    head = ("run id", "status", "start", "duration", "ok", "failed", "reused", "retry of", "tag")
    cells = "".join(f'<th scope="col" style="{_CELL_STYLE}">{name}</th>' for name in head)
    body = []
    chosen = set(selected)
    for row in rows[:MAX_ROWS]:
        mark = row["run_id"] in chosen
        style = ' aria-selected="true" style="background:#e3f2fd"' if mark else ""
        retry_of = f"<code>{h(row['original_run_id'])}</code>" if row["original_run_id"] else ""
        values = (f"{'▶ ' if mark else ''}<code>{h(row['run_id'])}</code>", status_badge(row),
                  h(row["start"][:19]), h(seconds(row["duration"])), str(row["succeeded"]),
                  str(row["failed"]), str(row["reused"]), retry_of, h(row["tag"]))
        body.append(f'<tr data-run="{h(row["run_id"])}"{style}>{_cells(values)}</tr>')
    where = f" in <code>{h(folder)}</code>" if folder else ""  # the folder as the reader knows it
    caption = f"{len(rows)} run{'s' if len(rows) != 1 else ''}{where}, newest first"
    if not rows:
        empty = f'<div class="magnus-runs-table" style="font-size:12px">no runs{where} yet</div>'
        return empty + _notes(warnings)
    more = (f'<div style="font-size:12px">… and {len(rows) - MAX_ROWS} older runs '
            "(<code>magnus-jupyter runs</code> lists them all)</div>") if len(rows) > MAX_ROWS else ""
    return (f'<table class="magnus-runs-table" style="{_TABLE_STYLE}"><caption style="text-align:left">'
            f"{caption}</caption><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + more + _notes(warnings))


def _notes(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    lines = "".join(f"<div>⚠ skipped: {h(w)}</div>" for w in warnings[:10])
    more = f"<div>⚠ … and {len(warnings) - 10} more</div>" if len(warnings) > 10 else ""
    return f'<div class="magnus-runs-warnings" style="font-size:12px;color:#8a6d3b">{lines}{more}</div>'


# ---- one run --------------------------------------------------------------------------------


class RunPictures:
    """The DAG pictures of recently shown runs, kept laid out: redrawing a running run's new states
    costs no Graphviz run (``Picture``'s cache), only a new map branch does."""

    def __init__(self, size: int = _PICTURES) -> None:
        self.size = size
        self._pictures: OrderedDict[tuple[Any, ...], Picture] = OrderedDict()
        self._lock = threading.Lock()

    def draw(self, run: RunFile, run_log: dict[str, Any], folder: RunFolder,
             link_base: str) -> tuple[str, str]:
        """(the DAG and its status lines as HTML, why there is none) of ``run_log``, read from ``run``."""
        pipeline = recorded_pipeline(run_log)
        if pipeline is None:
            return "", NO_PIPELINE
        from .replay import replay

        original = None
        if run_log.get("original_run_id"):
            with contextlib.suppress(RunLogError):  # gone or unreadable: reused tasks link to first attempts
                original = load_run(str(run_log["original_run_id"]), folder)
        snap = replay(pipeline, run_log, run.path, folder.catalog_of(run.run_id), original).snapshot()
        try:  # the folder by identity: the server reaches one folder by a new /proc/self/fd path each time
            where = os.stat(folder.run_logs)
            key: tuple[Any, ...] = (where.st_dev, where.st_ino, run.run_id)
        except OSError:
            key = (str(folder.run_logs), run.run_id)
        with self._lock:
            picture = self._pictures.pop(key, None) or Picture(pipeline, link_base=link_base)
            picture.link_base = link_base  # links are made at each drawing
            self._pictures[key] = picture
            while len(self._pictures) > self.size:
                self._pictures.popitem(last=False)
            markup, _ = picture.views(snap)
            status = picture.status_html(snap)
        return markup + status, ""


def run_detail(run_id: str, folder: RunFolder, *, link_base: str | Path,
               pictures: RunPictures | None = None) -> RunDetail:
    """Everything shown about one run; ``RunLogError`` (naming the file) for an unknown or unreadable one.

    ``link_base``: the folder links to the run's files are relative to (the notebook's, or the
    folder the runs are in)."""
    run = find_run(run_id, folder)
    run_log = read_run_file(run)
    summary = summary_of(run, run_log)
    drawn = timeline_svg(timeline(run_log, summary["status"]))
    dag, note = (pictures or RunPictures(1)).draw(run, run_log, folder, str(link_base))
    return {"run": summary, "steps": step_rows(run_log), "timeline": drawn, "dag": dag, "dag_note": note}


def run_timeline(run_id: str, run_log_path: str | Path) -> str:
    """The timeline (an SVG document) of the run whose log is at ``run_log_path``; "" when it cannot be
    read (the widget then offers no timeline, and says nothing: the run's own outcome is what matters)."""
    try:
        return timeline_svg(timeline(read_run_file(RunFile(run_id, Path(run_log_path)))))
    except RunLogError:
        return ""


def summary_html(summary: RunSummary, steps: Sequence[StepRow]) -> str:
    """The run's facts as a definition list, then its step tree as a table."""
    facts: list[tuple[str, str]] = [("status", status_badge(summary))]
    if summary["note"]:
        facts.append(("note", h(summary["note"])))
    if summary["start"]:
        facts.append(("started", h(summary["start"][:19])))
    facts.append(("duration", h(seconds(summary["duration"])) or "–"))
    facts.append(("steps", f"{summary['succeeded']} succeeded · {summary['failed']} failed · "
                           f"{summary['reused']} reused · {summary['done']}/{summary['total']} done"))
    for label, key in (("retry of", "original_run_id"), ("tag", "tag"), ("pipeline", "pipeline")):
        if summary[key]:  # type: ignore[literal-required]
            facts.append((label, f"<code>{h(summary[key])}</code>"))  # type: ignore[literal-required]
    if summary["message"]:
        facts.append(("message", f'<span style="white-space:pre-wrap">{block(summary["message"])}</span>'))
    items = "".join(f'<dt style="font-weight:bold;float:left;clear:left;width:6em">{label}</dt>'
                    f'<dd style="margin-left:6.5em">{value}</dd>' for label, value in facts)
    return (f'<dl class="magnus-run-summary" style="font-size:12px;margin:.3em 0">{items}</dl>'
            + steps_html(steps))


def steps_html(steps: Sequence[StepRow]) -> str:
    """The step tree: one row per step and branch, indented by depth."""
    head = ("step", "type", "status", "time", "tries", "message")
    cells = "".join(f'<th scope="col" style="{_CELL_STYLE}">{name}</th>' for name in head)
    body = []
    for row in steps:
        lines = row["message"].strip().splitlines()
        note = f"reused from run {row['reused_from']}" if row["reused_from"] else (lines[0] if lines else "")
        fill = STATUS_FILL.get(row["status"], "transparent")
        name = (f'<span style="padding-left:{1.2 * row["depth"]:.1f}em" title="{h(row["internal_name"])}">'
                f"{h(row['name'])}</span>")
        status = f'<span style="background:{fill};padding:0 .3em">{h(row["status"])}</span>'
        values = (name, h(row["kind"]), status, h(seconds(row["duration"])),
                  str(len(row["attempts"])) if row["attempts"] else "",
                  f'<span title="{h(row["message"][:2000])}">{h(note[:200])}</span>')
        body.append(f'<tr data-step="{h(row["internal_name"])}">{_cells(values)}</tr>')
    return (f'<table class="magnus-run-steps" style="{_TABLE_STYLE}"><caption style="text-align:left">steps'
            f"</caption><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def detail_html(detail: RunDetail) -> str:
    """One run as a page section: heading, summary, DAG, timeline."""
    run = detail["run"]
    dag = detail["dag"] or f'<p style="font-size:12px"><i>{h(detail["dag_note"])}</i></p>'
    label = f"timeline of run {run['run_id']}"
    return (f'<section class="magnus-run" data-run="{h(run["run_id"])}">'
            f'<h4 style="margin:.4em 0">run <code>{h(run["run_id"])}</code></h4>'
            f"{summary_html(run, detail['steps'])}"
            f'{_H4}DAG</h4><div class="magnus-run-dag" style="overflow:auto">{dag}</div>'
            f'{_H4}Timeline</h4><div class="magnus-run-timeline" style="overflow:auto">'
            f"{inline_svg(detail['timeline'], label)}</div></section>")


# ---- two runs -------------------------------------------------------------------------------


def _value(pair: dict[str, Any], side: str, width: int = CELL) -> str:
    """One side's value as JSON, cut at ``width`` characters (the whole value is its title)."""
    if side not in pair:
        return '<i style="color:#777">(absent)</i>'
    text = json.dumps(pair[side], sort_keys=True, default=str, ensure_ascii=False)
    shown = text if len(text) <= width else text[: width - 1] + "…"
    return f'<code title="{h(text[:4000])}" style="overflow-wrap:anywhere">{h(shown)}</code>'


def _step_side(pair: dict[str, Any], side: str) -> str:
    if side not in pair:
        return '<i style="color:#777">(absent)</i>'
    step = pair[side]
    parts = [f'<span style="background:{STATUS_FILL.get(step["status"], "transparent")};padding:0 .3em">'
             f"{h(step['status'])}</span>", h(seconds(step["duration"]))]
    if step["attempts"] > 1:
        parts.append(f"{step['attempts']} tries")
    if step["reused_from"]:
        parts.append(f"reused from {h(step['reused_from'])}")
    if step["fingerprint"]:
        print_ = step["fingerprint"]
        parts.append(f'<code title="fingerprint {h(print_)}">{h(print_[:12])}</code>')
    return " · ".join(p for p in parts if p)


def _section(title: str, a: str, b: str, rows: list[tuple[bool, str, str, str]], missing: str = "") -> str:
    """A section of the diff: the rows that differ, then those that are the same folded away."""
    if missing:
        return f'{_H4}{title}</h4><p style="font-size:12px">{missing}</p>'
    if not rows:
        return f'{_H4}{title}</h4><p style="font-size:12px">none in either run</p>'
    th = f'<th scope="col" style="{_CELL_STYLE}">'
    head = f"<thead><tr>{th}</th>{th}A <code>{a}</code></th>{th}B <code>{b}</code></th></tr></thead>"

    def table(chosen: list[tuple[bool, str, str, str]]) -> str:
        body = "".join(
            f'<tr class="{"same" if same else "differs"}" data-same="{str(same).lower()}"'
            f'{"" if same else _DIFFERS}><th scope="row" style="{_CELL_STYLE}">{"" if same else "≠ "}'
            f"{key}</th>"
            f'<td style="{_CELL_STYLE}">{left}</td><td style="{_CELL_STYLE}">{right}</td></tr>'
            for same, key, left, right in chosen)
        return f'<table class="magnus-diff-table" style="{_TABLE_STYLE}">{head}<tbody>{body}</tbody></table>'

    differ = [r for r in rows if not r[0]]
    same = [r for r in rows if r[0]]
    count = f"{len(differ)} differ" + (f", {len(same)} the same" if same else "")
    out = f'{_H4}{title} <span style="font-weight:normal">({count})</span></h4>'
    if differ:
        out += table(differ)
    if same:
        out += (f'<details style="font-size:12px"><summary>{len(same)} the same</summary>{table(same)}'
                "</details>")
    return out


def diff_html(diff: RunDiff) -> str:
    """Two runs side by side: parameters, steps, metrics and catalog files; what differs first."""
    a, b = h(diff["a"]), h(diff["b"])

    def values(pairs: Sequence[Any], width: int = CELL) -> list[tuple[bool, str, str, str]]:
        return [(p["same"], f'<code style="overflow-wrap:anywhere">{h(p["key"])}</code>',
                 _value(p, "a", width), _value(p, "b", width)) for p in pairs]

    initial = diff["initial_parameters"]
    sections = [
        _section("initial parameters", a, b, values(initial) if initial is not None else [],
                 "" if initial is not None else "not recorded by both runs (magnus' own logs do not)"),
        _section("final parameters", a, b, values(diff["final_parameters"])),
        _section("steps", a, b, [(p["same"], f"<code>{h(p['internal_name'])}</code>",
                                  _step_side(p, "a"), _step_side(p, "b")) for p in diff["steps"]]),
        _section("metrics", a, b, [(p["same"], f"<code>{h(p['step'])}</code> · <code>{h(p['key'])}</code>",
                                    _value(p, "a"), _value(p, "b")) for p in diff["metrics"]]),
        _section("catalog files (sha256)", a, b, values(diff["catalog"], HASH)),
    ]
    return (f'<section class="magnus-diff" data-a="{a}" data-b="{b}" style="font-size:12px">'
            f'<h4 style="margin:.4em 0">A <code>{a}</code> compared with B <code>{b}</code></h4>'
            + "".join(sections) + "</section>")
