"""The notebook's declared pipeline: what the magics' cells say, kept until the next re-run.

Cells are not pipelines: they run in any order and any number of times. So the
store keys each declaration by its step or block NAME (or by the cell's id when
the front end sends one), a re-run replaces its declaration in place, and
``build()`` turns the current declarations into one ``Pipeline`` each time.
Name references (``--next``, ``--branch``, branch lines) resolve at build time,
because the cell they name may be declared later (so a name no cell declares
yet is a warning, ``unknown_targets``). No IPython here but its input
transformer, to check a cell step's body as IPython will read it.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import PipelineError, Problem
from .model import (
    FAILURE_POLICIES,
    RESERVED_CHARACTERS,
    Fail,
    Map,
    Parallel,
    Pipeline,
    Source,
    Step,
    Stub,
    Success,
    Task,
    join_name,
    map_placeholder,
)
from .text import file_stem
from .validate import catalog_pattern_problem

CELLS_FOLDER = Path(".magnus") / "cells"  # generated notebooks of cell steps, relative to the cwd
SUCCESS, FAIL = "success", "fail"  # the terminal steps the store adds to the pipeline and each branch
BRANCH_LINE = "BRANCH: STEP >> STEP"
STEP_FORMS = "a notebook path (.ipynb), a `shell command` in backticks, or the name of a step declared " \
             "with --branch"


class DeclarationError(PipelineError):
    """A cell declares something the pipeline cannot hold; each problem names the cell and line."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))  # one line: the magics show it as a UsageError

    def __reduce__(self):
        return (self.__class__, (self.problems,))


@dataclass
class StepDeclaration:
    """One ``%%magnus_step`` cell: a task (cell, notebook or shell) or a stub."""

    name: str
    kind: str  # "cell" | "notebook" | "shell" | "stub"
    command: str = ""
    next: str | None = None
    on_failure: str | None = None
    returns: list[str] | None = None
    branch: str | None = None  # "PARALLEL/BRANCH" or "MAP" as the user wrote it; None: top level
    magic: str = "%%magnus_step"  # "%magnus_step" when declared by the line magic (no body)
    inputs: list[str] | None = None  # globs of project files the task reads (its fingerprint)
    cache: bool | None = None  # False: never reused (--no-cache)

    @property
    def label(self) -> str:
        return f"{self.magic} {self.name!r}"

    def to_step(self, next: str) -> Step:
        source = Source(self.label)
        if self.kind == "stub":
            return Stub(name=self.name, next=self.next or next, on_failure=self.on_failure, source=source)
        command_type = "shell" if self.kind == "shell" else "notebook"
        return Task(name=self.name, command=self.command, command_type=command_type,
                    returns=list(self.returns) if self.returns else None,
                    inputs=list(self.inputs) if self.inputs else None, cache=self.cache,
                    next=self.next or next, on_failure=self.on_failure, source=source)


@dataclass
class BranchItem:
    """One STEP of a branch line."""

    kind: str  # "notebook" | "shell" | "name"
    text: str


@dataclass
class BranchLine:
    branch: str
    items: list[BranchItem]
    line: int  # in the cell: the magic is line 1


@dataclass
class BlockDeclaration:
    """One ``%%magnus_parallel`` or ``%%magnus_map`` cell."""

    name: str
    kind: str  # "parallel" | "map"
    next: str | None = None
    on_failure: str | None = None
    failure_policy: str | None = None
    iterate_on: str = ""
    iterate_as: str = ""
    lines: list[BranchLine] = field(default_factory=list)
    yaml_branches: dict[str, Pipeline] | None = None  # the body was a YAML mapping of branches
    cell_magic: bool = True  # False: declared by the line magic (%magnus_parallel NAME)

    @property
    def label(self) -> str:
        return f"{'%%' if self.cell_magic else '%'}magnus_{self.kind} {self.name!r}"

    def branch_prefix(self, branch: str) -> str:
        return join_name(self.name, map_placeholder(self.iterate_as) if self.kind == "map" else branch)


@dataclass
class Loaded:
    """A top-level step that came from ``%magnus_load``: kept exactly as the YAML had it."""

    name: str
    step: Step


Entry = StepDeclaration | BlockDeclaration | Loaded


class Declarations:
    """The declarations of one notebook session, in order of first declaration."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else None  # None: the cwd at declaration time
        self.reset()

    def reset(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._cells: dict[str, str] = {}  # front-end cell id -> the name it declared last
        self._fields: dict[str, Any] = {}  # description, name, max_time of a loaded pipeline
        self._start_at: str | None = None  # a loaded pipeline's start_at

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    @property
    def empty(self) -> bool:
        """Nothing declared yet but (perhaps) success and fail steps."""
        return not any(not _is_terminal(e) for e in self._entries.values())

    # ---- declaring ---------------------------------------------------------------------------

    def step(self, name: str, body: str = "", *, next: str | None = None, on_failure: str | None = None,
             notebook: str | None = None, shell: bool = False, stub: bool = False,
             returns: str | list[str] | None = None, branch: str | None = None,
             cell: str | None = None, cell_magic: bool = True, inputs: str | list[str] | None = None,
             cache: bool | None = None) -> StepDeclaration:
        """Declare (or re-declare) a step; without a kind the body becomes a notebook of its own.

        ``cell_magic=False``: declared by the line magic, which the messages then name."""
        magic = "%%magnus_step" if cell_magic else "%magnus_step"
        name = self._check_name(name, magic)
        label = f"{magic} {name!r}"
        kinds = [k for k, given in (("notebook", notebook is not None), ("shell", shell), ("stub", stub))
                 if given]
        if len(kinds) > 1:
            raise DeclarationError(f"{label}: give one of --notebook, --shell, --stub, "
                                   f"not {' and '.join('--' + k for k in kinds)}")
        kind = kinds[0] if kinds else "cell"
        names = _returns(returns, label)
        if names and kind in ("shell", "stub"):
            raise DeclarationError(f"{label}: --returns applies to cell and notebook steps; a shell step "
                                   "returns parameters by exporting MAGNUS_PRM_<name>")
        patterns = _inputs(inputs, label)
        if kind == "stub" and (patterns or cache is not None):
            raise DeclarationError(f"{label}: --inputs and --no-cache apply to tasks, not to a --stub")
        for option, value in (("--next", next), ("--on-failure", on_failure)):
            if value is not None and not value.strip():
                raise DeclarationError(f"{label}: {option} needs a step name")
        if branch is not None and not branch.strip("/ "):
            raise DeclarationError(f"{label}: --branch needs PARALLEL/BRANCH (or MAP)")
        command = ""
        if kind == "cell":
            if not cell_magic:
                raise DeclarationError(f"{label}: a step with no --notebook, --shell or --stub runs code: "
                                       "write it as a %%magnus_step cell with the code under the magic, or "
                                       "mark it --stub")
            if not body.strip():
                raise DeclarationError(f"{label}: the cell body is empty; write the step's code under "
                                       "the magic, or mark it --stub")
            _check_syntax(body, label)
            command = self._write_cell_notebook(name, body)
        elif kind == "shell":
            command = body.strip()
            if not command:
                raise DeclarationError(f"{label}: --shell takes its command from the cell body, which "
                                       "is empty")
        else:
            if kind == "notebook":
                command = str(notebook).strip()
                if not command.endswith(".ipynb"):
                    raise DeclarationError(f"{label}: --notebook needs a .ipynb path, found {command!r}")
            stray = _first_code_line(body)
            if stray is not None:
                raise DeclarationError(f"{label}, line {stray}: a --{kind} step ignores the cell body; "
                                       "leave it empty (comments are fine)")
        declaration = StepDeclaration(name=name, kind=kind, command=command, next=_opt(next),
                                      on_failure=_opt(on_failure), returns=names,
                                      branch=branch.strip() if branch else None, magic=magic,
                                      inputs=patterns, cache=cache)
        self._put(declaration, cell)
        return declaration

    def parallel(self, name: str, body: str = "", *, next: str | None = None, on_failure: str | None = None,
                 failure_policy: str | None = None, cell: str | None = None,
                 cell_magic: bool = True) -> BlockDeclaration:
        """Declare a parallel block from branch lines or a YAML mapping of branch pipelines."""
        magic = "%%magnus_parallel" if cell_magic else "%magnus_parallel"
        name = self._check_name(name, magic)
        block = BlockDeclaration(name=name, kind="parallel", next=_opt(next), on_failure=_opt(on_failure),
                                 failure_policy=_policy(failure_policy, f"{magic} {name!r}"),
                                 cell_magic=cell_magic)
        self._parse_body(block, body)
        self._put(block, cell)
        return block

    def map(self, name: str, body: str = "", *, iterate_on: str | None = None, iterate_as: str | None = None,
            next: str | None = None, on_failure: str | None = None, failure_policy: str | None = None,
            cell: str | None = None, cell_magic: bool = True) -> BlockDeclaration:
        """Declare a map block: one branch, run once per value of the parameter ``iterate_on``."""
        magic = "%%magnus_map" if cell_magic else "%magnus_map"
        name = self._check_name(name, magic)
        label = f"{magic} {name!r}"
        for option, value in (("--iterate-on", iterate_on), ("--iterate-as", iterate_as)):
            if not value or not value.strip():
                what = "the parameter holding the list to iterate on" if option == "--iterate-on" else \
                    "the parameter name each value gets in the branch"
                raise DeclarationError(f"{label}: {option} is required ({what})")
            if not value.strip().isidentifier():
                raise DeclarationError(f"{label}: {option} must be a parameter name, found {value!r}")
        block = BlockDeclaration(name=name, kind="map", next=_opt(next), on_failure=_opt(on_failure),
                                 failure_policy=_policy(failure_policy, label),
                                 iterate_on=str(iterate_on).strip(), iterate_as=str(iterate_as).strip(),
                                 cell_magic=cell_magic)
        self._parse_body(block, body)
        self._put(block, cell)
        return block

    def load(self, pipeline: Pipeline) -> None:
        """Make a loaded pipeline the declarations; later cells add or replace its top-level steps."""
        self.reset()
        pipeline = copy.deepcopy(pipeline)
        self._fields = {k: getattr(pipeline, k) for k in ("description", "name", "max_time")}
        self._start_at = pipeline.start_at
        for name, step in pipeline.steps.items():
            self._entries[name] = Loaded(name, step)

    def unknown_targets(self, name: str) -> list[str]:
        """Warnings for the declaration ``name`` when its --next or --on-failure names no step of its
        graph: not an error, since the cell declaring that step may simply not have run yet."""
        entry = self._entries.get(name)
        if not isinstance(entry, StepDeclaration | BlockDeclaration):
            return []
        options = (("--next", entry.next), ("--on-failure", entry.on_failure))
        wanted = [(option, target) for option, target in options if target]
        if not wanted:
            return []
        try:
            pipeline = self.build(check=False)
        except PipelineError:  # other declarations are not complete yet: check what can be
            if isinstance(entry, StepDeclaration) and entry.branch:
                return []
            top = [n for n, e in self._entries.items() if not (isinstance(e, StepDeclaration) and e.branch)]
            known = [*top, *self._terminal_names()]
        else:
            holders = [holder for _, step, holder in pipeline.walk()
                       if step.name == name and step.source is not None and step.source.file == entry.label]
            if not holders:
                return []
            known = list(holders[0].steps)
        shown = ", ".join(known[:8]) + (" …" if len(known) > 8 else "")
        return [f"{entry.label}: {option} {target!r} is not a declared step (yet): the run cannot go "
                f"there unless a cell declares it (steps it can go to: {shown})"
                for option, target in wanted if target not in known]

    def _put(self, entry: Entry, cell: str | None) -> None:
        """Replace the declaration of the same name, or of the same cell under its old name, in place."""
        previous = self._cells.get(cell) if cell else None
        if previous is not None and previous != entry.name and previous in self._entries:
            self._entries = {
                (entry.name if key == previous else key): (entry if key == previous else value)
                for key, value in self._entries.items() if key != entry.name
            }
        else:
            self._entries[entry.name] = entry
        if cell:
            self._cells[cell] = entry.name

    def _check_name(self, name: str, magic: str) -> str:
        name = " ".join(name.split()) if name else ""
        if not name:
            raise DeclarationError(f"{magic}: a NAME is required, e.g. {magic} \"Get Features\"")
        bad = [c for c in RESERVED_CHARACTERS if c in name]
        if bad:
            raise DeclarationError(f"{magic} {name!r}: a name may not contain "
                                   f"{' or '.join(repr(c) for c in bad)} (magnus joins internal names with "
                                   "'.')")
        success, fail = self._terminal_names()
        if name in (success, fail, SUCCESS, FAIL):
            kind = "success" if name in (success, SUCCESS) else "fail"
            raise DeclarationError(f"{magic} {name!r}: the pipeline and every branch end in their own "
                                   f"{kind} step named {name!r}; choose another name")
        return name

    def _terminal_names(self) -> tuple[str, str]:
        names = [SUCCESS, FAIL]
        for entry in self._entries.values():
            if isinstance(entry, Loaded) and isinstance(entry.step, Success | Fail):
                names[0 if isinstance(entry.step, Success) else 1] = entry.name
        return names[0], names[1]

    # ---- cell steps become notebooks -----------------------------------------------------------

    def _write_cell_notebook(self, name: str, body: str) -> str:
        """Write the cell body as a notebook with a ``parameters`` cell; only when it changed."""
        import nbformat  # only a cell step needs it; keeps %load_ext fast

        relative = self._notebook_path(name)
        target = (self.root or Path.cwd()) / relative
        notebook = nbformat.v4.new_notebook(metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            # the cell's line of the body's first line (the magic is line 1): an error's line in the
            # body cell becomes a line of the cell the person wrote (executor/notebooks.py)
            "magnus": {"step": name, "line": 2 + len(body) - len(body.lstrip("\n"))},
        })
        notebook.cells = [
            nbformat.v4.new_code_cell("", id="parameters", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body.strip("\n"), id="body"),
        ]
        text = nbformat.writes(notebook)
        try:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".partial")
                partial.write_text(text, encoding="utf-8")
                partial.replace(target)  # a run reading it never sees half a notebook
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DeclarationError(f"%%magnus_step {name!r}: cannot write {relative.as_posix()}: "
                                   f"{reason}") from None
        return relative.as_posix()

    def _notebook_path(self, name: str) -> Path:
        safe = re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_").lower() or "step"
        safe = file_stem(name, safe, limit=100)  # a long name: cut, with a hash of the whole
        path = CELLS_FOLDER / f"{safe}.ipynb"
        taken = {e.command for e in self._entries.values()
                 if isinstance(e, StepDeclaration) and e.kind == "cell" and e.name != name}
        if path.as_posix() in taken:  # "Get Features" and "get-features" must not share a notebook
            digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:6]
            path = CELLS_FOLDER / f"{safe}_{digest}.ipynb"
        return path

    # ---- block bodies --------------------------------------------------------------------------

    def _parse_body(self, block: BlockDeclaration, body: str) -> None:
        yaml_data = _yaml_branches(body)
        if yaml_data is not None:
            block.yaml_branches = _build_yaml_branches(block, yaml_data)
            return
        seen: dict[str, int] = {}
        for number, raw in enumerate(body.splitlines(), start=2):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            line = _parse_branch_line(text, block, number)
            if line.branch in seen:
                raise DeclarationError(f"{block.label}, line {number}: branch {line.branch!r} is already "
                                       f"listed on line {seen[line.branch]}")
            seen[line.branch] = number
            block.lines.append(line)
        if block.kind == "map" and len(block.lines) > 1:
            raise DeclarationError(f"{block.label}, line {block.lines[1].line}: a map has one branch; "
                                   f"found {len(block.lines)} branch lines")

    # ---- building ------------------------------------------------------------------------------

    def build(self, *, check: bool = True) -> Pipeline:
        """The declared pipeline; with ``check`` it has passed ``validate``."""
        if self.empty:
            raise DeclarationError("nothing is declared yet: declare steps with %%magnus_step, "
                                   "%%magnus_parallel, %%magnus_map, or load a pipeline with %magnus_load")
        problems: list[str] = []
        members = self._branch_members(problems)
        success, fail = self._terminal_names()
        top = [e for e in self._entries.values() if not (isinstance(e, StepDeclaration) and e.branch)]
        chain = [e.name for e in top if not _is_terminal(e)]
        if not chain:
            raise DeclarationError("only --branch steps are declared; the pipeline needs a top-level step "
                                   "or block to start at")
        pipeline = Pipeline(**{k: v for k, v in self._fields.items() if v is not None})
        following = dict(zip(chain, chain[1:] + [success], strict=True))  # the default chain
        for entry in top:
            default_next = following.get(entry.name, success)
            if isinstance(entry, Loaded):
                pipeline.add(copy.deepcopy(entry.step))
            elif isinstance(entry, StepDeclaration):
                pipeline.add(entry.to_step(default_next))
            else:
                pipeline.add(self._block(entry, default_next, members, problems))
        _add_terminals(pipeline, success, fail)
        start = self._start_at if self._start_at in pipeline.steps else None
        pipeline.start_at = start or chain[0]
        if problems:
            raise DeclarationError(problems)
        if check:
            from .validate import validate

            validate(pipeline)
        return pipeline

    def _branch_members(self, problems: list[str]) -> dict[tuple[str, str | None], list[StepDeclaration]]:
        """Steps declared with --branch, grouped by (block, branch) in declaration order."""
        out: dict[tuple[str, str | None], list[StepDeclaration]] = {}
        for entry in self._entries.values():
            if isinstance(entry, StepDeclaration) and entry.branch:
                key = self._resolve_branch(entry, problems)
                if key is not None:
                    out.setdefault(key, []).append(entry)
        return out

    def _resolve_branch(self, step: StepDeclaration, problems: list[str]) -> tuple[str, str | None] | None:
        target = str(step.branch)
        where = f"{step.label} --branch {target!r}"
        blocks = {n: e for n, e in self._entries.items() if not isinstance(e, StepDeclaration)}
        splits = [(target, None)] + [(target[:i].strip(), target[i + 1:].strip())
                                     for i in range(len(target) - 1, 0, -1) if target[i] == "/"]
        for block_name, branch in splits:
            entry = blocks.get(block_name)
            if entry is None:
                continue
            if isinstance(entry, Loaded):
                problems.append(f"{where}: {block_name!r} came from %magnus_load; declare it again with "
                                f"%%magnus_{entry.step.type} to add steps to its branches")
            elif entry.kind == "map" and branch is not None:
                problems.append(f"{where}: a map has one branch; write --branch {block_name!r}")
            elif entry.kind == "parallel" and not branch:
                problems.append(f"{where}: name the branch too, as --branch '{block_name}/BRANCH'")
            elif entry.yaml_branches is not None and (entry.kind == "map" or branch in entry.yaml_branches):
                problems.append(f"{where}: {entry.label} gives this branch as YAML; add the step there")
            else:
                return block_name, branch
            return None
        declared = [n for n, e in blocks.items() if isinstance(e, BlockDeclaration)]
        known = f" (declared: {', '.join(declared)})" if declared else ""
        problems.append(f"{where}: no parallel or map block of that name is declared{known}")
        return None

    def _block(self, block: BlockDeclaration, default_next: str,
               members: dict[tuple[str, str | None], list[StepDeclaration]], problems: list[str]) -> Step:
        branches: dict[str, Pipeline] = copy.deepcopy(block.yaml_branches) or {}
        mine = {k[1]: v for k, v in members.items() if k[0] == block.name}
        for line in block.lines:
            key = None if block.kind == "map" else line.branch
            branches[line.branch] = self._branch(block, line, mine.pop(key, []), problems)
        for branch, steps in mine.items():  # branches made of --branch steps only
            name = branch if branch is not None else "branch"
            branches[name] = self._branch(block, BranchLine(name, [], 0), steps, problems)
        if not branches:
            problems.append(f"{block.label}: no branches; list them in the cell body as '{BRANCH_LINE}'"
                            + (" (or declare steps with --branch)" if block.kind == "parallel" else ""))
        source = Source(block.label)
        common = {"name": block.name, "next": block.next or default_next, "on_failure": block.on_failure,
                  "failure_policy": block.failure_policy, "source": source}
        if block.kind == "map":
            return Map(iterate_on=block.iterate_on, iterate_as=block.iterate_as,
                       branch=next(iter(branches.values()), None), **common)
        return Parallel(parallel_branches=branches, **common)

    def _branch(self, block: BlockDeclaration, line: BranchLine, members: list[StepDeclaration],
                problems: list[str]) -> Pipeline:
        """One branch: the line's steps, then --branch steps it did not name, then success and fail."""
        where = f"{block.label}, line {line.line}"
        by_name = {m.name: m for m in members}
        taken = {SUCCESS, FAIL} | set(by_name)
        ordered: list[Step | StepDeclaration] = []
        used: set[str] = set()
        shells = 0
        for item in line.items:
            if item.kind == "name":
                member = by_name.get(item.text)
                if member is None:
                    problems.append(self._unknown_member(block, line, item.text))
                elif member.name in used:
                    problems.append(f"{where}: step {member.name!r} is listed twice")
                else:
                    used.add(member.name)
                    ordered.append(member)
                continue
            if item.kind == "notebook":
                base = _clean_name(Path(item.text).stem) or "notebook"
            else:
                shells += 1
                base = _clean_name(item.text)[:40].strip() or f"shell {shells}"
            name = _unique(base, taken)
            taken.add(name)
            ordered.append(Task(name=name, command=item.text, command_type=item.kind,
                                source=Source(block.label, line.line)))
        ordered.extend(m for m in members if m.name not in used)
        branch = Pipeline(source=Source(block.label, line.line or None))
        names = [s.name for s in ordered]
        for index, item in enumerate(ordered):
            default_next = names[index + 1] if index + 1 < len(names) else SUCCESS
            if isinstance(item, StepDeclaration):
                branch.add(item.to_step(default_next))
            else:
                item.next = default_next
                branch.add(item)
        _add_terminals(branch, SUCCESS, FAIL)
        branch.start_at = names[0] if names else None
        return branch

    def _unknown_member(self, block: BlockDeclaration, line: BranchLine, name: str) -> str:
        elsewhere = next((e for e in self._entries.values()
                          if isinstance(e, StepDeclaration) and e.name == name), None)
        target = block.name if block.kind == "map" else f"{block.name}/{line.branch}"
        head = f"{block.label}, line {line.line}: {name!r}"
        if elsewhere is None:
            return f"{head} is not a declared step; a STEP is {STEP_FORMS} {target!r}"
        if elsewhere.branch is None:
            return f"{head} is a top-level step; declare it with --branch {target!r} to use it here"
        return f"{head} is declared with --branch {elsewhere.branch!r}, not {target!r}"


# ---- helpers -----------------------------------------------------------------------------------


def _opt(value: str | None) -> str | None:
    return " ".join(value.split()) if value and value.strip() else None


def _returns(value: str | list[str] | None, label: str) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    for name in names:
        if not name.isidentifier():
            raise DeclarationError(f"{label}: --returns takes variable names separated by commas, "
                                   f"found {name!r}")
    return names or None


def _inputs(value: str | list[str] | None, label: str) -> list[str] | None:
    """``--inputs data/*.csv,config.yaml``: globs of project files the step reads."""
    if value is None:
        return None
    patterns = [p.strip() for p in (value.split(",") if isinstance(value, str) else value) if p.strip()]
    for pattern in patterns:
        why = catalog_pattern_problem(pattern, "inputs")
        if why:
            raise DeclarationError(f"{label}: --inputs pattern {pattern!r} {why}")
    return patterns or None


def _policy(value: str | None, label: str) -> str | None:
    if value is not None and value not in FAILURE_POLICIES:
        raise DeclarationError(f"{label}: --failure-policy must be one of {', '.join(FAILURE_POLICIES)}, "
                               f"found {value!r}")
    return value


def _check_syntax(body: str, label: str) -> None:
    """A cell step's body must compile as IPython runs it (magics, ``!cmd`` and top-level ``await``
    allowed): a mistake is named now, with its line in the cell, not when the run reaches it."""
    import ast

    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(body)
    except Exception:  # an IPython that cannot read it: compile the body as it is
        source = body
    try:
        compile(source, label, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        # the body's lines are the cell's from line 2 (the magic is line 1), in the message too
        line = f", line {exc.lineno + 1}" if exc.lineno else ""
        message = re.sub(r"\bline (\d+)", lambda m: f"line {int(m.group(1)) + 1}", exc.msg)
        raise DeclarationError(f"{label}{line}: {type(exc).__name__}: {message}") from None


def _first_code_line(body: str) -> int | None:
    for number, raw in enumerate(body.splitlines(), start=2):
        if raw.strip() and not raw.strip().startswith("#"):
            return number
    return None


def _is_terminal(entry: Entry) -> bool:
    return isinstance(entry, Loaded) and isinstance(entry.step, Success | Fail)


def _add_terminals(pipeline: Pipeline, success: str, fail: str) -> None:
    if pipeline.terminal(Success) is None and success not in pipeline.steps:
        pipeline.add(Success(name=success))
    if pipeline.terminal(Fail) is None and fail not in pipeline.steps:
        pipeline.add(Fail(name=fail))


def _clean_name(text: str) -> str:
    """A step name from a file stem or a command: no '.' or '%', one space between words."""
    for char in RESERVED_CHARACTERS:
        text = text.replace(char, "_")
    return " ".join(text.split())


def _unique(base: str, taken: set[str]) -> str:
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base} {number}"
    return name


def _split_outside_backticks(text: str, separator: str) -> list[str]:
    parts, current, in_tick, i = [], [], False, 0
    while i < len(text):
        if text[i] == "`":
            in_tick = not in_tick
        if not in_tick and text.startswith(separator, i):
            parts.append("".join(current))
            current, i = [], i + len(separator)
            continue
        current.append(text[i])
        i += 1
    parts.append("".join(current))
    return parts


def _parse_branch_line(text: str, block: BlockDeclaration, number: int) -> BranchLine:
    where = f"{block.label}, line {number}"
    if text.count("`") % 2:
        raise DeclarationError(f"{where}: a backtick is not closed: {text!r}")
    head = _split_outside_backticks(text, ":")
    if len(head) == 1 and block.kind == "map":
        branch, rest = "branch", text  # a map's one branch needs no name
    elif len(head) == 1 or not head[0].strip() or "`" in head[0] or ">>" in head[0]:
        raise DeclarationError(f"{where}: expected '{BRANCH_LINE}', found {text!r}")
    else:
        branch, rest = " ".join(head[0].split()), ":".join(head[1:])
    bad = [c for c in RESERVED_CHARACTERS if c in branch]
    if bad and block.kind == "parallel":
        raise DeclarationError(f"{where}: branch name {branch!r} may not contain "
                               f"{' or '.join(repr(c) for c in bad)}")
    items = []
    for part in _split_outside_backticks(rest, ">>"):
        part = part.strip()
        if not part:
            raise DeclarationError(f"{where}: expected '{BRANCH_LINE}', found an empty STEP in {text!r}")
        if part.startswith("`") and part.endswith("`") and part.count("`") == 2:
            if not part[1:-1].strip():
                raise DeclarationError(f"{where}: an empty `shell command` in {text!r}")
            items.append(BranchItem("shell", part[1:-1].strip()))
        elif "`" in part:
            raise DeclarationError(f"{where}: a shell STEP is a whole `command` in backticks, found {part!r}")
        elif part.endswith(".ipynb"):
            items.append(BranchItem("notebook", part))
        else:
            items.append(BranchItem("name", " ".join(part.split())))
    return BranchLine(branch, items, number)


def _yaml_branches(body: str) -> dict | None:
    """The body as YAML when it is a mapping of branch pipelines; None when it is branch lines."""
    from .yaml_io import parse_yaml

    if not body.strip():
        return None
    try:
        data = parse_yaml(body)
    except PipelineError:
        return None
    if isinstance(data, dict) and any(isinstance(v, dict) for v in data.values()):
        return data
    return None


def _build_yaml_branches(block: BlockDeclaration, data: dict) -> dict[str, Pipeline]:
    """Branch pipelines through yaml_io's builder, so each field error has its line."""
    from .yaml_io import _Builder, _line

    builder = _Builder(block.label, Path.cwd())
    if block.kind == "map":
        if "steps" in data or "start_at" in data:
            data = {"branch": data}  # the branch pipeline itself
        elif len(data) != 1:
            raise DeclarationError(f"{block.label}, line 2: a map has one branch; the YAML body names "
                                   f"{len(data)}: {', '.join(map(str, data))}")
    branches: dict[str, Pipeline] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not name.strip():
            raise DeclarationError(f"{block.label}, line {(_line(data, name) or 1) + 1}: a branch name "
                                   f"must be text, found {name!r}")
        line = _line(data, name)
        branches[name] = builder.pipeline(value, block.branch_prefix(name), line,
                                          f"branch '{block.branch_prefix(name)}'")
    if builder.problems:
        raise DeclarationError([_cell_problem(block.label, p) for p in builder.problems])
    for pipeline in branches.values():
        _shift_sources(pipeline)
    return branches


def _cell_problem(label: str, problem: Problem) -> str:
    line = f", line {problem.line + 1}" if problem.line else ""
    who = f"step '{problem.step}': " if problem.step else ""
    return f"{label}{line}: {who}{problem.message}"


def _shift_sources(pipeline: Pipeline) -> None:
    """Body lines -> cell lines (the magic is line 1), for validate's messages."""
    def shifted(source: Source | None) -> Source | None:
        return replace(source, line=source.line + 1) if source and source.line else source

    pipeline.source = shifted(pipeline.source)
    for _, step, _holder in pipeline.walk():
        step.source = shifted(step.source)
        for branch in step.branches().values():
            branch.source = shifted(branch.source)


# ---- the session -------------------------------------------------------------------------------

_SESSION = Declarations()


def session() -> Declarations:
    """The declarations of this Python process: one notebook, one kernel, one pipeline."""
    return _SESSION


def current_pipeline() -> Pipeline:
    """The pipeline the notebook's magics declared (or ``%magnus_load`` loaded), validated."""
    return _SESSION.build()
