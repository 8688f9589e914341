"""The pipeline drawn as a Graphviz DAG: model + step states -> DOT, SVG or PNG.

Drawing is a pure function of the model and a ``{internal name: status}``
mapping, so the CLI, the YAML preview and the live widget share one picture:
re-render with new states and the colours move. Composite steps (parallel, map,
dag) are clusters holding one cluster per branch, entered through a fork bar and
left through a join bar. Step names reach DOT only as escaped plain labels and
node ids are generated (``n0``, ``n1``...), so any name stays literal text.
Nesting is walked with an explicit stack: depth costs no Python recursion. A
fail step is drawn only where an edge leads to it (or a state says it was
reached): every branch has one, and unconnected they read as failed steps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError
from .model import Dag, Fail, Map, Pipeline, Step, Stub, Success, Task, join_name, map_placeholder

SUFFIXES = (".svg", ".png", ".dot")
DEFAULT_TIMEOUT = 120.0  # seconds for one `dot` run; a 10,000-step graph takes a while

# status -> (node fill, cluster fill); statuses outside these draw uncoloured
NODE_FILL = {"PROCESSING": "#ffe08a", "SUCCESS": "#b7e4c7", "FAIL": "#f4a6a6"}
CLUSTER_FILL = {"PROCESSING": "#fff6d5", "SUCCESS": "#eaf7ee", "FAIL": "#fde8e8"}
_BAR_COLOUR = "#555555"
_MAX_INDENT = 40  # DOT indentation stops growing here, so deep nesting stays linear in size

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def quote(text: str) -> str:
    """A DOT string that Graphviz shows exactly as ``text`` (plain, not HTML, label).

    Graphviz decodes ``&...;`` entities and ``\\n``-style escapes in labels and
    tooltips, so ``&`` and ``\\`` are escaped before quotes and line breaks;
    other control characters become their visible Unicode pictures.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("&", "&amp;")
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = _CONTROL.sub(lambda m: "\u2421" if m.group() == "\x7f" else chr(0x2400 + ord(m.group())), text)
    return f'"{text}"'


def _tooltip(text: str) -> str:
    """Backslashes shown as a look-alike (U+29F5) in tooltips only: Graphviz 2.43 expands
    escapes in tooltips twice, so no quoting keeps them literal on every version."""
    return text.replace("\\", "\u29f5")


def _attrs(**values: str | float | None) -> str:
    """``[a="x", b=2]`` with every string quoted; ``None`` values left out."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        shown = quote(value) if isinstance(value, str) else f"{value:g}"
        parts.append(f"{key}={shown}")
    return "[" + ", ".join(parts) + "]"


@dataclass
class Drawing:
    """DOT source plus the id Graphviz (and the SVG) gives each internal name.

    Leaf steps map to node ids, composite steps and branches to cluster ids:
    the handle a view needs to find a step in the SVG.
    """

    source: str
    ids: dict[str, str] = field(default_factory=dict)

    def svg(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """This drawing as SVG text (needs Graphviz's ``dot``): the ids above are the SVG's."""
        return _run_dot(self.source, "svg", timeout).decode("utf-8")


@dataclass
class _Frame:
    """A pipeline still to draw, with the fork/join bars of the step holding it."""

    prefix: str
    pipeline: Pipeline
    depth: int
    fork: str | None = None
    join: str | None = None


class _Draw:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = {k: str(v).upper() for k, v in states.items()}
        self.ids: dict[str, str] = {}
        self.edges: list[str] = []
        self.nodes = 0
        self.clusters = 0

    # ---- structure -----------------------------------------------------------------------------

    def lines(self, pipeline: Pipeline) -> list[str]:
        """All node and cluster lines, nested branches walked with a stack, not recursion."""
        out: list[str] = []
        stack: list[str | _Frame] = [_Frame("", pipeline, 1)]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
            else:
                stack.extend(reversed(self.pipeline_items(item)))
        return out

    def pipeline_items(self, frame: _Frame) -> list[str | _Frame]:
        """One pipeline's steps in order; branches come back as frames to expand later."""
        pad = "  " * min(frame.depth, _MAX_INDENT)
        items: list[str | _Frame] = []
        entry: dict[str, str] = {}  # step name -> the node an arriving edge points at
        exit_: dict[str, str] = {}  # step name -> the node a leaving edge starts from
        for name, step in frame.pipeline.steps.items():
            internal = join_name(frame.prefix, name)
            if not shown(frame.pipeline, step, internal in self.states):
                continue
            branches = self.branches(internal, step)
            if not branches:
                node = self.new_node(internal)
                entry[name] = exit_[name] = node
                items.append(f"{pad}{node} {self.node_attrs(internal, step)};")
                continue
            cluster = self.new_cluster(internal)
            index = cluster.removeprefix("cluster_")
            fork, join = f"f{index}", f"j{index}"
            entry[name], exit_[name] = fork, join
            status = self.states.get(internal)
            items.append(f"{pad}subgraph {cluster} {{")
            items.append(f"{pad}  graph {self.cluster_attrs(cluster, self.composite_label(step), status)};")
            bar = dict(shape="box", label="", height=0.06, width=1.2, style="filled",
                       fillcolor=NODE_FILL.get(status or "", _BAR_COLOUR), color=_BAR_COLOUR,
                       tooltip=_tooltip(f"{internal} ({step.type})"))
            items.append(f"{pad}  {fork} {_attrs(id=fork, **bar)};")
            items.append(f"{pad}  {join} {_attrs(id=join, **bar)};")
            for label, prefix, branch in branches:
                inner = self.new_cluster(prefix)
                items.append(f"{pad}  subgraph {inner} {{")
                items.append(f"{pad}    graph {self.cluster_attrs(inner, label, self.states.get(prefix))};")
                items.append(_Frame(prefix, branch, frame.depth + 2, fork, join))
                items.append(f"{pad}  }}")
            items.append(f"{pad}}}")
        self.add_edges(frame, entry, exit_)
        return items

    def add_edges(self, frame: _Frame, entry: dict[str, str], exit_: dict[str, str]) -> None:
        """``next`` solid, ``on_failure`` dashed; the branch hangs off its parent's bars."""
        pipeline = frame.pipeline
        if frame.fork and pipeline.start_at in entry:
            self.edges.append(f"{frame.fork} -> {entry[pipeline.start_at]};")
        success = pipeline.terminal(Success)
        if frame.join and success is not None:
            self.edges.append(f"{exit_[success.name]} -> {frame.join};")
        for name, step in pipeline.steps.items():
            if not step.TRAVERSAL:
                continue
            if step.next in entry:
                self.edges.append(f"{exit_[name]} -> {entry[step.next]};")
            if step.on_failure in entry:
                self.edges.append(f"{exit_[name]} -> {entry[step.on_failure]} "
                                  f"{_attrs(style='dashed', label='on failure', color='#b03a2e')};")

    def branches(self, internal: str, step: Step) -> list[tuple[str, str, Pipeline]]:
        """(label, internal prefix, pipeline) per branch; a map's values come from the states."""
        if isinstance(step, Map):
            if step.branch is None:
                return []
            values = self.map_values(internal, step.branch) or [map_placeholder(step.iterate_as)]
            return [(v, join_name(internal, v), step.branch) for v in values]
        return [(name, step.branch_prefix(internal, name), b) for name, b in step.branches().items()]

    def map_values(self, internal: str, branch: Pipeline) -> list[str]:
        """Iterated values seen in the states: ``<map>.<value>`` or ``<map>.<value>.<branch step>...``.

        A value may itself hold dots (``1.5``), so it ends where a step of the branch begins.
        """
        head = internal + "."
        names = tuple(branch.steps)
        values: dict[str, None] = {}
        for key in self.states:
            if not key.startswith(head):
                continue
            rest = key[len(head):]
            value = rest
            start = rest.find(".")
            while start != -1:
                tail = rest[start + 1:]
                if any(tail == n or tail.startswith(n + ".") for n in names):
                    value = rest[:start]
                    break
                start = rest.find(".", start + 1)
            if value:
                values.setdefault(value, None)
        return list(values)

    # ---- ids and attributes ------------------------------------------------------------------

    def new_node(self, internal: str) -> str:
        node = f"n{self.nodes}"
        self.nodes += 1
        self.ids[internal] = node
        return node

    def new_cluster(self, internal: str) -> str:
        cluster = f"cluster_{self.clusters}"
        self.clusters += 1
        self.ids[internal] = cluster
        return cluster

    def node_attrs(self, internal: str, step: Step) -> str:
        status = self.states.get(internal)
        if isinstance(step, Fail) and status in NODE_FILL:
            fill = NODE_FILL["FAIL"]  # magnus logs a reached fail step as SUCCESS; it still means failure
        else:
            fill = NODE_FILL.get(status or "", "white")
        kind = step.type
        shape, style, extra = "box", "rounded,filled", {}
        if isinstance(step, Success):
            shape, style, extra = "ellipse", "filled", {"peripheries": 2.0}
        elif isinstance(step, Fail):
            shape, style = "octagon", "filled"
        elif isinstance(step, Stub):
            style = "rounded,dashed,filled"
        elif isinstance(step, Task):
            kind = f"task ({step.kind})"
        elif isinstance(step, Dag | Map):  # a composite whose branch is not loaded
            shape = "box3d"
            style = "filled"
        return _attrs(id=self.ids[internal], label=step.name, shape=shape, style=style, fillcolor=fill,
                      tooltip=_tooltip(f"{internal}\n{kind}" + (f"\n{status}" if status else "")),
                      penwidth=2.0 if status == "PROCESSING" else None, **extra)

    @staticmethod
    def composite_label(step: Step) -> str:
        if isinstance(step, Map):
            return f"{step.name} (map: {step.iterate_as} in {step.iterate_on})"
        if isinstance(step, Dag) and step.dag_definition:
            return f"{step.name} (dag: {step.dag_definition})"
        return f"{step.name} ({step.type})"

    @staticmethod
    def cluster_attrs(cluster: str, label: str, status: str | None) -> str:
        fill = CLUSTER_FILL.get(status or "")
        return _attrs(id=cluster, label=label, style="rounded,filled" if fill else "rounded",
                      fillcolor=fill, color="#999999", fontsize=12.0, labeljust="l",
                      penwidth=2.0 if status == "PROCESSING" else None)


def shown(pipeline: Pipeline, step: Step, reached: bool) -> bool:
    """Whether ``step`` of ``pipeline`` is drawn: all are, but a fail step only where a step names it
    as ``next`` or ``on_failure``, or it was ``reached``. (A failing step goes to its graph's fail
    step even when nothing names it; drawn unconnected in every branch, it reads as a failed step.)"""
    if not isinstance(step, Fail) or reached:
        return True
    return any(other.next == step.name or other.on_failure == step.name
               for other in pipeline.steps.values() if other.TRAVERSAL)


def draw(pipeline: Pipeline, states: dict[str, str] | None = None, title: str | None = None) -> Drawing:
    """The DOT source and the id of every drawn step (see ``Drawing``)."""
    work = _Draw(states or {})
    body = work.lines(pipeline)
    heading = title if title is not None else pipeline.name
    head = [
        "digraph pipeline {",
        "  graph " + _attrs(rankdir="TB", fontname="Helvetica", nodesep=0.3, ranksep=0.35,
                            label=heading or None, labelloc="t" if heading else None,
                            fontsize=16.0 if heading else None) + ";",
        "  node " + _attrs(fontname="Helvetica", fontsize=11.0, color="#444444") + ";",
        "  edge " + _attrs(fontname="Helvetica", fontsize=9.0, color="#444444", arrowsize=0.7) + ";",
    ]
    edges = ["  " + edge for edge in work.edges]
    return Drawing("\n".join(head + body + edges + ["}"]) + "\n", work.ids)


def to_dot(pipeline: Pipeline, states: dict[str, str] | None = None, title: str | None = None) -> str:
    """Graphviz DOT source of the DAG, coloured by ``states`` (internal name -> status)."""
    return draw(pipeline, states, title).source


def _run_dot(source: str, fmt: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """``dot -T<fmt>`` over a pipe: no files beside the output, and a bounded wait."""
    exe = shutil.which("dot")
    if exe is None:
        raise PipelineError(f"cannot draw .{fmt}: Graphviz's 'dot' program is not installed "
                            "(install Graphviz, e.g. 'apt-get install graphviz', or write a .dot file)")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PipelineError(f"Graphviz 'dot' did not finish drawing .{fmt} within {timeout:g} s; "
                            "write a .dot file instead") from None
    except OSError as exc:
        raise PipelineError(f"cannot run Graphviz 'dot' ({exe}): {exc.strerror}") from None
    if done.returncode != 0 or not done.stdout:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[0] if lines else f"exit code {done.returncode}"
        raise PipelineError(f"Graphviz 'dot' failed to draw .{fmt}: {reason}")
    return done.stdout


def to_svg(pipeline: Pipeline, states: dict[str, str] | None = None, title: str | None = None,
           *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The DAG as SVG text, for the widget and notebooks; needs Graphviz's ``dot``."""
    return draw(pipeline, states, title).svg(timeout)


def write(pipeline: Pipeline, output: str | os.PathLike[str], *, states: dict[str, str] | None = None,
          title: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Draw to ``output``, the format chosen by its suffix; returns the path written.

    Only ``output`` is written, and only once drawing succeeded: a failed run
    leaves no half file.
    """
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        given = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise PipelineError(f"{output}: cannot draw to a file with {given}; "
                            f"use one of {', '.join(SUFFIXES)}")
    source = to_dot(pipeline, states, title)
    data = source.encode("utf-8") if suffix == ".dot" else _run_dot(source, suffix[1:], timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise PipelineError(f"{output}: cannot write: {exc.strerror or exc}") from None
    return str(path)
