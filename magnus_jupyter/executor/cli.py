"""``magnus-jupyter run``: a pipeline from the command line, with live progress and a summary.

Prints the run id first (so a watcher can find the run log at once), live
progress on stderr, then a table of steps and where the run log and catalog
are. Exit 0: the pipeline succeeded; 1: it failed; 2: bad input (the
pipeline, the parameters, a run id that exists, ``--workers``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, found {value}")
    return value


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``run`` on the main parser (``add(name, func, help)`` returns the subparser)."""
    p = add("run", cmd_run, "Run a magnus pipeline; branches run at the same time.")
    p.add_argument("file", help="the pipeline YAML")
    p.add_argument("-p", "--parameters-file", metavar="PARAMS.yaml",
                   help="initial parameters: a YAML mapping of name: value")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set one parameter (VALUE as JSON, else plain text); repeatable, wins over -p")
    p.add_argument("--run-id", help="the run's id (default: timestamp plus random); must not exist yet")
    p.add_argument("--workers", type=_workers, metavar="N",
                   help="task slots: tasks running at once (default: the CPU count)")
    p.add_argument("--quiet", action="store_true", help="no live progress; the run id and summary only")


def cmd_run(args: argparse.Namespace) -> int:
    from ..progress import TerminalProgress, summary_table
    from ..yaml_io import load_yaml
    from . import events as ev
    from .engine import run_pipeline
    from .params import initial_parameters

    pipeline = load_yaml(args.file)  # PipelineError -> exit 2 in the main CLI
    parameters = initial_parameters(args.parameters_file, args.param)

    def announce(event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            print(f"run_id: {event.run_id}", flush=True)
        elif isinstance(event, ev.RunWarning) and args.quiet:
            print(f"warning: {event.message}", file=sys.stderr, flush=True)

    subscribers: list[ev.Subscriber] = [announce]
    if not args.quiet:
        subscribers.append(TerminalProgress(sys.stderr))
    result = run_pipeline(pipeline, parameters=parameters, run_id=args.run_id, workers=args.workers,
                          subscribers=subscribers)
    print()
    print(summary_table(result.run_log))
    print()
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"status:  {result.status}")
    print(f"run log: {result.run_log_path}")
    print(f"catalog: {result.catalog_path}")
    return EXIT_OK if result.ok else EXIT_FAILED
