"""magnus 0.5 YAML <-> the core model, keeping file and line for every step.

Reading builds the model and checks each field's shape (the loader has the
lines); the graph rules live in ``validate``. Writing is canonical: the same
model always gives the same bytes, and those bytes load back to the same model.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import PipelineYAMLError, Problem, ValidationError
from .model import (
    COMMAND_TYPES,
    DAG_BRANCH_NAME,
    FAILURE_POLICIES,
    STEP_TYPES,
    Dag,
    Map,
    Parallel,
    Pipeline,
    Source,
    Step,
    Stub,
    join_name,
    map_placeholder,
)
from .validate import gc_paused
from .validate import validate as check_rules

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Bounds on what one file may make us build; hostile YAML would otherwise cost minutes and gigabytes.
MAX_NESTING = 1_000  # lists and mappings inside one another (libyaml's own limit): ~250 levels of branches
MAX_NODES = 1_000_000  # values, keys, lists and mappings in one file once its aliases (*name) are expanded
MAX_STEPS = 100_000  # steps of one pipeline, its dag_definition files included
_TOO_DEEP = f"nested more than {MAX_NESTING:,} levels deep (lists and mappings inside one another)"
_SELF_CONTAINED = "an alias (*name) makes a list or mapping contain itself"
_TOO_BIG = f"its aliases (*name) expand it to more than {MAX_NODES:,} values, the most one file may hold"


class _Mapping(dict):
    """A YAML mapping that remembers its line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


@dataclass(frozen=True)
class YamlSource(Source):
    """A ``Source`` that also knows the line of each key, so errors point at ``next:`` itself."""

    key_lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class _LocatedError(Exception):
    """Raised while constructing; ``parse_yaml`` turns it into a located PipelineYAMLError."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message, line)
        self.message, self.line = message, line


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


class _FastResolver:
    """A lean resolver: the stock one costs a third of the time of loading 10,000 steps."""

    _implicit: dict[str, tuple[tuple[str, Any], ...]] = {}
    _wildcard: tuple[tuple[str, Any], ...] = ()

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        # Same answers as BaseResolver.resolve for a loader without path resolvers (ours has none).
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self._implicit.get(value[:1], self._wildcard):
                    if regexp.match(value):
                        return tag
            return _STR_TAG
        if kind is yaml.MappingNode:
            return self.DEFAULT_MAPPING_TAG
        return self.DEFAULT_SEQUENCE_TAG

    _depth = 0  # of the node being constructed: libyaml bounds flow nesting only, this bounds both
    _aliased = False  # whether an alias (or merge key) reused a node, so sizes must be counted

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """PyYAML's constructors raise bare ValueError & co. for e.g. ``!!int next``: give them a line."""
        if node in self.constructed_objects:  # type: ignore[attr-defined]
            self._aliased = True
            return self.constructed_objects[node]  # type: ignore[attr-defined]
        if self._depth >= MAX_NESTING:
            raise _LocatedError(_TOO_DEEP, node.start_mark.line + 1)
        self._depth += 1
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except (yaml.YAMLError, _LocatedError, RecursionError):
            raise
        except Exception:  # noqa: BLE001 - any constructor failure is the file's fault
            tag = "!!" + node.tag.rsplit(":", 1)[-1] if node.tag.startswith("tag:yaml.org") else node.tag
            shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else f"this {node.id}"
            raise _LocatedError(f"cannot read {shown} as {tag}", node.start_mark.line + 1) from None
        finally:
            self._depth -= 1


class _BoundedScanner:
    """PyYAML's own scanner slows down with the square of the flow nesting: stop where libyaml stops."""

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_NESTING:  # type: ignore[attr-defined]
            raise _LocatedError(_TOO_DEEP, self.get_mark().line + 1)  # type: ignore[attr-defined]
        super().fetch_flow_collection_start(token_class)  # type: ignore[misc]


class _CLoader(_FastResolver, _BaseLoader):  # type: ignore[misc, valid-type]
    """The C parser (libyaml), used when PyYAML has it."""


class _PyLoader(_FastResolver, _BoundedScanner, yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's own parser, used without libyaml."""


_Loader = _CLoader if _BaseLoader is not yaml.SafeLoader else _PyLoader


def _implicit_table(loader: type) -> dict[str, tuple[tuple[str, Any], ...]]:
    """First character -> the implicit resolvers to try, wildcard ones appended, as the stock resolve does."""
    table = loader.yaml_implicit_resolvers
    wildcard = tuple(table.get(None, ()))
    return {key: tuple(value) + wildcard for key, value in table.items() if key is not None}


_FastResolver._implicit = _implicit_table(yaml.SafeLoader)
_FastResolver._wildcard = tuple(yaml.SafeLoader.yaml_implicit_resolvers.get(None, ()))


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> _Mapping:
    pairs = node.value
    own = len(pairs)
    for key_node, _ in pairs:
        if key_node.tag in _MERGE_TAGS:
            # YAML merge keys (<<: *anchor): the merged pairs come first, so the mapping's own keys win
            own = sum(1 for k, _ in pairs if k.tag != _MERGE_TAGS[0])
            loader.flatten_mapping(node)
            pairs = node.value
            break
    merged = len(pairs) - own  # pairs before this index came in through a merge key
    out = _Mapping()
    out.line = node.start_mark.line + 1
    out.key_lines = key_lines = {}
    out.duplicates = []
    own_keys: set[Any] = set()
    construct = loader.construct_object
    scalar = yaml.ScalarNode
    for index, (key_node, value_node) in enumerate(pairs):
        # plain text is by far the commonest scalar: skip construct_object's bookkeeping for it
        if key_node.tag == _STR_TAG and key_node.__class__ is scalar:
            key = key_node.value
        else:
            key = construct(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                line = key_node.start_mark.line + 1
                raise _LocatedError("a mapping key must be plain text", line) from None
        line = key_node.start_mark.line + 1
        if index >= merged:  # a merged key overridden here is no duplicate
            if key in own_keys:
                out.duplicates.append((key, line))
            own_keys.add(key)
        if value_node.tag == _STR_TAG and value_node.__class__ is scalar:
            out[key] = value_node.value
        else:
            out[key] = construct(value_node, deep=True)
        key_lines[key] = line
    return out


_CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_PyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_size(data: Any) -> None:
    """Refuse data whose aliases expand it past ``MAX_NODES`` (or make it contain itself).

    Counts what every reader of the data would walk, without walking it: each
    distinct list or mapping once, its size remembered for every alias to it.
    Stops at the first (innermost) list or mapping past the limit.
    """
    sizes: dict[int, int] = {}
    on_path = {id(data)}  # met again below itself, a list or mapping contains itself
    # per list or mapping being counted: itself, its children to go, its size so far, the line of its child
    stack: list[list[Any]] = [[data, _children(data), 1, None]]
    while stack:
        frame = stack[-1]
        for child, line in frame[1]:
            frame[3] = line
            if not isinstance(child, dict | list | tuple | set):
                frame[2] += 1
            elif id(child) in sizes:
                frame[2] += sizes[id(child)]
            elif id(child) in on_path:
                raise _LocatedError(_SELF_CONTAINED, _line_near(stack))
            else:
                on_path.add(id(child))
                stack.append([child, _children(child), 1, None])
                break
            if frame[2] > MAX_NODES:
                raise _LocatedError(_TOO_BIG, _line_near(stack))
        else:
            stack.pop()
            on_path.discard(id(frame[0]))
            sizes[id(frame[0])] = frame[2]
            if stack:
                stack[-1][2] += frame[2]
                if stack[-1][2] > MAX_NODES:
                    raise _LocatedError(_TOO_BIG, _line_near(stack))


def _children(node: Any) -> Iterator[tuple[Any, int | None]]:
    """A list's or mapping's keys and values, each with its line where known (a mapping's key lines)."""
    if isinstance(node, dict):
        lines = getattr(node, "key_lines", {})
        for key, value in node.items():
            yield key, lines.get(key)
            yield value, lines.get(key)
    elif isinstance(node, list | tuple | set):
        for item in node:
            yield item, None


def _line_near(stack: list[list[Any]]) -> int:
    """Where the innermost list or mapping on ``stack`` is: its own line, else the line of its key."""
    for depth, frame in enumerate(reversed(stack)):
        line = getattr(frame[0], "line", 0) if depth == 0 else frame[3]
        if line:
            return int(line)
    return 1


@contextmanager
def _bulk_work(limit: int = 20000) -> Iterator[None]:
    """Deep nesting recurses past Python's default limit; and see ``gc_paused``."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        with gc_paused():
            yield
    finally:
        sys.setrecursionlimit(old)


def parse_yaml(text: str, file: str | None = None) -> Any:
    """YAML text -> plain data with line-tracking mappings; syntax errors located."""
    try:
        with _bulk_work():
            loader = _Loader(text)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
            if loader._aliased:
                _check_size(data)
            return data
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        line = mark.line + 1 if mark else None
        if "nesting depth" in problem or "recursive node" in problem:  # PyYAML's refusals, in our words
            ours = _TOO_DEEP if "nesting depth" in problem else _SELF_CONTAINED
            raise PipelineYAMLError(str(Problem(ours, file=file, line=line))) from None
        if exc.context:  # e.g. "while scanning a quoted scalar (from line 2), found unexpected end of stream"
            began = exc.context_mark
            start = f" (from line {began.line + 1})" if began and mark and began.line != mark.line else ""
            problem = f"{exc.context}{start}, {problem}"
        raise PipelineYAMLError(str(Problem(f"YAML syntax error: {problem}", file=file, line=line))) from None
    except yaml.YAMLError as exc:
        raise PipelineYAMLError(str(Problem(f"YAML error: {exc}", file=file))) from None
    except _LocatedError as exc:
        raise PipelineYAMLError(str(Problem(exc.message, file=file, line=exc.line))) from None
    except RecursionError:
        raise PipelineYAMLError(str(Problem("nested too deeply to read", file=file))) from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, or a one-line PipelineYAMLError saying why it cannot be read."""
    file = Path(path)
    if file.exists() and not file.is_file() and not file.is_dir():  # a pipe or /dev/zero: no end to read
        raise PipelineYAMLError(f"{path}: is not a regular file")
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineYAMLError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PipelineYAMLError(f"{path}: is a folder, not a pipeline file") from None
    except UnicodeDecodeError:
        raise PipelineYAMLError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise PipelineYAMLError(f"{path}: cannot read: {exc.strerror}") from None


def load_yaml(source: str | os.PathLike[str], *, validate: bool = True) -> Pipeline:
    """A magnus pipeline from YAML text or a file path; raises located errors.

    A string holding a newline is YAML text; so is one starting with ``dag:`` or
    ``{`` unless a file of that name exists; anything else is a path.
    """
    if isinstance(source, os.PathLike) or not _looks_like_yaml(source):
        file = str(source)
        text = read_text(source)
        path = Path(source).resolve()
        builder = _Builder(file, path.parent, (path,))
    else:
        file, text = None, source
        builder = _Builder(None, Path.cwd())
    data = parse_yaml(text, file)
    with _bulk_work():
        pipeline = builder.document(data)
        if builder.problems:
            raise ValidationError(builder.problems)
        if validate:
            check_rules(pipeline)
    return pipeline


def _looks_like_yaml(text: str) -> bool:
    if "\n" in text or not text.strip():
        return True
    if not text.lstrip().startswith(("dag:", "{")):
        return False
    try:
        return not Path(text).is_file()
    except (OSError, ValueError):  # too long or NUL bytes for a path: it is text
        return True


def _source(file: str | None, data: Any, line: int | None) -> YamlSource:
    return YamlSource(file, line, getattr(data, "key_lines", None) or {})


class _Shared:
    """What the builders of one pipeline share across its dag_definition files."""

    __slots__ = ("steps", "files")

    def __init__(self) -> None:
        self.steps = 0  # built so far, against MAX_STEPS: a file named by many steps counts each time
        self.files: dict[Path, Any] = {}  # dag_definition file -> its data, or the error reading it


class _Builder:
    """Turns parsed YAML into the model, collecting every shape problem it meets.

    ``seen`` holds the dag_definition files being read, outermost first, so a
    file that includes itself (directly or through others) is reported, not followed.
    """

    def __init__(self, file: str | None, base: Path, seen: tuple[Path, ...] = (),
                 shared: _Shared | None = None) -> None:
        self.file, self.base, self.seen = file, base, seen
        self.shared = shared or _Shared()
        self.problems: list[Problem] = []

    def problem(self, message: str, step: str | None = None, line: int | None = None) -> None:
        self.problems.append(Problem(message, step=step, file=self.file, line=line))

    def document(self, data: Any) -> Pipeline:
        if data is None:
            self.problem("the file is empty; a magnus pipeline is a mapping with a 'dag' key")
            return Pipeline()
        if not isinstance(data, dict):
            self.problem(f"expected a mapping with a 'dag' key, found {_kind(data)}", line=1)
            return Pipeline()
        for key in data:
            if key != "dag":
                self.problem(f"unknown top-level key {key!r}{_suggest(key, ('dag',))}; "
                             "a magnus pipeline file holds one key, 'dag'", line=_line(data, key))
        self._report_duplicates(data, "the file")
        if "dag" not in data:
            if len(data) != 1 or not _suggest(next(iter(data)), ("dag",)):  # else the typo says it all
                self.problem("no 'dag' key: the pipeline goes under 'dag:'", line=getattr(data, "line", 1))
            return Pipeline()
        return self.pipeline(data["dag"], "", _line(data, "dag"), "the pipeline")

    def pipeline(self, data: Any, prefix: str, line: int | None, what: str) -> Pipeline:
        if not isinstance(data, dict):
            self.problem(f"{what} must be a mapping with start_at and steps, found {_kind(data)}", line=line)
            return Pipeline(source=YamlSource(self.file, line))
        pipeline = Pipeline(source=_source(self.file, data, line))
        self._report_duplicates(data, what)
        for key, value in data.items():
            if key == "steps":
                continue
            key_line = _line(data, key)
            if key not in Pipeline.FIELDS:
                self.problem(f"unknown field {key!r} in {what}{_suggest(key, Pipeline.FIELDS + ('steps',))}",
                             line=key_line)
            elif key == "max_time":
                if _is_int(value) and value > 0:
                    pipeline.max_time = value
                else:
                    self.problem(f"max_time in {what} must be a positive whole number of seconds, "
                                 f"found {_show(value)}", line=key_line)
            elif not isinstance(value, str) or not value.strip():
                self.problem(f"{key} in {what} must be non-empty text, found {_show(value)}", line=key_line)
            else:
                setattr(pipeline, key, value)
        steps = data.get("steps")
        if steps is None:
            self.problem(f"{what} has no steps", line=_line(data, "steps") or line)
        elif not isinstance(steps, dict):
            self.problem(f"steps in {what} must be a mapping of step name to step, found {_show(steps)}",
                         line=_line(data, "steps"))
        else:
            self._report_duplicates(steps, what, prefix, "step name")
            for name, body in steps.items():
                step = self.step(name, body, prefix, _line(steps, name))
                if step is not None:
                    pipeline.steps[step.name] = step
        return pipeline

    def _report_duplicates(self, data: Any, where: str, step: str | None = None,
                           names: str | None = None) -> None:
        """Plain YAML lets a later key silently replace an earlier one; magnus users lose steps that way.

        ``names`` says what the keys are ("step name" or "branch name", else fields); step names
        are reported as the duplicate step's own full name, other keys as ``step`` (if any).
        """
        for key, line in getattr(data, "duplicates", ()):
            if names == "step name":
                self.problem(f"step name {key!r} is given twice in {where}; the names must differ",
                             step=join_name(step or "", str(key)), line=line)
            elif names:
                self.problem(f"{names} {key!r} is given twice in {where}", step=step, line=line)
            else:
                self.problem(f"{key!r} is given twice in {where}", step=step, line=line)

    def step(self, name: Any, body: Any, prefix: str, line: int | None) -> Step | None:
        if not isinstance(name, str):
            self.problem(f"a step name must be text, found {_show(name)}", line=line)
            return None
        path = join_name(prefix, name)
        self.shared.steps += 1
        if self.shared.steps > MAX_STEPS:  # aliases or dag_definition files repeating steps: stop now
            raise PipelineYAMLError(str(Problem(
                f"the pipeline has more than {MAX_STEPS:,} steps (aliases and dag_definition files "
                "counted each time they are used), the most one pipeline may have",
                step=path, file=self.file, line=line)))
        if not isinstance(body, dict):
            self.problem(f"a step must be a mapping with a 'type', found {_show(body)}", step=path, line=line)
            return None
        self._report_duplicates(body, "the step", path)
        kind = body.get("type")
        cls = STEP_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            if "type" not in body:
                self.problem(f"no 'type'; one of {', '.join(STEP_TYPES)}", step=path, line=line)
            else:
                self.problem(f"unknown step type {kind!r}{_suggest(kind, tuple(STEP_TYPES))}; "
                             f"one of {', '.join(STEP_TYPES)}", step=path, line=_line(body, "type"))
            return None
        step = cls(name=name, source=_source(self.file, body, line))
        branch_fields = _BRANCH_FIELDS.get(cls.type, ())
        allowed = set(cls.FIELDS) | {"type"} | set(branch_fields)
        for key, value in body.items():
            if key == "type" or key in branch_fields:
                continue
            key_line = _line(body, key)
            if key in allowed:
                self._field(step, key, value, path, key_line)
            elif not cls.TRAVERSAL:
                self.problem(f"a {cls.type} step takes no other fields, found {key!r}", step=path,
                             line=key_line)
            elif cls is Stub and isinstance(key, str):
                step.extras[key] = value  # magnus lets a stub carry anything
            else:
                self.problem(f"unknown field {key!r} for a {cls.type} step"
                             f"{_suggest(key, tuple(sorted(allowed)))}", step=path, line=key_line)
        if isinstance(step, Parallel):
            self._parallel_branches(step, body, path, line)
        elif isinstance(step, Map):
            self._map_branch(step, body, path, line)
        elif isinstance(step, Dag):
            self._dag_branch(step, body, path, line)
        if step.TRAVERSAL and "next" not in body:
            typo = next((k for k in body if isinstance(k, str) and _suggest(k, ("next",))), None)
            hint = f" ({typo!r} looks like a typo for it)" if typo else ""
            self.problem(f"missing 'next': a {cls.type} step must say which step follows it{hint}", step=path,
                         line=line)
        return step

    def _field(self, step: Step, key: str, value: Any, path: str, line: int | None) -> None:
        check = _FIELD_CHECKS.get(key, _text)
        error = check(value)
        if error:
            self.problem(f"{key} {error}, found {_show(value)}", step=path, line=line)
        else:
            setattr(step, key, value)

    def _parallel_branches(self, step: Parallel, body: dict, path: str, line: int | None) -> None:
        branches = body.get("branches")
        if branches is None:
            return self.problem("a parallel step needs 'branches'", step=path, line=line)
        if branches == {}:
            return self.problem("a parallel step needs at least one branch", step=path,
                                line=_line(body, "branches"))
        if not isinstance(branches, dict):
            return self.problem(f"branches must be a mapping of branch name to pipeline, found "
                                f"{_show(branches)}", step=path, line=_line(body, "branches"))
        self._report_duplicates(branches, "the step", path, "branch name")
        for name, data in branches.items():
            if not isinstance(name, str):
                self.problem(f"a branch name must be text, found {_show(name)}", step=path,
                             line=_line(branches, name))
                continue
            branch_path = join_name(path, name)
            step.parallel_branches[name] = self.pipeline(data, branch_path, _line(branches, name),
                                                         f"branch '{branch_path}'")

    def _map_branch(self, step: Map, body: dict, path: str, line: int | None) -> None:
        for key in ("iterate_on", "iterate_as"):
            if key not in body:
                self.problem(f"a map step needs '{key}'", step=path, line=line)
        if "branch" not in body:
            return self.problem("a map step needs a 'branch' pipeline", step=path, line=line)
        branch_path = join_name(path, map_placeholder(step.iterate_as))
        step.branch = self.pipeline(body["branch"], branch_path, _line(body, "branch"),
                                    f"branch '{branch_path}'")

    def _dag_branch(self, step: Dag, body: dict, path: str, line: int | None) -> None:
        branch_path = join_name(path, DAG_BRANCH_NAME)
        if "branch" in body and step.dag_definition is not None:
            return self.problem("give either 'branch' or 'dag_definition', not both", step=path, line=line)
        if "branch" in body:
            step.branch = self.pipeline(body["branch"], branch_path, _line(body, "branch"),
                                        f"branch '{branch_path}'")
        elif step.dag_definition is None:
            if "dag_definition" not in body:  # else _field has said what is wrong with it
                self.problem("a dag step needs 'dag_definition' (a YAML file) or an inline 'branch'",
                             step=path, line=line)
        else:
            step.branch = self._dag_file(step.dag_definition, branch_path, path,
                                         _line(body, "dag_definition") or line)

    def _dag_file(self, ref: str, branch_path: str, path: str, line: int | None) -> Pipeline | None:
        """Read a dag_definition file (relative to the file naming it) as the step's one branch."""
        target = (self.base / ref).resolve()
        if target in self.seen:
            chain = " -> ".join(p.name for p in self.seen[self.seen.index(target):] + (target,))
            self.problem(f"dag_definition {ref!r} includes itself ({chain})", step=path, line=line)
            return None
        label = ref if self.file is None else str(Path(self.file).parent / ref)
        if target not in self.shared.files:  # each file is read once, however many steps name it
            try:
                self.shared.files[target] = parse_yaml(read_text(target), label)
            except PipelineYAMLError as exc:
                self.shared.files[target] = exc
        data = self.shared.files[target]
        if isinstance(data, PipelineYAMLError):
            self.problem(f"dag_definition {ref!r} cannot be used: {data}", step=path, line=line)
            return None
        if not isinstance(data, dict) or "dag" not in data:
            self.problem(f"dag_definition {ref!r} has no 'dag' mapping", step=path, line=line)
            return None
        inner = _Builder(label, target.parent, self.seen + (target,), self.shared)
        branch = inner.pipeline(data["dag"], branch_path, _line(data, "dag"), f"branch '{branch_path}'")
        self.problems.extend(inner.problems)
        return branch


_BRANCH_FIELDS: dict[str, tuple[str, ...]] = {
    "parallel": ("branches",),
    "map": ("branch",),
    "dag": ("branch",),
}


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be non-empty text"


def _choice(options: tuple[str, ...]) -> Any:
    def check(value: Any) -> str | None:
        return None if value in options else "must be one of " + ", ".join(options)

    return check


def _str_list(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return None
    return "must be a list of names"


def _catalog(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a mapping with 'get' and/or 'put' lists"
    for key in value:
        if key not in ("get", "put"):
            return f"takes only 'get' and 'put', not {key!r}{_suggest(key, ('get', 'put'))}"
    for key in ("get", "put"):
        if key in value and (not isinstance(value[key], list) or
                             not all(isinstance(v, str) for v in value[key])):
            return f"'{key}' must be a list of file patterns"
    return None


def _patterns(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return None if ok else "must be a list of file patterns"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a mapping"


def _positive_number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive number of seconds"


def _positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "must be a whole number of at least 1"


_FIELD_CHECKS = {
    "command_type": _choice(COMMAND_TYPES),
    "failure_policy": _choice(FAILURE_POLICIES),
    "catalog": _catalog,
    "inputs": _patterns,
    "cache": _bool,
    "returns": _str_list,
    "optional_ploomber_args": _mapping,
    "overrides": _mapping,
    "timeout": _positive_number,
    "max_attempts": _positive_int,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _line(data: Any, key: Any) -> int | None:
    lines = getattr(data, "key_lines", None)
    return lines.get(key) if lines else None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", _Mapping: "a mapping"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{_kind(value)} {text[:60] + '…' if len(text) > 60 else text}"


def _suggest(word: Any, options: tuple[str, ...]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---- writing -------------------------------------------------------------------------------


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    pass


def _represent_str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Mapping, _Dumper.represent_dict)


def pipeline_to_data(pipeline: Pipeline) -> dict[str, Any]:
    """The model as the plain mapping magnus reads under ``dag:``."""
    out = pipeline.field_values()
    out["steps"] = {name: step_to_data(step) for name, step in pipeline.steps.items()}
    return out


def step_to_data(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"type": step.type}
    out.update(step.field_values())
    if isinstance(step, Parallel):
        out["branches"] = {n: pipeline_to_data(b) for n, b in step.parallel_branches.items()}
    elif isinstance(step, Map | Dag) and step.branch and not getattr(step, "dag_definition", None):
        out["branch"] = pipeline_to_data(step.branch)  # a dag_definition file stays a reference
    out.update(step.extras)
    return out


def to_yaml(pipeline: Pipeline) -> str:
    """Canonical magnus YAML; ``to_yaml(load_yaml(to_yaml(p))) == to_yaml(p)``."""
    with _bulk_work():
        return yaml.dump({"dag": pipeline_to_data(pipeline)}, Dumper=_Dumper, sort_keys=False,
                         allow_unicode=True, default_flow_style=False, width=100)
