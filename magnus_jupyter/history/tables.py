"""The run history as terminal text: the list, one run's step tree, a diff side by side.

Pure functions of the plain data summary.py, tree.py and diff.py return. Every
name, value and message comes from pipelines, tasks or a run log someone else
wrote, so each passes through ``text.clean`` (no terminal control sequence
survives).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..text import clean
from .summary import RUNNING, RunSummary, seconds

if TYPE_CHECKING:
    from .diff import RunDiff, ValuePair
    from .tree import StepRow

CELL = 40  # widest value in a diff column; longer ones end with "…"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], limits: dict[int, int] | None = None) -> str:
    """Left-aligned columns two spaces apart; column ``i`` cut at ``limits[i]`` characters."""
    limits = limits or {}
    widths = [min(max(len(r[i]) for r in [head, *rows]), limits.get(i, 10_000)) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        cells = [cut(c, widths[i]).ljust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "\u2026"


def status_text(row: RunSummary) -> str:
    if row["status"] == RUNNING:
        return f"RUNNING {row['done']}/{row['total']}"
    return row["status"]


def format_runs(rows: Sequence[RunSummary]) -> str:
    """The ``runs`` table, newest first as given."""
    head = ("run id", "status", "start", "duration", "ok", "failed", "reused", "retry of", "tag")
    body = [(clean(r["run_id"], False), clean(status_text(r)), r["start"][:19], seconds(r["duration"]),
             str(r["succeeded"]), str(r["failed"]), str(r["reused"]), clean(r["original_run_id"], False),
             clean(r["tag"], False)) for r in rows]
    notes = [f"{clean(r['run_id'], False)}: {clean(r['status'])}, {clean(r['note'], False)}"
             for r in rows if r["note"]]
    return "\n".join([table(head, body, {8: 30}), *notes])


def _clock(stamp: str) -> str:
    """``HH:MM:SS.ss`` of a magnus timestamp (the date is in the heading)."""
    return stamp[11:22] if len(stamp) >= 19 else stamp


def format_show(summary: RunSummary, run_log: dict[str, Any], rows: Sequence[StepRow]) -> str:
    """``runs show``: the run's heading, its parameters, then the step tree."""
    lines = [f"run:       {clean(summary['run_id'], False)}",
             f"status:    {clean(status_text(summary))}" + (f" ({clean(summary['note'], False)})"
                                                           if summary["note"] else "")]
    if summary["start"]:
        lines.append(f"started:   {summary['start'][:19]}   duration: {seconds(summary['duration'])}")
    for label, key in (("retry of", "original_run_id"), ("tag", "tag"), ("pipeline", "pipeline"),
                       ("message", "message")):
        if summary[key]:  # type: ignore[literal-required]
            lines.append(f"{label + ':':<10} {clean(summary[key], False)}")  # type: ignore[literal-required]
    initial = (run_log.get("run_config") or {}).get("initial_parameters")
    if isinstance(initial, dict):
        lines.append(f"initial parameters: {clean(_value(initial, 200), False)}")
    lines.append(f"final parameters:   {clean(_value(run_log.get('parameters') or {}, 200), False)}")
    lines.append("")
    head = ("step", "type", "status", "start", "time", "tries", "message")
    body: list[tuple[str, ...]] = []
    for row in rows:
        pad = "  " * row["depth"]
        message = row["message"].strip().splitlines()
        note = message[0] if message else ""
        if row["reused_from"]:
            note = f"reused from run {row['reused_from']}"
        body.append((pad + clean(row["name"], False), clean(row["kind"]), clean(row["status"]),
                     _clock(row["start"]), seconds(row["duration"]),
                     str(len(row["attempts"])) if row["attempts"] else "", clean(note, False)))
        if len(row["attempts"]) > 1 and not row["reused_from"]:
            for attempt in row["attempts"]:
                text = attempt["message"].strip().splitlines()
                body.append((f"{pad}  attempt {attempt['number']}", "", clean(attempt["status"]),
                             _clock(attempt["start"]), seconds(attempt["duration"]), "",
                             clean(text[0], False) if text else ""))
        for name, value in row["metrics"].items():
            body.append((f"{pad}  metric {clean(name, False)}", "", "", "", "", "",
                         clean(_value(value), False)))
        if row["fingerprint"]:
            body.append((f"{pad}  fingerprint", "", "", "", "", "", clean(row["fingerprint"], False)))
    lines.append(table(head, body, {0: 60, 6: 80}))
    return "\n".join(lines)


def _value(value: Any, width: int = CELL) -> str:
    return cut(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False), width)


def _side(pair: dict[str, Any], key: str, show: Any = None) -> str:
    if key not in pair:
        return "(absent)"
    return show(pair[key]) if show else _value(pair[key])


def format_diff(diff: RunDiff, everything: bool = False) -> str:
    """``runs diff``: each section's differing rows side by side (all rows with ``everything``)."""
    a, b = clean(diff["a"], False), clean(diff["b"], False)
    out: list[str] = [f"A: {a}", f"B: {b}"]

    def section(title: str, head: tuple[str, ...], rows: list[tuple[bool, tuple[str, ...]]],
                missing: str = "") -> None:
        out.append("")
        shown = [r for same, r in rows if everything or not same]
        same = sum(1 for s, _ in rows if s)
        tail = f" ({same} the same)" if same and not everything else ""
        if missing:
            out.append(f"{title}: {missing}")
        elif not rows:
            out.append(f"{title}: none in either run")
        elif not shown:
            out.append(f"{title}: all {len(rows)} the same")
        else:
            out.append(f"{title}:{tail}")
            out.append(table(head, shown, {0: 60}))

    def values(pairs: list[ValuePair]) -> list[tuple[bool, tuple[str, ...]]]:
        return [(p["same"], (clean(p["key"], False), clean(_side(p, "a"), False), clean(_side(p, "b"), False),
                             "" if p["same"] else "\u2260")) for p in pairs]

    initial = diff["initial_parameters"]
    section("initial parameters", ("name", "A", "B", ""), values(initial or []),
            "" if initial is not None else "not recorded by both runs")
    section("final parameters", ("name", "A", "B", ""), values(diff["final_parameters"]))
    steps = []
    for pair in diff["steps"]:
        cells = []
        for key in ("a", "b"):
            side = pair.get(key)
            if side is None:
                cells.append("(absent)")
                continue
            text = f"{side['status']} {seconds(side['duration'])}".strip()  # type: ignore[index]
            if side["reused_from"]:  # type: ignore[index]
                text += " reused"
            if side["fingerprint"]:  # type: ignore[index]
                text += f" {side['fingerprint'][:12]}"  # type: ignore[index]
            cells.append(clean(text, False))
        steps.append((pair["same"], (clean(pair["internal_name"], False), clean(pair["kind"]), *cells,
                                     "" if pair["same"] else "\u2260")))
    section("steps (status, time, fingerprint)", ("step", "type", "A", "B", ""), steps)
    metrics = [(p["same"], (clean(f"{p['step']}: {p['key']}", False), clean(_side(p, "a"), False),
                            clean(_side(p, "b"), False), "" if p["same"] else "\u2260"))
               for p in diff["metrics"]]
    section("metrics", ("step: metric", "A", "B", ""), metrics)
    files = [(p["same"], (clean(p["key"], False), _side(p, "a", lambda h: str(h)[:16]),
                          _side(p, "b", lambda h: str(h)[:16]), "" if p["same"] else "\u2260"))
             for p in diff["catalog"]]
    section("catalog files (sha256)", ("file", "A", "B", ""), files)
    return "\n".join(out)
