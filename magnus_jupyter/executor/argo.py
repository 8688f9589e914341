"""``magnus-jupyter export FILE --to argo``: the pipeline as an Argo Workflows ``Workflow`` manifest.

Built with hera's models of Argo's API (``hera.workflows.models``), so the
manifest has Argo's field names and types; ``validate_manifest`` checks it
against Argo's own OpenAPI schema, as the ``argo-workflows`` SDK's generated
models hold it (unknown and missing fields, value types). Argo walks the pipeline; every pod runs
``magnus-jupyter execute-step RUN_ID STEP`` (``step.py``) against the run log
and catalog under ``--root`` (a volume all pods share), so the run log ends as
``magnus-jupyter run`` leaves it.

- each graph (the pipeline, each branch) is a DAG template whose tasks are its
  steps reachable from ``start_at``; a step's ``next`` is ``depends:
  X.Succeeded``, its ``on_failure`` (else the graph's ``fail`` step) is
  ``X.Failed``; steps no path reaches are left out, as the engine never runs them;
- one container template per task (its internal name is an input, since a
  step in a map branch runs once per value);
- a parallel step: ``start`` (its log), its branches, ``end`` (its status from
  its branches); the branches are the concurrent tasks of a DAG template of
  their own, whose ``failFast`` is the step's ``failure_policy`` (``fail_fast``:
  true, else false); a map step's ``start`` writes the values as an output
  parameter and that template fans its branch out with ``withParam``;
- initial parameters are workflow parameters, given to the ``init`` pod;
- every task continues on failure (the run log says what failed) except a
  graph's ``fail`` step, which fails its DAG: the pipeline's fails the workflow,
  a branch's fails the branches' DAG (so ``failFast`` sees it);
- the workflow's exit handler (``onExit``) runs ``execute-step RUN_ID
  --finalize``: a pod Argo killed (OOM, deadline) cannot record its step, so
  what is still PROCESSING once the workflow ends is marked FAIL with the reason.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from typing import Any

from ..errors import ExecutionError, Problem
from ..model import Fail, Map, Parallel, Pipeline, Step, Task

VALUES_PATH = "/tmp/magnus-values.json"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "step"


class _Builder:
    def __init__(self, image: str, root: str, pvc: str | None) -> None:
        from hera.workflows import models as m

        self.m = m
        self.image = image
        self.root = root
        self.pvc = pvc
        self.templates: list[Any] = []
        self.names: set[str] = set()
        self._task_names: dict[str, set[str]] = {}  # per graph template: its DAG tasks' names

    def unique(self, text: str) -> str:
        base = _slug(text)[:50]
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}-{n}"
        self.names.add(name)
        return name

    def container(self, name: str, args: list[str], values: bool = False) -> str:
        """A pod template running ``magnus-jupyter`` with ``args``; ``values``: a map's start."""
        m = self.m
        template = self.unique(name)
        mounts = [m.VolumeMount(name="magnus-root", mount_path=self.root)] if self.pvc else None
        outputs = None
        if values:
            outputs = m.Outputs(parameters=[m.Parameter(name="values",
                                                        value_from=m.ValueFrom(path=VALUES_PATH))])
        self.templates.append(m.Template(
            name=template,
            inputs=m.Inputs(parameters=[m.Parameter(name="step")]),
            outputs=outputs,
            container=m.Container(image=self.image, command=["magnus-jupyter"], args=args,
                                  working_dir=self.root, volume_mounts=mounts),
        ))
        return template

    def step_args(self, *extra: str) -> list[str]:
        return ["execute-step", "{{workflow.parameters.run_id}}", "{{inputs.parameters.step}}",
                "--root", self.root, *extra]

    def graph(self, graph: Pipeline, label: str, top: bool) -> str:
        """A DAG template for ``graph``; branch templates take their internal-name ``prefix``."""
        m = self.m
        name = self.unique(label)
        reached = _reachable(graph)
        fail = graph.terminal(Fail)
        incoming: dict[str, list[str]] = {s: [] for s in reached}
        tasks: list[Any] = []
        entry: dict[str, str] = {}
        exit_: dict[str, str] = {}
        for step_name in reached:
            task = self.unique_task(name, step_name)
            entry[step_name] = task
            exit_[step_name] = f"{task}-end" if graph.steps[step_name].is_composite else task
        for step_name in reached:
            step = graph.steps[step_name]
            if step.TRAVERSAL:
                if step.next in incoming:
                    incoming[step.next].append(f"{exit_[step_name]}.Succeeded")
                target = step.on_failure or (fail.name if fail else None)
                if target in incoming:
                    incoming[target].append(f"{exit_[step_name]}.Failed")
        prefix = "" if top else "{{inputs.parameters.prefix}}."
        for step_name in reached:
            step = graph.steps[step_name]
            depends = " || ".join(incoming[step_name]) or ("init.Succeeded" if top else None)
            internal = prefix + step_name
            tasks.extend(self.tasks_for(step, internal, entry[step_name], depends,
                                        fails_graph=isinstance(step, Fail)))
        if top:
            tasks.insert(0, m.DAGTask(name="init", template="init"))
        inputs = None if top else m.Inputs(parameters=[m.Parameter(name="prefix")])
        self.templates.append(m.Template(name=name, inputs=inputs, dag=m.DAGTemplate(tasks=tasks)))
        return name

    def unique_task(self, graph_template: str, step_name: str) -> str:
        used = self._task_names.setdefault(graph_template, set())
        base = _slug(step_name)[:40]
        name, n = base, 1
        while name in used or name == "init" or re.search(r"-(start|end)$", name):
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        return name

    def tasks_for(self, step: Step, internal: str, task: str, depends: str | None,
                  fails_graph: bool) -> list[Any]:
        m = self.m
        keep_going = None if fails_graph else m.ContinueOn(failed=True)
        args = m.Arguments(parameters=[m.Parameter(name="step", value=internal)])
        if not step.is_composite:
            kind = step.kind if isinstance(step, Task) else step.type
            template = self.container(f"{internal.split('.')[-1]}-{kind}", self.step_args())
            return [m.DAGTask(name=task, template=template, depends=depends, arguments=args,
                              continue_on=keep_going)]
        is_map = isinstance(step, Map)
        start = self.container(f"{step.name}-start", self.step_args(
            "--phase", "start", *(["--values-out", VALUES_PATH] if is_map else [])), values=is_map)
        end = self.container(f"{step.name}-end", self.step_args("--phase", "end"))
        fan_inputs = [m.Parameter(name="prefix", value=internal)]
        if is_map:
            fan_inputs.append(m.Parameter(name="values",
                                          value=f"{{{{tasks.{task}-start.outputs.parameters.values}}}}"))
        return [
            m.DAGTask(name=f"{task}-start", template=start, depends=depends, arguments=args,
                      continue_on=keep_going),
            m.DAGTask(name=task, template=self.branches(step), depends=f"{task}-start.Succeeded",
                      continue_on=m.ContinueOn(failed=True), arguments=m.Arguments(parameters=fan_inputs)),
            m.DAGTask(name=f"{task}-end", template=end, arguments=args, continue_on=keep_going,
                      depends=f"{task}-start.Failed || {task}.Succeeded || {task}.Failed"),
        ]

    def branches(self, step: Step) -> str:
        """A DAG template running ``step``'s branches at once (a map: one per value, ``withParam``);
        ``failFast`` carries its ``failure_policy``. Takes the step's internal name as ``prefix``."""
        m = self.m
        name = self.unique(f"{step.name}-branches")
        fail_fast = getattr(step, "failure_policy", None) == "fail_fast"
        inputs = [m.Parameter(name="prefix")]
        tasks: list[Any] = []
        if isinstance(step, Map):
            assert step.branch is not None
            inputs.append(m.Parameter(name="values"))
            template = self.graph(step.branch, f"{step.name}-branch", top=False)
            tasks.append(m.DAGTask(
                name="branch", template=template, with_param="{{inputs.parameters.values}}",
                arguments=m.Arguments(parameters=[
                    m.Parameter(name="prefix", value="{{inputs.parameters.prefix}}.{{item}}")])))
        else:
            used: set[str] = set()
            for branch_name, branch in step.branches().items():
                task = base = _slug(branch_name)[:40]
                n = 1
                while task in used:
                    n += 1
                    task = f"{base}-{n}"
                used.add(task)
                prefix = f"{{{{inputs.parameters.prefix}}}}.{branch_name}"
                tasks.append(m.DAGTask(
                    name=task, template=self.graph(branch, f"{step.name}-{branch_name}", top=False),
                    arguments=m.Arguments(parameters=[m.Parameter(name="prefix", value=prefix)])))
        self.templates.append(m.Template(name=name, inputs=m.Inputs(parameters=inputs),
                                         dag=m.DAGTemplate(tasks=tasks, fail_fast=fail_fast)))
        return name


def _reachable(graph: Pipeline) -> list[str]:
    """Steps a run of ``graph`` can reach from ``start_at`` (in declaration order)."""
    fail = graph.terminal(Fail)
    seen: set[str] = set()
    stack = [graph.start_at] if graph.start_at else []
    while stack:
        name = stack.pop()
        if name is None or name in seen or name not in graph.steps:
            continue
        seen.add(name)
        step = graph.steps[name]
        if step.TRAVERSAL:
            stack.extend([step.next, step.on_failure or (fail.name if fail else None)])
    return [name for name in graph.steps if name in seen]


def export_argo(pipeline: Pipeline, *, image: str, pipeline_file: str,
                parameters: dict[str, Any] | None = None, root: str = "/mnt/magnus", pvc: str | None = None,
                name: str | None = None) -> dict[str, Any]:
    """The Argo ``Workflow`` manifest (a dict, ready for YAML) that runs ``pipeline`` step by step."""
    from hera.workflows import models as m

    _refuse_template_names(pipeline)
    builder = _Builder(image, root, pvc)
    params = dict(parameters or {})
    init_args = ["execute-step", "{{workflow.parameters.run_id}}", "--init", "--root", root,
                 "--file", pipeline_file]
    for key in params:
        init_args += ["--param", f"{key}={{{{workflow.parameters.{key}}}}}"]
    builder.names.add("init")
    mounts = [m.VolumeMount(name="magnus-root", mount_path=root)] if pvc else None
    builder.templates.append(m.Template(name="init", container=m.Container(
        image=image, command=["magnus-jupyter"], args=init_args, working_dir=root, volume_mounts=mounts)))
    builder.names.add("finalize")
    builder.templates.append(m.Template(name="finalize", container=m.Container(
        image=image, command=["magnus-jupyter"], working_dir=root, volume_mounts=mounts,
        args=["execute-step", "{{workflow.parameters.run_id}}", "--finalize", "--root", root])))
    entry = builder.graph(pipeline, "main", top=True)
    workflow_params = [m.Parameter(name="run_id", value="{{workflow.name}}")]
    for key, value in params.items():
        if key == "run_id":
            raise ExecutionError("export: a parameter may not be called run_id (the workflow's own)")
        if "{" in key or "}" in key:
            raise ExecutionError(f"export: parameter name {key!r}: Argo would read braces in it as a "
                                 "template expression; rename it")
        workflow_params.append(m.Parameter(name=key, value=_argo_json(value)))
    volumes = ([m.Volume(name="magnus-root",
                         persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name=pvc))]
               if pvc else None)
    workflow = m.Workflow(
        api_version="argoproj.io/v1alpha1", kind="Workflow",
        metadata=m.ObjectMeta(generate_name=f"{_slug(name or pipeline.name or 'magnus')[:40]}-"),
        spec=m.WorkflowSpec(entrypoint=entry, on_exit="finalize",
                            arguments=m.Arguments(parameters=workflow_params),
                            templates=builder.templates, volumes=volumes),
    )
    return workflow.model_dump(by_alias=True, exclude_none=True, mode="json")


def _refuse_template_names(pipeline: Pipeline) -> None:
    """Argo expands ``{{...}}`` wherever it occurs in a manifest, and step and branch names go into it
    (the internal names pods are given): a name holding ``{{`` or ``}}`` is refused, by its place."""
    problems = []
    for internal, step, _ in pipeline.walk():
        names = [("its name ", step.name)]
        if isinstance(step, Parallel):
            names += [(f"branch name {branch!r} ", branch) for branch in step.parallel_branches]
        for what, name in names:
            if "{{" in name or "}}" in name:
                source = step.source
                problems.append(Problem(f"{what}holds '{{{{' or '}}}}', which Argo would read as a template "
                                        "expression; rename it to export the pipeline to Argo",
                                        step=internal, file=source.file if source else None,
                                        line=source.line if source else None))
    if len(problems) == 1:
        raise ExecutionError(f"cannot export to Argo: {problems[0]}")
    if problems:
        raise ExecutionError(f"cannot export to Argo ({len(problems)} problems):\n"
                             + "\n".join(f"  {p}" for p in problems))


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _argo_json(value: Any) -> str:
    """A parameter value as JSON with every brace inside a string escaped (``\\u007b``): Argo expands
    ``{{...}}`` even in parameter values; the JSON still reads back as the same value."""
    return _JSON_STRING.sub(lambda m: m.group().replace("{", "\\u007b").replace("}", "\\u007d"),
                            json.dumps(value))


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Check ``manifest`` against Argo's own API schema, not just the models that built it.

    The models of the ``argo-workflows`` package are generated from Argo's OpenAPI spec: every key
    must be a field of its object there, every required field present, every value of the declared
    type. Imported here, so that ``import magnus_jupyter`` stays fast.
    """
    from argo_workflows.configuration import Configuration
    from argo_workflows.exceptions import OpenApiException
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow import (
        IoArgoprojWorkflowV1alpha1Workflow,
    )
    from argo_workflows.model_utils import validate_and_convert_types

    if not isinstance(manifest, dict):
        raise ExecutionError("not a valid Argo Workflow: the manifest is not a mapping")
    if manifest.get("kind") != "Workflow" or manifest.get("apiVersion") != "argoproj.io/v1alpha1":
        raise ExecutionError("not an argoproj.io/v1alpha1 Workflow")
    problems: list[str] = []
    _check_fields(manifest, IoArgoprojWorkflowV1alpha1Workflow, "", problems)
    if problems:
        raise ExecutionError("not a valid Argo Workflow: " + "; ".join(problems[:10]))
    try:  # value types, as Argo's SDK deserializes them
        validate_and_convert_types(copy.deepcopy(manifest), (IoArgoprojWorkflowV1alpha1Workflow,),
                                   ["workflow"], True, True,
                                   configuration=Configuration(discard_unknown_keys=False))
    except (OpenApiException, TypeError, ValueError) as exc:
        raise ExecutionError(f"not a valid Argo Workflow: {exc}") from None


def _check_fields(value: Any, model: type, path: str, problems: list[str]) -> None:
    """Unknown and missing fields, with their path (the SDK's own errors name neither)."""
    if not isinstance(value, dict):
        return  # a wrong type: validate_and_convert_types reports it with its path
    fields = {json_name: name for name, json_name in model.attribute_map.items()}
    for key in value:
        if key not in fields:
            problems.append(f"{path or 'the Workflow'}: unknown field {key!r} (not in Argo's "
                            f"{model.__name__.removeprefix('IoArgoprojWorkflowV1alpha1')})")
    for name in _required(model):
        json_name = model.attribute_map.get(name, name)
        if json_name not in value:
            problems.append(f"{path or 'the Workflow'}: missing required field {json_name!r}")
    for key, item in value.items():
        if key in fields:
            types = model.openapi_types.get(fields[key], ())
            _check_value(item, types, f"{path}.{key}".lstrip("."), problems)


def _check_value(value: Any, types: tuple[Any, ...], path: str, problems: list[str]) -> None:
    from argo_workflows.model_utils import ModelNormal

    for kind in types:
        if isinstance(kind, list) and isinstance(value, list):
            for i, item in enumerate(value):
                _check_value(item, tuple(kind), f"{path}[{i}]", problems)
        elif isinstance(kind, dict) and isinstance(value, dict):
            for key, item in value.items():
                _check_value(item, tuple(kind.get(str, ())), f"{path}.{key}", problems)
        elif isinstance(kind, type) and issubclass(kind, ModelNormal):
            _check_fields(value, kind, path, problems)


def _required(model: type) -> list[str]:
    """A model's required fields: the positional parameters of its generated constructor."""
    params = inspect.signature(model._from_openapi_data).parameters.values()
    return [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "cls")]
