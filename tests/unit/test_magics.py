"""The magics in a real IPython shell: declare, re-run, see errors as one line, load and write YAML."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import yaml
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

import magnus_jupyter
from magnus_jupyter.declare import DeclarationError, session
from magnus_jupyter.model import Map, Parallel, Task
from magnus_jupyter.yaml_io import load_yaml, to_yaml

ROOT = Path(__file__).resolve().parents[2]
COMPAT_FILES = sorted((ROOT / "tests" / "data" / "compat" / "magnus-0.5").glob("*.yaml"))
PIPELINES = [p for p in COMPAT_FILES if not p.name.endswith(".params.yaml")]

TRAIN_MODELS = ("XGBoost: notebooks/prepare_xgboost.ipynb >> notebooks/train_xgboost.ipynb\n"
                "RF model: notebooks/train_rf.ipynb\n")


@pytest.fixture(scope="session")
def shell():
    """IPython's test shell; ``get_ipython`` is rebound after its first call, so ask once."""
    return globalipapp.get_ipython()


@pytest.fixture
def ip(shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("load_ext", "magnus_jupyter")
    session().reset()
    yield shell
    session().reset()


def design_example(ip) -> None:
    ip.run_cell_magic("magnus_step", '"Get Features" --returns n_rows',
                      "import numpy as np\nX = np.random.rand(1000, 8); n_rows = len(X)\n")
    ip.run_cell_magic("magnus_parallel", "'Train Models' --next \"Ensemble Modelling\"", TRAIN_MODELS)
    ip.run_line_magic("magnus_step", '"Ensemble Modelling" --notebook notebooks/ensemble.ipynb')


def test_load_ext_registers_the_declaring_magics_with_help(ip) -> None:
    cells = ip.magics_manager.magics["cell"]
    lines = ip.magics_manager.magics["line"]
    assert {"magnus_step", "magnus_parallel", "magnus_map"} <= set(cells)
    assert {"magnus_yaml", "magnus_load", "magnus_reset"} <= set(lines)
    help_text = cells["magnus_step"].__doc__
    assert "%%magnus_step" in help_text and "--returns a,b" in help_text and "--branch" in help_text
    assert "--iterate-on PARAMETER" in cells["magnus_map"].__doc__
    assert "fail_fast" in cells["magnus_parallel"].__doc__


def test_design_example_round_trips_through_magnus_yaml(ip, tmp_path: Path) -> None:
    design_example(ip)
    ip.run_line_magic("magnus_yaml", "pipeline.yaml")
    pipeline = magnus_jupyter.current_pipeline()
    assert load_yaml(tmp_path / "pipeline.yaml") == pipeline
    data = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())["dag"]
    assert list(data["steps"]) == ["Get Features", "Train Models", "Ensemble Modelling", "success", "fail"]
    assert data["steps"]["Get Features"]["returns"] == ["n_rows"]
    assert data["steps"]["Train Models"]["next"] == "Ensemble Modelling"
    for branch in data["steps"]["Train Models"]["branches"].values():
        kinds = sorted(step["type"] for step in branch["steps"].values())
        assert kinds.count("success") == 1 and kinds.count("fail") == 1
    notebook = nbformat.read(tmp_path / data["steps"]["Get Features"]["command"], as_version=4)
    assert notebook.cells[0].metadata.tags == ["parameters"]
    assert "n_rows = len(X)" in notebook.cells[1].source


def test_yaml_without_a_path_is_displayed_as_highlighted_yaml(ip, monkeypatch: pytest.MonkeyPatch) -> None:
    design_example(ip)
    monkeypatch.setattr(ip.display_formatter, "active_types", ["text/plain", "text/html"])  # as a kernel
    with capture_output() as captured:
        ip.run_line_magic("magnus_yaml", "")
    (output,) = captured.outputs
    assert "highlight" in output.data["text/html"]  # IPython's Code, coloured by pygments
    assert yaml.safe_load(output.data["text/plain"]) == yaml.safe_load(to_yaml(session().build()))


def test_rerunning_a_cell_replaces_never_duplicates(ip) -> None:
    design_example(ip)
    ip.run_cell_magic("magnus_step", '"Get Features" --returns n_rows,n_cols', "n_rows, n_cols = 3, 4\n")
    ip.run_cell_magic("magnus_parallel", '"Train Models" --next "Ensemble Modelling"',
                      "RF model: notebooks/train_rf.ipynb >> `echo done`\n")
    pipeline = magnus_jupyter.current_pipeline()
    assert list(pipeline.steps) == ["Get Features", "Train Models", "Ensemble Modelling", "success", "fail"]
    assert pipeline.steps["Get Features"].returns == ["n_rows", "n_cols"]
    (branch,) = pipeline.steps["Train Models"].branches().values()
    assert [s.name for s in branch.steps.values()] == ["train_rf", "echo done", "success", "fail"]


def test_a_renamed_cell_replaces_its_step_when_the_front_end_sends_a_cell_id(ip) -> None:
    for name, cell_id in (("Load", "c1"), ("Train", "c2"), ("Load data", "c1")):
        result = ip.run_cell(f'%%magnus_step "{name}"\nx = 1\n', cell_id=cell_id)
        assert result.success
    assert session().names == ["Load data", "Train"]
    ip.run_cell_magic("magnus_step", "Later", "y = 1")  # outside run_cell: no stale cell id is used
    assert session().names == ["Load data", "Train", "Later"]


def test_steps_without_a_body_are_one_line_in_a_notebook(ip) -> None:
    assert ip.run_cell('%magnus_step "Get Features" --stub\n').success
    assert ip.run_cell('%magnus_parallel Train\n').success  # branches come from --branch steps
    assert ip.run_cell('%%magnus_step Fit --branch Train/a\nfit = 1\n').success
    assert ip.run_cell('%%magnus_step "Ensemble" --notebook e.ipynb\n# comments are fine\n').success
    pipeline = magnus_jupyter.current_pipeline()
    assert list(pipeline.steps) == ["Get Features", "Train", "Ensemble", "success", "fail"]
    assert list(pipeline.steps["Train"].branches()["a"].steps) == ["Fit", "success", "fail"]


def test_unquoted_names_and_quoted_options(ip) -> None:
    ip.run_cell_magic("magnus_step", "Get Features --next 'Run Inference'", "x = 1")
    ip.run_line_magic("magnus_step", "Run Inference --stub")
    pipeline = magnus_jupyter.current_pipeline()
    assert pipeline.steps["Get Features"].next == "Run Inference"


def test_branch_steps_land_in_their_branch(ip) -> None:
    ip.run_line_magic("magnus_step", '"Get Features" --stub')
    ip.run_cell_magic("magnus_parallel", '"Train Models" --failure-policy fail_fast',
                      "XGBoost: Prepare >> Train XGBoost\n")
    ip.run_cell_magic("magnus_step", 'Prepare --branch "Train Models/XGBoost"', "x = 1\n")
    ip.run_cell_magic("magnus_step", '"Train XGBoost" --branch "Train Models/XGBoost" --returns model',
                      "model = 1\n")
    ip.run_cell_magic("magnus_step", '"Train RF" --branch "Train Models/RF model" --shell', "echo rf\n")
    pipeline = magnus_jupyter.current_pipeline()
    node = pipeline.steps["Train Models"]
    assert isinstance(node, Parallel) and node.failure_policy == "fail_fast"
    assert list(pipeline.steps) == ["Get Features", "Train Models", "success", "fail"]
    branches = node.branches()
    assert list(branches["XGBoost"].steps) == ["Prepare", "Train XGBoost", "success", "fail"]
    assert branches["XGBoost"].steps["Train XGBoost"].returns == ["model"]
    assert branches["RF model"].steps["Train RF"] == Task(name="Train RF", command="echo rf",
                                                          command_type="shell", next="success")
    assert load_yaml(to_yaml(pipeline)) == pipeline


def test_yaml_body_parallel_and_map(ip, compat_dir: Path) -> None:
    source = yaml.safe_load((compat_dir / "concepts_map_shell.yaml").read_text())["dag"]["steps"]
    ip.run_cell_magic("magnus_step", '"chunk files" --shell', source["chunk files"]["command"])
    ip.run_cell_magic("magnus_map", '"iterate and execute" --iterate-on chunks --iterate-as start_index',
                      yaml.safe_dump(source["iterate and execute"]["branch"], sort_keys=False))
    ip.run_cell_magic("magnus_parallel", "Both",
                      "a:\n  start_at: s\n  steps:\n    s: {type: stub, next: ok}\n"
                      "    ok: {type: success}\n    ko: {type: fail}\n")
    pipeline = magnus_jupyter.current_pipeline()
    node = pipeline.steps["iterate and execute"]
    assert isinstance(node, Map) and node.iterate_as == "start_index" and node.next == "Both"
    written = yaml.safe_load(to_yaml(pipeline))["dag"]["steps"]
    assert written["iterate and execute"]["branch"] == source["iterate and execute"]["branch"]
    assert list(written["Both"]["branches"]["a"]["steps"]) == ["s", "ok", "ko"]


@pytest.mark.parametrize(("magic", "line", "body", "message"), [
    ("magnus_parallel", '"Train Models"', "XGBoost: a.ipynb\nRF model b.ipynb\n",
     "%%magnus_parallel 'Train Models', line 3: expected 'BRANCH: STEP >> STEP', found 'RF model b.ipynb'"),
    ("magnus_map", "Chunks --iterate-as x", "a.ipynb",
     "%%magnus_map 'Chunks': --iterate-on is required (the parameter holding the list to iterate on)"),
    ("magnus_step", '"Get.Features"', "x = 1",
     "%%magnus_step 'Get.Features': a name may not contain '.' (magnus joins internal names with '.')"),
    # the line magic (no body) is named as the person wrote it: %magnus_step, not %%magnus_step
    ("magnus_step", "S --shell --stub", None, "%magnus_step 'S': give one of --notebook, --shell, --stub"),
    ("magnus_step", "S --bogus", None, "%magnus_step: unrecognized arguments: --bogus"),
    ("magnus_step", '"S', None, "%magnus_step: No closing quotation"),
    ("magnus_step", "S", None, "%magnus_step 'S': a step with no --notebook, --shell or --stub runs code"),
    ("magnus_step", "S --bogus", "x = 1", "%%magnus_step: unrecognized arguments: --bogus"),
    ("magnus_parallel", "P --failure-policy all", None,
     "%magnus_parallel: argument --failure-policy: invalid"),
    ("magnus_map", "M --iterate-on xs --iterate-as 'not a name'", None,
     "%magnus_map 'M': --iterate-as must be a parameter name"),
    ("magnus_run", "--bogus", None, "%magnus_run: unrecognized arguments: --bogus"),
    # a body that is not Python is refused when the cell runs, not when the pipeline reaches it
    ("magnus_step", "Broken", "x = 1\ndef f(:\n    pass",
     "%%magnus_step 'Broken', line 3: SyntaxError: invalid syntax"),
])
def test_bad_cells_are_one_usage_error_line(ip, magic: str, line: str, body: str | None,
                                            message: str) -> None:
    with pytest.raises(UsageError) as caught:
        if body is None:
            ip.run_line_magic(magic, line)
        else:
            ip.run_cell_magic(magic, line, body)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert session().names == []


def test_a_body_with_ipython_syntax_is_not_a_syntax_error(ip) -> None:
    """Magics, shell escapes and top-level await are how IPython reads a cell: they are fine."""
    body = "import asyncio\n%time x = 1\n!echo hi\nfiles = !ls\nawait asyncio.sleep(0)\n"
    ip.run_cell_magic("magnus_step", "Fine", body)
    assert session().names == ["Fine"]


def test_an_unknown_next_is_a_warning_at_declaration(ip, capsys) -> None:
    ip.run_cell_magic("magnus_step", "A --next Nope", "x = 1")
    ip.run_line_magic("magnus_step", "B --stub --on-failure A")
    err = capsys.readouterr().err
    assert err == ("warning: %%magnus_step 'A': --next 'Nope' is not a declared step (yet): the run cannot "
                   "go there unless a cell declares it (steps it can go to: A, success, fail)\n")
    assert session().names == ["A", "B"]  # declared all the same: the cell naming it may come later
    ip.run_line_magic("magnus_step", "Nope --stub")
    ip.run_cell_magic("magnus_step", "A --next Nope", "x = 1")
    assert capsys.readouterr().err == ""
    # inside a branch, the branch's own steps are what --next can name
    ip.run_cell_magic("magnus_parallel", "P", "a: `echo a`")
    ip.run_line_magic("magnus_step", "Inner --stub --branch P/a --next A")
    err = capsys.readouterr().err
    assert err.startswith("warning: %magnus_step 'Inner': --next 'A' is not a declared step (yet)")
    assert "(steps it can go to: echo a, Inner, success, fail)" in err


def test_unknown_branch_target_is_reported_by_the_yaml_magic(ip) -> None:
    design_example(ip)
    ip.run_cell_magic("magnus_step", 'Tune --branch "Train Model/XGBoost"', "x = 1")
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("magnus_yaml", "")
    assert str(caught.value) == ("%%magnus_step 'Tune' --branch 'Train Model/XGBoost': no parallel or map "
                                 "block of that name is declared (declared: Train Models)")
    with pytest.raises(DeclarationError, match="^%%magnus_step 'Tune' --branch"):
        magnus_jupyter.current_pipeline()


def test_graph_errors_are_one_line_too(ip, tmp_path: Path) -> None:
    ip.run_line_magic("magnus_step", "A --next Nowhere --stub")
    ip.run_line_magic("magnus_step", "B --on-failure Elsewhere --stub")
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("magnus_yaml", "out.yaml")
    message = str(caught.value)
    assert message.startswith("invalid pipeline: %magnus_step 'A': step 'A': next names 'Nowhere'")
    assert "; %magnus_step 'B': step 'B': on_failure names 'Elsewhere'" in message
    assert "\n" not in message and not (tmp_path / "out.yaml").exists()


def test_a_magic_names_the_first_problems_and_counts_the_rest(ip) -> None:
    for i in range(40):
        ip.run_line_magic("magnus_step", f"S{i} --next Nowhere{i} --stub")
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("magnus_yaml", "")
    message = str(caught.value)
    assert "'Nowhere4'" in message and "'Nowhere5'" not in message
    assert message.endswith("; … and 35 more") and "\n" not in message


def test_an_error_in_a_notebook_cell_shows_one_line_and_no_traceback(ip, capsys) -> None:
    result = ip.run_cell('%%magnus_parallel "Train Models"\nXGBoost a.ipynb\n')
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert err.strip() == ("UsageError: %%magnus_parallel 'Train Models', line 2: expected "
                           "'BRANCH: STEP >> STEP', found 'XGBoost a.ipynb'")


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_load_then_yaml_round_trips_magnus_files(ip, tmp_path: Path, path: Path) -> None:
    with capture_output() as captured:
        ip.run_line_magic("magnus_load", str(path))
    assert captured.stdout.startswith(f"loaded {path}")
    ip.run_line_magic("magnus_yaml", "again.yaml")
    original = yaml.safe_load(path.read_text())["dag"]
    again = yaml.safe_load((tmp_path / "again.yaml").read_text())["dag"]
    assert again == original
    assert load_yaml(tmp_path / "again.yaml") == load_yaml(path)


def test_compat_corpus_is_present() -> None:
    assert len(PIPELINES) >= 8  # the parametrised round trip above must not pass by running nothing


def test_loaded_pipeline_takes_new_cells(ip, compat_dir: Path) -> None:
    ip.run_line_magic("magnus_load", str(compat_dir / "concepts_parallel.yaml"))
    ip.run_cell_magic("magnus_step", '"Run Inference" --notebook notebooks/infer.ipynb', "# the model\n")
    pipeline = magnus_jupyter.current_pipeline()
    assert list(pipeline.steps)[:4] == ["Get Features", "Train Models", "Ensemble Modelling", "Run Inference"]
    assert pipeline.steps["Run Inference"] == Task(name="Run Inference", command="notebooks/infer.ipynb",
                                                   command_type="notebook", next="success")
    assert pipeline.steps["Train Models"].branches()["XGBoost"].terminal  # loaded branches kept


def test_yaml_warns_about_steps_nothing_leads_to(ip, tmp_path: Path, capsys) -> None:
    ip.run_line_magic("magnus_step", "A --stub --next success")
    ip.run_line_magic("magnus_step", "B --stub")
    ip.run_line_magic("magnus_yaml", "out.yaml")
    captured = capsys.readouterr()
    assert captured.err == ("warning: %magnus_step 'B': step 'B': is never reached from start_at "
                            "(allowed, but it will not run)\n")
    assert captured.out == "wrote out.yaml\n" and (tmp_path / "out.yaml").is_file()


def test_load_errors_are_one_line(ip, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^missing\.yaml: no such file$"):
        ip.run_line_magic("magnus_load", "missing.yaml")
    (tmp_path / "bad.yaml").write_text("dag:\n  start_at: a\n  steps:\n    a: {type: stub}\n")
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("magnus_load", "bad.yaml")
    assert "\n" not in str(caught.value) and "bad.yaml:4" in str(caught.value)


def test_reset_forgets_everything(ip) -> None:
    design_example(ip)
    ip.run_line_magic("magnus_reset", "")
    with pytest.raises(UsageError, match="nothing is declared yet"):
        ip.run_line_magic("magnus_yaml", "")
    with pytest.raises(UsageError, match="takes no arguments"):
        ip.run_line_magic("magnus_reset", "now")


def test_unload_removes_the_magics(ip) -> None:
    ip.run_line_magic("unload_ext", "magnus_jupyter")
    try:
        assert "magnus_step" not in ip.magics_manager.magics["cell"]
        assert "magnus_yaml" not in ip.magics_manager.magics["line"]
    finally:
        ip.run_line_magic("load_ext", "magnus_jupyter")
    assert "magnus_step" in ip.magics_manager.magics["cell"]


def test_importing_the_magics_leaves_heavy_libraries_out() -> None:
    probe = ("import sys, magnus_jupyter, magnus_jupyter.magics\n"
             "magnus_jupyter.current_pipeline\n"
             "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         check=True, cwd=ROOT)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert "IPython" in loaded  # the probe did import the magics
    assert not loaded & {"papermill", "ipywidgets", "graphviz", "nbformat", "nbclient"}


def _execute(kc, code: str, cell_id: str | None = None, names: bool = False) -> tuple[dict, str]:
    """One execute_request as JupyterLab sends it (cellId in the metadata); (reply, stderr)."""
    content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False,
               "stop_on_error": True,
               "user_expressions": {"names": "__import__('magnus_jupyter.declare').declare.session().names"}
               if names else {}}
    msg = kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    stderr = ""
    while True:
        out = kc.get_iopub_msg(timeout=60)
        if out["parent_header"].get("msg_id") != msg_id:
            continue
        if out["msg_type"] == "stream" and out["content"]["name"] == "stderr":
            stderr += out["content"]["text"]
        if out["msg_type"] == "status" and out["content"]["execution_state"] == "idle":
            return reply["content"], stderr


@pytest.mark.slow
def test_in_a_real_kernel_cell_ids_rename_in_place_and_errors_are_one_line(tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        assert _execute(kc, "%load_ext magnus_jupyter")[0]["status"] == "ok"
        assert _execute(kc, '%%magnus_step "Load"\nx = 1\n', cell_id="cell-a")[0]["status"] == "ok"
        assert _execute(kc, '%%magnus_step "Train"\ny = 2\n', cell_id="cell-b")[0]["status"] == "ok"
        reply, _ = _execute(kc, '%%magnus_step "Load data"\nx = 1\n', cell_id="cell-a", names=True)
        assert reply["user_expressions"]["names"]["data"]["text/plain"] == "['Load data', 'Train']"
        reply, stderr = _execute(kc, '%%magnus_parallel P\nbranch without colon\n', cell_id="cell-c")
        assert reply["status"] == "error" and reply["ename"] == "UsageError"
        assert stderr == ("UsageError: %%magnus_parallel 'P', line 2: expected 'BRANCH: STEP >> STEP', "
                          "found 'branch without colon'\n")
        assert (tmp_path / ".magnus" / "cells" / "load_data.ipynb").is_file()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
