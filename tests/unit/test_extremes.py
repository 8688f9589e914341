"""Valid extremes: 10,000 steps in a row and branches nested 50 levels deep.

Real magnus 0.5.1 dies with RecursionError on a 1,000-step pipeline; ours must
load, validate and round-trip these, in-process and through the CLI. Speed is
measured in bench/load_validate.py, never here.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from magnus_jupyter.validate import validate
from magnus_jupyter.yaml_io import load_yaml, to_yaml

STEPS = 10_000
DEPTH = 50
KINDS = ("parallel", "map", "dag")


def linear_yaml(count: int) -> str:
    lines = ["dag:", "  description: a long line of stubs", "  start_at: s0", "  steps:"]
    for i in range(count):
        following = f"s{i + 1}" if i < count - 1 else "success"
        lines += [f"    s{i}:", "      type: stub", f"      next: {following}"]
    lines += ["    success:", "      type: success", "    fail:", "      type: fail"]
    return "\n".join(lines) + "\n"


def nested_yaml(depth: int) -> tuple[str, str]:
    """Composite steps nested ``depth`` deep, cycling parallel / map / dag; and the innermost step's name."""
    lines = ["dag:", "  start_at: c0", "  steps:"]
    ind, path, indents = "    ", [], ["    "]
    for i in range(depth):
        kind = KINDS[i % 3]
        lines += [f"{ind}c{i}:", f"{ind}  type: {kind}", f"{ind}  next: done{i}"]
        if kind == "parallel":
            lines += [f"{ind}  branches:", f"{ind}    left:"]
            body, branch = ind + "      ", "left"
        else:
            if kind == "map":
                lines += [f"{ind}  iterate_on: items{i}", f"{ind}  iterate_as: item{i}"]
            lines += [f"{ind}  branch:"]
            body, branch = ind + "    ", f"{{item{i}}}" if kind == "map" else "dag"
        path += [f"c{i}", branch]
        lines += [f"{body}start_at: c{i + 1}", f"{body}steps:"]
        ind = body + "  "
        indents.append(ind)
    lines += [f"{ind}c{depth}:", f"{ind}  type: task", f"{ind}  command_type: shell",
              f"{ind}  command: echo deep", f"{ind}  next: done{depth}"]
    for level, ind in reversed(list(enumerate(indents))):
        lines += [f"{ind}done{level}:", f"{ind}  type: success", f"{ind}failed{level}:", f"{ind}  type: fail"]
    return "\n".join(lines) + "\n", ".".join(path + [f"c{depth}"])


@pytest.fixture(scope="module")
def linear_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("extremes") / "linear.yaml"
    path.write_text(linear_yaml(STEPS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def nested_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    text, deepest = nested_yaml(DEPTH)
    path = tmp_path_factory.mktemp("extremes") / "nested.yaml"
    path.write_text(text, encoding="utf-8")
    return path, deepest


def assert_round_trips(path: Path) -> None:
    pipeline = load_yaml(path)
    text = to_yaml(pipeline)
    again = load_yaml(text)
    assert again == pipeline
    assert to_yaml(again) == text
    assert plain_dag(text) == plain_dag(path.read_text(encoding="utf-8"))


def plain_dag(text: str) -> dict:
    """The ``dag`` mapping as stock PyYAML reads it (libyaml; collector paused, as in the loader:
    with pytest's many live objects its passes over 10k steps' nodes take seconds)."""
    gc.disable()
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["dag"]
    finally:
        gc.enable()


def test_ten_thousand_steps_load_validate_and_round_trip(linear_file: Path) -> None:
    pipeline = load_yaml(linear_file)
    assert list(pipeline.steps)[:3] == ["s0", "s1", "s2"]
    assert len(pipeline.steps) == STEPS + 2
    assert pipeline.steps[f"s{STEPS - 1}"].next == "success"
    assert validate(pipeline) == []
    assert_round_trips(linear_file)


def test_fifty_levels_of_branches_load_validate_and_round_trip(nested_file: tuple[Path, str]) -> None:
    path, deepest = nested_file
    pipeline = load_yaml(path)
    assert validate(pipeline) == []
    names = [name for name, _, _ in pipeline.walk()]
    assert deepest in names
    assert deepest.count(".") == 2 * DEPTH
    assert len(names) == 3 * (DEPTH + 1)
    assert_round_trips(path)


def test_an_error_at_the_bottom_of_fifty_levels_names_the_whole_path(nested_file: tuple[Path, str]) -> None:
    from magnus_jupyter.errors import ValidationError

    path, deepest = nested_file
    text = path.read_text(encoding="utf-8").replace(f"next: done{DEPTH}", "next: nowhere")
    with pytest.raises(ValidationError) as info:
        load_yaml(text)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if ln.endswith("next: nowhere"))) + 1
    assert f"line {line}: step '{deepest}': next names 'nowhere'" in str(info.value)


@pytest.mark.parametrize("which", ["linear", "nested"])
def test_cli_validates_the_extremes(which: str, linear_file: Path, nested_file: tuple[Path, str]) -> None:
    path, count = (linear_file, STEPS + 2) if which == "linear" else (nested_file[0], 3 * (DEPTH + 1))
    proc = subprocess.run([sys.executable, "-m", "magnus_jupyter", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{path}: valid magnus pipeline ({count} steps)"
    assert proc.stderr == ""


def nested_flow(depth: int) -> str:
    """Parallel steps nested ``depth`` deep in flow style: four lists and mappings a level."""
    step = "{s: {type: stub, next: ok}, ok: {type: success}, ko: {type: fail}}"
    for _ in range(depth):
        start = "s" if step.startswith("{s:") else "p"
        step = (f"{{p: {{type: parallel, next: ok, branches: {{b: {{start_at: {start}, steps: {step}}}}}}}, "
                "ok: {type: success}, ko: {type: fail}}")
    return f"dag: {{start_at: p, steps: {step}}}\n"


@pytest.mark.parametrize("parser", ["libyaml", "pure Python"])
def test_branches_load_up_to_the_nesting_limit_and_no_further(parser: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_NESTING (libyaml's own 1,000) allows ~250 levels of branches, five times the 50 promised;
    past it the file is refused with its line, by either parser (PyYAML's own scans deep flow
    nesting in quadratic time, so it stops there too)."""
    from magnus_jupyter import yaml_io
    from magnus_jupyter.errors import PipelineYAMLError

    if parser == "pure Python":
        monkeypatch.setattr(yaml_io, "_Loader", yaml_io._PyLoader)
    depth = 240
    pipeline = load_yaml(nested_flow(depth))
    deepest = [name for name, _, _ in pipeline.walk() if name.endswith(".s")]
    assert deepest == [".".join(["p.b"] * depth) + ".s"]
    with pytest.raises(PipelineYAMLError, match=r"^line 1: nested more than 1,000 levels deep"):
        load_yaml(nested_flow(260))
