"""Thin IPython magics: parse the arguments, hand them to ``declare``, show errors as one line.

No pipeline logic lives here (``declare`` holds the declarations and builds the
model); a user's mistake becomes IPython's ``UsageError``: one line, no traceback.
Nothing heavy is imported here, so ``%load_ext magnus_jupyter`` stays fast.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .declare import session
from .errors import PipelineError, ValidationError

SHOWN_IN_A_LINE = 5  # problems a magic's one-line error names; `magnus-jupyter validate` lists them all


@contextmanager
def _usage_errors() -> Iterator[None]:
    """Our errors reach the user as ``UsageError: <one line>``."""
    try:
        yield
    except ValidationError as exc:
        shown = "; ".join(str(p) for p in exc.problems[:SHOWN_IN_A_LINE])
        more = len(exc.problems) - SHOWN_IN_A_LINE
        shown += f"; … and {more:,} more" if more > 0 else ""
        raise UsageError(f"invalid pipeline: {shown}") from None
    except PipelineError as exc:
        raise UsageError("; ".join(line.strip() for line in str(exc).splitlines() if line.strip())) from None


def _parse(magic: Any, line: str, cell: str | None = None) -> Any:
    """Split like a POSIX shell, so "Get Features" loses its quotes; errors name the magic as it
    was used (``%%name`` for a cell magic, ``%name`` for a line; ``cell`` is None for a line).

    (``parse_argstring`` splits without POSIX rules and keeps the quotes.)
    """
    prog = ("%%" if cell is not None else "%") + magic.parser.prog.lstrip("%")
    try:
        return magic.parser.parse_args(shlex.split(line))
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"{prog}: {exc}") from None
    except UsageError as exc:
        raise UsageError(f"{prog}: {exc}") from None


def _warn_unknown_targets(name: str) -> None:
    """A --next or --on-failure no cell declares (yet): a warning, not an error."""
    for warning in session().unknown_targets(name):
        print(f"warning: {warning}", file=sys.stderr)


def _name(words: list[str]) -> str:
    """NAME may be quoted ("Get Features") or written as plain words."""
    return " ".join(words)


@magics_class
class DeclareMagics(Magics):
    """Declare the notebook's pipeline cell by cell; look at it as magnus YAML."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self.cell_id: str | None = None  # the running cell's id, when the front end sends one

    # IPython 8+ passes the front end's cell id to run_cell; with it, renaming a cell's step
    # replaces its old declaration instead of leaving it behind.
    def pre_run_cell(self, info: Any = None) -> None:
        self.cell_id = getattr(info, "cell_id", None)

    def post_run_cell(self, result: Any = None) -> None:
        self.cell_id = None

    @magic_arguments("%magnus_step")
    @argument("name", nargs="+", metavar="NAME", help="the step's name, e.g. \"Get Features\"")
    @argument("--next", metavar="STEP", help="the step that follows (default: the next declared one)")
    @argument("--on-failure", metavar="STEP", help="the step to go to when this one fails")
    @argument("--notebook", metavar="PATH", help="run this notebook (the cell body stays empty)")
    @argument("--shell", action="store_true", help="the cell body is a shell command")
    @argument("--stub", action="store_true", help="a placeholder that does nothing and succeeds")
    @argument("--returns", metavar="a,b", help="variables of the step that become parameters")
    @argument("--branch", metavar="PARALLEL/BRANCH",
              help="put the step into a branch of a parallel block (or MAP for a map's branch)")
    @argument("--inputs", metavar="GLOB,GLOB",
              help="project files the step reads: their content is part of its fingerprint (--reuse)")
    @argument("--no-cache", action="store_true", help="never reuse this step's result (it has side effects)")
    @line_cell_magic
    def magnus_step(self, line: str, cell: str | None = None) -> None:
        """Declare a step; without --notebook/--shell/--stub the cell's code is the step.

        The code is written to a generated notebook (.magnus/cells/) with a
        `parameters` cell and runs through papermill like any notebook task.
        Re-running the cell replaces the step in place. A step without a body
        is one line (IPython refuses an empty %% cell):
        %magnus_step "Ensemble Modelling" --notebook notebooks/ensemble.ipynb
        """
        args = _parse(self.magnus_step, line, cell)
        with _usage_errors():
            declared = session().step(_name(args.name), cell or "", next=args.next,
                                      on_failure=args.on_failure, notebook=args.notebook, shell=args.shell,
                                      stub=args.stub, returns=args.returns, branch=args.branch,
                                      cell=self.cell_id, cell_magic=cell is not None, inputs=args.inputs,
                                      cache=False if args.no_cache else None)
        _warn_unknown_targets(declared.name)

    @magic_arguments("%magnus_parallel")
    @argument("name", nargs="+", metavar="NAME", help="the block's name, e.g. \"Train Models\"")
    @argument("--next", metavar="STEP", help="the step that follows (default: the next declared one)")
    @argument("--on-failure", metavar="STEP", help="the step to go to when a branch fails")
    @argument("--failure-policy", choices=("finish_all", "fail_fast"),
              help="finish_all (default) lets every branch end; fail_fast cancels the others")
    @line_cell_magic
    def magnus_parallel(self, line: str, cell: str | None = None) -> None:
        """Declare a parallel block; the body lists its branches, one per line.

            BRANCH: STEP >> STEP >> ...

        STEP is a notebook path (.ipynb), a `shell command` in backticks, or the
        name of a step declared with --branch. A body that is a YAML mapping of
        magnus branch pipelines (start_at, steps) is taken as it is. When every
        branch comes from --branch steps, one line does: %magnus_parallel NAME
        """
        args = _parse(self.magnus_parallel, line, cell)
        with _usage_errors():
            declared = session().parallel(_name(args.name), cell or "", next=args.next,
                                          on_failure=args.on_failure, failure_policy=args.failure_policy,
                                          cell=self.cell_id, cell_magic=cell is not None)
        _warn_unknown_targets(declared.name)

    @magic_arguments("%magnus_map")
    @argument("name", nargs="+", metavar="NAME", help="the block's name")
    @argument("--iterate-on", metavar="PARAMETER", help="the parameter holding the list of values")
    @argument("--iterate-as", metavar="NAME", help="the parameter each value becomes inside the branch")
    @argument("--next", metavar="STEP", help="the step that follows (default: the next declared one)")
    @argument("--on-failure", metavar="STEP", help="the step to go to when a branch fails")
    @argument("--failure-policy", choices=("finish_all", "fail_fast"),
              help="finish_all (default) lets every branch end; fail_fast cancels the others")
    @line_cell_magic
    def magnus_map(self, line: str, cell: str | None = None) -> None:
        """Declare a map block: its one branch runs once per value of --iterate-on.

        The body is one branch line (`STEP >> STEP`, optionally `BRANCH: ...`), a
        YAML branch pipeline, or empty when steps join it with --branch MAP.
        """
        args = _parse(self.magnus_map, line, cell)
        with _usage_errors():
            declared = session().map(_name(args.name), cell or "", iterate_on=args.iterate_on,
                                     iterate_as=args.iterate_as, next=args.next, on_failure=args.on_failure,
                                     failure_policy=args.failure_policy, cell=self.cell_id,
                                     cell_magic=cell is not None)
        _warn_unknown_targets(declared.name)

    @magic_arguments()
    @argument("path", nargs="?", metavar="PATH", help="write the YAML to this file instead of showing it")
    @line_magic
    def magnus_yaml(self, line: str) -> None:
        """Show the declared pipeline as magnus 0.5 YAML, or write it to PATH."""
        args = _parse(self.magnus_yaml, line)
        from .validate import validate
        from .yaml_io import to_yaml

        with _usage_errors():
            pipeline = session().build(check=False)
            warnings = validate(pipeline)
            text = to_yaml(pipeline)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.path:
            try:
                Path(args.path).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"%magnus_yaml: cannot write {args.path}: {exc.strerror}") from None
            print(f"wrote {args.path}")
            return
        try:
            from IPython.display import Code, display
        except ImportError:  # an IPython without Code: plain text is still the YAML
            print(text, end="")
        else:
            display(Code(text, language="yaml"))

    @magic_arguments()
    @argument("path", metavar="PATH", help="a magnus YAML pipeline file")
    @line_magic
    def magnus_load(self, line: str) -> None:
        """Make a magnus YAML file the session's pipeline; later cells add or replace its steps."""
        args = _parse(self.magnus_load, line)
        from .yaml_io import load_yaml

        with _usage_errors():
            pipeline = load_yaml(Path(args.path))
            session().load(pipeline)
        print(f"loaded {args.path}: {len(pipeline.steps)} top-level steps")

    @line_magic
    def magnus_reset(self, line: str) -> None:
        """Forget every declaration, to declare the pipeline afresh."""
        if line.strip():
            raise UsageError("%magnus_reset takes no arguments")
        session().reset()


@magics_class
class RunMagics(Magics):
    """Run or show the declared pipeline with the live DAG widget (the work is in ``running``)."""

    @magic_arguments("%magnus_run")
    @argument("--workers", type=int, metavar="N", help="task slots: tasks running at once (default: CPUs)")
    @argument("-p", "--parameters-file", metavar="FILE", help="initial parameters: a YAML mapping")
    @argument("--param", action="append", default=[], metavar="k=v",
              help="set one parameter (VALUE as JSON, else text); repeatable, wins over -p")
    @argument("--background", action="store_true", help="return at once; the widget keeps updating")
    @argument("--executor", metavar="NAME", help="where tasks run: local (default), dask, or a registered")
    @argument("--scheduler", metavar="ADDRESS", help="with --executor dask: e.g. tcp://host:8786 "
                                                     "(default: a LocalCluster of --workers processes)")
    @argument("--reuse", action="store_true",
              help="reuse the result of a task whose fingerprint matches an earlier successful run here")
    @argument("--from", dest="from_step", metavar="STEP",
              help="run this step and everything after it; what comes before is reused")
    @argument("--only", action="append", metavar="STEP",
              help="run only this step (repeatable); every other is reused")
    @line_magic
    def magnus_run(self, line: str) -> None:
        """Run the declared pipeline; the DAG widget shows it live. Interrupt the kernel to cancel."""
        args = _parse(self.magnus_run, line)
        from . import running

        with _usage_errors():
            running.start(workers=args.workers, parameters_file=args.parameters_file, params=args.param,
                          background=args.background, executor=args.executor, scheduler=args.scheduler,
                          reuse=args.reuse, from_step=args.from_step, only=args.only)

    @magic_arguments("%magnus_retry")
    @argument("run_id", nargs="?", metavar="RUN_ID", help="the run to retry (default: the last run)")
    @argument("--workers", type=int, metavar="N", help="task slots: tasks running at once (default: CPUs)")
    @argument("--param", action="append", default=[], metavar="k=v",
              help="change one parameter for the retry (VALUE as JSON, else text); repeatable")
    @argument("--background", action="store_true", help="return at once; the widget keeps updating")
    @line_magic
    def magnus_retry(self, line: str) -> None:
        """Retry a run with the declared pipeline (with nothing declared: the pipeline the run recorded);
        succeeded tasks are reused, the rest run again."""
        args = _parse(self.magnus_retry, line)
        from . import running

        with _usage_errors():
            running.start(workers=args.workers, params=args.param, background=args.background,
                          retry_of=args.run_id or running.latest_run_id())

    @magic_arguments("%magnus_runs")
    @argument("folder", nargs="?", metavar="FOLDER", help="the run folder (default: this one)")
    @line_magic
    def magnus_runs(self, line: str) -> None:
        """This folder's runs as a table, live while one runs: select a run to see its summary, DAG and
        timeline, two to compare them. The saved notebook keeps the table."""
        args = _parse(self.magnus_runs, line)
        folder = Path(args.folder or ".")
        if not folder.is_dir():
            raise UsageError(f"%magnus_runs: {folder} is not a folder")
        from .widget.runs import RunsView

        with _usage_errors():
            RunsView(folder).show()

    @line_magic
    def magnus_show(self, line: str) -> None:
        """Show the declared pipeline's DAG widget (every step pending)."""
        if line.strip():
            raise UsageError("%magnus_show takes no arguments")
        from . import running

        with _usage_errors():
            running.show()


MAGICS: tuple[type[Magics], ...] = (DeclareMagics, RunMagics)


def load_ipython_extension(ipython: Any) -> None:
    for cls in MAGICS:
        magics = cls(ipython)
        ipython.register_magics(magics)
        for event in ("pre_run_cell", "post_run_cell"):
            if hasattr(magics, event):
                ipython.events.register(event, getattr(magics, event))


def unload_ipython_extension(ipython: Any) -> None:
    manager = ipython.magics_manager
    for cls in MAGICS:
        instance = manager.registry.pop(cls.__name__, None)
        for kind, names in cls.magics.items():
            for name in names:
                manager.magics[kind].pop(name, None)
        for event in ("pre_run_cell", "post_run_cell"):
            if instance is not None and hasattr(instance, event):
                with suppress(ValueError):
                    ipython.events.unregister(event, getattr(instance, event))
