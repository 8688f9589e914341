"""Malformed pipelines: each must give exit 2 and one located message, never a traceback.

A user who mistypes a pipeline should be told where (file:line, the step's full
internal name) and what, in words; these cases pin that for every rule.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magnus_jupyter.errors import ParameterError, PipelineError, PipelineYAMLError, ValidationError
from magnus_jupyter.validate import validate
from magnus_jupyter.yaml_io import load_yaml

TIMEOUT = 30  # seconds per subprocess: a hang fails the test instead of stalling the suite


@dataclass
class Case:
    """One malformed pipeline and what its error must say."""

    id: str
    text: str | bytes
    phrase: str  # a piece of the specific message
    line: int | None = None  # the line the error must name, when there is one
    step: str | None = None  # the step's full internal name, when a step is involved
    files: dict[str, str] = field(default_factory=dict)  # other files next to it (dag_definition)
    file: str = "pipeline.yaml"  # the file the error is in


def dag(steps: str, start_at: str = "a", extra: str = "") -> str:
    """A pipeline around ``steps`` (YAML for the step mapping, indented by four spaces)."""
    body = textwrap.indent(textwrap.dedent(steps).strip("\n"), "    ")
    return f"dag:\n  start_at: {start_at}\n{extra}  steps:\n{body}\n"


TERMINALS = """
success:
  type: success
fail:
  type: fail
"""


def with_terminals(steps: str) -> str:
    return textwrap.dedent(steps).strip("\n") + "\n" + TERMINALS.strip("\n")


def branchy(branch_steps: str) -> str:
    """A parallel step 'p' with one branch 'b' holding ``branch_steps`` (start_at x)."""
    inner = textwrap.indent(textwrap.dedent(branch_steps).strip("\n"), " " * 12)
    return (
        "dag:\n  start_at: p\n  steps:\n"
        "    p:\n      type: parallel\n      next: success\n      branches:\n"
        "        b:\n          start_at: x\n          steps:\n"
        f"{inner}\n"
        "    success:\n      type: success\n    fail:\n      type: fail\n"
    )


def nested(depth: int, last_next: str) -> str:
    """Parallel steps p0..p{depth-1}, each with one branch 'b'; the innermost stub goes to ``last_next``."""
    out = ["dag:", "  start_at: p0", "  steps:"]
    ind = "    "
    for i in range(depth):
        out += [f"{ind}p{i}:", f"{ind}  type: parallel", f"{ind}  next: success", f"{ind}  branches:",
                f"{ind}    b:", f"{ind}      start_at: p{i + 1}", f"{ind}      steps:"]
        ind += " " * 8
    out += [f"{ind}p{depth}:", f"{ind}  type: stub", f"{ind}  next: {last_next}"]
    for _ in range(depth + 1):
        out += [f"{ind}success:", f"{ind}  type: success", f"{ind}fail:", f"{ind}  type: fail"]
        ind = ind[:-8]
    return "\n".join(out) + "\n"


DEEP_PATH = ".".join(f"p{i}.b" for i in range(50)) + ".p50"
DEEP_TEXT = nested(50, "nowhere")
DEEP_LINE = DEEP_TEXT.splitlines().index(" " * (4 + 8 * 50) + "p50:") + 1

CASES = [
    # -- not YAML, or not a pipeline at all
    Case("tab-indent", "dag:\n  start_at: a\n\tsteps: {}\n",
         "found a tab character that violates indentation", line=3),
    Case("unclosed-bracket", "dag:\n  start_at: a\n  steps: [a, b\n",
         "YAML syntax error: while parsing a flow sequence (from line 3), did not find expected ',' or ']'",
         line=4),
    Case("unclosed-quote", 'dag:\n  start_at: "a\n  steps: {}\n',
         "YAML syntax error: while scanning a quoted scalar (from line 2), found unexpected end of stream",
         line=4),
    Case("undefined-alias", "dag:\n  start_at: *nothing\n", "YAML syntax error: found undefined alias",
         line=2),
    Case("bad-int-tag", dag(with_terminals("a:\n  type: stub\n  next: !!int next")),
         "cannot read 'next' as !!int", line=6),
    Case("bad-timestamp-tag", "dag:\n  start_at: !!timestamp x\n", "cannot read 'x' as !!timestamp", line=2),
    Case("python-tag", "dag:\n  start_at: !!python/object/apply:os.system [echo hi]\n",
         "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'",
         line=2),
    Case("empty-file", "", "the file is empty"),
    Case("comments-only", "# nothing here\n", "the file is empty"),
    Case("not-utf8", b"dag:\n  start_at: \xff\xfe\n", "not a UTF-8 text file"),
    Case("a-list", "- dag\n- steps\n", "expected a mapping with a 'dag' key, found a list", line=1),
    Case("a-scalar", "just some words\n", "expected a mapping with a 'dag' key, found text", line=1),
    Case("no-dag-key", "pipeline:\n  start_at: a\n", "no 'dag' key", line=1),
    Case("unknown-top-key", dag(with_terminals("a:\n  type: stub\n  next: success")) + "extras: 1\n",
         "unknown top-level key 'extras'", line=11),
    Case("top-key-typo", "dga:\n  start_at: a\n", "did you mean 'dag'?", line=1),
    Case("dag-not-mapping", "dag: [a, b]\n", "must be a mapping with start_at and steps", line=1),
    Case("pipeline-field-typo", dag(with_terminals("a:\n  type: stub\n  next: success"),
                                    extra="  descripton: hi\n"),
         "unknown field 'descripton' in the pipeline (did you mean 'description'?)", line=3),
    # -- step types and fields
    Case("unknown-type", dag(with_terminals("a:\n  type: stubb\n  next: success")),
         "unknown step type 'stubb'", line=5, step="a"),
    Case("no-type", dag(with_terminals("a:\n  next: success")), "no 'type'", line=4, step="a"),
    Case("unknown-field", dag(with_terminals("a:\n  type: task\n  command: m.f\n  nxt: success\n"
                                             "  next: success")),
         "unknown field 'nxt' for a task step (did you mean 'next'?)", line=7, step="a"),
    Case("step-not-mapping", dag(with_terminals("a: stub")), "a step must be a mapping", line=4, step="a"),
    Case("step-name-not-text", dag(with_terminals("a:\n  type: stub\n  next: success\n7:\n  type: stub\n"
                                                  "  next: success")),
         "a step name must be text", line=7),
    Case("missing-next", dag(with_terminals("a:\n  type: stub")), "missing 'next'", line=4, step="a"),
    Case("missing-next-task", dag(with_terminals("a:\n  type: task\n  command_type: shell\n  command: ls")),
         "missing 'next'", line=4, step="a"),
    Case("next-missing-step", dag(with_terminals("a:\n  type: stub\n  next: b")),
         "next names 'b', which is not a step of the pipeline", line=6, step="a"),
    Case("on-failure-missing-step",
         dag(with_terminals("a:\n  type: stub\n  next: success\n  on_failure: oops")),
         "on_failure names 'oops', which is not a step", line=7, step="a"),
    Case("start-at-missing-step", dag(with_terminals("a:\n  type: stub\n  next: success"), start_at="zz"),
         "start_at names 'zz', which is not a step of the pipeline", line=2),
    Case("start-at-success", dag(with_terminals("a:\n  type: stub\n  next: success"), start_at="success"),
         "start_at of the pipeline cannot be the success step", line=2),
    Case("no-success", dag("a:\n  type: stub\n  next: fail\nfail:\n  type: fail"),
         "must have exactly one step of type success", line=1),
    Case("two-fails", dag(with_terminals("a:\n  type: stub\n  next: success\nfail2:\n  type: fail")),
         "exactly one step of type fail (found 2: fail2, fail)", line=1),
    Case("branch-no-success", branchy("x:\n  type: stub\n  next: fail\nfail:\n  type: fail"),
         "branch 'p.b' must have exactly one step of type success", line=8, step="p.b"),
    Case("branch-two-fails", branchy(with_terminals("x:\n  type: stub\n  next: success\nf2:\n  type: fail")),
         "branch 'p.b' must have exactly one step of type fail (found 2: f2, fail)", line=8, step="p.b"),
    Case("branch-missing-start-at",
         branchy(with_terminals("x:\n  type: stub\n  next: success")).replace("          start_at: x\n", ""),
         "branch 'p.b' has no start_at", line=8, step="p.b"),
    Case("cycle-2", dag(with_terminals("a:\n  type: stub\n  next: b\nb:\n  type: stub\n  next: success\n"
                                       "  on_failure: a")),
         "next/on_failure form a cycle", line=4, step="a"),
    Case("cycle-3", dag(with_terminals("a:\n  type: stub\n  next: b\nb:\n  type: stub\n  next: c\n"
                                       "c:\n  type: stub\n  next: a")),
         "form a cycle", line=4, step="a"),
    Case("self-loop", dag(with_terminals("a:\n  type: stub\n  next: a")),
         "next points back at the step itself", line=6, step="a"),
    Case("dot-in-name", dag(with_terminals("a.b:\n  type: stub\n  next: success"), start_at="a.b"),
         "may not contain '.'", line=4, step="a.b"),
    Case("percent-in-name", dag(with_terminals("a%b:\n  type: stub\n  next: success"), start_at="a%b"),
         "may not contain '%'", line=4, step="a%b"),
    Case("duplicate-step", dag(with_terminals("a:\n  type: stub\n  next: success\na:\n  type: stub\n"
                                              "  next: success")),
         "step name 'a' is given twice in the pipeline; the names must differ", line=7, step="a"),
    Case("duplicate-branch-step",
         branchy(with_terminals("x:\n  type: stub\n  next: success\nx:\n  type: stub\n  next: success")),
         "step name 'x' is given twice in branch 'p.b'", line=14, step="p.b.x"),
    Case("duplicate-field", dag(with_terminals("a:\n  type: stub\n  next: success\n  next: fail")),
         "'next' is given twice in the step", line=7, step="a"),
    Case("duplicate-branch", dag(with_terminals("""
        a:
          type: parallel
          next: success
          branches:
            b: {start_at: x, steps: {x: {type: stub, next: ok}, ok: {type: success}, ko: {type: fail}}}
            b: {start_at: y, steps: {y: {type: stub, next: ok}, ok: {type: success}, ko: {type: fail}}}""")),
         "branch name 'b' is given twice in the step", line=9, step="a"),
    Case("duplicate-start-at",
         dag(with_terminals("a:\n  type: stub\n  next: success"), extra="  start_at: b\n"),
         "'start_at' is given twice in the pipeline", line=3),
    Case("duplicate-dag", "dag:\n  start_at: a\ndag:\n  start_at: b\n", "'dag' is given twice in the file",
         line=3),
    Case("two-documents", "dag: {}\n---\ndag: {}\n",
         "expected a single document in the stream (from line 1), but found another document", line=2),
    Case("dag-empty", "dag:\n", "the pipeline must be a mapping with start_at and steps, found nothing",
         line=1),
    Case("map-no-iterate-on", dag(with_terminals("""
        a:
          type: map
          iterate_as: x
          next: success
          branch:
            start_at: y
            steps:
              y: {type: stub, next: success}
              success: {type: success}
              fail: {type: fail}""")),
         "a map step needs 'iterate_on'", line=4, step="a"),
    Case("map-no-branch", dag(with_terminals("a:\n  type: map\n  iterate_on: xs\n  iterate_as: x\n"
                                             "  next: success")),
         "a map step needs a 'branch'", line=4, step="a"),
    Case("map-branch-error", dag(with_terminals("""
        a:
          type: map
          iterate_on: xs
          iterate_as: x
          next: success
          branch:
            start_at: y
            steps:
              y: {type: stub, next: nope}
              success: {type: success}
              fail: {type: fail}""")),
         "next names 'nope'", line=12, step="a.{x}.y"),
    Case("notebook-not-ipynb", dag(with_terminals("a:\n  type: task\n  command_type: notebook\n"
                                                  "  command: train.py\n  next: success")),
         "a notebook task's command must be a .ipynb path", line=7, step="a"),
    Case("python-not-dotted",
         dag(with_terminals("a:\n  type: task\n  command: print hello\n  next: success")),
         "a python task's command must be a dotted path", line=6, step="a"),
    Case("bad-command-type", dag(with_terminals("a:\n  type: task\n  command_type: bash\n  command: ls\n"
                                                "  next: success")),
         "command_type must be one of python, notebook, shell", line=6, step="a"),
    Case("success-with-next", dag(with_terminals("a:\n  type: stub\n  next: success")).replace(
        "type: success\n", "type: success\n      next: a\n"),
         "a success step takes no other fields, found 'next'", line=9, step="success"),
    Case("fail-with-field", dag(with_terminals("a:\n  type: stub\n  next: success")) + "      colour: red\n",
         "a fail step takes no other fields", line=11, step="fail"),
    # -- wrong types
    Case("next-number", dag(with_terminals("a:\n  type: stub\n  next: 3")),
         "next must be non-empty text, found a number 3", line=6, step="a"),
    Case("next-list", dag(with_terminals("a:\n  type: stub\n  next: [a, b]")),
         "next must be non-empty text, found a list", line=6, step="a"),
    Case("steps-list", "dag:\n  start_at: a\n  steps: []\n",
         "steps in the pipeline must be a mapping of step name to step, found a list",
         line=3),
    Case("no-steps", "dag:\n  start_at: a\n", "the pipeline has no steps", line=1),
    Case("branches-number", dag(with_terminals("a:\n  type: parallel\n  next: success\n  branches: 5")),
         "branches must be a mapping of branch name to pipeline, found a number 5", line=7, step="a"),
    Case("catalog-get-number", dag(with_terminals("a:\n  type: stub\n  next: success\n  catalog: {get: 3}")),
         "'get' must be a list of file patterns", line=7, step="a"),
    Case("catalog-unknown-key",
         dag(with_terminals("a:\n  type: stub\n  next: success\n  catalog: {get: [a], pot: [b]}")),
         "catalog takes only 'get' and 'put', not 'pot' (did you mean 'put'?)", line=7, step="a"),
    Case("branches-empty", dag(with_terminals("a:\n  type: parallel\n  next: success\n  branches: {}")),
         "a parallel step needs at least one branch", line=7, step="a"),
    Case("task-without-command", dag(with_terminals("a:\n  type: task\n  next: success")),
         "a task needs a 'command'", line=4, step="a"),
    Case("dag-without-branch", dag(with_terminals("a:\n  type: dag\n  next: success")),
         "a dag step needs 'dag_definition' (a YAML file) or an inline 'branch'", line=4, step="a"),
    Case("branch-name-with-dot", dag(with_terminals("""
        a:
          type: parallel
          next: success
          branches:
            x.y: {start_at: s, steps: {s: {type: stub, next: ok}, ok: {type: success}, k: {type: fail}}}""")),
         "branch name 'x.y' may not contain '.' or '%'", line=7, step="a"),
    Case("max-attempts-zero", dag(with_terminals("a:\n  type: task\n  command: m.f\n  next: success\n"
                                                 "  max_attempts: 0")),
         "max_attempts must be a whole number of at least 1", line=8, step="a"),
    Case("start-at-number", dag(with_terminals("a:\n  type: stub\n  next: success"), start_at="5"),
         "start_at in the pipeline must be non-empty text, found a number 5", line=2),
    # -- deep and multi-file
    Case("error-50-deep", DEEP_TEXT, "next names 'nowhere', which is not a step of branch",
         line=DEEP_LINE + 2, step=DEEP_PATH),
    Case("dag-definition-missing", dag(with_terminals("a:\n  type: dag\n  dag_definition: nowhere.yaml\n"
                                                      "  next: success")),
         "no such file", line=6, step="a"),
    Case("dag-definition-self", dag(with_terminals("a:\n  type: dag\n  dag_definition: pipeline.yaml\n"
                                                   "  next: success")),
         "dag_definition 'pipeline.yaml' includes itself", line=6, step="a"),
    Case("dag-definition-cycle",
         dag(with_terminals("a:\n  type: dag\n  dag_definition: inner.yaml\n  next: success")),
         "dag_definition 'pipeline.yaml' includes itself (pipeline.yaml -> inner.yaml -> pipeline.yaml)",
         line=6, step="a.dag.x", file="inner.yaml",
         files={"inner.yaml": dag(with_terminals("x:\n  type: dag\n  dag_definition: pipeline.yaml\n"
                                                 "  next: success"), start_at="x")}),
    Case("dag-definition-device", dag(with_terminals("a:\n  type: dag\n  dag_definition: /dev/zero\n"
                                                     "  next: success")),
         "dag_definition '/dev/zero' cannot be used: /dev/zero: is not a regular file", line=6,
         step="a"),
    Case("dag-definition-bad-inner",
         dag(with_terminals("a:\n  type: dag\n  dag_definition: inner.yaml\n  next: success")),
         "next names 'ghost'", line=6, step="a.dag.x", file="inner.yaml",
         files={"inner.yaml": dag(with_terminals("x:\n  type: stub\n  next: ghost"), start_at="x")}),
]


def write_case(case: Case, tmp_path: Path) -> Path:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "pipeline.yaml"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8")
    return path


def test_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_rejects_with_a_located_message(case: Case, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "magnus_jupyter", "validate", str(path)],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
    )
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err
    assert proc.stdout == ""
    assert case.file in err
    assert case.phrase in err, err
    located = [ln for ln in err.splitlines() if case.phrase in ln]
    assert located, err
    if case.line is not None:
        assert any(f"{tmp_path / case.file}:{case.line}:" in ln for ln in located), err
    if case.step is not None:
        assert any(f"'{case.step}'" in ln for ln in located), err
    lines = err.splitlines()
    assert len(lines) == 1 or lines[0].endswith("problems):"), err  # one problem, one line


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_load_yaml_raises_a_picklable_pipeline_error(case: Case, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    with pytest.raises(PipelineError) as info:
        load_yaml(path)
    exc = info.value
    assert isinstance(exc, ValidationError | PipelineYAMLError)
    assert case.phrase in str(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert str(again) == str(exc)
    if isinstance(exc, ValidationError):
        assert again.problems == exc.problems


def test_error_messages_are_one_line_per_problem(tmp_path: Path) -> None:
    """Several problems in one file are all reported, each on its own located line."""
    text = dag(with_terminals("a:\n  type: stubb\n  next: success\nb:\n  type: stub\n  nxt: success"))
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load_yaml(path)
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid pipeline (2 problems):"
    assert lines[1] == f"  {path}:5: step 'a': unknown step type 'stubb' (did you mean 'stub'?); " \
        "one of task, stub, parallel, map, dag, success, fail"
    # a stub may carry any field (magnus allows it), so a typo'd 'next' shows up as a missing one
    assert lines[2] == f"  {path}:7: step 'b': missing 'next': a stub step must say which step follows it " \
        "('nxt' looks like a typo for it)"


def _all_subclasses(cls: type) -> list[type]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _all_subclasses(sub)]


@pytest.mark.parametrize("cls", _all_subclasses(PipelineError), ids=lambda c: c.__name__)
def test_every_pipeline_error_pickles(cls: type[PipelineError]) -> None:
    """Errors cross process boundaries (workers, Dask); each must come back with the same message."""
    exc = cls("pipeline.yaml:3: step 'a': something is wrong")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is cls
    assert str(again) == str(exc)
    assert again.exit_code == exc.exit_code


# ---- fuzz: any mangled pipeline gives a PipelineError or loads, never another exception ----------

COMPAT = Path(__file__).resolve().parents[1] / "data" / "compat" / "magnus-0.5"
SEEDS = [p.read_text(encoding="utf-8") for p in sorted(COMPAT.glob("*.yaml"))
         if not p.name.endswith(".params.yaml")]
TOKENS = [" ", "\t", ":", "- ", "[", "]", "{", "}", '"', "'", "&a ", "*a", "<<: *a", "!!int ", "!!binary ",
          "!!timestamp ", "!!set ", "? ", "|", ">", "#", "\n", "null", "3", "type: map", "type: dag",
          "branches:", "branch:", "next:", "%", ".", "~", "!!python/name:os.system ", "---", "...", "\x00"]
TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!set", "!!omap", "!!seq",
        "!!map", "!!str", "!local", "!!python/tuple"]


@st.composite
def mangled(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEEDS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "cut", "tag"]))
        if op == "delete" and len(lines) > 1:
            del lines[at]
        elif op == "insert":
            col = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:col] + draw(st.sampled_from(TOKENS)) + lines[at][col:]
        elif op == "duplicate":
            lines.insert(at, lines[draw(st.integers(0, len(lines) - 1))])
        elif op == "cut":
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        elif ": " in lines[at]:  # an explicit tag on a value, e.g. ``next: !!int step 2``
            key, value = lines[at].split(": ", 1)
            lines[at] = f"{key}: {draw(st.sampled_from(TAGS))} {value}"
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(mangled())
def test_mangled_pipelines_fail_only_with_pipeline_errors(text: str) -> None:
    try:
        validate(load_yaml(text))
    except PipelineError as exc:
        assert "Traceback" not in str(exc)
        assert str(pickle.loads(pickle.dumps(exc))) == str(exc)


def test_a_pipe_given_as_the_pipeline_or_its_parameters_is_refused_not_read(tmp_path: Path) -> None:
    """A named pipe would block the read forever: every reader refuses it by its path, at once."""
    from magnus_jupyter.executor.params import load_parameters_file

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    refused = rf"{re.escape(str(fifo))}: is not a regular file$"
    with pytest.raises(PipelineError, match=f"^{refused}"):
        load_yaml(fifo)
    with pytest.raises(ParameterError, match=f"^parameters file {refused}"):
        load_parameters_file(fifo)
