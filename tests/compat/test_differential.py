"""Differential test: generated pipelines run by real magnus 0.5.1 and by us give the same run.

magnus 0.5.1 is installed from the package registry into a virtual environment
of its own (a test oracle only, never a dependency; ``oracle.py``), cached across
sessions under the system temp folder.
Hypothesis generates small pipelines: stubs; shell tasks that succeed, fail,
or export ``MAGNUS_PRM_`` values (each export its own name, so no two parallel
branches write one parameter); parallel / map / dag nested up to two levels;
``on_failure`` to a later step. Both engines run each one in a fresh folder;
the flattened status trees, the run's status and its final parameters must be
equal. The examples are derandomized so ``make test`` is repeatable.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import RUN_MAGNUS, build_oracle

from magnus_jupyter.executor.engine import run_pipeline
from magnus_jupyter.executor.params import initial_parameters
from magnus_jupyter.executor.runlog import flatten
from magnus_jupyter.yaml_io import load_yaml

pytestmark = pytest.mark.slow

TIMEOUT = 120


@pytest.fixture(scope="module")
def magnus_python() -> Path:
    return build_oracle()


@pytest.fixture(scope="module")
def slots() -> Iterator[Any]:
    """One pool for every example: the engine's behaviour is under test, not worker start-up."""
    from magnus_jupyter.executor.slots import TaskSlots

    with TaskSlots(4, warm_kernels=False) as pool:
        yield pool


# ---- generated pipelines -----------------------------------------------------------------------


@dataclass
class Ctx:
    """Names handed out while one pipeline is drawn, and the files and parameters it needs."""

    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    exports: int = 0
    maps: int = 0


VALUES = st.one_of(st.integers(-3, 99), st.sampled_from(["a", "hello", "x y"]),
                   st.lists(st.integers(0, 9), max_size=3))
LEAVES = ["stub", "ok", "fail", "export", "export then fail"]
COMPOSITES = ["parallel", "map", "dag"]


def _graph(draw: Callable[..., Any], ctx: Ctx, depth: int) -> dict[str, Any]:
    count = draw(st.integers(1, 3))
    names = [f"s{i}" for i in range(count)]
    steps: dict[str, Any] = {}
    for i, name in enumerate(names):
        step = _step(draw, ctx, depth)
        step["next"] = names[i + 1] if i + 1 < count else "success"
        target = draw(st.sampled_from([None, None, *names[i + 1:], "success"]))
        if target is not None:
            step["on_failure"] = target
        steps[name] = step
    steps["success"] = {"type": "success"}
    steps["fail"] = {"type": "fail"}
    return {"start_at": names[0], "steps": steps}


def _shell(command: str) -> dict[str, Any]:
    return {"type": "task", "command_type": "shell", "command": command}


def _step(draw: Callable[..., Any], ctx: Ctx, depth: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(LEAVES + (COMPOSITES if depth < 2 else [])))
    if kind == "stub":
        return {"type": "stub"}
    if kind == "ok":
        return _shell("true")
    if kind == "fail":
        return _shell("exit 1")
    if kind in ("export", "export then fail"):
        ctx.exports += 1
        value = json.dumps(draw(VALUES))
        command = f"export MAGNUS_PRM_p{ctx.exports}='{value}'"
        return _shell(command + (" && exit 1" if kind == "export then fail" else ""))
    if kind == "parallel":
        width = draw(st.integers(1, 3))
        return {"type": "parallel", "branches": {f"b{i}": _graph(draw, ctx, depth + 1) for i in range(width)}}
    if kind == "map":
        ctx.maps += 1
        values = draw(st.lists(st.one_of(st.integers(0, 20), st.sampled_from(["u", "v", "w"])),
                               min_size=1, max_size=3, unique_by=str))
        ctx.params[f"items{ctx.maps}"] = values
        return {"type": "map", "iterate_on": f"items{ctx.maps}", "iterate_as": f"v{ctx.maps}",
                "branch": _graph(draw, ctx, depth + 1)}
    file = f"sub{len(ctx.files) + 1}.yaml"
    ctx.files[file] = {}  # taken before the nested graph names its own files
    ctx.files[file] = {"dag": _graph(draw, ctx, depth + 1)}
    return {"type": "dag", "dag_definition": file}


@st.composite
def pipelines(draw: Callable[..., Any]) -> tuple[dict[str, Any], Ctx]:
    ctx = Ctx()
    return {"dag": _graph(draw, ctx, 0)}, ctx


# ---- the two engines ---------------------------------------------------------------------------


def _write(folder: Path, dag: dict[str, Any], ctx: Ctx) -> None:
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(dag, sort_keys=False))
    for name, sub in ctx.files.items():
        (folder / name).write_text(yaml.safe_dump(sub, sort_keys=False))
    (folder / "params.yaml").write_text(yaml.safe_dump(ctx.params) if ctx.params else "{}\n")
    (folder / "fs.yaml").write_text("run_log_store:\n  type: file-system\n")


def _magnus(python: Path, folder: Path) -> dict[str, Any]:
    done = subprocess.run([str(python), "-c", RUN_MAGNUS, "execute", "-f", "pipeline.yaml", "-c", "fs.yaml",
                           "--run-id", "oracle", "-p", "params.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=TIMEOUT)
    path = folder / ".run_log_store" / "oracle.json"
    assert path.exists(), f"magnus wrote no run log:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return json.loads(path.read_text())


def _ours(folder: Path, slots: Any) -> dict[str, Any]:
    pipeline = load_yaml(folder / "pipeline.yaml")
    parameters = initial_parameters(folder / "params.yaml", environ={})
    result = run_pipeline(pipeline, parameters=parameters, run_id="ours", cwd=folder, slots=slots)
    return json.loads(result.run_log_path.read_text())


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(case=pipelines())
def test_generated_pipelines_run_as_real_magnus_runs_them(case: tuple[dict[str, Any], Ctx],
                                                          magnus_python: Path, slots: Any) -> None:
    dag, ctx = case
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        theirs_dir, ours_dir = Path(tmp) / "magnus", Path(tmp) / "ours"
        for folder in (theirs_dir, ours_dir):
            folder.mkdir()
            _write(folder, dag, ctx)
        theirs = _magnus(magnus_python, theirs_dir)
        ours = _ours(ours_dir, slots)
        shown = yaml.safe_dump(dag, sort_keys=False)
        assert flatten(ours) == flatten(theirs), shown
        assert ours["status"] == theirs["status"], shown
        assert ours["parameters"] == theirs["parameters"], shown
