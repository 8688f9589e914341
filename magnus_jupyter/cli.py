"""``magnus-jupyter``: the same pipelines outside Jupyter.

Exit codes: 0 ok, 1 the pipeline failed, 2 bad input or usage. A user's
mistake prints one located message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import PipelineError
from .text import clean

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _load(path: str):  # noqa: ANN202 - a Pipeline, imported lazily
    from .yaml_io import load_yaml

    return load_yaml(path)


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate
    from .yaml_io import load_yaml

    pipeline = load_yaml(args.file, validate=False)  # validated once, here, to keep its warnings
    warnings = validate(pipeline)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)  # a Problem: one line, escaped
    count = sum(1 for _ in pipeline.walk())
    print(f"{args.file}: valid magnus pipeline ({count} steps)")
    return EXIT_OK


def cmd_yaml(args: argparse.Namespace) -> int:
    from .yaml_io import to_yaml

    sys.stdout.write(to_yaml(_load(args.file)))
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from .render import write

    written = write(_load(args.file), args.output)
    print(f"{args.file}: DAG drawn to {written}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="magnus-jupyter", description="Validate, convert, draw and run magnus pipelines.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("validate", cmd_validate, "Check a magnus YAML pipeline; exit 2 with located errors.").add_argument(
        "file", help="the pipeline YAML")
    add("yaml", cmd_yaml, "Print the canonical magnus YAML of a pipeline.").add_argument(
        "file", help="the pipeline YAML")
    p = add("render", cmd_render, "Draw the DAG with Graphviz (.svg, .png or .dot by the output's suffix).")
    p.add_argument("file", help="the pipeline YAML")
    p.add_argument("-o", "--output", required=True, help="OUT.svg | OUT.png | OUT.dot")
    _add_run_commands(add)
    from .history.cli import add_commands as add_history_commands

    add_history_commands(add)  # runs, timeline
    return parser


def _add_run_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """``run`` and friends come from the executor; kept apart so the core CLI stays light."""
    try:
        from .executor.cli import add_commands
    except ModuleNotFoundError as exc:  # until the executor's CLI module exists
        if exc.name != f"{__package__}.executor.cli":
            raise
        return
    add_commands(add)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PipelineError as exc:
        print(f"error: {clean(exc)}", file=sys.stderr)  # names in it come from the user's files
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
