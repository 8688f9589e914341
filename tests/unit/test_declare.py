"""The declaration store: cells -> one valid magnus pipeline, re-runs replace, errors name the cell."""

from __future__ import annotations

import pickle
from pathlib import Path

import nbformat
import pytest
import yaml

from magnus_jupyter.declare import DeclarationError, Declarations
from magnus_jupyter.errors import PipelineError, ValidationError
from magnus_jupyter.model import Fail, Map, Parallel, Pipeline, Stub, Success, Task
from magnus_jupyter.validate import validate
from magnus_jupyter.yaml_io import load_yaml, to_yaml

GET_FEATURES = "import numpy as np\nX = np.random.rand(1000, 8); n_rows = len(X)\n"
TRAIN_MODELS = ("XGBoost: notebooks/prepare_xgboost.ipynb >> notebooks/train_xgboost.ipynb\n"
                "RF model: notebooks/train_rf.ipynb\n")

# The DESIGN.md example written by hand as magnus 0.5 YAML.
EXPECTED = """
dag:
  start_at: Get Features
  steps:
    Get Features:
      type: task
      command_type: notebook
      command: .magnus/cells/get_features.ipynb
      returns: [n_rows]
      next: Train Models
    Train Models:
      type: parallel
      next: Ensemble Modelling
      branches:
        XGBoost:
          start_at: prepare_xgboost
          steps:
            prepare_xgboost:
              type: task
              command_type: notebook
              command: notebooks/prepare_xgboost.ipynb
              next: train_xgboost
            train_xgboost:
              type: task
              command_type: notebook
              command: notebooks/train_xgboost.ipynb
              next: success
            success: {type: success}
            fail: {type: fail}
        RF model:
          start_at: train_rf
          steps:
            train_rf:
              type: task
              command_type: notebook
              command: notebooks/train_rf.ipynb
              next: success
            success: {type: success}
            fail: {type: fail}
    Ensemble Modelling:
      type: task
      command_type: notebook
      command: notebooks/ensemble.ipynb
      next: success
    success: {type: success}
    fail: {type: fail}
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Declarations:
    monkeypatch.chdir(tmp_path)
    return Declarations()


def declare_design_example(store: Declarations) -> None:
    store.step("Get Features", GET_FEATURES, returns="n_rows")
    store.parallel("Train Models", TRAIN_MODELS, next="Ensemble Modelling")
    store.step("Ensemble Modelling", notebook="notebooks/ensemble.ipynb")


def roundtrip(pipeline: Pipeline) -> Pipeline:
    loaded = load_yaml(to_yaml(pipeline))
    assert loaded == pipeline
    return loaded


def test_design_example_is_the_hand_written_magnus_yaml(store: Declarations) -> None:
    declare_design_example(store)
    pipeline = store.build()
    assert yaml.safe_load(to_yaml(pipeline)) == yaml.safe_load(EXPECTED)
    assert roundtrip(pipeline) == load_yaml(EXPECTED)
    assert validate(pipeline) == []  # no warnings either: every step is reachable


def test_every_branch_has_its_own_success_and_fail(store: Declarations) -> None:
    declare_design_example(store)
    graphs = [store.build()]
    graphs += [b for _, step, _ in graphs[0].walk() for b in step.branches().values()]
    assert len(graphs) == 3
    for graph in graphs:
        assert isinstance(graph.terminal(Success), Success)
        assert isinstance(graph.terminal(Fail), Fail)


def test_a_cell_step_becomes_a_notebook_with_a_parameters_cell(store: Declarations, tmp_path: Path) -> None:
    declare_design_example(store)
    task = store.build().steps["Get Features"]
    assert isinstance(task, Task) and task.command_type == "notebook" and task.returns == ["n_rows"]
    notebook = nbformat.read(tmp_path / task.command, as_version=4)
    nbformat.validate(notebook)
    first, body = notebook.cells
    assert first.metadata["tags"] == ["parameters"] and first.source == ""
    assert body.cell_type == "code" and body.source == GET_FEATURES.strip("\n")
    assert notebook.metadata["kernelspec"]["name"] == "python3"  # papermill needs a kernel name


def test_rerunning_a_cell_replaces_it_in_place(store: Declarations, tmp_path: Path) -> None:
    declare_design_example(store)
    store.step("Get Features", "n_rows = 7\n", returns="n_rows")
    store.parallel("Train Models", "RF model: notebooks/train_rf.ipynb\n", next="Ensemble Modelling")
    pipeline = store.build()
    assert list(pipeline.steps) == ["Get Features", "Train Models", "Ensemble Modelling", "success", "fail"]
    assert list(pipeline.steps["Train Models"].branches()) == ["RF model"]
    notebook = nbformat.read(tmp_path / ".magnus/cells/get_features.ipynb", as_version=4)
    assert notebook.cells[1].source == "n_rows = 7"
    assert sorted(p.name for p in (tmp_path / ".magnus/cells").iterdir()) == ["get_features.ipynb"]


def test_names_that_clean_to_the_same_file_get_their_own_notebooks(store: Declarations) -> None:
    store.step("Get Features", "a = 1")
    store.step("get features!", "b = 2")
    store.step("Get Features", "a = 3")  # re-declared: keeps its own file
    commands = [store.build().steps[n].command for n in ("Get Features", "get features!")]
    assert commands[0] == ".magnus/cells/get_features.ipynb"
    assert commands[1].startswith(".magnus/cells/get_features_") and commands[1].endswith(".ipynb")
    sources = [nbformat.read(c, as_version=4).cells[1].source for c in commands]
    assert sources == ["a = 3", "b = 2"]


def test_an_unwritable_cells_folder_is_a_located_error(store: Declarations, tmp_path: Path) -> None:
    (tmp_path / ".magnus").write_text("a file where the folder should be")
    with pytest.raises(DeclarationError, match=r"^%%magnus_step 'S': cannot write \.magnus/cells/s\.ipynb: "):
        store.step("S", "x = 1")
    assert store.names == []


def test_a_renamed_cell_with_a_cell_id_replaces_its_old_step(store: Declarations) -> None:
    store.step("Load", "x = 1", cell="cell-1")
    store.step("Train", "y = 2", cell="cell-2")
    store.step("Load data", "x = 1", cell="cell-1")
    store.step("Load data", "x = 2", cell="cell-1")
    pipeline = store.build()
    assert list(pipeline.steps) == ["Load data", "Train", "success", "fail"]
    assert pipeline.start_at == "Load data" and pipeline.steps["Load data"].next == "Train"


def test_a_renamed_cell_without_a_cell_id_is_a_new_step(store: Declarations) -> None:
    store.step("Load", "x = 1")
    store.step("Load data", "x = 1")
    assert store.names == ["Load", "Load data"]  # nothing tells the two apart; never merged


def test_chain_follows_declaration_order_unless_next_says_otherwise(store: Declarations) -> None:
    store.step("A", stub=True)
    store.step("B", stub=True, next="D", on_failure="C")
    store.step("C", stub=True)
    store.step("D", "echo hi", shell=True)
    pipeline = store.build()
    assert [(s.name, s.next) for s in pipeline.steps.values() if not isinstance(s, Success | Fail)] == [
        ("A", "B"), ("B", "D"), ("C", "D"), ("D", "success")]
    assert pipeline.steps["B"].on_failure == "C"
    assert isinstance(pipeline.steps["A"], Stub)
    assert pipeline.steps["D"] == Task(name="D", command="echo hi", command_type="shell", next="success")
    roundtrip(pipeline)


def test_branch_steps_land_in_their_branch_in_declaration_order(store: Declarations) -> None:
    store.step("Prepare", "x = 1", branch="Train Models/XGBoost")  # before the block: resolved at build
    store.step("Get Features", stub=True)
    store.parallel("Train Models", "XGBoost: Prepare >> Train\nRF model: notebooks/train_rf.ipynb")
    store.step("Train", "y = 2", branch="Train Models/XGBoost", returns="model")
    store.step("Score", stub=True, branch="Train Models/RF model")
    store.step("Check", stub=True, branch="Train Models/Linear")
    store.step("Report", stub=True, branch="Train Models/Linear")
    pipeline = store.build()
    assert list(pipeline.steps) == ["Get Features", "Train Models", "success", "fail"]
    branches = pipeline.steps["Train Models"].branches()
    assert list(branches) == ["XGBoost", "RF model", "Linear"]
    chains = {name: [(s.name, s.next) for s in b.steps.values()] for name, b in branches.items()}
    assert chains["XGBoost"][:2] == [("Prepare", "Train"), ("Train", "success")]
    assert chains["RF model"][:2] == [("train_rf", "Score"), ("Score", "success")]
    assert chains["Linear"][:2] == [("Check", "Report"), ("Report", "success")]
    assert branches["XGBoost"].steps["Train"].returns == ["model"]
    assert [b.start_at for b in branches.values()] == ["Prepare", "train_rf", "Check"]
    roundtrip(pipeline)


def test_rerunning_a_branch_step_without_branch_moves_it_to_the_top(store: Declarations) -> None:
    store.parallel("P", "a: x.ipynb")
    store.step("S", stub=True, branch="P/a")
    store.step("S", stub=True)
    pipeline = store.build()
    assert list(pipeline.steps["P"].branches()["a"].steps) == ["x", "success", "fail"]
    assert pipeline.steps["P"].next == "S"


@pytest.mark.parametrize(("target", "message"), [
    ("Nope/XGBoost", "%%magnus_step 'S' --branch 'Nope/XGBoost': no parallel or map block of that name is "
                     "declared (declared: Train Models)"),
    ("Train Models", "name the branch too, as --branch 'Train Models/BRANCH'"),
])
def test_an_unknown_branch_target_is_named_at_build(store: Declarations, target: str, message: str) -> None:
    store.step("Get Features", stub=True)
    store.parallel("Train Models", "XGBoost: a.ipynb")
    store.step("S", stub=True, branch=target)
    with pytest.raises(DeclarationError, match=r"^%%magnus_step 'S' --branch") as caught:
        store.build()
    assert message in str(caught.value)


def test_a_branch_line_naming_a_step_not_declared_there(store: Declarations) -> None:
    store.step("Top", stub=True)
    store.step("Elsewhere", stub=True, branch="P/b")
    store.parallel("P", "a: Top\nb: Missing\n\n# a comment\nc: Elsewhere")
    with pytest.raises(DeclarationError) as caught:
        store.build()
    problems = caught.value.problems
    assert problems[0] == "%%magnus_parallel 'P', line 2: 'Top' is a top-level step; declare it with " \
                          "--branch 'P/a' to use it here"
    assert problems[1].startswith("%%magnus_parallel 'P', line 3: 'Missing' is not a declared step")
    assert problems[2] == "%%magnus_parallel 'P', line 6: 'Elsewhere' is declared with --branch 'P/b', " \
                          "not 'P/c'"


@pytest.mark.parametrize(("body", "line", "message"), [
    ("XGBoost: a.ipynb\nRF model train_rf.ipynb", 3,
     "expected 'BRANCH: STEP >> STEP', found 'RF model train_rf.ipynb'"),
    ("\nA: a.ipynb >> >> b.ipynb", 3, "found an empty STEP"),
    ("A: `echo hi", 2, "a backtick is not closed"),
    ("A: a.ipynb\nA: b.ipynb", 3, "branch 'A' is already listed on line 2"),
    ("v1.2: a.ipynb", 2, "branch name 'v1.2' may not contain '.'"),
    ("A: a.ipynb `echo`", 2, "a shell STEP is a whole `command` in backticks"),
    ("`echo`: a.ipynb", 2, "expected 'BRANCH: STEP >> STEP'"),
    ("A: x.ipynb >> ``", 2, "an empty `shell command`"),
])
def test_bad_branch_lines_name_the_cell_and_line(store: Declarations, body: str, line: int,
                                                  message: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        store.parallel("Train Models", body)
    assert str(caught.value).startswith(f"%%magnus_parallel 'Train Models', line {line}: ")
    assert message in str(caught.value)
    assert store.names == []  # a bad cell declares nothing


def test_shell_and_notebook_steps_in_lines_get_unique_clean_names(store: Declarations) -> None:
    store.step("Start", stub=True)
    store.parallel("P", "a: `echo a:b >> log.txt` >> x/model.v2.ipynb >> y/model.v2.ipynb\n"
                        "b: `python -c 'print(50%)'` >> success.ipynb")
    branches = store.build().steps["P"].branches()
    a, b = (list(branch.steps.values()) for branch in branches.values())
    assert [(s.name, getattr(s, "command", None)) for s in a[:3]] == [
        ("echo a:b >> log_txt", "echo a:b >> log.txt"),
        ("model_v2", "x/model.v2.ipynb"),
        ("model_v2 2", "y/model.v2.ipynb"),
    ]
    assert [s.name for s in b] == ["python -c 'print(50_)'", "success 2", "success", "fail"]
    assert b[1].next == "success" and isinstance(b[2], Success)


def test_yaml_body_branches_are_taken_as_they_are(store: Declarations, compat_dir: Path) -> None:
    data = yaml.safe_load((compat_dir / "concepts_parallel.yaml").read_text())
    branches = data["dag"]["steps"]["Train Models"]["branches"]
    store.step("Get Features", stub=True)
    store.parallel("Train Models", yaml.safe_dump(branches, sort_keys=False), next="Ensemble Modelling")
    store.step("Ensemble Modelling", stub=True)
    pipeline = roundtrip(store.build())
    written = yaml.safe_load(to_yaml(pipeline))["dag"]["steps"]["Train Models"]["branches"]
    assert written == branches  # "XGBoost success" and all


def test_yaml_body_field_errors_are_located_in_the_cell(store: Declarations) -> None:
    body = "XGBoost:\n  start_at: a\n  steps:\n    a:\n      type: task\n      command: x.ipynb\n" \
           "      command_type: notebok\n      next: success\n    success: {type: success}\n" \
           "    fail: {type: fail}\n"
    with pytest.raises(DeclarationError) as caught:
        store.parallel("Train Models", body)
    assert str(caught.value).startswith("%%magnus_parallel 'Train Models', line 8: step 'Train Models."
                                        "XGBoost.a': command_type must be one of python, notebook, shell")


def test_map_from_a_line_a_yaml_branch_or_branch_steps(store: Declarations) -> None:
    store.step("chunk files", "export MAGNUS_PRM_chunks='[0, 10]'", shell=True)
    store.map("iterate and execute", "`echo $MAGNUS_MAP_VARIABLE` >> process.ipynb",
              iterate_on="chunks", iterate_as="start_index")
    pipeline = roundtrip(store.build())
    node = pipeline.steps["iterate and execute"]
    assert isinstance(node, Map) and node.iterate_on == "chunks" and node.iterate_as == "start_index"
    assert node.branch is not None and node.branch.start_at == "echo $MAGNUS_MAP_VARIABLE"
    assert list(node.branches()) == ["{start_index}"]

    store.map("iterate and execute", "start_at: execute\nsteps:\n  execute:\n    type: stub\n"
              "    next: done\n  done: {type: success}\n  fail: {type: fail}\n",
              iterate_on="chunks", iterate_as="start_index")
    node = roundtrip(store.build()).steps["iterate and execute"]
    assert list(node.branch.steps) == ["execute", "done", "fail"]

    store.map("iterate and execute", "", iterate_on="chunks", iterate_as="start_index")
    store.step("execute", "print(start_index)", branch="iterate and execute")
    node = roundtrip(store.build()).steps["iterate and execute"]
    assert list(node.branch.steps) == ["execute", "success", "fail"]
    assert node.branch.steps["execute"].command == ".magnus/cells/execute.ipynb"


@pytest.mark.parametrize(("kwargs", "body", "message"), [
    ({"iterate_as": "x"}, "a.ipynb", "%%magnus_map 'M': --iterate-on is required"),
    ({"iterate_on": "xs"}, "a.ipynb", "%%magnus_map 'M': --iterate-as is required"),
    ({"iterate_on": "x s", "iterate_as": "x"}, "a.ipynb", "--iterate-on must be a parameter name"),
    ({"iterate_on": "xs", "iterate_as": "x"}, "a: a.ipynb\nb: b.ipynb", "line 3: a map has one branch"),
])
def test_bad_map_declarations(store: Declarations, kwargs: dict, body: str, message: str) -> None:
    with pytest.raises(DeclarationError, match="^%%magnus_map 'M'") as caught:
        store.map("M", body, **kwargs)
    assert message in str(caught.value)


def test_a_map_line_is_followed_by_its_branch_steps(store: Declarations) -> None:
    store.map("M", "a.ipynb >> `echo $x`", iterate_on="xs", iterate_as="x")
    store.step("Last", stub=True, branch="M")
    branch = store.build().steps["M"].branch
    assert [(s.name, s.next) for s in branch.steps.values()][:3] == [
        ("a", "echo $x"), ("echo $x", "Last"), ("Last", "success")]


def test_a_block_without_branches(store: Declarations) -> None:
    store.parallel("P", "# branches come later\n")
    with pytest.raises(DeclarationError) as caught:
        store.build()
    assert caught.value.problems == ["%%magnus_parallel 'P': no branches; list them in the cell body as "
                                     "'BRANCH: STEP >> STEP' (or declare steps with --branch)"]


def test_branch_step_into_a_map_takes_no_branch_name(store: Declarations) -> None:
    store.step("start", stub=True)
    store.map("M", "", iterate_on="xs", iterate_as="x")
    store.step("S", stub=True, branch="M/b")
    with pytest.raises(DeclarationError, match="a map has one branch; write --branch 'M'"):
        store.build()


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.step("Get.Features", "x = 1"), "%%magnus_step 'Get.Features': a name may not contain '.'"),
    (lambda s: s.parallel("50%", "a: a.ipynb"), "%%magnus_parallel '50%': a name may not contain '%'"),
    (lambda s: s.step("success", stub=True), "own success step named 'success'"),
    (lambda s: s.step("  ", stub=True), "%%magnus_step: a NAME is required"),
    (lambda s: s.step("S", ""), "%%magnus_step 'S': the cell body is empty"),
    (lambda s: s.step("S", "", shell=True), "--shell takes its command from the cell body"),
    (lambda s: s.step("S", "echo", shell=True, returns="x"), "--returns applies to cell and notebook steps"),
    (lambda s: s.step("S", returns="a,b-c", stub=False, notebook="n.ipynb"), "found 'b-c'"),
    (lambda s: s.step("S", notebook="n.py"), "--notebook needs a .ipynb path, found 'n.py'"),
    (lambda s: s.step("S", "# fine\nx = 1", notebook="n.ipynb"), "'S', line 3: a --notebook step ignores"),
    (lambda s: s.step("S", shell=True, stub=True), "give one of --notebook, --shell, --stub"),
    (lambda s: s.parallel("P", "a: a.ipynb", failure_policy="all"), "--failure-policy must be one of"),
])
def test_bad_declarations_name_the_cell(store: Declarations, call, message: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        call(store)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_graph_errors_come_from_validate_with_the_cell(store: Declarations) -> None:
    store.step("A", stub=True, next="Nowhere")
    with pytest.raises(ValidationError) as caught:
        store.build()
    assert str(caught.value.problems[0]).startswith("%%magnus_step 'A': step 'A': next names 'Nowhere'")
    assert store.build(check=False).steps["A"].next == "Nowhere"


def test_nothing_declared(store: Declarations) -> None:
    with pytest.raises(DeclarationError, match="nothing is declared yet"):
        store.build()
    store.step("S", stub=True, branch="P/a")
    with pytest.raises(DeclarationError, match="only --branch steps are declared"):
        store.build()


def test_a_loaded_pipeline_builds_back_equal_and_takes_new_cells(store: Declarations,
                                                                 compat_dir: Path) -> None:
    loaded = load_yaml(compat_dir / "concepts_parallel.yaml")
    store.load(loaded)
    assert store.build() == loaded
    assert to_yaml(store.build()) == to_yaml(loaded)
    store.step("Ensemble Modelling", "print('ensemble')")  # replaces the stub in place
    store.step("Report", stub=True)  # appended; nothing leads to it until a --next does
    pipeline = store.build()
    assert list(pipeline.steps) == ["Get Features", "Train Models", "Ensemble Modelling", "Run Inference",
                                    "success", "fail", "Report"]
    assert pipeline.steps["Ensemble Modelling"].next == "Run Inference"
    assert pipeline.steps["Report"].next == "success"
    assert pipeline.description == loaded.description
    assert [w.step for w in validate(pipeline)] == ["Report"]  # unreachable: a warning only
    with pytest.raises(DeclarationError, match="came from %magnus_load"):
        store.step("X", stub=True, branch="Train Models/XGBoost")
        store.build()


def test_build_returns_a_copy(store: Declarations) -> None:
    store.parallel("P", "a: a.ipynb")
    first = store.build()
    first.steps["P"].parallel_branches.clear()
    assert isinstance(store.build().steps["P"], Parallel)
    assert list(store.build().steps["P"].branches()) == ["a"]


def test_declaration_errors_are_pipeline_errors_that_pickle() -> None:
    error = DeclarationError(["%%magnus_step 'S': boom", "%%magnus_step 'T': bang"])
    assert isinstance(error, PipelineError)
    assert str(error) == "%%magnus_step 'S': boom; %%magnus_step 'T': bang"
    again = pickle.loads(pickle.dumps(error))
    assert again.problems == error.problems and str(again) == str(error)
