"""``--executor dask`` on a real LocalCluster of 2 worker processes: same run logs as the local executor.

One cluster serves the module (``conftest.py``). Workers get the run
folder's files with each task in a temporary folder of their own, so these
tests also show that nothing relies on a shared file system: tasks report
their working folder and it is never the run folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from dask_processes import alive, cluster_processes, wait_gone, wait_until

from magnus_jupyter.executor import _procs
from magnus_jupyter.executor.dask_slots import DaskSlots
from magnus_jupyter.executor.engine import RunResult, run_pipeline
from magnus_jupyter.executor.params import initial_parameters
from magnus_jupyter.executor.runlog import flatten
from magnus_jupyter.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "tests" / "data" / "compat" / "magnus-0.5"
NAMES = sorted(p.name[: -len(".yaml")] for p in COMPAT.glob("*.yaml") if not p.name.endswith(".params.yaml"))
DEMO = ROOT / "notebooks"

pytestmark = pytest.mark.slow


def _copy_demo(folder: Path) -> None:
    (folder / "notebooks").mkdir()
    for file in DEMO.glob("*.ipynb"):
        shutil.copy(file, folder / "notebooks" / file.name)
    shutil.copy(DEMO / "pipeline.yaml", folder / "notebooks" / "pipeline.yaml")


def _sleepers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_compat_corpus_on_dask_matches_real_magnus(name: str, compat_dir: Path, tmp_path: Path,
                                                   dask_slots: DaskSlots) -> None:
    expected: dict[str, Any] = json.loads((compat_dir / f"{name}.expected.json").read_text())
    params_file = compat_dir / f"{name}.params.yaml"
    parameters = initial_parameters(params_file if params_file.exists() else None, (), environ={})
    result = run_pipeline(load_yaml(compat_dir / f"{name}.yaml"), parameters=parameters, run_id="compat",
                          cwd=tmp_path, slots=dask_slots)
    assert result.status == expected["status"]
    assert flatten(result.run_log) == expected["steps"]
    assert result.parameters == expected["parameters"]


def test_the_demo_on_dask_gives_the_local_parameters(tmp_path: Path, dask_slots: DaskSlots) -> None:
    """The local run goes through the CLI in a process of its own: its pool's helpers stay its own."""
    for executor in ("local", "dask"):
        folder = tmp_path / executor
        folder.mkdir()
        _copy_demo(folder)
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "notebooks/pipeline.yaml",
                           "--workers", "2", "--run-id", "demo", "--quiet"], cwd=tmp_path / "local",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    local_log = json.loads((tmp_path / "local" / ".run_log_store" / "demo.json").read_text())
    dask = run_pipeline(load_yaml(tmp_path / "dask" / "notebooks" / "pipeline.yaml"), run_id="demo",
                        cwd=tmp_path / "dask", slots=dask_slots)
    assert dask.status == "SUCCESS", dask.run_log
    assert local_log["status"] == "SUCCESS"
    assert flatten(dask.run_log) == flatten(local_log)
    assert dask.parameters == local_log["parameters"]
    assert set(dask.parameters) == {"n_rows", "xgb_accuracy", "rf_accuracy", "ensemble_accuracy",
                                    "best_model"}
    # files the notebooks wrote on the workers came back: the put and the data folder, as locally
    catalog = tmp_path / "dask" / ".catalog" / "demo"
    assert (catalog / "data" / "xgb_weights.npy").read_bytes() == \
        (tmp_path / "local" / ".catalog" / "demo" / "data" / "xgb_weights.npy").read_bytes()
    for file in ("features.npz", "xgb_prepared.npz", "xgb_weights.npy"):
        assert (tmp_path / "dask" / "data" / file).is_file()
    executed = json.loads((catalog / "Ensemble_Modelling_out.ipynb").read_text())
    assert "ensemble" in json.dumps(executed["cells"])


def _notebook(path: Path, source: str) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_our_cluster_gives_notebooks_to_the_worker_warming_longest(tmp_path: Path,
                                                                   dask_slots: DaskSlots) -> None:
    """As the local pool picks a slot: three notebooks one after another alternate between the two
    workers (the one that just ran a notebook is booting its next kernel), and their slots come from
    the forkserver the client started, whose address the tasks' environment does not carry."""
    steps = []
    for step, follow in (("a", "b"), ("b", "c"), ("c", "success")):
        _notebook(tmp_path / f"{step}.ipynb", f"import os\n{step} = os.getppid()\n"
                                              f"leak_{step} = 'MAGNUS_JUPYTER_FORKSERVER' in os.environ")
        steps.append(f"    {step}:\n      type: task\n      command_type: notebook\n"
                     f"      command: {step}.ipynb\n      returns: [{step}, leak_{step}]\n"
                     f"      next: {follow}\n")
    (tmp_path / "p.yaml").write_text("dag:\n  start_at: a\n  steps:\n" + "".join(steps)
                                     + "    success:\n      type: success\n    fail:\n      type: fail\n")
    result = run_pipeline(load_yaml(tmp_path / "p.yaml"), run_id="placed", cwd=tmp_path, slots=dask_slots)
    assert result.status == "SUCCESS", result.run_log
    zygotes = [result.parameters[step] for step in "abc"]  # a kernel's parent: its slot worker's zygote
    assert zygotes[0] != zygotes[1] and zygotes[2] == zygotes[0]
    assert not any(result.parameters[f"leak_{step}"] for step in "abc")
    if _procs.SHARED_FORKSERVER:  # Python < 3.14: forked by the client's slots forkserver
        slot_workers = {psutil.Process(z).ppid() for z in zygotes}
        assert {psutil.Process(w).ppid() for w in slot_workers} == {dask_slots._server._forkserver_pid}


CATALOG = """\
dag:
  start_at: write
  steps:
    write:
      type: task
      command_type: shell
      command: mkdir -p data && echo "from the first worker" > data/a.txt && export MAGNUS_PRM_first=$(pwd)
      catalog:
        put: [data/a.txt]
      next: read
    read:
      type: task
      command_type: shell
      command: export MAGNUS_PRM_text="$(cat data/a.txt)" && export MAGNUS_PRM_second=$(pwd)
      catalog:
        get: [data/a.txt]
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_catalog_files_travel_without_a_shared_folder(tmp_path: Path, dask_slots: DaskSlots) -> None:
    (tmp_path / "p.yaml").write_text(CATALOG)
    result = run_pipeline(load_yaml(tmp_path / "p.yaml"), run_id="cat", cwd=tmp_path, slots=dask_slots)
    assert result.status == "SUCCESS", result.run_log
    assert result.parameters["text"] == "from the first worker"
    assert str(tmp_path) not in (result.parameters["first"], result.parameters["second"])
    assert (tmp_path / ".catalog" / "cat" / "data" / "a.txt").read_text() == "from the first worker\n"
    read = result.run_log["steps"]["read"]
    assert [(e["name"], e["stage"]) for e in read["data_catalog"] if e["name"] == "data/a.txt"] == \
        [("data/a.txt", "get")]
    assert "from the first worker" not in (tmp_path / ".catalog" / "cat" / "write.execution.log").read_text()


def test_the_cli_runs_on_a_given_scheduler(tmp_path: Path, compat_dir: Path, dask_slots: DaskSlots) -> None:
    shutil.copy(compat_dir / "concepts_task_shell_parameters.yaml", tmp_path / "p.yaml")
    shutil.copy(compat_dir / "concepts_task_shell_parameters.params.yaml", tmp_path / "params.yaml")
    address = dask_slots.client.scheduler.address
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "p.yaml", "-p", "params.yaml",
                           "--executor", "dask", "--scheduler", address, "--run-id", "cli", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    log = json.loads((tmp_path / ".run_log_store" / "cli.json").read_text())
    assert log["parameters"] == {"spam": "Universe", "eggs": {"ham": "Maybe, one more.."}}
    assert log["run_config"]["executor"]["type"] == "magnus-jupyter-dask"


KILLED = """\
dag:
  start_at: slow
  steps:
    slow:
      type: task
      command_type: shell
      max_attempts: 2
      command: test -e {flag} || {{ touch {flag} && sleep {marker}; }}
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def _worker_running_a_task(slots: DaskSlots) -> str | None:
    for address, keys in slots.client.processing().items():
        if any(str(k).startswith("magnus-task-") for k in keys):
            return str(address)
    return None


def test_a_killed_worker_fails_the_attempt_with_a_reason_and_the_retry_runs(tmp_path: Path,
                                                                           dask_slots: DaskSlots) -> None:
    marker = "61.0731"  # sleep's argument: finds the task's process in the process table
    flag = tmp_path.parent / f"{tmp_path.name}-started"
    (tmp_path / "p.yaml").write_text(KILLED.format(flag=flag, marker=marker))
    results: list[RunResult] = []
    run = threading.Thread(target=lambda: results.append(
        run_pipeline(load_yaml(tmp_path / "p.yaml"), run_id="killed", cwd=tmp_path, slots=dask_slots)))
    run.start()
    try:
        wait_until(lambda: _sleepers(f"sleep {marker}"), "the task's sleep to start")
        address = wait_until(lambda: _worker_running_a_task(dask_slots), "the scheduler to show the task")
        pid = dask_slots.client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
    finally:
        run.join(120)
    assert not run.is_alive(), "the run hung after its worker died"
    result = results[0]
    step = result.run_log["steps"]["slow"]
    assert [a["status"] for a in step["attempts"]] == ["FAIL", "SUCCESS"]
    assert "the Dask worker running the task died (KilledWorker" in step["attempts"][0]["message"]
    assert result.status == "SUCCESS"
    wait_until(lambda: not _sleepers(f"sleep {marker}"), "the killed worker's task process to end", 30)
    dask_slots.client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the tests after this one


CANCELLED = """\
dag:
  start_at: slow
  steps:
    slow:
      type: task
      command_type: shell
      command: sleep {marker}
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_cancel_stops_the_task_on_the_worker(tmp_path: Path, dask_slots: DaskSlots) -> None:
    marker = "62.0417"
    (tmp_path / "p.yaml").write_text(CANCELLED.format(marker=marker))
    cancel = threading.Event()
    results: list[RunResult] = []
    run = threading.Thread(target=lambda: results.append(
        run_pipeline(load_yaml(tmp_path / "p.yaml"), run_id="cancelled", cwd=tmp_path, slots=dask_slots,
                     cancel=cancel)))
    run.start()
    try:
        wait_until(lambda: _sleepers(f"sleep {marker}"), "the task's sleep to start")
        cancel.set()
    finally:
        run.join(120)
    assert not run.is_alive()
    result = results[0]
    assert result.status == "FAIL"
    assert result.run_log["steps"]["slow"]["message"].startswith("cancelled")
    wait_until(lambda: not _sleepers(f"sleep {marker}"), "the cancelled task's process to end", 30)


def test_closing_leaves_no_process_of_the_cluster(tmp_path: Path) -> None:
    """Dask workers, their slot workers, forkservers, warm kernels: all gone after close(); and cell
    progress came back from the worker while it ran."""
    _copy_demo(tmp_path)
    (tmp_path / "p.yaml").write_text(
        "dag:\n  start_at: f\n  steps:\n    f:\n      type: task\n      command_type: notebook\n"
        "      command: notebooks/get_features.ipynb\n      returns: [n_rows]\n"
        "      next: success\n    success:\n      type: success\n    fail:\n      type: fail\n")
    progress: list[tuple[str, int, int]] = []
    slots = DaskSlots(1, on_progress=lambda *event: progress.append(event))
    try:
        result = run_pipeline(load_yaml(tmp_path / "p.yaml"), run_id="own", cwd=tmp_path, slots=slots)
        assert result.status == "SUCCESS", result.run_log
        assert result.parameters == {"n_rows": 2000}
        # cell progress from the worker reaches this process (events, hence the widget), in order
        wait_until(lambda: any(done == total for _, done, total in progress), "the last cell's progress")
        total = progress[-1][2]
        assert total >= 3 and progress == [("f", done, total) for done in range(1, total + 1)]
        started = cluster_processes(slots)
        # a Dask worker, the slots' forkserver, a slot worker, its zygote, a kernel at least
        assert len(started) >= 5
    finally:
        slots.close()
    wait_gone(started, "every process of the cluster ends")


def test_magnus_run_in_a_notebook_uses_the_named_scheduler(tmp_path: Path, dask_slots: DaskSlots,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.error import UsageError
    from IPython.testing import globalipapp

    from magnus_jupyter import running
    from magnus_jupyter.declare import session

    ip = globalipapp.get_ipython()
    monkeypatch.chdir(tmp_path)
    ip.run_line_magic("load_ext", "magnus_jupyter")
    session().reset()
    try:
        ip.run_cell_magic("magnus_step", '"hello" --shell', "export MAGNUS_PRM_where=$(pwd)\n")
        with pytest.raises(UsageError, match="unknown executor 'nope'; known executors: dask, local"):
            ip.run_line_magic("magnus_run", "--executor nope")
        ip.run_line_magic("magnus_run", f"--executor dask --scheduler {dask_slots.client.scheduler.address}")
        run = running.last_run()
        assert run is not None and run.result is not None
        assert run.result.status == "SUCCESS", run.result.run_log
        where = run.result.parameters["where"]
        assert where != str(tmp_path) and "magnus-task-" in where  # ran in a worker's own folder
    finally:
        session().reset()


_SHARED = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _descendants() -> set[int]:
    """This process's descendants but multiprocessing's resource tracker and forkserver, which all our
    pools and clusters share (the last one closed stops them: see the test after this one)."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if not any(shared in " ".join(proc.cmdline()) for shared in _SHARED):
                found.add(proc.pid)
    return found


def test_a_prepared_cluster_is_adopted_and_a_spare_one_closes(tmp_path: Path, compat_dir: Path) -> None:
    """``prepare`` starts the cluster early; the pool of the same size and warming takes it over (closing
    the handle then keeps it), and one no pool took is stopped with every process it started."""
    before = _descendants()
    spare = DaskSlots.prepare(1, warm_kernels=False)
    wanted = DaskSlots.prepare(1, warm_kernels=True)
    slots = DaskSlots(1, warm_kernels=True)
    try:
        assert slots.client is wanted.result()[1]  # adopted, not a third cluster
        wanted.close()  # a no-op once adopted
        shutil.copy(compat_dir / "concepts_task_shell_parameters.yaml", tmp_path / "p.yaml")
        parameters = initial_parameters(compat_dir / "concepts_task_shell_parameters.params.yaml", ())
        result = run_pipeline(load_yaml(tmp_path / "p.yaml"), parameters=parameters, run_id="early",
                              cwd=tmp_path, slots=slots)
        assert result.status == "SUCCESS", result.run_log
        ours = cluster_processes(slots)
        spare.close()
        wait_gone(_descendants() - before - ours, "the spare cluster's processes end")
        assert alive(ours) == ours  # closing the spare left the adopted cluster alone
    finally:
        slots.close()
    wait_gone(ours, "the adopted cluster's processes end")


def test_the_last_cluster_closed_stops_the_forkserver_and_tracker_it_started() -> None:
    """In a process of its own (this one's helpers are shared with other tests): a LocalCluster and a
    local pool, closed in either order, leave no child process at all."""
    script = """if 1:
        import psutil
        from magnus_jupyter.executor.dask_slots import DaskSlots
        from magnus_jupyter.executor.slots import TaskSlots

        def children():
            return sorted(" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True))

        for order in ("dask first", "local first"):
            dask, local = DaskSlots(1, warm_kernels=False), TaskSlots(1, warm_kernels=False)
            assert any("forkserver" in c for c in children()), children()
            for pool in (dask, local) if order == "dask first" else (local, dask):
                pool.close()
            psutil.wait_procs(psutil.Process().children(recursive=True), timeout=30)
            print(order, children())
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["dask first []", "local first []"]


@pytest.mark.parametrize("stub", [False, True])
def test_the_cli_starts_its_local_cluster_early_and_stops_it(tmp_path: Path, compat_dir: Path,
                                                             stub: bool) -> None:
    """``run --executor dask`` without a scheduler: the cluster prepared while the run is set up runs the
    tasks, or (a pipeline with no task) is stopped unused; either way the command ends."""
    if stub:
        (tmp_path / "p.yaml").write_text("dag:\n  start_at: s\n  steps:\n    s:\n      type: stub\n"
                                         "      next: success\n    success:\n      type: success\n"
                                         "    fail:\n      type: fail\n")
        args = []
    else:
        shutil.copy(compat_dir / "concepts_task_shell_parameters.yaml", tmp_path / "p.yaml")
        shutil.copy(compat_dir / "concepts_task_shell_parameters.params.yaml", tmp_path / "params.yaml")
        args = ["-p", "params.yaml"]
    done = subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", "p.yaml", *args, "--workers", "1",
                           "--executor", "dask", "--run-id", "early", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    log = json.loads((tmp_path / ".run_log_store" / "early.json").read_text())
    assert log["status"] == "SUCCESS"
    if not stub:
        assert log["parameters"] == {"spam": "Universe", "eggs": {"ham": "Maybe, one more.."}}
