"""``--from STEP`` and ``--only STEP ...``: which tasks a partial run runs; every other task is reused.

A step is named by its internal name (``Train Models.XGBoost.Train XGBoost``;
a map iteration by its value, ``per item.2.work``, or every iteration by the
placeholder, ``per item.{item}.work``), or by its name alone when no other step
has it. ``--only`` runs the named steps (a composite step: everything in it).
``--from`` runs the named step, everything after it in its graph, and
everything after the composite steps holding it, level by level up to the
pipeline; "after" is the order a graph is walked in: from ``start_at`` along
``next``, then ``on_failure``. Sibling branches of a parallel or map step are
neither before nor after a step inside one of them: they are reused.

A task is told apart by its *trail*: the (composite step, branch) pairs above
it, the branch of a map step being its value, ending with the task's own name.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ExecutionError
from ..model import Dag, Fail, Map, Parallel, Pipeline, Step, Success, Task, join_name, map_placeholder

Trail = tuple[tuple[str, str], ...]  # (step name, branch key) from the top; the last is (task name, "")
ANY = object()  # a map's placeholder in a target: every iteration


class Selection:
    """The tasks ``--from`` or ``--only`` runs; ``runs(trail)`` answers for a task as the walk meets it."""

    def __init__(self, pipeline: Pipeline, from_step: str | None = None, only: Sequence[str] = ()) -> None:
        if from_step is not None and only:
            raise ExecutionError("--from and --only do not go together: give one of them")
        self.pipeline = pipeline
        self.after = from_step is not None
        texts = [from_step] if from_step is not None else list(only)
        option = "--from" if self.after else "--only"
        self.targets = [resolve(pipeline, text, option) for text in texts]
        self.flag = f"{option} " + ", ".join(repr(t) for t in texts)
        self.reason = f"asked to run ({self.flag})"
        self._orders: dict[int, dict[str, int]] = {}

    def runs(self, trail: Trail) -> bool:
        return any(self._selects(target, trail) for target in self.targets)

    def _selects(self, target: list[tuple[str, Any]], trail: Trail) -> bool:
        graph = self.pipeline
        for level, (name, branch) in enumerate(target):
            if level >= len(trail):
                return False
            here, key = trail[level]
            if here != name:
                return self.after and self._order(graph)[here] > self._order(graph)[name]
            if branch is None:  # the target itself: the task is it, or inside it
                return True
            if branch is not ANY and branch != key:
                return False  # a sibling branch: neither before nor after
            graph = _branch(graph.steps[name], key)
        return False

    def _order(self, graph: Pipeline) -> dict[str, int]:
        order = self._orders.get(id(graph))
        if order is None:
            order = self._orders[id(graph)] = walk_order(graph)
        return order

    def needed(self) -> Iterator[str]:
        """Tasks with names known before the run (outside map steps) on the way from ``start_at`` along
        ``next`` that this selection does not run: their earlier results must exist."""
        stack: list[tuple[Pipeline, str, Trail]] = [(self.pipeline, "", ())]
        while stack:
            graph, prefix, trail = stack.pop()
            for name in _success_path(graph):
                step = graph.steps[name]
                internal = join_name(prefix, name)
                if isinstance(step, Task):
                    if step.cache is not False and not self.runs(trail + ((name, ""),)):
                        yield internal
                elif isinstance(step, Parallel | Dag):
                    for key, branch in step.branches().items():
                        stack.append((branch, join_name(internal, key), trail + ((name, key),)))


def walk_order(graph: Pipeline) -> dict[str, int]:
    """Each step's place in the order the graph is walked: from start_at, along next, then on_failure."""
    order: dict[str, int] = {}
    queue = deque([graph.start_at] if graph.start_at in graph.steps else [])
    while queue:
        name = queue.popleft()
        if name in order or name not in graph.steps:
            continue
        order[name] = len(order)
        step = graph.steps[name]
        queue.extend(n for n in (step.next, step.on_failure) if n)
    for name in graph.steps:  # never reached: after everything
        order.setdefault(name, len(order))
    return order


def _success_path(graph: Pipeline) -> list[str]:
    out: list[str] = []
    name = graph.start_at
    while name in graph.steps and name not in out:
        step = graph.steps[name]
        if isinstance(step, Success | Fail):
            break
        out.append(name)
        name = step.next
    return out


def _branch(step: Step, key: str) -> Pipeline:
    if isinstance(step, Map):
        assert step.branch is not None
        return step.branch
    return step.branches()[key]


def resolve(pipeline: Pipeline, text: str, option: str) -> list[tuple[str, Any]]:
    """The target a step name or internal name stands for; a bad one is a one-line ``ExecutionError``."""
    text = text.strip()
    if not text:
        raise ExecutionError(f"{option}: give a step's name or internal name")
    target = _parse(pipeline, text.split("."), 0)
    if target is None:
        named = sorted(internal for internal, step, _ in pipeline.walk() if step.name == text)
        if len(named) > 1:
            shown = ", ".join(repr(n) for n in named[:5]) + (" ..." if len(named) > 5 else "")
            raise ExecutionError(f"{option} {text!r}: {len(named)} steps have that name ({shown}); "
                                 "give the full internal name")
        target = _parse(pipeline, named[0].split("."), 0) if named else None
    if target is None:
        known = ", ".join(repr(n) for n, s in pipeline.steps.items() if not isinstance(s, Success | Fail))
        raise ExecutionError(f"{option} {text!r}: no such step (the pipeline's steps: {known}; a step "
                             "inside a branch by its internal name, e.g. 'Parallel.branch.step')")
    step = _step(pipeline, target)
    if isinstance(step, Success | Fail):
        raise ExecutionError(f"{option} {text!r} names a {step.type} step; name a task or a parallel, map "
                             "or dag step")
    return target


def _step(pipeline: Pipeline, target: list[tuple[str, Any]]) -> Step:
    graph = pipeline
    for name, branch in target[:-1]:
        graph = _branch(graph.steps[name], "" if branch is ANY else branch)
    return graph.steps[target[-1][0]]


def runnable(pipeline: Pipeline, internal: str) -> bool:
    """Whether ``internal`` (a map's branches by value or placeholder) names a step ``--from`` takes:
    a task, a stub or a composite step, not a success or fail step (the DAG widget marks those nodes)."""
    target = _parse(pipeline, internal.split("."), 0)
    return target is not None and not isinstance(_step(pipeline, target), Success | Fail)


def _parse(graph: Pipeline, parts: list[str], i: int) -> list[tuple[str, Any]] | None:
    step = graph.steps.get(parts[i])
    if step is None:
        return None
    if i == len(parts) - 1:
        return [(parts[i], None)]
    if isinstance(step, Map) and step.branch is not None:  # a value may hold dots: try each split
        for j in range(i + 2, len(parts)):
            rest = _parse(step.branch, parts, j)
            if rest is not None:
                value = ".".join(parts[i + 1:j])
                return [(parts[i], ANY if value == map_placeholder(step.iterate_as) else value), *rest]
        return None
    branches = step.branches()
    if parts[i + 1] in branches and i + 2 < len(parts):
        rest = _parse(branches[parts[i + 1]], parts, i + 2)
        if rest is not None:
            return [(parts[i], parts[i + 1]), *rest]
    return None
