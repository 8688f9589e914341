"""A Python SDK in the shape of magnus 0.5's, building the same core model.

For users who would rather write a pipeline in a cell than in magics or YAML::

    features = Task("Get Features", command="notebooks/get_features.ipynb", command_type="notebook")
    train = Parallel("Train Models", branches={"RF": Pipeline(steps=[...], start_at=...)})
    features >> train >> Stub("Ensemble", terminate_with_success=True)
    pipeline = Pipeline(steps=[features, train, ...], start_at=features)
    pipeline.to_yaml()
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from . import model
from .errors import ValidationError

_T = TypeVar("_T", bound="_Node")


class Catalog:
    """Files to copy from (``get``) and to (``put``) the run's catalog: lists of globs relative to the
    run folder (``validate`` refuses one that is absolute or leaves it with ``..``)."""

    def __init__(self, get: list[str] | None = None, put: list[str] | None = None) -> None:
        for stage, patterns in (("get", get), ("put", put)):
            if isinstance(patterns, str):  # list("data/x") would make a pattern of every character
                raise ValidationError(f"Catalog({stage}={patterns!r}): {stage} takes a list of file "
                                      f"patterns, e.g. {stage}=[{patterns!r}]")
        self.get, self.put = list(get or []), list(put or [])

    def as_field(self) -> dict[str, list[str]]:
        out = {}
        if self.get:
            out["get"] = self.get
        if self.put:
            out["put"] = self.put
        return out


class _Node:
    """An SDK step: wraps one model step and chains with ``>>`` / ``<<``."""

    step: model.Step

    @property
    def name(self) -> str:
        return self.step.name

    def _set_next(self, name: str) -> None:
        if self.step.next is not None:
            raise ValidationError(f"step '{self.name}' already has next: '{self.step.next}'")
        self.step.next = name

    def __rshift__(self, other: _T) -> _T:
        self._set_next(other.name)
        return other

    def __lshift__(self, other: _T) -> _T:
        other._set_next(self.name)
        return other

    def depends_on(self: _T, node: _Node) -> _T:
        node._set_next(self.name)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _Traversal(_Node):
    @property
    def next_node(self) -> str:
        return self.step.next or ""

    @next_node.setter
    def next_node(self, name: str) -> None:
        self.step.next = name or None

    @property
    def on_failure(self) -> str:
        """magnus' SDK lets a script set it after the step is made: ``step.on_failure = other.name``."""
        return self.step.on_failure or ""

    @on_failure.setter
    def on_failure(self, name: str) -> None:
        self.step.on_failure = name or None

    def _init_traversal(self, next_node: str | None, on_failure: str | None,
                        terminate_with_success: bool, terminate_with_failure: bool) -> None:
        if terminate_with_success and terminate_with_failure:
            raise ValidationError(f"step '{self.name}': cannot terminate with both success and failure")
        if (terminate_with_success or terminate_with_failure) and next_node:
            raise ValidationError(f"step '{self.name}': a terminating step cannot also set next_node")
        if terminate_with_success:
            next_node = "success"
        elif terminate_with_failure:
            next_node = "fail"
        self.step.next = next_node
        self.step.on_failure = on_failure


class Task(_Traversal):
    def __init__(
        self,
        name: str,
        command: str,
        command_type: str = "python",
        *,
        next_node: str | None = None,
        on_failure: str | None = None,
        terminate_with_success: bool = False,
        terminate_with_failure: bool = False,
        catalog: Catalog | None = None,
        inputs: list[str] | None = None,
        cache: bool | None = None,
        returns: list[str] | None = None,
        notebook_output_path: str | None = None,
        output_cell_tag: str | None = None,
        optional_ploomber_args: dict[str, Any] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        overrides: dict[str, Any] | None = None,
        next: str | None = None,  # noqa: A002 - magnus' SDK takes the YAML name too
    ) -> None:
        """``inputs``: globs of project files the task reads (its fingerprint covers their content);
        ``cache=False``: never reuse its result (a task with side effects)."""
        if isinstance(inputs, str):  # list("data/x") would make a pattern of every character
            raise ValidationError(f"step '{name}': inputs takes a list of file patterns, e.g. "
                                  f"inputs=[{inputs!r}]")
        next_node = next_node or next
        self.step = model.Task(
            name=name,
            command=command,
            command_type=command_type,
            catalog=catalog.as_field() if catalog else None,
            inputs=list(inputs) if inputs is not None else None,
            cache=cache,
            returns=list(returns) if returns else None,
            notebook_output_path=notebook_output_path,
            output_cell_tag=output_cell_tag,
            optional_ploomber_args=optional_ploomber_args,
            timeout=timeout,
            max_attempts=max_attempts,
            overrides=overrides,
        )
        self._init_traversal(next_node, on_failure, terminate_with_success, terminate_with_failure)


class Stub(_Traversal):
    def __init__(self, name: str, *, next_node: str | None = None, on_failure: str | None = None,
                 terminate_with_success: bool = False, terminate_with_failure: bool = False,
                 catalog: Catalog | None = None, next: str | None = None,  # noqa: A002 - as magnus' SDK
                 **extras: Any) -> None:
        next_node = next_node or next
        self.step = model.Stub(name=name, catalog=catalog.as_field() if catalog else None, extras=extras)
        self._init_traversal(next_node, on_failure, terminate_with_success, terminate_with_failure)


class Parallel(_Traversal):
    def __init__(self, name: str, branches: dict[str, Pipeline], *, next_node: str | None = None,
                 on_failure: str | None = None, terminate_with_success: bool = False,
                 terminate_with_failure: bool = False, failure_policy: str | None = None) -> None:
        self.step = model.Parallel(
            name=name,
            parallel_branches={n: _model_of(b, f"{name}.{n}") for n, b in branches.items()},
            failure_policy=failure_policy,
        )
        self._init_traversal(next_node, on_failure, terminate_with_success, terminate_with_failure)


class Map(_Traversal):
    def __init__(self, name: str, branch: Pipeline, iterate_on: str, iterate_as: str, *,
                 next_node: str | None = None, on_failure: str | None = None,
                 terminate_with_success: bool = False, terminate_with_failure: bool = False,
                 failure_policy: str | None = None, overrides: dict[str, Any] | None = None) -> None:
        self.step = model.Map(name=name, iterate_on=iterate_on, iterate_as=iterate_as,
                              branch=_model_of(branch, name), failure_policy=failure_policy,
                              overrides=overrides or None)
        self._init_traversal(next_node, on_failure, terminate_with_success, terminate_with_failure)


class Success(_Node):
    def __init__(self, name: str = "success") -> None:
        self.step = model.Success(name=name)


class Fail(_Node):
    def __init__(self, name: str = "fail") -> None:
        self.step = model.Fail(name=name)


class Pipeline:
    """Steps plus where to start; ``add_terminal_nodes`` adds ``success`` and ``fail``.

    With terminal nodes added, the last step of ``steps`` that has no ``next``
    leads to ``success``, so a plain ``a >> b >> c`` needs no extra wiring.
    """

    def __init__(self, steps: list[_Node], start_at: _Node | None = None, *, name: str | None = None,
                 description: str | None = None, add_terminal_nodes: bool = True) -> None:
        if not steps:
            raise ValidationError("a pipeline needs at least one step")
        graph = model.Pipeline(start_at=(start_at or steps[0]).name, name=name, description=description)
        for node in steps:
            if node.name in graph.steps:
                raise ValidationError(f"step '{node.name}' is given twice")
            graph.add(copy.deepcopy(node.step))
        if add_terminal_nodes:
            last = graph.steps[steps[-1].name]
            if last.TRAVERSAL and last.next is None:
                last.next = "success"
            for terminal in (model.Success(name="success"), model.Fail(name="fail")):
                if terminal.name not in graph.steps:
                    graph.add(terminal)
        from .validate import validate

        validate(graph)
        self.model = graph

    def to_yaml(self) -> str:
        from .yaml_io import to_yaml

        return to_yaml(self.model)

    def execute(self, configuration_file: str = "", run_id: str = "", tag: str = "",
                parameters_file: str = "", use_cached: str = "", log_level: str = "WARNING",
                output_pipeline_definition: str = "magnus-pipeline.yaml", reuse: bool = False) -> Any:
        """Run the pipeline here, as magnus 0.5's ``Pipeline.execute`` does, and return its run log.

        ``configuration_file``: a magnus config (``MAGNUS_CONFIGURATION_FILE`` wins
        over it); ``use_cached``: a run to retry; ``reuse``: reuse the result of every
        task whose fingerprint matches an earlier successful run here (``run --reuse``).
        Progress shows live: the DAG widget in a notebook, the terminal view elsewhere.
        The run log reads as a dict or with attributes (``run_log.status``). magnus'
        ``output_pipeline_definition`` is accepted and unused: argo configs are
        refused, use ``magnus-jupyter export``.
        """
        from .executor.entrypoints import execute_sdk

        return execute_sdk(self.model, configuration_file=configuration_file, run_id=run_id, tag=tag,
                           parameters_file=parameters_file, use_cached=use_cached, log_level=log_level,
                           reuse=reuse)


def _model_of(branch: Pipeline | model.Pipeline, where: str) -> model.Pipeline:
    if isinstance(branch, Pipeline):
        return branch.model
    if isinstance(branch, model.Pipeline):
        return branch
    raise ValidationError(f"step '{where}': a branch must be a Pipeline, found {type(branch).__name__}")
