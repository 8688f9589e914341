"""magnus' interaction API where tasks really run: worker processes, notebook kernels and Dask workers
(which have no shared file system: the run's catalog and run log travel with each task, and what a task
puts in the catalog comes back). The same pipeline on both executors gives the same run."""

from __future__ import annotations

import pickle
import re
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest

from magnus_jupyter.config import MagnusConfig
from magnus_jupyter.executor.engine import RunResult, run_pipeline
from magnus_jupyter.executor.runlog import flatten, iter_steps
from magnus_jupyter.yaml_io import load_yaml

pytestmark = pytest.mark.slow

TASKS = '''
import os
from pathlib import Path
from magnus import get_object, get_run_log, put_in_catalog, put_object, set_parameter, track_this


def produce(start):
    Path("out").mkdir(exist_ok=True)
    Path("out/data.txt").write_text(f"start={start}")
    put_in_catalog("out/data.txt")
    put_object({"weights": [start, start + 1]}, name="model")
    set_parameter(produced=start + 1)
    track_this(step=0, loss=1.0)
    track_this(step=1, loss=0.5)


def consume():
    assert get_object("from_notebook") == "nb"
    log = get_run_log()
    assert log.steps["produce"].status == "SUCCESS", log.steps["produce"]
    assert log.steps["notebook"].status == "SUCCESS"
    os.environ["MAGNUS_PRM_Consumed"] = "yes"
'''
NOTEBOOK_CELLS = [
    "from pathlib import Path\n"
    "from magnus import get_from_catalog, get_object, get_parameter, put_object, set_parameter, track_this",
    "import os\n"
    "model = get_object('model')\n"
    "assert get_parameter('produced') == model['weights'][1]\n"
    "Path('out/data.txt').unlink()\n"
    "get_from_catalog('out/data.txt')\n"
    "assert Path('out/data.txt').read_text() == 'start=1'",
    "os.environ['MAGNUS_PRM_from_env'] = 'Universe'\n"
    "set_parameter(weights=model['weights'])\n"
    "put_object('nb', 'from_notebook')\n"
    "track_this(accuracy=0.9)",
]
PIPELINE = """\
dag:
  start_at: produce
  steps:
    produce: {type: task, command: tasks.produce, next: notebook}
    notebook: {type: task, command_type: notebook, command: nb.ipynb, next: consume}
    consume: {type: task, command: tasks.consume, next: success}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.fixture(params=["local", "dask"])
def slots(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_slots")


def _run(folder: Path, slots: Any) -> RunResult:
    folder.mkdir()
    (folder / "tasks.py").write_text(textwrap.dedent(TASKS))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "nb.ipynb")
    (folder / "p.yaml").write_text(PIPELINE)
    return run_pipeline(load_yaml(folder / "p.yaml"), parameters={"start": 1}, run_id="api", cwd=folder,
                        slots=slots, config=MagnusConfig())


def test_the_interaction_api_works_in_worker_processes_kernels_and_dask_workers(tmp_path: Path,
                                                                                 slots: Any) -> None:
    result = _run(tmp_path / "run", slots)
    messages = [(s["internal_name"], s["message"]) for s in iter_steps(result.run_log)]
    assert result.status == "SUCCESS", messages
    assert result.parameters == {"start": 1, "produced": 2, "from_env": "Universe", "weights": [1, 2],
                                 "consumed": "yes"}
    metrics = {s["internal_name"]: s["user_defined_metrics"] for s in iter_steps(result.run_log)}
    assert metrics["produce"] == {"loss": {"0": 1.0, "1": 0.5}} and metrics["notebook"] == {"accuracy": 0.9}
    catalog = tmp_path / "run" / ".catalog" / "api"
    assert (catalog / "out" / "data.txt").read_text() == "start=1"
    assert pickle.loads((catalog / "from_notebook.pickle").read_bytes()) == "nb"
    entries = {(s["internal_name"], e["name"], e["stage"]) for s in iter_steps(result.run_log)
               for e in s["data_catalog"] if not e["name"].endswith((".log", ".ipynb"))}
    assert entries == {("produce", "out/data.txt", "put"), ("produce", "model.pickle", "put"),
                       ("notebook", "model.pickle", "get"), ("notebook", "out/data.txt", "get"),
                       ("notebook", "from_notebook.pickle", "put"),
                       ("consume", "from_notebook.pickle", "get")}


def test_both_executors_give_the_same_run(tmp_path: Path, local_slots: Any, dask_slots: Any) -> None:
    local, dask = _run(tmp_path / "local", local_slots), _run(tmp_path / "dask", dask_slots)
    assert local.status == "SUCCESS", [(s["internal_name"], s["message"]) for s in iter_steps(local.run_log)]
    assert (flatten(dask.run_log), dask.parameters) == (flatten(local.run_log), local.parameters)
    pickles = [sorted(p.relative_to(tmp_path / s) for p in (tmp_path / s / ".catalog").rglob("*.pickle"))
               for s in ("local", "dask")]
    assert pickles[0] == pickles[1] and len(pickles[0]) == 2


def test_an_api_error_in_a_notebook_fails_the_step_naming_it_without_our_frames(tmp_path: Path,
                                                                                 slots: Any) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from magnus import get_parameter\nget_parameter('missing')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    (tmp_path / "p.yaml").write_text("dag:\n  start_at: Train\n  steps:\n"
                                     "    Train: {type: task, command_type: notebook, command: nb.ipynb, "
                                     "next: success}\n    success: {type: success}\n    fail: {type: fail}\n")
    result = run_pipeline(load_yaml(tmp_path / "p.yaml"), run_id="bad", cwd=tmp_path, slots=slots)
    message = result.run_log["steps"]["Train"]["message"]
    assert result.status == "FAIL"
    assert "raised InteractionError: step 'Train': get_parameter: no parameter 'missing' in run" in message
    executed = nbformat.read(tmp_path / ".catalog" / "bad" / "Train_out.ipynb", as_version=4)
    (error,) = [o for c in executed.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    assert "get_parameter('missing')" in traceback and "interaction.py" not in traceback, traceback
