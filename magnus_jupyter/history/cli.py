"""``magnus-jupyter runs`` (list, show, diff, rm, prune) and ``timeline``: the run history of this folder.

Bad input (an unknown run id, a corrupt or foreign run log, a running run to
remove) is one ``error:`` line naming the file, exit 2, from the main CLI's
handler. The list skips logs it cannot read with one ``warning:`` line each on
stderr and shows the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..text import clean

EXIT_OK = 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, found {value}")
    return value


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``runs`` and ``timeline`` on the main parser (``add(name, func, help)``)."""
    runs = add("runs", cmd_runs, "The runs of this folder, newest first; show, compare or remove them.")
    runs.add_argument("--json", action="store_true", help="print a JSON list of objects, one per run")
    sub = runs.add_subparsers(dest="action", metavar="{show,diff,rm,prune}", parser_class=type(runs))
    p = sub.add_parser("show", help="one run's step tree: statuses, times, attempts, messages, metrics",
                       description="One run's step tree: statuses, times, attempts, messages and metrics.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="the run's summary and step rows as JSON")
    p = sub.add_parser("diff", help="what differs between two runs, side by side",
                       description="What differs between runs A and B: initial and final parameters, each "
                                   "step's status, time and fingerprint, metrics, catalog files by content.")
    p.add_argument("run_a", metavar="A")
    p.add_argument("run_b", metavar="B")
    p.add_argument("--all", action="store_true", help="show the rows that are the same too")
    p.add_argument("--json", action="store_true", help="every row of every section as JSON")
    p = sub.add_parser("rm", help="remove runs: run log and catalog (never a running run)",
                       description="Remove runs: their run logs and catalogs. A running run is never "
                                   "removed; if any run cannot go, none is removed.")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--force", action="store_true",
                   help="also remove PROCESSING runs whose orchestrator cannot be checked from here")
    p = sub.add_parser("prune", help="remove all but the newest N runs (never a running run)",
                       description="Remove all but the newest N runs with their catalogs; running runs stay.")
    p.add_argument("--keep", type=_count, required=True, metavar="N",
                   help="how many of the newest runs to keep")
    p.add_argument("--force", action="store_true",
                   help="also remove PROCESSING runs whose orchestrator cannot be checked from here")
    p = add("timeline", cmd_timeline, "Draw a run as a Gantt timeline: a row per task, grouped by branch, "
                                      "coloured by status (.svg, .html or .png by the output's suffix).")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.svg | OUT.html | OUT.png")


def _warn(message: str) -> None:
    print(f"warning: {clean(message, False)}", file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")


def cmd_runs(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is not None:
        return {"show": _show, "diff": _diff, "rm": _rm, "prune": _prune}[action](args)
    from .summary import list_runs

    rows = list_runs(warn=_warn)
    if args.json:
        _print_json(rows)
    elif not rows:
        from .store import RunFolder

        print(clean(f"no runs in {RunFolder.of().run_logs}", False))
    else:
        from .tables import format_runs

        print(format_runs(rows))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from .store import find_run, read_run_file
    from .summary import summary_of
    from .tree import step_rows

    run = find_run(args.run_id)
    run_log = read_run_file(run)
    summary, rows = summary_of(run, run_log), step_rows(run_log)
    if args.json:
        _print_json({"run": summary, "steps": rows})
    else:
        from .tables import format_show

        print(format_show(summary, run_log, rows))
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from .diff import diff_runs
    from .store import load_run

    diff = diff_runs(load_run(args.run_a), load_run(args.run_b))
    if args.json:
        _print_json(diff)
    else:
        from .tables import format_diff

        print(format_diff(diff, everything=args.all))
    return EXIT_OK


def _removed_line(item: dict[str, Any]) -> str:
    where = f"run log {item['run_log']}"
    if item["catalog"]:
        where += f", catalog {item['catalog']} ({item['files']} file{'s' if item['files'] != 1 else ''})"
    return clean(f"removed {item['run_id']}: {where}", False)


def _rm(args: argparse.Namespace) -> int:
    from .remove import remove_runs

    for item in remove_runs(args.run_ids, force=args.force):
        print(_removed_line(dict(item)))
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    from .remove import prune_runs

    removed, kept = prune_runs(args.keep, force=args.force, warn=_warn)
    for item in removed:
        print(_removed_line(dict(item)))
    for item in kept:
        print(clean(f"kept {item['run_id']}: {item['reason']}", False))
    print(f"removed {len(removed)} run{'s' if len(removed) != 1 else ''}; kept the {args.keep} newest"
          + (f" and {len(kept)} more" if kept else ""))
    return EXIT_OK


def cmd_timeline(args: argparse.Namespace) -> int:
    from .store import find_run, read_run_file
    from .summary import summary_of
    from .timeline import output_suffix, timeline, write_timeline

    output_suffix(args.output)  # a wrong suffix is refused before anything is read
    run = find_run(args.run_id)
    run_log = read_run_file(run)
    written = write_timeline(timeline(run_log, summary_of(run, run_log)["status"]), args.output)
    print(clean(f"run {args.run_id}: timeline drawn to {written}", False))
    return EXIT_OK
