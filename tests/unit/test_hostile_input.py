"""Hostile input, as found by probing: every case the issue reproduced, through the command line.

Catalog patterns that leave the run folder, YAML aliases that expand a small
file into millions of nodes, nesting thousands of levels deep, non-finite
numbers that would make the run log invalid JSON, step names too long for a
file name or holding a newline, and names Argo would read as templates. Each
is refused with one located line and exit 2, or (for what only a run can show)
fails its step with a message naming it. Commands that must refuse run with a
GiB of address space at most, and every subprocess with a timeout: both only
catch a blow-up or a hang, they time nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

TIMEOUT = 60  # seconds: a hang detector; every refusal here takes a fraction of a second
MEMORY = 1 << 30  # bytes of address space a refusing command may use (the expansions took 1.5-3 GB)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
        limited: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd, env=env, preexec_fn=_limit_memory if limited else None)


def refused(proc: subprocess.CompletedProcess[str], located: str) -> str:
    """Exit 2 with one ``error:`` line holding ``located`` (further lines only as indented problems)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), proc.stderr
    assert all(line.startswith("  ") for line in lines[1:]), proc.stderr  # each problem on a line of its own
    assert len([line for line in lines if located in line]) == 1, proc.stderr
    return proc.stderr


def strict_json(path: Path) -> Any:
    """A file read as the browser's ``JSON.parse`` reads it: ``NaN`` and ``Infinity`` are errors."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"{path.name} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if fragment in line)


def run_logs(folder: Path) -> list[Path]:
    return sorted((folder / ".run_log_store").glob("*.json"))


# ---- catalog patterns ----------------------------------------------------------------------------


def catalog_pipeline(stage: str, pattern: str) -> str:
    """A shell task with a catalog, inside a parallel branch: its full name is ``fan.b.copy``."""
    return textwrap.dedent(f"""\
        dag:
          start_at: fan
          steps:
            fan:
              type: parallel
              next: success
              branches:
                b:
                  start_at: copy
                  steps:
                    copy:
                      type: task
                      command_type: shell
                      command: "true"
                      next: success
                      catalog:
                        {stage}: [{json.dumps(pattern)}]
                    success: {{type: success}}
                    fail: {{type: fail}}
            success: {{type: success}}
            fail: {{type: fail}}
        """)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``tmp/a/proj`` with a secret two folders up (``tmp/x``) and an earlier run's catalog file."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "secret.txt").write_text("secret")
    folder = tmp_path / "a" / "proj"
    (folder / ".catalog" / "runA").mkdir(parents=True)
    (folder / ".catalog" / "runA" / "local.txt").write_text("from run A")
    (folder / ".run_log_store").mkdir()
    (folder / ".run_log_store" / "runA.json").write_text('{"run_id": "runA", "steps": {}, "status": "FAIL"}')
    (folder / "data").mkdir()
    (folder / "data" / "ok.txt").write_text("ok")
    return folder


ESCAPES = [
    ("put", "../../x/secret.txt", "goes up with '..'"),  # the issue's: a file from outside into the catalog
    ("get", "../runA/local.txt", "goes up with '..'"),  # the issue's: a file written outside the project
    ("put", "data/../../../x/secret.txt", "goes up with '..'"),
    ("put", "/etc/passwd", "is absolute"),
    ("get", "/etc/passwd", "is absolute"),
    ("put", "", "is empty"),
    ("get", "  ", "is empty"),
    ("put", ".", "names the run folder itself"),
    ("get", ".run_log_store/runA.json", "reaches into the run records"),
    ("put", ".catalog/runA/local.txt", "reaches into the run records"),
    ("put", "data/\nok.txt", "holds a control character"),
    ("get", "data/a**", "uses '**' inside a name"),  # pathlib's glob raises ValueError on it
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("stage", "pattern", "phrase"), ESCAPES, ids=[f"{s} {p!r}" for s, p, _ in ESCAPES])
def test_a_catalog_pattern_leaving_the_run_folder_is_refused(project: Path, command: str, stage: str,
                                                            pattern: str, phrase: str) -> None:
    text = catalog_pipeline(stage, pattern)
    (project / "pipeline.yaml").write_text(text)
    line = line_of(text, "catalog:")
    refused(cli(project, command, "pipeline.yaml"),
            f"pipeline.yaml:{line}: step 'fan.b.copy': catalog {stage} pattern {pattern!r} {phrase}")
    tmp = project.parents[1]
    assert sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()) == sorted([
        "x/secret.txt", "a/proj/pipeline.yaml", "a/proj/data/ok.txt", "a/proj/.catalog/runA/local.txt",
        "a/proj/.run_log_store/runA.json"]), "a file was copied, or a run was started"


OUTPUT_PATHS = [
    ("../../x/out.ipynb", "goes up with '..'"),
    ("/tmp/out.ipynb", "is absolute"),
    (".catalog/runA/out.ipynb", "names the run folder or its records"),
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("path", "phrase"), OUTPUT_PATHS, ids=[p for p, _ in OUTPUT_PATHS])
def test_a_notebook_output_path_leaving_the_run_folder_is_refused(project: Path, command: str, path: str,
                                                                  phrase: str) -> None:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), project / "nb.ipynb")
    text = textwrap.dedent(f"""\
        dag:
          start_at: nb
          steps:
            nb:
              type: task
              command_type: notebook
              command: nb.ipynb
              notebook_output_path: {json.dumps(path)}
              next: success
            success: {{type: success}}
            fail: {{type: fail}}
        """)
    (project / "pipeline.yaml").write_text(text)
    line = line_of(text, "notebook_output_path:")
    refused(cli(project, command, "pipeline.yaml"),
            f"pipeline.yaml:{line}: step 'nb': notebook_output_path {path!r} {phrase}")
    assert run_logs(project) == [project / ".run_log_store" / "runA.json"], "a run was started"


def test_a_match_a_symlink_leads_outside_the_run_folder_is_not_taken(project: Path) -> None:
    """put: a link in the run folder to a file outside; get: a folder swapped for a link to outside."""
    outside = project.parents[1] / "x"
    (project / "data" / "leak.txt").symlink_to(outside / "secret.txt")
    (project / "out").mkdir()
    (project / "out" / "x.txt").write_text("to the catalog and back")
    (project / "pipeline.yaml").write_text(textwrap.dedent("""\
        dag:
          start_at: put all
          steps:
            put all: {type: stub, next: put leak, catalog: {put: [data/*.txt, out/x.txt]}}
            put leak: {type: stub, next: swap, on_failure: swap, catalog: {put: [data/leak.txt]}}
            swap: {type: task, command_type: shell, command: "rm -r out && ln -s ../../x out", next: get back}
            get back: {type: stub, next: success, catalog: {get: [out/x.txt]}}
            success: {type: success}
            fail: {type: fail}
        """))
    done = cli(project, "run", "pipeline.yaml", "--run-id", "r1", "--quiet", limited=False)
    assert done.returncode == 1, done.stdout + done.stderr
    log = strict_json(project / ".run_log_store" / "r1.json")
    steps = {name: step for name, step in log["steps"].items()}
    assert steps["put all"]["status"] == "SUCCESS"
    assert sorted(e["name"] for e in steps["put all"]["data_catalog"]) == ["data/ok.txt", "out/x.txt"]
    assert steps["put leak"]["status"] == "FAIL"
    assert "catalog put 'data/leak.txt': no file matches" in steps["put leak"]["message"]
    assert "1 match leads outside the run folder or catalog through a symlink" in steps["put leak"]["message"]
    assert steps["get back"]["status"] == "FAIL"
    assert "not taken" in steps["get back"]["message"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]  # nothing written through the link
    assert not (project / ".catalog" / "r1" / "data" / "leak.txt").exists()


def test_magnus_glob_forms_still_copy(project: Path) -> None:
    (project / "data" / "b.csv").write_text("1,2")
    (project / "pipeline.yaml").write_text(textwrap.dedent("""\
        dag:
          start_at: put
          steps:
            put: {type: stub, next: get, catalog: {put: [data/*.txt, ./data/ok.txt, "**/*.csv"]}}
            get: {type: stub, next: success, catalog: {get: ["**/*"]}}
            success: {type: success}
            fail: {type: fail}
        """))
    done = cli(project, "run", "pipeline.yaml", "--run-id", "r2", "--quiet", limited=False)
    assert done.returncode == 0, done.stdout + done.stderr
    log = strict_json(project / ".run_log_store" / "r2.json")
    assert sorted({e["catalog_relative_path"] for e in log["steps"]["put"]["data_catalog"]}) == [
        "r2/data/b.csv", "r2/data/ok.txt"]
    assert sorted(e["name"] for e in log["steps"]["get"]["data_catalog"]) == ["data/b.csv", "data/ok.txt"]


def test_the_sdk_refuses_the_same_patterns(tmp_path: Path) -> None:
    from magnus_jupyter import Catalog, Pipeline, Task
    from magnus_jupyter.errors import ValidationError

    task = Task("copy", "true", "shell", catalog=Catalog(put=["../secret.txt"]))
    with pytest.raises(ValidationError, match=r"step 'copy': catalog put pattern '\.\./secret\.txt' goes up"):
        Pipeline(steps=[task])
    with pytest.raises(ValidationError, match=r"Catalog\(get='data/x'\): get takes a list of file patterns"):
        Catalog(get="data/x")  # type: ignore[arg-type]


def test_the_catalog_refuses_them_in_a_run_that_skipped_validation(tmp_path: Path) -> None:
    from magnus_jupyter.executor.catalog import Catalog, CatalogError

    catalog = Catalog(tmp_path / "proj", "r")
    (tmp_path / "proj").mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(CatalogError, match=r"^catalog put pattern '\.\./secret\.txt' goes up"):
        catalog.put("../secret.txt")
    with pytest.raises(CatalogError, match=r"^catalog get pattern '/etc/passwd' is absolute"):
        catalog.get("/etc/passwd")
    assert not list((tmp_path / "proj").rglob("secret.txt"))


# ---- YAML aliases and nesting ---------------------------------------------------------------------


def aliased_branches(levels: int, fan: int = 10) -> str:
    """Parallel branches, each level ``fan`` aliases of the one before: ``fan ** levels`` leaves."""
    leaf = "{start_at: s, steps: {s: {type: stub, next: ok}, ok: {type: success}, ko: {type: fail}}}"
    lines = ["dag:", "  start_at: p", "  steps:", "    p:", "      type: parallel", "      next: ok",
             "      branches:", f"        b0: &b0 {leaf}"]
    for i in range(1, levels + 1):
        fanned = ", ".join(f"x{j}: *b{i - 1}" for j in range(fan))
        lines.append(f"        b{i}: &b{i} {{start_at: p, steps: {{p: {{type: parallel, next: ok, branches: "
                     f"{{{fanned}}}}}, ok: {{type: success}}, ko: {{type: fail}}}}}}")
    return "\n".join(lines + ["    ok: {type: success}", "    ko: {type: fail}"]) + "\n"


ALIASED_PARAMETERS = "".join(  # 350 bytes, ten million values
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10 if prev else ['x'] * 10)}]\n"
    for prev, name in zip([""] + list("abcdef"), "abcdefg", strict=True))

TOO_BIG = "its aliases (*name) expand it to more than 1,000,000 values"
PLAIN = "dag:\n  start_at: a\n  steps:\n    a: {type: stub, next: ok}\n    ok: {type: success}\n" \
    "    ko: {type: fail}\n"


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("levels", "line"), [(7, 13), (6, 13)], ids=["ten million leaves", "a million"])
def test_a_pipeline_whose_aliases_expand_past_the_limit_is_refused(tmp_path: Path, command: str,
                                                                  levels: int, line: int) -> None:
    """The issue's: 1.5 KB aborted Python after 3 GB; 1.3 KB took 41 s and was 'valid (3,333,333 steps)'."""
    text = aliased_branches(levels)
    assert len(text) < 2000
    (tmp_path / "pipeline.yaml").write_text(text)
    refused(cli(tmp_path, command, "pipeline.yaml"), f"error: pipeline.yaml:{line}: {TOO_BIG}")
    assert not run_logs(tmp_path)


def test_a_parameters_file_whose_aliases_expand_past_the_limit_is_refused(tmp_path: Path) -> None:
    """The issue's: 350 bytes of -p file ended in a MemoryError traceback."""
    assert len(ALIASED_PARAMETERS) <= 350
    (tmp_path / "params.yaml").write_text(ALIASED_PARAMETERS)
    (tmp_path / "pipeline.yaml").write_text(PLAIN)
    refused(cli(tmp_path, "run", "pipeline.yaml", "-p", "params.yaml"),
            f"error: parameters file params.yaml:6: {TOO_BIG}")
    assert not run_logs(tmp_path)


def test_aliases_within_the_limit_still_expand(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(aliased_branches(3))
    done = cli(tmp_path, "validate", "pipeline.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pipeline.yaml: valid magnus pipeline (3705 steps)"


def test_an_alias_making_a_list_contain_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("size: 3\nloop: &l [1, *l]\n")
    (tmp_path / "pipeline.yaml").write_text("&p [*p]\n")
    refused(cli(tmp_path, "validate", "pipeline.yaml"),
            "error: pipeline.yaml:1: an alias (*name) makes a list or mapping contain itself")
    (tmp_path / "pipeline.yaml").write_text(PLAIN)
    refused(cli(tmp_path, "run", "pipeline.yaml", "-p", "params.yaml"),
            "error: parameters file params.yaml:2: an alias (*name) makes a list or mapping contain itself")


def test_dag_definition_files_repeating_steps_past_the_limit_are_refused(tmp_path: Path) -> None:
    """Ten steps naming the next file, seven files deep: 10 million steps from 1 KB of YAML."""
    for level in range(7):
        kind = "type: stub" if level == 6 else f"type: dag, dag_definition: f{level + 1}.yaml"
        steps = [f"    d{i}: {{{kind}, next: {f'd{i + 1}' if i < 9 else 'ok'}}}" for i in range(10)]
        (tmp_path / f"f{level}.yaml").write_text(
            "\n".join(["dag:", "  start_at: d0", "  steps:", *steps, "    ok: {type: success}",
                       "    ko: {type: fail}"]) + "\n")
    err = refused(cli(tmp_path, "validate", "f0.yaml"), "the pipeline has more than 100,000 steps")
    assert re.match(r"error: f\d\.yaml:\d+: step 'd0\.dag\.d0\.dag\.[^']*': the pipeline has more", err), err


def nested_flow_branches(depth: int) -> str:
    step = "{s: {type: stub, next: ok}, ok: {type: success}, ko: {type: fail}}"
    for _ in range(depth):
        start = "s" if step.startswith("{s:") else "p"
        step = (f"{{p: {{type: parallel, next: ok, branches: {{b: {{start_at: {start}, steps: {step}}}}}}}, "
                "ok: {type: success}, ko: {type: fail}}")
    return f"dag: {{start_at: p, steps: {step}}}\n"


def nested_block(depth: int) -> str:
    return "dag:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(depth)) + "  " * (depth + 1) + "b: 1\n"


DEEP = [
    ("lists", "dag: " + "[" * 10_000 + "]" * 10_000 + "\n", 1),
    ("mappings", "dag: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n", 1),
    ("block mappings", nested_block(1_200), 1_000),
    ("parallel branches", nested_flow_branches(300), 1),
]


@pytest.mark.parametrize(("text", "line"), [(t, n) for _, t, n in DEEP], ids=[i for i, _, _ in DEEP])
def test_deep_nesting_is_refused_with_its_line(tmp_path: Path, text: str, line: int) -> None:
    """The issue's 10-40 KB files took 8-21 s to refuse; PyYAML's scanner is quadratic in the depth."""
    (tmp_path / "pipeline.yaml").write_text(text)
    refused(cli(tmp_path, "validate", "pipeline.yaml"),
            f"error: pipeline.yaml:{line}: nested more than 1,000 levels deep")


# ---- non-finite numbers and strict JSON ----------------------------------------------------------


NOT_JSON = "the run log is strict JSON, which has no NaN or infinity"
NON_FINITE = [
    (["--param", "k=NaN"], {}, "error: --param 'k=NaN' holds NaN; "),
    (["--param", "k=1e999"], {}, "error: --param 'k=1e999' holds infinity; "),
    (["--param", "k=[1, -Infinity]"], {}, "error: --param 'k=[1, -Infinity]' holds infinity; "),
    (["-p", "nan.yaml"], {}, "error: nan.yaml:2: parameter 'k' holds NaN"),
    (["-p", "inf.yaml"], {}, "error: inf.yaml:1: parameter 'deep' holds infinity"),
    ([], {"MAGNUS_PRM_K": "NaN"}, "error: environment variable MAGNUS_PRM_K holds NaN; "),
]


@pytest.mark.parametrize(("args", "env", "located"), NON_FINITE,
                         ids=["--param NaN", "--param 1e999", "--param list", "-p .nan", "-p nested", "env"])
def test_non_finite_parameters_are_refused(tmp_path: Path, args: list[str], env: dict[str, str],
                                           located: str) -> None:
    (tmp_path / "pipeline.yaml").write_text(PLAIN)
    (tmp_path / "nan.yaml").write_text("ok: 1\nk: .nan\n")
    (tmp_path / "inf.yaml").write_text("deep: {a: [1, 1.0e+999]}\n")
    err = refused(cli(tmp_path, "run", "pipeline.yaml", *args, env={**os.environ, **env}), located)
    assert NOT_JSON in err
    assert not run_logs(tmp_path)


def test_a_task_returning_nan_fails_naming_it_and_the_run_log_stays_json(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent("""\
        dag:
          start_at: emit
          steps:
            emit: {type: task, command_type: shell, command: "export MAGNUS_PRM_score=NaN", next: ok,
                   on_failure: after}
            after: {type: stub, next: ok}
            ok: {type: success}
            ko: {type: fail}
        """))
    done = cli(tmp_path, "run", "pipeline.yaml", "--run-id", "r", "--quiet", limited=False)
    assert done.returncode == 0, done.stdout + done.stderr
    log = strict_json(tmp_path / ".run_log_store" / "r.json")
    assert log["steps"]["emit"]["status"] == "FAIL"
    assert log["steps"]["emit"]["message"] == (
        f"values exported by the shell command: parameter 'score' holds NaN; {NOT_JSON} (use null or text)")
    assert log["steps"]["after"]["status"] == "SUCCESS" and log["status"] == "SUCCESS"
    assert "score" not in log["parameters"]


def test_a_python_task_returning_infinity_fails_naming_it(tmp_path: Path) -> None:
    from magnus_jupyter.executor.runners import run_task
    from magnus_jupyter.executor.task import FAIL, TaskSpec

    (tmp_path / "emit.py").write_text("def go():\n    return {'fine': 1.5, 'ratio': [1, float('inf')]}\n")
    result = run_task(TaskSpec(internal_name="go", kind="python", command="emit.go", cwd=str(tmp_path)))
    assert result.status == FAIL
    assert result.message.startswith("values returned by emit.go: parameter 'ratio' holds infinity; ")


def test_the_run_log_is_strict_json_even_if_a_non_finite_value_reaches_it(tmp_path: Path) -> None:
    from magnus_jupyter.errors import ParameterError
    from magnus_jupyter.executor.engine import run_pipeline
    from magnus_jupyter.executor.runlog import RunLogStore
    from magnus_jupyter.yaml_io import load_yaml

    with pytest.raises(ParameterError, match=r"^parameter 'k' holds NaN; the run log is strict JSON"):
        run_pipeline(load_yaml(PLAIN), parameters={"k": math.nan}, cwd=tmp_path)
    store = RunLogStore.create(tmp_path, "r", {"fine": 1})
    store.data["parameters"]["old"] = [math.inf, -math.inf, math.nan]  # e.g. from an older run log retried
    store.write()
    assert strict_json(store.path)["parameters"] == {"fine": 1, "old": ["Infinity", "-Infinity", "NaN"]}


# ---- step names ------------------------------------------------------------------------------------


def test_a_long_step_name_runs_and_its_files_stay_apart(tmp_path: Path) -> None:
    """The issue's: a valid 250-character step name failed with 'File name too long'."""
    first, second = "n" * 249 + "1", "n" * 249 + "2"
    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent(f"""\
        dag:
          start_at: {first}
          steps:
            {first}: {{type: task, command_type: shell, command: "echo one", next: {second}}}
            {second}: {{type: task, command_type: shell, command: "echo two", next: ok}}
            ok: {{type: success}}
            ko: {{type: fail}}
        """))
    done = cli(tmp_path, "run", "pipeline.yaml", "--run-id", "r", "--quiet", limited=False)
    assert done.returncode == 0, done.stdout + done.stderr
    logs = list((tmp_path / ".catalog" / "r").glob("*.execution.log"))
    assert sorted(p.read_text().splitlines()[0] for p in logs) == ["one", "two"]
    assert all(len(p.name.encode()) <= 255 for p in logs)


def test_file_names_from_step_names_are_bounded_and_distinct(tmp_path: Path) -> None:
    from magnus_jupyter.executor.engine import attempt_paths

    names = ["é" * 200 + "a", "é" * 200 + "b", "map.line\nbreak", "Train Models.XGBoost.Train"]
    paths = [attempt_paths(tmp_path, name, "notebook", 12) for name in names]
    files = [Path(p) for pair in paths for p in pair if p]
    assert len(set(files)) == len(files)
    assert all(f.parent == tmp_path and len(f.name.encode()) <= 255 and "\n" not in f.name for f in files)
    assert Path(paths[3][1]).name == "Train_Models.XGBoost.Train.attempt12_out.ipynb"  # readable as before


def test_a_cell_step_with_a_long_name_gets_a_bounded_notebook(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from magnus_jupyter.declare import Declarations

    monkeypatch.chdir(tmp_path)
    store = Declarations()
    store.step("Long " * 50, "a = 1")
    store.step("Long " * 49 + "Longer", "b = 2")
    commands = [step.command for step in store.build().steps.values() if hasattr(step, "command")]
    assert len(set(commands)) == 2
    assert all(len(Path(c).name.encode()) <= 255 and (tmp_path / c).is_file() for c in commands)


def test_a_name_with_a_newline_is_refused_on_one_line(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        dag:
          start_at: "a\\nb"
          steps:
            "a\\nb": {type: stub, next: nowhere}
            p:
              type: parallel
              next: ok
              branches:
                "tab\\there":
                  start_at: s
                  steps: {s: {type: stub, next: ok}, ok: {type: success}, ko: {type: fail}}
            ok: {type: success}
            ko: {type: fail}
        """)
    (tmp_path / "pipeline.yaml").write_text(text)
    err = refused(cli(tmp_path, "validate", "pipeline.yaml"),
                  "pipeline.yaml:4: step 'a\\nb': a step name may not hold a newline")
    assert "pipeline.yaml:4: step 'a\\nb': next names 'nowhere'" in err
    assert "pipeline.yaml:8: step 'p': branch name 'tab\\there' may not hold a newline" in err


def test_a_problem_renders_on_one_line_whatever_the_name() -> None:
    from magnus_jupyter.errors import Problem

    text = str(Problem("next names 'x\ny'", step="a\nb\x1b[2J\u2028c", file="p.yaml", line=3))
    assert text == "p.yaml:3: step 'a\\nb\\x1b[2J\\u2028c': next names 'x\\ny'"


# ---- Argo ------------------------------------------------------------------------------------------


def test_argo_export_refuses_names_argo_would_template(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        dag:
          start_at: "x {{item}}"
          steps:
            "x {{item}}": {type: task, command_type: shell, command: "true", next: ok}
            ok: {type: success}
            ko: {type: fail}
        """)
    (tmp_path / "pipeline.yaml").write_text(text)
    refused(cli(tmp_path, "export", "pipeline.yaml", "--image", "i", "-o", "wf.yaml"),
            "error: cannot export to Argo: pipeline.yaml:4: step 'x {{item}}': its name holds '{{' or '}}'")
    assert not (tmp_path / "wf.yaml").exists()


def test_argo_export_escapes_braces_in_parameter_values(tmp_path: Path) -> None:
    from magnus_jupyter.executor.params import parse_param

    (tmp_path / "pipeline.yaml").write_text(PLAIN)
    value = {"a": "{{item}} and {{workflow.name}}", "b": {"c": [{}]}}
    done = cli(tmp_path, "export", "pipeline.yaml", "--image", "i", "-o", "wf.yaml",
               "--param", f"k={json.dumps(value)}", limited=False)
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load((tmp_path / "wf.yaml").read_text())
    given = {p["name"]: p["value"] for p in manifest["spec"]["arguments"]["parameters"]}
    assert "{{" not in given["k"]  # Argo expands only what starts with {{; JSON never has it outside strings
    assert parse_param(f"k={given['k']}") == ("k", value)  # what execute-step --init reads back
