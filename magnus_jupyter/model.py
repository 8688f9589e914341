"""The core pipeline model: magnus 0.5 steps and pipelines, with no I/O.

Magics, the SDK and YAML files all build these objects; the engine, the
renderer and the YAML writer read them. A field left at ``None`` was not given,
so writing the model back yields what the user wrote, not a wall of defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

RESERVED_CHARACTERS = (".", "%")
COMMAND_TYPES = ("python", "notebook", "shell")
FAILURE_POLICIES = ("finish_all", "fail_fast")
DAG_BRANCH_NAME = "dag"  # magnus names a dag node's one branch "<step>.dag"
RUN_LOG_FOLDER = ".run_log_store"  # the run records, in the run folder (magnus' layout)
CATALOG_FOLDER = ".catalog"


@dataclass(frozen=True)
class Source:
    """Where a step or pipeline was declared, for error messages."""

    file: str | None = None
    line: int | None = None


def join_name(prefix: str, name: str) -> str:
    """magnus' internal names join with dots: ``Train Models.XGBoost.Train XGBoost``."""
    return f"{prefix}.{name}" if prefix else name


def map_placeholder(iterate_as: str) -> str:
    """How a map branch is named before its values are known."""
    return "{" + iterate_as + "}"


@dataclass(kw_only=True)
class Step:
    """A node of a pipeline. Subclasses name their YAML fields in ``FIELDS``."""

    type: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[str, ...]] = ()
    TRAVERSAL: ClassVar[bool] = True  # has next / on_failure

    name: str
    next: str | None = None
    on_failure: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    source: Source | None = field(default=None, compare=False, repr=False)

    def branches(self) -> dict[str, Pipeline]:
        """Branch name (relative to this step) -> pipeline; empty for leaf steps."""
        return {}

    def branch_prefix(self, internal_name: str, branch: str) -> str:
        return join_name(internal_name, branch)

    @property
    def is_composite(self) -> bool:
        return bool(self.branches())

    def field_values(self) -> dict[str, Any]:
        """The YAML fields this step was given, in canonical order, excluding branches."""
        out: dict[str, Any] = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(kw_only=True)
class Task(Step):
    type: ClassVar[str] = "task"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "command_type",
        "command",
        "next",
        "on_failure",
        "catalog",
        "inputs",
        "cache",
        "returns",
        "notebook_output_path",
        "output_cell_tag",
        "optional_ploomber_args",
        "timeout",
        "max_attempts",
        "overrides",
    )

    command: str = ""
    command_type: str | None = None  # None means magnus' default, "python"
    catalog: dict[str, list[str]] | None = None
    inputs: list[str] | None = None  # globs of project files the task reads: part of its fingerprint
    cache: bool | None = None  # False: never reused by --reuse, retry, --from or --only (side effects)
    returns: list[str] | None = None
    notebook_output_path: str | None = None
    output_cell_tag: str | None = None
    optional_ploomber_args: dict[str, Any] | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    overrides: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return self.command_type or "python"


@dataclass(kw_only=True)
class Stub(Step):
    """Does nothing and succeeds; like magnus, it accepts any other fields (kept in extras)."""

    type: ClassVar[str] = "stub"
    FIELDS: ClassVar[tuple[str, ...]] = ("next", "on_failure", "catalog")
    catalog: dict[str, list[str]] | None = None


@dataclass(kw_only=True)
class Parallel(Step):
    type: ClassVar[str] = "parallel"
    FIELDS: ClassVar[tuple[str, ...]] = ("next", "on_failure", "failure_policy", "overrides")

    parallel_branches: dict[str, Pipeline] = field(default_factory=dict)
    failure_policy: str | None = None
    overrides: dict[str, Any] | None = None

    def branches(self) -> dict[str, Pipeline]:
        return self.parallel_branches


@dataclass(kw_only=True)
class Map(Step):
    type: ClassVar[str] = "map"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "iterate_on",
        "iterate_as",
        "next",
        "on_failure",
        "failure_policy",
        "overrides",
    )

    iterate_on: str = ""
    iterate_as: str = ""
    branch: Pipeline | None = None
    failure_policy: str | None = None
    overrides: dict[str, Any] | None = None

    def branches(self) -> dict[str, Pipeline]:
        return {map_placeholder(self.iterate_as): self.branch} if self.branch else {}


@dataclass(kw_only=True)
class Dag(Step):
    """A nested pipeline, inline (``branch``) or read from ``dag_definition``."""

    type: ClassVar[str] = "dag"
    FIELDS: ClassVar[tuple[str, ...]] = ("dag_definition", "next", "on_failure", "overrides")

    dag_definition: str | None = None
    branch: Pipeline | None = None
    overrides: dict[str, Any] | None = None

    def branches(self) -> dict[str, Pipeline]:
        return {DAG_BRANCH_NAME: self.branch} if self.branch else {}


@dataclass(kw_only=True)
class Success(Step):
    type: ClassVar[str] = "success"
    TRAVERSAL: ClassVar[bool] = False


@dataclass(kw_only=True)
class Fail(Step):
    type: ClassVar[str] = "fail"
    TRAVERSAL: ClassVar[bool] = False


STEP_TYPES: dict[str, type[Step]] = {
    cls.type: cls for cls in (Task, Stub, Parallel, Map, Dag, Success, Fail)
}
COMPOSITE_TYPES = ("parallel", "map", "dag")


@dataclass(kw_only=True)
class Pipeline:
    """A graph of steps: the whole pipeline or one branch of a composite step."""

    FIELDS: ClassVar[tuple[str, ...]] = ("name", "description", "start_at", "max_time")

    steps: dict[str, Step] = field(default_factory=dict)
    start_at: str | None = None
    description: str | None = None
    name: str | None = None
    max_time: int | None = None
    source: Source | None = field(default=None, compare=False, repr=False)

    def add(self, step: Step) -> Step:
        self.steps[step.name] = step
        return step

    def terminal(self, kind: type[Step]) -> Step | None:
        """The one success (or fail) step, if there is exactly one."""
        found = [s for s in self.steps.values() if isinstance(s, kind)]
        return found[0] if len(found) == 1 else None

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Step, Pipeline]]:
        """Every step at any depth as (internal name, step, the pipeline holding it)."""
        stack: list[tuple[str, Pipeline]] = [(prefix, self)]
        while stack:
            branch_prefix, pipeline = stack.pop()
            for name, step in pipeline.steps.items():
                internal = join_name(branch_prefix, name)
                yield internal, step, pipeline
                for branch_name, branch in reversed(step.branches().items()):
                    stack.append((step.branch_prefix(internal, branch_name), branch))

    def field_values(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.FIELDS if getattr(self, n) is not None}


def step_field_names(cls: type[Step]) -> set[str]:
    """Every attribute a step class holds, for the SDK's and loader's checks."""
    return {f.name for f in fields(cls)}
