"""Property: after any edit, a ``--reuse`` run equals a full run, and runs exactly what changed.

Hypothesis generates small pipelines of shell, python and (now and then)
notebook tasks, in sequence, in parallel branches and in a map, that compute
parameters and files from what they receive; then random edits: a task's code
(changing its result, or not: a comment), the shared module of the python
tasks, an initial parameter, an input file's content (or only its mtime), a file
a task made deleted from the run folder, one value of the list the map
iterates on, or nothing at all. After each edit a run
with ``reuse=True`` must end with the same parameters and catalog files as a
full run made after it, and must run exactly the tasks whose inputs changed
since a successful run of them: what each task receives is modelled here, apart
from the engine (which tasks ran is read from what they wrote in ``calls.log``).

Real worker processes and kernels, one pool shared by every example. The
examples are derandomized; about a minute on this machine (30 examples, ~220 runs).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from magnus_jupyter.executor.engine import RunResult, run_pipeline
from magnus_jupyter.executor.runlog import iter_steps
from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.yaml_io import load_yaml

pytestmark = pytest.mark.slow

INITIAL = ("a", "b")  # initial parameters (ints); "items": the list the map iterates on
DATA = ("data/in_0.txt", "data/in_1.txt")  # project files that tasks may declare in `inputs`
EDITS = ("version", "comment", "module", "param", "data", "touch", "clobber", "item", "nothing")


@dataclass(frozen=True)
class T:
    """A task: P = "name:version:" + the JSON of each parameter it reads, joined by "|"; S = P + "#" +
    the content of each file it gets from the catalog or reads as an input, joined by "|". It writes
    md5(S)[:8] to out_<name>.txt (put in the catalog; in a map out_<name>_<item>.txt, not put) and
    int(md5(P)[:6], 16) to the parameter o_<name> (not in a map): so a file can change while the
    parameter does not."""

    name: str
    kind: str  # shell | python | notebook
    reads: tuple[str, ...] = ()
    gets: tuple[str, ...] = ()  # upstream tasks whose out file it gets from the catalog
    inputs: tuple[str, ...] = ()  # files it reads from the run folder: data files, upstream out files
    version: int = 0
    comment: int = 0  # changes the code, not the result
    cache: bool = True


@dataclass(frozen=True)
class Par:
    branches: tuple[tuple[T, ...], ...]


@dataclass(frozen=True)
class MapOver:
    task: T  # reads "item" too; writes out_<name>_<item>.txt and no parameter


Node = T | Par | MapOver


@dataclass
class Case:
    nodes: list[Node]
    params: dict[str, Any]
    data: dict[str, str]
    revision: int = 0  # of the python tasks' shared module
    edits: list[tuple[Any, ...]] = field(default_factory=list)


# ---- generating --------------------------------------------------------------------------------


@st.composite
def cases(draw: Any) -> Case:
    counter = iter(range(100))
    params = [*INITIAL]  # what a task may read so far
    outputs: list[str] = []  # tasks whose out file a later task may get
    rng = random.Random(draw(st.integers(0, 2**32)))  # plain odds: hypothesis' own lean to the simplest
    notebooks = rng.random() < 0.25  # a quarter of the pipelines have one notebook task (they are slow)

    def task(readable: list[str], gettable: list[str], kinds: tuple[str, ...], extra: tuple[str, ...] = (),
             alone: bool = True) -> T:
        """``alone``: nothing runs beside it; else it gets nothing from the catalog, as a get copies onto
        the file in the run folder that a task beside it may be reading."""
        nonlocal notebooks
        kind = "notebook" if notebooks and not extra else draw(st.sampled_from(kinds))
        notebooks = notebooks and kind != "notebook"
        files = [*DATA, *(f"out_{g}.txt" for g in gettable)]
        return T(name=f"t{next(counter)}", kind=kind,
                 reads=extra + tuple(rng.sample(readable, rng.randint(0, min(2, len(readable))))),
                 gets=(rng.choice(gettable),) if gettable and alone and rng.random() < 0.6 else (),
                 inputs=(rng.choice(files),) if rng.random() < 0.6 else (),
                 cache=rng.random() > 0.12)

    nodes: list[Node] = []
    for _ in range(draw(st.integers(2, 4))):
        shape = draw(st.sampled_from(("task", "task", "parallel", "map")))
        if shape == "task":
            t = task(params, outputs, ("shell", "python"))
            nodes.append(t)
            params.append(f"o_{t.name}")
            outputs.append(t.name)
        elif shape == "parallel":
            branches = []
            for _ in range(2):
                branch: list[T] = []
                mine = list(params)
                for _ in range(draw(st.integers(1, 2))):
                    t = task(mine, list(outputs), ("shell", "python"), alone=False)
                    branch.append(t)
                    mine.append(f"o_{t.name}")
                branches.append(tuple(branch))
            nodes.append(Par(tuple(branches)))
            params.extend(f"o_{t.name}" for b in branches for t in b)
            outputs.extend(t.name for b in branches for t in b)
        elif not any(isinstance(n, MapOver) for n in nodes):
            nodes.append(MapOver(task(params, outputs, ("shell",), extra=("item",), alone=False)))
    items = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True))
    case = Case(nodes, {"a": draw(st.integers(0, 3)), "b": draw(st.integers(0, 3)), "items": items},
                {path: f"{path} v0" for path in DATA})
    tasks = list(walk(case.nodes))
    used = sorted({i for t in tasks for i in t.inputs if i in DATA}) or list(DATA)  # edits that matter
    outs = sorted({i for t in tasks for i in t.inputs if i not in DATA}) \
        or [f"out_{n.name}.txt" for n in case.nodes if isinstance(n, T)] or list(DATA)
    notebook = [t for t in tasks if t.kind == "notebook"]
    chosen = rng.sample(EDITS, rng.randint(3, 4))  # different kinds, each about as often
    for kind in chosen:
        if kind in ("version", "comment"):  # the notebook, if there is one: it is the one hard to get right
            case.edits.append((kind, notebook[0] if notebook and rng.random() < 0.5 else rng.choice(tasks)))
        elif kind == "param":
            case.edits.append((kind, draw(st.sampled_from(INITIAL)), draw(st.integers(0, 3))))
        elif kind == "data":
            case.edits.append((kind, draw(st.sampled_from(used)), draw(st.integers(1, 2))))
        elif kind == "touch":
            case.edits.append((kind, draw(st.sampled_from(used))))
        elif kind == "clobber":  # the user deletes a file a task made in the run folder
            case.edits.append((kind, draw(st.sampled_from(outs))))
        elif kind == "item":
            case.edits.append((kind, draw(st.integers(0, len(items) - 1)), draw(st.integers(10, 12))))
        else:
            case.edits.append((kind,))
    return case


def walk(nodes: list[Node]) -> Iterator[T]:
    for node in nodes:
        if isinstance(node, T):
            yield node
        elif isinstance(node, Par):
            for branch in node.branches:
                yield from branch
        else:
            yield node.task


def apply(case: Case, edit: tuple[Any, ...]) -> Case:
    """The case after one edit (a task edited by name wherever it is)."""
    kind = edit[0]
    if kind in ("version", "comment"):
        def bump(t: T) -> T:
            if t.name != edit[1].name:
                return t
            if kind == "version":
                return replace(t, version=t.version + 1)
            return replace(t, comment=t.comment + 1)

        nodes: list[Node] = []
        for node in case.nodes:
            if isinstance(node, T):
                nodes.append(bump(node))
            elif isinstance(node, Par):
                nodes.append(Par(tuple(tuple(bump(t) for t in b) for b in node.branches)))
            else:
                nodes.append(MapOver(bump(node.task)))
        return replace(case, nodes=nodes)
    if kind == "module":
        return replace(case, revision=case.revision + 1)
    if kind == "param":
        return replace(case, params={**case.params, edit[1]: edit[2]})
    if kind == "data":
        return replace(case, data={**case.data, edit[1]: f"{edit[1]} v{edit[2]}"})
    if kind == "item":
        items = list(case.params["items"])
        if edit[2] not in items:
            items[edit[1]] = edit[2]
        return replace(case, params={**case.params, "items": items})
    return case  # touch (written again in write(), same content) and nothing


# ---- writing the pipeline and its files --------------------------------------------------------


def shell_sources(t: T) -> tuple[str, str]:
    """P and what S adds to it, as the shell builds them: parameters as JSON text, file contents."""
    files = [*(f"out_{g}.txt" for g in t.gets), *t.inputs]
    return (f"{t.name}:{t.version}:" + "|".join(f"${{MAGNUS_PRM_{r}}}" for r in t.reads),
            "|".join(f"$(cat {f})" for f in files))


def shell_command(t: T, in_map: bool) -> str:
    out = f"out_{t.name}_${{MAGNUS_PRM_item}}.txt" if in_map else f"out_{t.name}.txt"
    label = f"{t.name}.$MAGNUS_PRM_item" if in_map else t.name
    params, files = shell_sources(t)
    parts = [f": c{t.comment}", f'P="{params}"', f'S="$P#{files}"', f"echo {label} >> calls.log",
             f"printf '%s' \"$S\" | md5sum | cut -c1-8 > {out}"]
    if not in_map:
        value = "$(printf '%d' 0x$(printf '%s' \"$P\" | md5sum | cut -c1-6))"
        parts.append(f"export MAGNUS_PRM_o_{t.name}={value}")
    return " && ".join(parts)


def python_body(t: T) -> list[str]:
    """The statements computing S and the outputs, in a python task or a notebook cell."""
    reads = ", ".join(t.reads)
    files = ", ".join(repr(f"out_{g}.txt") for g in t.gets) + ("," if len(t.gets) == 1 else "")
    data = ", ".join(repr(i) for i in t.inputs) + ("," if len(t.inputs) == 1 else "")
    return [f"# c{t.comment}",
            f"p = '{t.name}:{t.version}:' + '|'.join(json.dumps(v) for v in ({reads}"
            f"{',' if len(t.reads) == 1 else ''}))",
            f"parts = [pathlib.Path(f).read_text().rstrip(chr(10)) for f in ({files})]",
            f"parts += [pathlib.Path(f).read_text().rstrip(chr(10)) for f in ({data})]",
            "s = p + '#' + '|'.join(parts)",
            f"open('calls.log', 'a').write('{t.name}' + chr(10))",
            f"pathlib.Path('out_{t.name}.txt').write_text(hashlib.md5(s.encode()).hexdigest()[:8] + chr(10))",
            f"o_{t.name} = int(hashlib.md5(p.encode()).hexdigest()[:6], 16)"]


def step_yaml(t: T, following: str, in_map: bool = False) -> dict[str, Any]:
    step: dict[str, Any] = {"type": "task", "next": following}
    if t.kind == "shell":
        step.update(command_type="shell", command=shell_command(t, in_map))
    elif t.kind == "python":
        step.update(command_type="python", command=f"pytasks.{t.name}")
    else:
        step.update(command_type="notebook", command=f"nb_{t.name}.ipynb", returns=[f"o_{t.name}"])
    catalog: dict[str, list[str]] = {}
    if not in_map:  # a map's iterations would put each other's files, as they happen to exist: no put
        catalog["put"] = [f"out_{t.name}.txt"]
    if t.gets:
        catalog["get"] = [f"out_{g}.txt" for g in t.gets]
    step["catalog"] = catalog
    if t.inputs:
        step["inputs"] = list(t.inputs)
    if not t.cache:
        step["cache"] = False
    return step


def graph(steps: dict[str, Any], start: str) -> dict[str, Any]:
    return {"start_at": start, "steps": {**steps, "success": {"type": "success"}, "fail": {"type": "fail"}}}


def pipeline_yaml(case: Case) -> str:
    names = [n.name if isinstance(n, T) else f"n{i}" for i, n in enumerate(case.nodes)]
    steps: dict[str, Any] = {}
    for i, node in enumerate(case.nodes):
        following = names[i + 1] if i + 1 < len(names) else "success"
        if isinstance(node, T):
            steps[names[i]] = step_yaml(node, following)
        elif isinstance(node, Par):
            branches = {}
            for j, branch in enumerate(node.branches):
                inner = {t.name: step_yaml(t, branch[k + 1].name if k + 1 < len(branch) else "success")
                         for k, t in enumerate(branch)}
                branches[f"b{j}"] = graph(inner, branch[0].name)
            steps[names[i]] = {"type": "parallel", "next": following, "branches": branches}
        else:
            t = node.task
            steps[names[i]] = {"type": "map", "iterate_on": "items", "iterate_as": "item", "next": following,
                               "branch": graph({t.name: step_yaml(t, "success", in_map=True)}, t.name)}
    return json.dumps({"dag": graph(steps, names[0])})  # JSON is YAML


def write(case: Case, folder: Path) -> None:
    """The pipeline's files as the case has them: module, notebooks, data (written every time)."""
    (folder / "data").mkdir(exist_ok=True)
    for path, text in case.data.items():
        (folder / path).write_text(text)
    lines = ["import hashlib", "import json", "import pathlib", f"_REVISION = {case.revision}", ""]
    for t in walk(case.nodes):
        if t.kind == "python":
            lines.append(f"def {t.name}({', '.join(t.reads)}):")
            lines.extend(f"    {line}" for line in python_body(t))
            lines += [f"    return {{'o_{t.name}': o_{t.name}}}", ""]
        elif t.kind == "notebook":
            cells = [new_code_cell("\n".join(f"{r} = 0" for r in t.reads) or "pass",
                                   metadata={"tags": ["parameters"]}),
                     new_code_cell("import hashlib, json, pathlib"),
                     new_code_cell("\n".join(python_body(t)))]
            nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                    "display_name": "Python 3"}})
            nbformat.write(nb, folder / f"nb_{t.name}.ipynb")
    (folder / "pytasks.py").write_text("\n".join(lines))
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)  # an edit of equal size in the same second


# ---- the model: what each task receives, what it gives, whether it must run --------------------


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Model:
    """Walks the case as the engine does, from what each task receives; remembers, per task, the
    inputs of every successful run of it, to say which tasks a reuse run must run."""

    def __init__(self) -> None:
        self.history: dict[str, set[Any]] = {}

    def run(self, case: Case, reuse: bool) -> tuple[dict[str, Any], set[str]]:
        self.ran: set[str] = set()
        self.reuse = reuse
        self.case = case
        self.files: dict[str, str] = dict(case.data)
        params = dict(case.params)
        for node in case.nodes:
            if isinstance(node, T):
                params.update(self.task(node, node.name, params))
            elif isinstance(node, Par):
                updates: dict[str, Any] = {}
                for j, branch in enumerate(node.branches):
                    mine = dict(params)
                    for t in branch:
                        found = self.task(t, f"n{case.nodes.index(node)}.b{j}.{t.name}", mine)
                        mine.update(found)
                        updates.update(found)
                params.update(updates)
            else:
                seen = {k: v for k, v in params.items() if k != "items"}
                for item in case.params["items"]:
                    self.task(node.task, f"n{case.nodes.index(node)}.{item}.{node.task.name}",
                              {**seen, "item": item}, item)
        return params, self.ran

    def task(self, t: T, internal: str, visible: dict[str, Any], item: int | None = None) -> dict[str, Any]:
        params = f"{t.name}:{t.version}:" + "|".join(json.dumps(visible[r]) for r in t.reads)
        files = [self.files[f"out_{g}.txt"] for g in t.gets] + [self.files[i] for i in t.inputs]
        out = md5(params + "#" + "|".join(files))
        self.files[f"out_{t.name}.txt" if item is None else f"out_{t.name}_{item}.txt"] = out[:8]
        module = (self.case.revision, tuple((p.name, p.reads, p.version, p.comment)
                                            for p in walk(self.case.nodes) if p.kind == "python"))
        key = (t, module if t.kind == "python" else None, json.dumps(visible, sort_keys=True),
               tuple(files))
        seen = self.history.setdefault(internal, set())
        if not self.reuse or not t.cache or key not in seen:
            self.ran.add(internal)
        seen.add(key)
        return {} if item is not None else {f"o_{t.name}": int(md5(params)[:6], 16)}


# ---- running ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slots() -> Iterator[TaskSlots]:
    with TaskSlots(2, warm_kernels=True) as pool:
        yield pool


def run(folder: Path, case: Case, slots: TaskSlots, reuse: bool) -> tuple[RunResult, list[str]]:
    write(case, folder)
    (folder / "calls.log").write_text("")
    result = run_pipeline(load_yaml(pipeline_yaml(case)), parameters=dict(case.params), cwd=folder,
                          slots=slots, workers=2, reuse=reuse)
    assert result.ok, json.dumps(result.run_log, indent=1)[:4000]
    return result, (folder / "calls.log").read_text().split()


def catalog_files(result: RunResult) -> dict[str, str]:
    """The run's catalog: the data files tasks put (not executed notebooks and logs)."""
    return {p.name: p.read_text() for p in result.catalog_path.glob("out_*.txt")}


def ran(result: RunResult) -> set[str]:
    tasks = [s for s in iter_steps(result.run_log) if s["step_type"] == "task"]
    for step in tasks:
        assert step["status"] == "SUCCESS"
        assert bool(step.get("reused_from")) != bool(step.get("rerun_reason")), step
    return {s["internal_name"] for s in tasks if not s.get("reused_from")}


def label(internal: str) -> str:
    """What a task writes to calls.log: its name; in a map, its name and the value."""
    parts = internal.split(".")
    return f"{parts[2]}.{parts[1]}" if len(parts) == 3 and not parts[1].startswith("b") else parts[-1]


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_a_reuse_run_equals_a_full_run_and_runs_exactly_what_changed(case: Case, slots: TaskSlots) -> None:
    folder = Path(tempfile.mkdtemp(prefix="magnus-incremental-"))
    try:
        model = Model()
        expected, _ = model.run(case, reuse=False)
        first, _ = run(folder, case, slots, reuse=False)
        assert first.parameters == expected
        for edit in case.edits:
            case = apply(case, edit)
            if edit[0] == "clobber":
                (folder / edit[1]).unlink(missing_ok=True)
            expected, must_run = model.run(case, reuse=True)
            incremental, calls = run(folder, case, slots, reuse=True)
            model.run(case, reuse=False)
            if edit[0] == "clobber":  # the full run makes it again, as the reuse run must have put it back
                (folder / edit[1]).unlink(missing_ok=True)
            full, _ = run(folder, case, slots, reuse=False)
            note = f"after {edit[0]} {edit[1:]!r} of {pipeline_yaml(case)}"
            assert incremental.parameters == full.parameters == expected, note
            assert catalog_files(incremental) == catalog_files(full), note
            assert ran(incremental) == must_run, note
            assert sorted(calls) == sorted(label(n) for n in must_run), note  # by the tasks' own record
    finally:
        shutil.rmtree(folder, ignore_errors=True)
