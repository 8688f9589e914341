"""magnus YAML <-> model: the compat corpus survives, and writing is an exact inverse of reading.

A pipeline drawn in a notebook must run from the command line unchanged, so
``to_yaml`` must lose nothing the model holds and ``load_yaml`` must add nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magnus_jupyter.errors import Problem
from magnus_jupyter.model import Dag, Fail, Map, Parallel, Pipeline, Stub, Success, Task
from magnus_jupyter.validate import catalog_pattern_problem, output_path_problem, validate
from magnus_jupyter.yaml_io import load_yaml, parse_yaml, to_yaml

COMPAT = Path(__file__).resolve().parents[1] / "data" / "compat" / "magnus-0.5"
CORPUS = sorted(p.name for p in COMPAT.glob("*.yaml") if not p.name.endswith(".params.yaml"))


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 8, CORPUS


def step_orders(dag: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """Every pipeline's step order and every parallel step's branch order, by internal name."""
    out = {prefix or "<top>": list(dag["steps"])}
    for name, step in dag["steps"].items():
        path = f"{prefix}.{name}" if prefix else name
        if "branches" in step:
            out[path + " branches"] = list(step["branches"])
            for branch_name, branch in step["branches"].items():
                out.update(step_orders(branch, f"{path}.{branch_name}"))
        if "branch" in step:
            out.update(step_orders(step["branch"], f"{path}.branch"))
    return out


@pytest.mark.parametrize("name", CORPUS)
def test_compat_pipeline_round_trips(name: str, compat_dir: Path) -> None:
    path = compat_dir / name
    pipeline = load_yaml(path)
    assert [p for p in validate(pipeline) if not p.warning] == []
    text = to_yaml(pipeline)
    assert to_yaml(load_yaml(text)) == text
    assert load_yaml(text) == pipeline
    original = yaml.safe_load(path.read_text(encoding="utf-8"))["dag"]
    written = yaml.safe_load(text)["dag"]
    assert written == original
    assert written.get("description") == original.get("description")
    assert step_orders(written) == step_orders(original)


def test_mocking_keeps_a_stubs_arbitrary_fields(compat_dir: Path) -> None:
    pipeline = load_yaml(compat_dir / "mocking.yaml")
    stub = pipeline.steps["step 2"]
    assert isinstance(stub, Stub)
    assert stub.extras == {"what": "is this thing?", "It": "does not matter!!"}
    assert yaml.safe_load(to_yaml(pipeline))["dag"]["steps"]["step 2"]["It"] == "does not matter!!"


ANCHORS = """\
dag:
  start_at: a
  steps:
    a: &stub
      type: stub
      next: b
    b:
      <<: *stub
      next: p
    p:
      type: parallel
      next: success
      branches:
        one: &branch
          start_at: x
          steps:
            x: {type: stub, next: ok}
            ok: {type: success}
            ko: {type: fail}
        two: *branch
    success:
      type: success
    fail:
      type: fail
"""


def test_anchors_aliases_and_merge_keys_are_accepted() -> None:
    pipeline = load_yaml(ANCHORS)
    assert pipeline.steps["b"] == Stub(name="b", next="p")  # merged, then its own next wins
    p = pipeline.steps["p"]
    assert isinstance(p, Parallel)
    assert p.parallel_branches["one"] == p.parallel_branches["two"]
    assert p.parallel_branches["one"] is not p.parallel_branches["two"]  # each branch its own object
    text = to_yaml(pipeline)
    assert "&" not in text and "*" not in text and "<<" not in text  # written out in full
    assert to_yaml(load_yaml(text)) == text
    assert yaml.safe_load(text)["dag"] == yaml.safe_load(ANCHORS)["dag"]


def test_merge_key_does_not_hide_a_real_duplicate() -> None:
    from magnus_jupyter.errors import ValidationError

    text = ANCHORS.replace("      next: p\n", "      next: p\n      next: success\n", 1)
    with pytest.raises(ValidationError, match=r"line 10: step 'b': 'next' is given twice"):
        load_yaml(text)


SCALAR_CASES = ["yes", "No", "on", "~", "null", "''", "12", "0x1F", "1_000", "3.5", ".inf", "-.NaN", "1e3",
                "0o17", "2001-12-14", "'quoted'", "a b", "!!str 3", '!!int "4"']


@pytest.mark.parametrize("scalar", SCALAR_CASES)
def test_reader_resolves_scalars_as_pyyaml_does(scalar: str) -> None:
    """The loader has its own fast resolver; it must agree with PyYAML's safe loader."""
    text = f"k: {scalar}\nl: [{scalar}, x]\nm: {{{scalar}: 1}}\n"
    assert parse_yaml(text) == yaml.safe_load(text)


UNREACHABLE = """\
dag:
  start_at: a
  steps:
    a:
      type: stub
      next: success
    orphan:
      type: stub
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_unreachable_step_is_a_warning_not_an_error(tmp_path: Path) -> None:
    pipeline = load_yaml(UNREACHABLE)  # does not raise
    problems = validate(pipeline)
    assert problems == [Problem("is never reached from start_at (allowed, but it will not run)",
                                step="orphan", file=None, line=7, warning=True)]
    path = tmp_path / "orphan.yaml"
    path.write_text(UNREACHABLE, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "magnus_jupyter", "validate", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {path}:7: step 'orphan': is never reached" in proc.stderr
    assert "valid magnus pipeline" in proc.stdout


# ---- property: random valid pipelines round-trip exactly ----------------------------------------

# validate refuses control characters, line separators and bidi overrides in names (test_hostile_input)
_name_chars = st.characters(blacklist_characters=".%\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
                            blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
NAMES = st.text(_name_chars, min_size=1, max_size=12).filter(lambda s: bool(s.strip()))
TEXT = st.text(st.characters(blacklist_categories=("Cs",)),
               min_size=1, max_size=40).filter(lambda s: bool(s.strip()))
IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), TEXT)
# catalog patterns: relative globs that stay in the run folder (validate refuses the others)
_PART = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                min_size=1, max_size=8)
PATTERNS = st.lists(_PART, min_size=1, max_size=3).map("/".join).filter(
    lambda p: catalog_pattern_problem(p) is None)
OUTPUT_PATHS = PATTERNS.filter(lambda p: output_path_problem(p) is None)  # files the run writes, inside it
EXTRA_KEYS = NAMES.filter(lambda k: k not in {"type", "next", "on_failure", "catalog"})


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, list[str]] | None:
    keys = draw(st.sets(st.sampled_from(["get", "put"])))
    return {k: draw(st.lists(PATTERNS, max_size=3)) for k in sorted(keys)} or None


@st.composite
def leaf(draw: st.DrawFn, name: str) -> Stub | Task:
    kind = draw(st.sampled_from(["stub", "shell", "python", "notebook"]))
    if kind == "stub":
        extras = draw(st.dictionaries(EXTRA_KEYS, SCALARS, max_size=3))
        return Stub(name=name, catalog=draw(catalogs()), extras=extras)
    if kind == "shell":
        return Task(name=name, command_type="shell", command=draw(TEXT), catalog=draw(catalogs()),
                    max_attempts=draw(st.none() | st.integers(1, 5)))
    if kind == "python":
        command = ".".join(draw(st.lists(IDENT, min_size=2, max_size=3)))
        return Task(name=name, command_type=draw(st.sampled_from([None, "python"])), command=command,
                    returns=draw(st.none() | st.lists(IDENT, min_size=1, max_size=3)))
    return Task(name=name, command_type="notebook", command=draw(TEXT) + ".ipynb",
                notebook_output_path=draw(st.none() | OUTPUT_PATHS))


@st.composite
def pipelines(draw: st.DrawFn, depth: int = 3) -> Pipeline:
    names = draw(st.lists(NAMES, min_size=3, max_size=5, unique=True))
    *body, success, fail = names
    steps: list[Any] = []
    for name in body:
        kinds = ["leaf", "leaf"] + (["parallel", "map", "dag"] if depth > 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "leaf":
            steps.append(draw(leaf(name)))
        elif kind == "parallel":
            branch_names = draw(st.lists(NAMES, min_size=1, max_size=2, unique=True))
            branches = {b: draw(pipelines(depth - 1)) for b in branch_names}
            steps.append(Parallel(name=name, parallel_branches=branches,
                                  failure_policy=draw(st.sampled_from([None, "fail_fast", "finish_all"]))))
        elif kind == "map":
            steps.append(Map(name=name, iterate_on=draw(IDENT), iterate_as=draw(IDENT),
                             branch=draw(pipelines(depth - 1))))
        else:
            steps.append(Dag(name=name, branch=draw(pipelines(depth - 1))))
    following = [s.name for s in steps[1:]] + [success]
    for index, (step, nxt) in enumerate(zip(steps, following, strict=True)):
        step.next = nxt
        later = following[index + 1:] + [fail]
        step.on_failure = draw(st.none() | st.sampled_from(later))  # forward only: no cycles
    pipeline = Pipeline(start_at=steps[0].name, description=draw(st.none() | TEXT),
                        max_time=draw(st.none() | st.integers(1, 10**5)))
    order = draw(st.permutations([*steps, Success(name=success), Fail(name=fail)]))
    for step in order:
        pipeline.add(step)
    return pipeline


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_random_valid_pipelines_round_trip_exactly(pipeline: Pipeline) -> None:
    assert [p for p in validate(pipeline) if not p.warning] == []
    text = to_yaml(pipeline)
    again = load_yaml(text)
    assert again == pipeline
    assert list(again.steps) == list(pipeline.steps)
    assert to_yaml(again) == text


def test_a_loaded_pipeline_pickles_with_its_locations(compat_dir: Path) -> None:
    """Steps travel to worker processes; their file:line must travel with them."""
    import pickle

    pipeline = load_yaml(compat_dir / "on-failure.yaml")
    again = pickle.loads(pickle.dumps(pipeline))
    assert again == pipeline
    step = again.steps["step 1"]
    assert step.source == pipeline.steps["step 1"].source
    assert step.source.line == 16
    assert step.source.line_of("on_failure") == 21


TRICKY_NAMES = [
    "<<", "=", "yes", "null", "~", "1", "- a", "a: b", "#x", "&a", "*a", "!t", "'q'", '"q"', "[x]", "{x}",
    " lead", "trail ", "multi\nline", "?", "|", ">", "@x", "`x`", "tab\there", "\u2028sep", "---", "x #y",
    "\ufeffbom", "emoji 🎉", "\x85nel",
]


def test_names_that_look_like_yaml_syntax_round_trip() -> None:
    """Step names and stub values that YAML would read as something else must come back as text.

    Names with a newline or other control character come back too, though validate refuses them.
    """
    pipeline = Pipeline(start_at=TRICKY_NAMES[0])
    for index, name in enumerate(TRICKY_NAMES):
        following = TRICKY_NAMES[index + 1] if index + 1 < len(TRICKY_NAMES) else "ok"
        pipeline.add(Stub(name=name, next=following, extras={f"k{index}": name}))
    pipeline.add(Success(name="ok"))
    pipeline.add(Fail(name="ko"))
    text = to_yaml(pipeline)
    again = load_yaml(text, validate=False)
    assert again == pipeline
    assert list(again.steps) == list(pipeline.steps)
    assert to_yaml(again) == text


def test_dag_definition_files_load_relative_to_the_file_naming_them(tmp_path: Path) -> None:
    """A nested file's own dag_definition is found next to it; writing keeps the reference, not a copy."""
    (tmp_path / "sub").mkdir()

    def write(path: Path, start: str, step: str) -> None:
        path.write_text(f"dag:\n  start_at: {start}\n  steps:\n    {start}: {step}\n"
                        "    ok: {type: success}\n    ko: {type: fail}\n", encoding="utf-8")

    write(tmp_path / "sub" / "leaf.yaml", "y", "{type: stub, next: ok}")
    write(tmp_path / "sub" / "inner.yaml", "x", "{type: dag, dag_definition: leaf.yaml, next: ok}")
    main = tmp_path / "main.yaml"
    write(main, "a", "{type: dag, dag_definition: sub/inner.yaml, next: ok}")
    pipeline = load_yaml(main)
    inner = ["a.dag.x", "a.dag.x.dag.y", "a.dag.x.dag.ok", "a.dag.x.dag.ko", "a.dag.ok", "a.dag.ko"]
    assert sorted(name for name, _, _ in pipeline.walk()) == sorted(["a", *inner, "ok", "ko"])
    text = to_yaml(pipeline)
    assert yaml.safe_load(text)["dag"]["steps"]["a"] == {"type": "dag", "dag_definition": "sub/inner.yaml",
                                                         "next": "ok"}
    copy = tmp_path / "copy.yaml"
    copy.write_text(text, encoding="utf-8")
    assert load_yaml(copy) == pipeline
    assert to_yaml(load_yaml(copy)) == text


@pytest.mark.parametrize("name", ["dag.yaml", "dag_pipeline.yaml", "dag: odd.yaml", "{x}.yaml"])
def test_relative_paths_that_look_like_yaml_are_read_as_files(name: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A string is YAML text only if it has a newline, or starts like a pipeline and names no file."""
    (tmp_path / name).write_text(UNREACHABLE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert "orphan" in load_yaml(name).steps
    one_line = "dag: {start_at: a, steps: {a: {type: stub, next: s}, s: {type: success}, f: {type: fail}}}"
    assert list(load_yaml(one_line).steps) == ["a", "s", "f"]
