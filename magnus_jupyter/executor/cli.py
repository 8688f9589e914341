"""``magnus-jupyter run`` and ``retry``: a pipeline from the command line, with live progress and a summary.

Prints the run id first (so a watcher can find the run log at once), live
progress on stderr, then a table of steps and where the run log and catalog
are. Exit 0: the pipeline succeeded; 1: it failed; 2: bad input (the
pipeline, the parameters, a run id that exists, ``--workers``); 130: Ctrl-C
(143: SIGTERM) cancelled the run — its tasks are killed and the run log ends
FAIL "cancelled", so ``retry`` can pick it up. A second Ctrl-C stops at once.
Every name, value and message from the pipeline or its tasks is shown with
terminal control sequences removed.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL = 128  # + the signal's number, as shells report it


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, found {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, found {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--parameters-file", metavar="PARAMS.yaml",
                   help="initial parameters: a YAML mapping of name: value")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set one parameter (VALUE as JSON, else plain text); repeatable, wins over -p")
    p.add_argument("--run-id", help="the run's id (default: timestamp plus random); must not exist yet")
    p.add_argument("--workers", type=_workers, metavar="N",
                   help="task slots: tasks running at once (default: the CPU count)")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="kill a task attempt after this long, unless the task sets its own timeout")
    p.add_argument("--quiet", action="store_true", help="no live progress; the run id and summary only")
    p.add_argument("--executor", metavar="NAME",
                   help="where tasks run: local (worker processes here, the default), dask, or any "
                        "executor another package registers")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --executor dask: the scheduler to use, e.g. tcp://host:8786 (default: start "
                        "a LocalCluster of --workers worker processes)")
    p.add_argument("-c", "--config-file", metavar="CONFIG.yaml",
                   help="a magnus config: catalog, secrets, experiment tracker, mocked executor (default: "
                        "$MAGNUS_CONFIGURATION_FILE; a retry: the old run's)")
    p.add_argument("--tag", default="", help="a tag for the run (the experiment tracker's experiment)")


def _magnus_flags(p: argparse.ArgumentParser) -> None:
    """What magnus' own commands take besides the common options."""
    p.add_argument("--log-level", default="WARNING", choices=("INFO", "DEBUG", "WARNING", "ERROR", "FATAL"),
                   help="how much of magnus-jupyter's own logging shows")


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``run`` and ``retry`` on the main parser (``add(name, func, help)`` returns the subparser)."""
    p = add("run", cmd_run, "Run a magnus pipeline; branches run at the same time.")
    p.add_argument("file", help="the pipeline YAML")
    _common(p)
    p.add_argument("--reuse", action="store_true",
                   help="do not run a task whose fingerprint (definition, parameters, files, environment) "
                        "matches a successful attempt of an earlier run here: reuse that result")
    p.add_argument("--from", dest="from_step", metavar="STEP",
                   help="run this step and everything after it, reusing earlier results for what comes "
                        "before")
    p.add_argument("--only", nargs="+", action="extend", metavar="STEP",
                   help="run only these steps, reusing earlier results for every other")
    p = add("retry", cmd_retry, "Run a failed, cancelled or killed run again as a new run, reusing the "
                                "steps that succeeded in it.")
    p.add_argument("old_run_id", metavar="RUN_ID", help="the run to retry (its run log is in .run_log_store)")
    p.add_argument("file", nargs="?", help="the pipeline YAML (default: the one the old run recorded)")
    _common(p)
    p = add("why", cmd_why, "Show a task's fingerprint in a run, and what differs from its nearest earlier "
                            "successful run (why it ran again).")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("step", metavar="STEP", help="the task's internal name (or its name, if no other has it)")
    p = add("execute", cmd_execute, "magnus' `execute`: run a pipeline with magnus' flags (-f, -c, "
                                    "--parameters-file, --run-id, --tag, --use-cached).")
    p.add_argument("-f", "--file", default="pipeline.yaml", help="the pipeline YAML (default: pipeline.yaml)")
    p.add_argument("--use-cached", metavar="OLD_RUN_ID", help="retry that run, reusing its succeeded steps")
    _common(p)
    _magnus_flags(p)
    for name, kind, what in (("execute_notebook", "notebook", "a notebook"),
                             ("execute_function", "python", "a Python function (module.function)")):
        p = add(name, cmd_execute_one, f"magnus' `{name}`: run {what} as a one-task pipeline.")
        p.set_defaults(kind=kind)
        p.add_argument("command", metavar="FILENAME" if kind == "notebook" else "COMMAND")
        p.add_argument("-d", "--data-folder", default="data/", help="where --put-in-catalog looks (data/)")
        p.add_argument("-put", "--put-in-catalog", action="append", default=[], metavar="PATTERN",
                       help="put files matching PATTERN (in --data-folder) in the catalog; repeatable")
        if kind == "notebook":
            p.add_argument("--notebook-output-path", default="", help="a copy of the executed notebook")
        _common(p)
        _magnus_flags(p)
    p = add("export", cmd_export, "Write the pipeline as an Argo Workflows manifest whose pods run "
                                  "execute-step.")
    p.add_argument("file", help="the pipeline YAML")
    p.add_argument("--to", choices=("argo",), default="argo", help="the target (argo)")
    p.add_argument("--image", required=True, help="the container image with magnus-jupyter and the project")
    p.add_argument("-o", "--output", required=True, metavar="workflow.yaml", help="where to write it")
    p.add_argument("--root", default="/mnt/magnus", metavar="DIR",
                   help="the run folder inside the pods (run log, catalog, the project's files)")
    p.add_argument("--pvc", metavar="CLAIM", help="a PersistentVolumeClaim mounted at --root in every pod")
    p.add_argument("-p", "--parameters-file", metavar="PARAMS.yaml", help="initial parameters")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="one parameter")
    p = add("execute-step", cmd_execute_step, "Run one step of a run against its run log and catalog "
                                              "(what an exported workflow's pods run).")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("step", nargs="?", metavar="STEP_INTERNAL_NAME", help="e.g. 'Train Models.XGBoost.Train'")
    p.add_argument("--root", default=".", metavar="DIR", help="the run folder (default: here)")
    p.add_argument("--init", action="store_true", help="create the run log (with --file and parameters)")
    p.add_argument("--finalize", action="store_true",
                   help="the workflow's exit handler: steps and branches a killed pod left PROCESSING end "
                        "FAIL with the reason, and so does a run still PROCESSING")
    p.add_argument("--file", help="with --init: the pipeline YAML, relative to --root")
    p.add_argument("--phase", choices=("run", "start", "end"), default="run",
                   help="for a parallel/map step: start (its branch logs) or end (its status)")
    p.add_argument("--values-out", metavar="PATH", help="a map step's start writes its values here")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="with --init")
    p.add_argument("-c", "--config-file", metavar="CONFIG.yaml",
                   help="with --init: the run's magnus config (catalog, secrets, experiment tracker)")


@contextmanager
def _cancel_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set the run's cancel event (the engine stops its tasks and ends the log);
    a second one raises ``KeyboardInterrupt`` so a stuck stop can still be left."""
    cancel = threading.Event()
    cancel.signum = 0  # type: ignore[attr-defined]

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.signum = signum  # type: ignore[attr-defined]
        cancel.set()
        print("\ncancelling the run (press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    if threading.current_thread() is not threading.main_thread():  # embedded: signals are not ours
        yield cancel
        return
    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)


def _prepare(factory: Any, args: argparse.Namespace, pipeline: Any) -> Any:
    """Let an executor that can (``prepare``) start its cluster now, while the run is being set up;
    the same pool size and kernel warming the engine will ask for, so the engine adopts it."""
    prepare = getattr(factory, "prepare", None)
    if not callable(prepare) or pipeline is None:
        return None
    from .engine import default_workers, has_notebooks

    return prepare(default_workers(args.workers), warm_kernels=has_notebooks(pipeline))


_exit_freeze = False


def _freeze_at_exit() -> None:
    """Registered before the run imports dask (so it runs after every atexit handler registered since):
    at exit, move what is left to the collector's permanent generation. The process is ending and the
    memory goes with it; the interpreter's collection passes over a loaded ``distributed`` took
    0.15-0.35 s of the dask command's wall time, after its summary was printed."""
    global _exit_freeze
    if not _exit_freeze:
        _exit_freeze = True
        atexit.register(gc.freeze)


def _execute(args: argparse.Namespace, start: Callable[..., Any], pipeline: Any = None) -> int:
    """Shared by run and retry: progress, signals, summary, exit code."""
    from .registry import slots_factory

    _freeze_at_exit()

    factory = slots_factory(args.executor, args.scheduler)  # an unknown name: exit 2 before anything runs
    early = _prepare(factory, args, pipeline)
    try:
        return _run_and_report(args, start, factory)
    finally:
        if early is not None:
            early.close()


def _run_and_report(args: argparse.Namespace, start: Callable[..., Any], factory: Any) -> int:
    from ..progress import TerminalProgress, clean, summary_table
    from . import events as ev
    from .params import initial_parameters

    parameters = initial_parameters(args.parameters_file, args.param)

    def announce(event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            print(f"run_id: {event.run_id}", flush=True)
        elif isinstance(event, ev.RunWarning) and args.quiet:
            print(f"warning: {clean(event.message)}", file=sys.stderr, flush=True)

    subscribers: list[ev.Subscriber] = [announce]
    if not args.quiet:
        subscribers.append(TerminalProgress(sys.stderr))
    with _cancel_on_signals() as cancel:
        result = start(parameters=parameters, run_id=args.run_id, workers=args.workers,
                       subscribers=subscribers, cancel=cancel, timeout=args.timeout, slots_factory=factory)
    print()
    print(summary_table(result.run_log))
    print()
    for warning in result.warnings:
        print(f"warning: {clean(warning)}")
    for line in _reasons(result.run_log):
        print(line)
    original = result.run_log.get("original_run_id")
    if original:
        print(f"retry of: {original}")
    print(f"status:  {result.status}" + (" (cancelled)" if cancel.is_set() else ""))
    print(f"run log: {result.run_log_path}")
    print(f"catalog: {result.catalog_path}")
    if cancel.is_set():
        print(f"retry:   magnus-jupyter retry {result.run_id}")
        return EXIT_SIGNAL + int(cancel.signum)  # type: ignore[attr-defined]
    return EXIT_OK if result.ok else EXIT_FAILED


def _reasons(run_log: dict[str, Any], most: int = 10) -> list[str]:
    """After a run that reused: how many tasks it reused, and why each of the others ran (the first few)."""
    from ..progress import clean
    from .runlog import iter_steps

    reused, ran = 0, []
    for step in iter_steps(run_log):
        if step.get("step_type") != "task":
            continue
        if step.get("reused_from"):
            reused += 1
        elif step.get("rerun_reason"):
            ran.append(f"  {clean(step['internal_name'])}: {clean(step['rerun_reason'])}")
    if not reused and not ran:
        return []
    more = [f"  ... and {len(ran) - most} more (magnus-jupyter why RUN_ID STEP)"] if len(ran) > most else []
    return [f"reused: {reused} task{'s' if reused != 1 else ''}; ran: {len(ran)}", *ran[:most], *more]


def _reuse_options(args: argparse.Namespace) -> dict[str, Any]:
    """run's --reuse, --from and --only, for run_pipeline (other commands have none)."""
    return {"reuse": getattr(args, "reuse", False), "from_step": getattr(args, "from_step", None),
            "only": getattr(args, "only", None)}


def cmd_run(args: argparse.Namespace) -> int:
    from ..yaml_io import load_yaml
    from .entrypoints import resolved_config

    config = resolved_config(args.config_file, tag=args.tag, how=args.command)  # before the pipeline
    pipeline = load_yaml(args.file)  # PipelineError -> exit 2 in the main CLI
    return _run_with(args, pipeline, config, args.file)


def _run_with(args: argparse.Namespace, pipeline: Any, config: Any, file: str | None,
              use_cached: str | None = None) -> int:
    def start(**kwargs: Any) -> Any:
        if config is None and not use_cached:
            from .engine import run_pipeline  # imported while a prepared cluster starts

            return run_pipeline(pipeline, pipeline_file=file, **_reuse_options(args), **kwargs)
        from ..config import MagnusConfig
        from .entrypoints import run

        return run(pipeline, config or MagnusConfig(), use_cached=use_cached or "", pipeline_file=file,
                   **_reuse_options(args), **kwargs)

    return _execute(args, start, pipeline)


def cmd_execute(args: argparse.Namespace) -> int:
    from ..yaml_io import load_yaml
    from .entrypoints import resolved_config, set_log_level

    set_log_level(args.log_level)
    old = None
    if args.use_cached:
        from .retry import load_run_log

        old = load_run_log(args.use_cached)
    config = resolved_config(args.config_file, old, tag=args.tag, how="execute")
    pipeline = load_yaml(args.file)
    return _run_with(args, pipeline, config, args.file, args.use_cached)


def cmd_execute_one(args: argparse.Namespace) -> int:
    from .entrypoints import one_task, resolved_config, set_log_level

    set_log_level(args.log_level)
    config = resolved_config(args.config_file, tag=args.tag, how=args.command)
    pipeline = one_task(args.kind, args.command, args.data_folder, args.put_in_catalog,
                        getattr(args, "notebook_output_path", ""))
    return _run_with(args, pipeline, config, None)


def cmd_retry(args: argparse.Namespace) -> int:
    from .entrypoints import resolved_config
    from .retry import load_run_log, recorded_pipeline, retry_run

    old = load_run_log(args.old_run_id)  # read here too: to name the recorded pipeline before starting
    config = resolved_config(args.config_file, old, tag=args.tag, how="retry")
    if args.file is not None:
        from ..yaml_io import load_yaml

        pipeline, file = load_yaml(args.file), args.file
    else:
        from ..progress import clean

        pipeline, file = recorded_pipeline(old)
        print(f"pipeline: {clean(file or 'as recorded in the run log of ' + args.old_run_id)}",
              file=sys.stderr)

    def start(*, run_id: str | None, **kwargs: Any) -> Any:
        if config is not None:
            from .entrypoints import run

            return run(pipeline, config, use_cached=args.old_run_id, run_id=run_id, pipeline_file=file,
                       **kwargs)
        return retry_run(args.old_run_id, pipeline, new_run_id=run_id, pipeline_file=file, **kwargs)

    return _execute(args, start, pipeline)


def cmd_why(args: argparse.Namespace) -> int:
    from ..progress import clean
    from .runlog import check_run_id
    from .why import explain

    for line in explain(check_run_id(args.run_id), args.step):
        print(clean(line))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    import yaml

    from ..yaml_io import load_yaml
    from .argo import export_argo, validate_manifest
    from .params import initial_parameters

    pipeline = load_yaml(args.file)
    manifest = export_argo(pipeline, image=args.image, pipeline_file=args.file, root=args.root, pvc=args.pvc,
                           parameters=initial_parameters(args.parameters_file, args.param, environ={}))
    validate_manifest(manifest)
    with open(args.output, "w", encoding="utf-8") as handle:
        yaml.safe_dump(manifest, handle, sort_keys=False)
    print(f"{args.file}: Argo Workflow written to {args.output}")
    return EXIT_OK


def cmd_execute_step(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ExecutionError
    from ..progress import clean
    from .params import initial_parameters
    from .step import LOST_POD, execute_step, finalize_run, init_run

    if args.init and args.finalize:
        raise ExecutionError("execute-step: --init or --finalize, not both")
    if args.init:
        if not args.file:
            raise ExecutionError("execute-step --init needs --file PIPELINE.yaml")
        from .entrypoints import resolved_config

        config = resolved_config(args.config_file, how="execute-step")
        init_run(Path(args.root), args.run_id, args.file, initial_parameters(None, args.param, environ={}),
                 config)
        return EXIT_OK
    if args.finalize:
        if args.step:
            raise ExecutionError("execute-step --finalize takes no step: it closes the whole run")
        status, lost = finalize_run(args.root, args.run_id)
        for name in lost:
            print(f"{clean(name)}: FAIL ({LOST_POD})")
        print(f"run {args.run_id}: {status}")
        return EXIT_OK
    if not args.step:
        raise ExecutionError("execute-step: name the step (its internal name), or give --init or --finalize")

    def warn(message: str) -> None:
        print(f"warning: {clean(message)}", file=sys.stderr, flush=True)

    status = execute_step(args.root, args.run_id, args.step, args.phase, args.values_out, warn=warn)
    print(f"{args.step}: {status}")
    return EXIT_OK if status == "SUCCESS" else EXIT_FAILED
