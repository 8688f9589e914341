"""notebooks/parallel_demo.ipynb runs top to bottom under papermill, and its outputs say so.

The notebook folder is copied to a temp dir and executed there (the kernel's
cwd, as JupyterLab would have it), so the run log, catalog and data files land
in the copy. JUPYTER dirs are isolated by tests/conftest.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.widget.picture import NODE_FILL

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "notebooks" / "parallel_demo.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"
TASKS = ("Get Features", "Train Models.XGBoost.Prepare for XGBoost", "Train Models.XGBoost.Train XGBoost",
         "Train Models.RF model.Train RF Model", "Ensemble Modelling", "Run Inference")


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _outputs(notebook: dict[str, Any], source_start: str) -> list[dict[str, Any]]:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and _text(cell["source"]).startswith(source_start):
            return list(cell.get("outputs", []))
    raise AssertionError(f"no cell starting with {source_start!r}")


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    import papermill

    folder = tmp_path_factory.mktemp("demo") / "notebooks"
    leftovers = shutil.ignore_patterns(".run_log_store", ".catalog", ".magnus", "data", "*_out.ipynb")
    shutil.copytree(ROOT / "notebooks", folder, ignore=leftovers)
    papermill.execute_notebook(str(folder / DEMO.name), str(folder / "executed.ipynb"), cwd=str(folder),
                               kernel_name="python3", progress_bar=False, execution_timeout=600)
    return folder, json.loads((folder / "executed.ipynb").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_no_cell_failed(executed: tuple[Path, dict[str, Any]]) -> None:
    _, notebook = executed
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", _text(cell["source"])
            if output.get("name") == "stderr":
                assert "Error" not in _text(output["text"]), _text(output["text"])


@pytest.mark.slow
def test_the_run_succeeded_and_returns_reached_later_steps(executed: tuple[Path, dict[str, Any]]) -> None:
    folder, notebook = executed
    logs = list((folder / ".run_log_store").glob("*.json"))
    assert len(logs) == 1
    log = json.loads(logs[0].read_text())
    assert log["status"] == "SUCCESS"
    returned = {"n_rows", "xgb_accuracy", "rf_accuracy", "ensemble_accuracy", "best_model"}
    assert returned <= set(log["parameters"])
    assert log["parameters"]["ensemble_accuracy"] == pytest.approx(
        (log["parameters"]["xgb_accuracy"] + log["parameters"]["rf_accuracy"]) / 2)
    printed = "".join(_text(o.get("text", "")) for o in _outputs(notebook, "%magnus_run"))
    assert f"run {log['run_id']}: SUCCESS" in printed


@pytest.mark.slow
def test_the_run_cell_keeps_a_static_final_picture_not_the_widget(executed: tuple[Path, dict[str, Any]]
                                                                 ) -> None:
    """A widget has no model in a reopened notebook ("model not found"): the file keeps the picture."""
    folder, notebook = executed
    bundles = [o["data"] for o in _outputs(notebook, "%magnus_run") if o["output_type"] == "display_data"]
    assert len(bundles) == 1
    bundle = bundles[0]
    assert WIDGET not in bundle, "the saved output still points at a widget model"
    svg = _text(bundle["image/svg+xml"])
    assert svg.startswith("<svg") and svg in _text(bundle["text/html"])
    nodes = re.findall(r'<g id="n\d+" class="node"[^>]* data-state="(\w+)">', svg)
    # every task, the pipeline's success and each branch's success ran; no fail end is drawn
    assert sorted(nodes) == sorted(["success"] * (len(TASKS) + 3))
    for name in ("Get Features", "Prepare for XGBoost", "Train RF Model", "Run Inference"):
        assert f">{name}</text>" in svg
    links = re.findall(r'xlink:href="([^"]+)"', svg)
    assert len(links) == len(TASKS)
    assert all((folder / link).is_file() and link.endswith("_out.ipynb") for link in links)
    assert "pipeline: 4/4 steps succeeded" in _text(bundle["text/plain"])


@pytest.mark.slow
def test_the_html_export_holds_the_coloured_dag_and_the_summary(executed: tuple[Path, dict[str, Any]]
                                                                ) -> None:
    """``jupyter nbconvert --to html`` of the executed notebook: what a reader without a kernel sees."""
    folder, notebook = executed
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "executed.ipynb"],
                          cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    page = (folder / "executed.html").read_text(encoding="utf-8")
    assert "model not found" not in page
    # nbconvert re-serialises the HTML (attributes sorted): read tags, not their spelling
    drawings = re.findall(r'<svg [^>]*id="magnus-dag-[^"]+".*?</svg>', page, re.S)
    assert len(drawings) == 2, "no DAG drawing in the HTML export"  # %magnus_show's, then the run's
    svg = drawings[1]
    nodes = re.findall(r'<g [^>]*id="n\d+"[^>]*>', svg)  # steps (f/j: a parallel's bars)
    states = [re.search(r'data-state="(\w+)"', tag).group(1) for tag in nodes]  # type: ignore[union-attr]
    assert states and set(states) == {"success"}
    green = NODE_FILL["success"]
    assert len(re.findall(rf'<(?:path|ellipse) [^>]*fill="{green}"', svg)) >= len(states)
    assert ">succeeded</text>" in svg and ">failed</text>" in svg  # the legend
    shown = re.findall(r"#(magnus-dag-\w+)-box\{display:block !important\}", page)  # the rules showing them
    assert any(f'id="{uid}"' in svg for uid in shown)
    log = json.loads(next((folder / ".run_log_store").glob("*.json")).read_text())
    assert f"run <code>{log['run_id']}</code>" in page and "SUCCESS</b>" in page
    assert re.search(r"<div [^>]*class=\"magnus-bar\"[^>]*data-state=\"success\"", page)
    assert "4/4 steps succeeded" in page


@pytest.mark.slow
def test_show_and_yaml_cells(executed: tuple[Path, dict[str, Any]]) -> None:
    _, notebook = executed
    shown = [o["data"] for o in _outputs(notebook, "%magnus_show") if o["output_type"] == "display_data"]
    assert len(shown) == 1 and WIDGET not in shown[0]  # a picture that never changes needs no widget
    svg = _text(shown[0]["image/svg+xml"])
    assert set(re.findall(r'class="node"[^>]* data-state="(\w+)"', svg)) == {"pending"}
    yaml_text = "".join(_text(o["data"].get("text/plain", "")) for o in _outputs(notebook, "%magnus_yaml")
                        if "data" in o)
    for expected in ("dag:", "start_at: Get Features", "type: parallel", "XGBoost:", "RF model:",
                     "command: train_xgboost.ipynb", "- xgb_accuracy", "Run Inference:"):
        assert expected in yaml_text, expected
