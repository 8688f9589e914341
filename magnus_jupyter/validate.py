"""magnus' graph rules, each broken rule reported with the step's full name and line.

Runs on the model, so pipelines from YAML, the SDK and the magics are held to
the same rules. Unreachable steps are allowed (as in magnus): a warning only.
"""

from __future__ import annotations

import gc
import graphlib
import posixpath
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Problem, ValidationError
from .model import (
    CATALOG_FOLDER,
    RESERVED_CHARACTERS,
    RUN_LOG_FOLDER,
    Fail,
    Map,
    Pipeline,
    Source,
    Step,
    Stub,
    Success,
    Task,
    join_name,
)
from .text import has_control


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for bulk work on a pipeline.

    A 10,000-step pipeline means hundreds of thousands of small objects, and the
    collector's passes over them (and over all else alive in a notebook kernel)
    cost more than the work itself. Nothing done here makes reference cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate(pipeline: Pipeline) -> list[Problem]:
    """Raise ``ValidationError`` listing every broken rule; return the warnings."""
    with gc_paused():
        return _validate(pipeline)


def _validate(pipeline: Pipeline) -> list[Problem]:
    problems: list[Problem] = []
    stack: list[tuple[str, Pipeline]] = [("", pipeline)]
    while stack:
        prefix, graph = stack.pop()
        problems.extend(_check_graph(prefix, graph))
        for name, step in graph.steps.items():
            internal = join_name(prefix, name)
            problems.extend(_check_step(internal, step))
            for branch_name, branch in reversed(step.branches().items()):
                stack.append((step.branch_prefix(internal, branch_name), branch))
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ValidationError(errors)
    return problems


def _at(step: Step | None, graph: Pipeline, internal: str | None, message: str,
        key: str | None = None, warning: bool = False) -> Problem:
    """A problem placed at ``key`` of the step (or of the graph, when no step), as precisely as known."""
    source = (step.source if step is not None else None) or graph.source
    return Problem(message, step=internal or None, file=source.file if source else None,
                   line=_line(source, key), warning=warning)


def _line(source: Source | None, key: str | None) -> int | None:
    """The line of ``key`` when the source knows its keys' lines (YAML input), else the block's line."""
    if source is None:
        return None
    line_of = getattr(source, "line_of", None)
    return line_of(key) if key and line_of else source.line


def _check_graph(prefix: str, graph: Pipeline) -> list[Problem]:
    what = f"branch '{prefix}'" if prefix else "the pipeline"
    out: list[Problem] = []
    if not graph.steps:
        return [_at(None, graph, None, f"{what} has no steps", "steps")]
    for kind, word in ((Success, "success"), (Fail, "fail")):
        found = [n for n, s in graph.steps.items() if isinstance(s, kind)]
        if len(found) != 1:
            names = f" (found {len(found)}: {', '.join(found)})" if found else ""
            out.append(_at(None, graph, None, f"{what} must have exactly one step of type {word}{names}"))
    if graph.start_at is None:
        out.append(_at(None, graph, None, f"{what} has no start_at"))
    elif graph.start_at not in graph.steps:
        out.append(_at(None, graph, None, f"start_at names {graph.start_at!r}, which is not a step of "
                       f"{what}{_known(graph)}", "start_at"))
    elif isinstance(graph.steps[graph.start_at], Success | Fail):
        kind = graph.steps[graph.start_at].type
        out.append(_at(None, graph, None, f"start_at of {what} cannot be the {kind} step", "start_at"))
    edges: dict[str, set[str]] = {}
    for name, step in graph.steps.items():
        internal = join_name(prefix, name)
        targets = set()
        for key in ("next", "on_failure"):
            target = getattr(step, key)
            if target is None:
                continue
            if target not in graph.steps:
                out.append(_at(step, graph, internal,
                               f"{key} names {target!r}, which is not a step of {what}{_known(graph)}", key))
            elif target == name:
                out.append(_at(step, graph, internal, f"{key} points back at the step itself (a cycle)", key))
            else:
                targets.add(target)
        edges[name] = targets
    out.extend(_cycles(prefix, graph, edges))
    if graph.start_at in graph.steps:
        for name in _unreachable(graph.start_at, edges, graph):
            out.append(_at(graph.steps[name], graph, join_name(prefix, name),
                           "is never reached from start_at (allowed, but it will not run)", warning=True))
    return out


def _check_step(internal: str, step: Step) -> list[Problem]:
    out: list[Problem] = []

    def add(message: str, key: str | None = None) -> None:
        source = step.source
        out.append(Problem(message, step=internal, file=source.file if source else None,
                           line=_line(source, key)))

    bad = [c for c in RESERVED_CHARACTERS if c in step.name]
    if bad:
        add(f"a step name may not contain {' or '.join(repr(c) for c in bad)} "
            "(magnus uses them in internal names)")
    if not step.name.strip():
        add("a step name may not be empty")
    if has_control(step.name):
        add("a step name may not hold a newline, tab or other control character")
    if isinstance(step, Success | Fail):
        given = [k for k in ("next", "on_failure") if getattr(step, k) is not None] + list(step.extras)
        if given:
            add(f"a {step.type} step takes no other fields, found {', '.join(given)}", given[0])
    elif step.next is None:
        add(f"missing 'next': a {step.type} step must say which step follows it")
    if isinstance(step, Task):
        if not step.command:
            add("a task needs a 'command'")
        elif step.kind == "notebook" and not step.command.strip().endswith(".ipynb"):
            add(f"a notebook task's command must be a .ipynb path, found {step.command!r}", "command")
        elif step.kind == "python" and not _is_dotted(step.command):
            add(f"a python task's command must be a dotted path like 'module.function', "
                f"found {step.command!r} (for a shell command set command_type: shell)", "command")
        if step.kind != "notebook":
            for key in ("notebook_output_path", "output_cell_tag", "optional_ploomber_args"):
                if getattr(step, key) is not None:
                    add(f"{key} applies only to notebook tasks", key)
        elif step.notebook_output_path is not None:
            why = output_path_problem(step.notebook_output_path)
            if why:
                add(f"notebook_output_path {step.notebook_output_path!r} {why}", "notebook_output_path")
    if isinstance(step, Map):
        for key in ("iterate_on", "iterate_as"):
            if not getattr(step, key):
                add(f"a map step needs '{key}'", key)
    for name in step.branches():
        if any(c in name for c in RESERVED_CHARACTERS) and not isinstance(step, Map):
            add(f"branch name {name!r} may not contain '.' or '%'", "branches")
        elif has_control(name):
            add(f"branch name {name!r} may not hold a newline, tab or other control character", "branches")
    if isinstance(step, Task | Stub) and step.catalog is not None:
        for message in _catalog_problems(step.catalog):
            add(message, "catalog")
    if isinstance(step, Task):
        for message in _inputs_problems(step.inputs):
            add(message, "inputs")
        if step.cache is not None and not isinstance(step.cache, bool):
            add(f"cache must be true or false, found {step.cache!r}", "cache")
    return out


def catalog_pattern_problem(pattern: Any, kind: str = "catalog") -> str | None:
    """Why a catalog ``get``/``put`` pattern (or a task's ``inputs`` glob: ``kind``) is refused, or None.

    A pattern is a glob relative to the run folder (``get``: to the run's
    catalog): it may not be empty or absolute, go up with ``..`` or reach into
    the run records, so a file is never read from or written outside them.
    """
    if not isinstance(pattern, str):
        return "must be text"
    if not pattern.strip():
        return "is empty; give a file or a glob such as data/*.csv"
    if has_control(pattern):
        return "holds a control character"
    if pattern.startswith("/"):
        return f"is absolute; {kind} patterns are relative to the run folder"
    parts = pattern.split("/")
    if ".." in parts:
        return f"goes up with '..'; {kind} patterns stay inside the run folder"
    if any("**" in part and part != "**" for part in parts):
        return "uses '**' inside a name; '**' (any folders) must be a whole component: data/**/*.csv"
    first = posixpath.normpath(pattern).split("/")[0]
    if first == ".":
        return "names the run folder itself; give a file or a glob such as data/*.csv"
    if first in (CATALOG_FOLDER, RUN_LOG_FOLDER):
        return f"reaches into the run records ({first}); {kind} patterns name the run's own files"
    return None


def output_path_problem(path: Any) -> str | None:
    """Why a file the run writes (``notebook_output_path``) is refused, or None: it stays in the project."""
    if not isinstance(path, str) or not path.strip():
        return "must be a relative file path"
    if has_control(path):
        return "holds a control character"
    if path.startswith("/"):
        return "is absolute; it is relative to the run folder"
    first = posixpath.normpath(path).split("/")[0]
    if first == "..":
        return "goes up with '..'; the run writes only inside the run folder"
    if first in (".", CATALOG_FOLDER, RUN_LOG_FOLDER):
        return "names the run folder or its records; give a file such as out/trained.ipynb"
    return None


def _catalog_problems(catalog: Any) -> list[str]:
    """The catalog field's problems (the SDK builds it without the YAML loader's shape checks)."""
    if not isinstance(catalog, dict):
        return ["catalog must be a mapping with 'get' and/or 'put' lists"]
    out = []
    for stage in ("get", "put"):
        patterns = catalog.get(stage) or []
        if not isinstance(patterns, list):
            out.append(f"catalog '{stage}' must be a list of file patterns, found {type(patterns).__name__}")
            continue
        for pattern in patterns:
            why = catalog_pattern_problem(pattern)
            if why:
                out.append(f"catalog {stage} pattern {pattern!r} {why}")
    return out


def _inputs_problems(inputs: Any) -> list[str]:
    """A task's ``inputs``: globs of project files it reads, held to the catalog patterns' rules."""
    if inputs is None:
        return []
    if not isinstance(inputs, list):
        return [f"inputs must be a list of file patterns, found {type(inputs).__name__}"]
    out = []
    for pattern in inputs:
        why = catalog_pattern_problem(pattern, "inputs")
        if why:
            out.append(f"inputs pattern {pattern!r} {why}")
    return out


def _is_dotted(command: str) -> bool:
    parts = command.strip().split(".")
    return len(parts) >= 2 and all(p.isidentifier() for p in parts)


def _known(graph: Pipeline) -> str:
    names = list(graph.steps)
    shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
    return f" (its steps: {shown})"


def _cycles(prefix: str, graph: Pipeline, edges: dict[str, set[str]]) -> list[Problem]:
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first = graph.steps[cycle[0]]
        loop = " -> ".join(cycle)
        return [_at(first, graph, join_name(prefix, cycle[0]), f"next/on_failure form a cycle: {loop}")]
    return []


def _unreachable(start: str, edges: dict[str, set[str]], graph: Pipeline) -> list[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    # the fail step is reached implicitly by any failure, so it never counts as unreachable
    return [n for n, s in graph.steps.items() if n not in seen and not isinstance(s, Fail)]
