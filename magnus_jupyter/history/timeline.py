"""A run as a Gantt picture: one row per task, grouped by branch, on one time axis, coloured by status.

``timeline(run_log)`` is plain data (rows of attempt segments, seconds from the
run's first start); ``timeline_svg`` draws it, ``timeline_html`` wraps that SVG
in a self-contained page, ``write_timeline`` picks the format by suffix (PNG:
the SVG rasterised by librsvg's ``rsvg-convert``). Every attempt is its own
segment, so retries show as separate bars; a task a retry reused did not run in
this run, so it is drawn as a dashed marker at the axis' start, not at the
times it ran elsewhere. A task still running has no attempt in the run log yet
(attempts are written when they end): in a running run its bar runs from the
end of the step before it in its graph (steps of one graph run one after
another) to now; otherwise (an abandoned run) a marker at the right edge.
Hovering over a bar shows its SVG ``<title>``: the step's internal name, times
and message. Every name and message goes through ``_text`` (escaped, control
characters shown as symbols), so a step named ``<script>`` stays text.
"""

from __future__ import annotations

import html
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, TypedDict

from ..errors import PipelineError
from ..render import CLUSTER_FILL, NODE_FILL
from .summary import parse_time, run_times, seconds
from .tree import AttemptRow, step_rows

SUFFIXES = (".svg", ".html", ".png")
LEAF_KINDS = frozenset({"task", "stub"})
ROW, BAR, PLOT_WIDTH, TOP, LABEL_CHARS = 20, 12, 900, 56, 48
OTHER_FILL = "#dddddd"
REUSED_MARK = " \u21ba"  # after a reused task's name
_STROKE = "#555555"
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
MAX_PIXELS_SIDE = 32000  # cairo's image surfaces stop at 32,767 pixels a side


class Segment(TypedDict):
    """One attempt: seconds from the run's start, and as the run log wrote them."""

    attempt: int
    status: str
    start: float
    end: float
    start_time: str
    end_time: str
    message: str


class TimelineRow(TypedDict):
    """A task (``kind`` task or stub) or a branch heading its group (``kind`` branch, ``label``
    the composite step's name and the branch's). ``level``: how many branches hold it.
    ``running``: PROCESSING (its current attempt, if the run is live, is the last segment)."""

    internal_name: str
    label: str
    kind: str
    level: int
    status: str
    message: str
    reused_from: str
    running: bool
    segments: list[Segment]
    attempts: int


class Timeline(TypedDict):
    run_id: str
    status: str
    start: str
    span: float
    rows: list[TimelineRow]


def timeline(run_log: dict[str, Any], status: str | None = None, now: float | None = None) -> Timeline:
    """The rows of ``run_log`` (checked by store.py) on one axis starting at its first attempt.

    ``status``: the run's status as ``RunSummary.status`` says it (RUNNING, ABANDONED ...),
    default the log's; only a RUNNING run's axis reaches ``now`` (default: the clock).
    """
    rows = step_rows(run_log)
    first, final = run_times(run_log)
    origin, last = parse_time(first), parse_time(final)
    shown = status or str(run_log.get("status") or "")
    live = shown == "RUNNING" and origin is not None
    clock = now if now is not None else time.time()
    if live:
        last = max(last or clock, clock)
    base = origin or 0.0
    # where each row could have started at the earliest: the end of the step before it in its
    # graph (steps of one graph run one after another), else where its parent could start
    after: list[float | None] = []
    ended: dict[int, float] = {}
    out: list[TimelineRow] = []
    for row in rows:
        parent = row["parent"]
        after.append(ended.get(parent, after[parent] if parent >= 0 else origin))
        end = parse_time(row["end"])
        if end is not None and not row["reused_from"] and row["kind"] != "branch":
            ended[parent] = end
        if row["kind"] not in LEAF_KINDS and row["kind"] != "branch":
            continue
        segments: list[Segment] = []
        running = row["status"] == "PROCESSING" and row["kind"] != "branch" and not row["reused_from"]
        if row["kind"] == "branch":
            a, b = parse_time(row["start"]), parse_time(row["end"])
            if a is not None and b is not None and origin is not None:
                segments.append({"attempt": 0, "status": row["status"], "start": a - base, "end": b - base,
                                 "start_time": row["start"], "end_time": row["end"], "message": ""})
            label = f"{rows[parent]['name']} \u203a {row['name']}" if parent >= 0 else row["name"]
        else:
            label = row["name"]
            if not row["reused_from"]:
                segments = _attempts(row["attempts"], base)
            since = after[-1]
            if running and live and since is not None:
                segments.append({"attempt": len(row["attempts"]) + 1, "status": "PROCESSING",
                                 "start": since - base, "end": clock - base, "start_time": "",
                                 "end_time": "", "message": "running"})
        out.append({"internal_name": row["internal_name"], "label": label, "kind": row["kind"],
                    "level": row["depth"] // 2, "status": row["status"], "message": row["message"],
                    "reused_from": row["reused_from"], "segments": segments,
                    "attempts": len(row["attempts"]) + (1 if running else 0), "running": running})
    return {"run_id": str(run_log["run_id"]), "status": shown, "start": first,
            "span": (last - base) if last is not None and origin is not None else 0.0, "rows": out}


def _attempts(attempts: list[AttemptRow], base: float) -> list[Segment]:
    out: list[Segment] = []
    for attempt in attempts:
        a, b = parse_time(attempt["start"]), parse_time(attempt["end"])
        if a is not None and b is not None:
            out.append({"attempt": attempt["number"], "status": attempt["status"], "start": a - base,
                        "end": max(a, b) - base, "start_time": attempt["start"], "end_time": attempt["end"],
                        "message": attempt["message"]})
    return out


# ---- drawing ----------------------------------------------------------------------------------


def _text(value: object) -> str:
    """Safe inside SVG/HTML text and attributes: escaped, and no character XML forbids."""
    raw = str(value)
    raw = _INVALID_XML.sub(lambda m: chr(0x2400 + ord(m.group())) if ord(m.group()) < 0x20 else "\ufffd", raw)
    return html.escape(raw, quote=True)


def _tick_step(span: float, room: float) -> float:
    """A round step (1, 2, 5 x 10^k seconds; or minutes/hours) giving ticks at least ``room`` px apart."""
    raw = max(span, 1e-6) / max(1.0, PLOT_WIDTH / room)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _fill(status: str) -> str:
    return NODE_FILL.get(status, OTHER_FILL)


def _tooltip(row: TimelineRow, segment: Segment | None) -> str:
    lines = [row["internal_name"]]
    if segment is not None and row["kind"] != "branch":
        lines.append(f"attempt {segment['attempt']} of {row['attempts']}: {segment['status']}")
    if segment is not None and segment["start_time"]:
        lines.append(f"{segment['start_time']} \u2192 {segment['end_time']} "
                     f"({seconds(segment['end'] - segment['start'])})")
    elif segment is not None:
        lines.append(f"running for about {seconds(segment['end'] - segment['start'])}")
    elif row["status"]:
        lines.append(row["status"])
    if row["reused_from"]:
        lines.append(f"reused from run {row['reused_from']}: not run again in this run")
    if row["running"] and segment is None:
        lines.append("PROCESSING: its attempt is written to the run log when it ends")
    message = segment["message"] if segment is not None else row["message"]
    if message:
        lines.append(message if len(message) <= 2000 else message[:2000] + "\u2026")
    return _text("\n".join(lines))


def timeline_svg(data: Timeline) -> str:
    """The timeline as a standalone SVG document (text)."""
    rows = data["rows"]
    span = data["span"] if data["span"] > 0 else 1.0
    label_w = 16 + 7 * min(LABEL_CHARS, max([len(r["label"]) + 2 * r["level"] for r in rows] or [10]))
    width = label_w + PLOT_WIDTH + 24
    height = TOP + ROW * len(rows) + 40
    scale = PLOT_WIDTH / span
    x0 = label_w
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12" '
        f'class="magnus-timeline">',
        f'<title>{_text("timeline of run " + data["run_id"])}</title>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="18" font-size="14"><tspan font-weight="bold">{_text("run " + data["run_id"])}'
        f'</tspan><tspan fill="#333333" dx="6">\u00b7 {_text(_heading(data))}</tspan></text>',
    ]
    # group bands first, under everything: a branch's rows on its status' light colour
    for i, row in enumerate(rows):
        if row["kind"] != "branch":
            continue
        end = i + 1
        while end < len(rows) and rows[end]["level"] > row["level"]:
            end += 1
        indent = 4 + 12 * row["level"]
        out.append(f'<rect x="{indent}" y="{TOP + ROW * i}" width="{width - indent - 4}" '
                   f'height="{ROW * (end - i)}" rx="4" fill="{CLUSTER_FILL.get(row["status"], "#f5f5f5")}" '
                   f'stroke="#cccccc"/>')
    step = _tick_step(span, 90)
    ticks = int(span / step) + 1
    axis_y = TOP - 6
    out.append(f'<line x1="{x0}" y1="{axis_y}" x2="{x0 + PLOT_WIDTH}" y2="{axis_y}" stroke="{_STROKE}"/>')
    for k in range(ticks):
        x = x0 + k * step * scale
        out.append(f'<line x1="{x:.1f}" y1="{axis_y - 4}" x2="{x:.1f}" y2="{height - 36}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y - 8}" text-anchor="middle" fill="#444444">'
                   f'{_text(_tick_label(k * step, step))}</text>')
    for i, row in enumerate(rows):
        out.extend(_row(row, i, x0, scale))
    out.append(_legend(height - 14))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _heading(data: Timeline) -> str:
    parts = [data["status"]]
    if data["start"]:
        parts.append("started " + data["start"][:19])
    parts.append(seconds(data["span"]))
    tasks = sum(1 for r in data["rows"] if r["kind"] != "branch")
    parts.append(f"{tasks} task{'s' if tasks != 1 else ''}")
    return " \u00b7 ".join(parts)


def _tick_label(value: float, step: float) -> str:
    if step >= 60 and value >= 60:
        return seconds(value)
    digits = 0 if step >= 1 else min(6, -math.floor(math.log10(step)))
    return f"{value:.{digits}f} s"


def _row(row: TimelineRow, i: int, x0: float, scale: float) -> list[str]:
    y = TOP + ROW * i
    mid = y + ROW / 2
    bar_y = y + (ROW - BAR) / 2
    name = row["label"]
    room = LABEL_CHARS - 2 * row["level"]
    shown = name if len(name) <= room else name[: room - 1] + "\u2026"
    weight = ' font-weight="bold"' if row["kind"] == "branch" else ""
    out = [f'<g class="row {_text(row["kind"])}" data-step="{_text(row["internal_name"])}">',
           f'<text x="{8 + 12 * row["level"]}" y="{mid + 4:.1f}"{weight}><title>{_tooltip(row, None)}</title>'
           f'{_text(shown)}{REUSED_MARK if row["reused_from"] else ""}</text>']
    if row["kind"] == "branch":
        for seg in row["segments"]:
            x, w = x0 + seg["start"] * scale, max(1.0, (seg["end"] - seg["start"]) * scale)
            out.append(f'<rect x="{x:.1f}" y="{mid - 2:.1f}" width="{w:.1f}" height="4" '
                       f'fill="{_fill(row["status"])}" stroke="{_STROKE}" stroke-width="0.5">'
                       f'<title>{_tooltip(row, seg)}</title></rect>')
    elif row["reused_from"]:
        out.append(f'<rect x="{x0 + 1:.1f}" y="{bar_y:.1f}" width="10" height="{BAR}" '
                   f'fill="{_fill("SUCCESS")}" stroke="{_STROKE}" stroke-dasharray="2,2">'
                   f'<title>{_tooltip(row, None)}</title></rect>')
        out.append(f'<text x="{x0 + 16:.1f}" y="{mid + 4:.1f}" font-style="italic" fill="#555555">'
                   f'reused from {_text(row["reused_from"])}</text>')
    else:
        for seg in row["segments"]:
            x, w = x0 + seg["start"] * scale, max(1.5, (seg["end"] - seg["start"]) * scale)
            out.append(f'<rect class="attempt" x="{x:.1f}" y="{bar_y:.1f}" width="{w:.1f}" height="{BAR}" '
                       f'rx="2" fill="{_fill(seg["status"])}" stroke="{_STROKE}" stroke-width="0.7">'
                       f'<title>{_tooltip(row, seg)}</title></rect>')
        if not row["segments"] and row["status"] not in ("SUCCESS", "FAIL"):
            x = x0 + PLOT_WIDTH - 10
            out.append(f'<rect x="{x:.1f}" y="{bar_y:.1f}" width="10" height="{BAR}" '
                       f'fill="{_fill(row["status"])}" stroke="{_STROKE}" stroke-dasharray="2,1">'
                       f'<title>{_tooltip(row, None)}</title></rect>')
        if row["attempts"] > 1:
            end = max((s["end"] for s in row["segments"]), default=0.0)
            out.append(f'<text x="{x0 + end * scale + 4:.1f}" y="{mid + 4:.1f}" fill="#555555">'
                       f'\u00d7{row["attempts"]}</text>')
    out.append("</g>")
    return out


def _legend(y: float) -> str:
    items = [("SUCCESS", NODE_FILL["SUCCESS"], ""), ("FAIL", NODE_FILL["FAIL"], ""),
             ("PROCESSING", NODE_FILL["PROCESSING"], ""), ("reused (\u21ba)", NODE_FILL["SUCCESS"], "2,2")]
    parts = ['<g class="legend">']
    x = 8
    for label, fill, dash in items:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<rect x="{x}" y="{y - 10}" width="14" height="10" fill="{fill}" '
                     f'stroke="{_STROKE}"{dashed}/>')
        parts.append(f'<text x="{x + 18}" y="{y}">{_text(label)}</text>')
        x += 34 + 8 * len(label)
    parts.append(f'<text x="{x}" y="{y}" fill="#555555">each attempt is its own bar; '
                 '\u00d7N: N attempts</text>')
    parts.append("</g>")
    return "".join(parts)


def timeline_html(data: Timeline) -> str:
    """A self-contained page holding the SVG (no script, no outside resource)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_text('magnus run ' + data['run_id'])}</title>"
            "<style>body{margin:16px;font-family:Helvetica,Arial,sans-serif}"
            ".magnus-timeline rect.attempt:hover{stroke:#000;stroke-width:2}</style></head>\n<body>\n"
            + timeline_svg(data) + "</body></html>\n")


def svg_to_png(svg: str, timeout: float = 120.0) -> bytes:
    """Rasterise with librsvg's ``rsvg-convert`` (Debian: ``librsvg2-bin``), scaled to fit cairo's limits."""
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise PipelineError("cannot draw .png: librsvg's 'rsvg-convert' is not installed (install it, e.g. "
                            "'apt-get install librsvg2-bin', or write a .svg or .html file)")
    match = re.search(r'width="(\d+)" height="(\d+)"', svg)
    zoom = 1.0
    if match:
        zoom = min(1.0, MAX_PIXELS_SIDE / max(int(match.group(1)), int(match.group(2))))
    try:
        done = subprocess.run([exe, "--format", "png", "--zoom", f"{zoom:.4f}"], input=svg.encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PipelineError(f"rsvg-convert did not finish within {timeout:g} s; "
                            "write a .svg instead") from None
    except OSError as exc:
        raise PipelineError(f"cannot run rsvg-convert ({exe}): {exc.strerror}") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PipelineError(f"rsvg-convert failed to draw .png: {lines[0] if lines else done.returncode}")
    return done.stdout


def output_suffix(output: str | os.PathLike[str]) -> str:
    """The format ``output`` asks for; a ``PipelineError`` for one this cannot draw."""
    suffix = Path(output).suffix
    if suffix.lower() not in SUFFIXES:
        given = f"suffix {suffix!r}" if suffix else "no suffix"
        raise PipelineError(f"{output}: cannot draw a timeline to a file with {given}; "
                            f"use one of {', '.join(SUFFIXES)}")
    return suffix.lower()


def write_timeline(data: Timeline, output: str | os.PathLike[str]) -> str:
    """Draw to ``output`` by its suffix (.svg, .html, .png); only a whole file is written."""
    path = Path(output)
    suffix = output_suffix(output)
    if suffix == ".html":
        payload = timeline_html(data).encode("utf-8")
    else:
        svg = timeline_svg(data)
        payload = svg_to_png(svg) if suffix == ".png" else svg.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    except OSError as exc:
        raise PipelineError(f"{output}: cannot write: {exc.strerror or exc}") from None
    return str(path)
