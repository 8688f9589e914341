"""The task pool with real worker processes and real kernels: notebooks, shell, python, limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import nbformat
import psutil
import pytest

from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.executor.task import FAIL, SUCCESS, TaskResult, TaskSpec

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WAIT = 120  # seconds a future may take on a loaded machine before the test gives up (not a timing goal)

pytestmark = pytest.mark.slow


class Progress:
    """Collects on_progress calls, which arrive on the pool's monitor thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, done: int, total: int) -> None:
        with self.lock:
            self.calls.append((name, done, total))

    def of(self, name: str) -> list[tuple[int, int]]:
        with self.lock:
            return [(d, t) for n, d, t in self.calls if n == name]


@pytest.fixture(scope="module")
def progress() -> Progress:
    return Progress()


@pytest.fixture(scope="module")
def pool(progress: Progress) -> Iterator[TaskSlots]:
    with TaskSlots(2, on_progress=progress) as slots:
        yield slots


def run(pool: TaskSlots, spec: TaskSpec) -> TaskResult:
    return pool.submit(spec).result(timeout=WAIT)


def notebook(name: str, path: str, cwd: Path, **kw: object) -> TaskSpec:
    return TaskSpec(internal_name=name, kind="notebook", command=path, cwd=str(cwd),  # type: ignore[arg-type]
                    notebook_output_path=str(cwd / "out" / f"{name}.ipynb"), **kw)


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_notebook_parameters_returns_and_magnus_output(pool: TaskSlots, progress: Progress,
                                                       tmp_path: Path) -> None:
    spec = notebook("Train.params", str(NOTEBOOKS / "params.ipynb"), tmp_path,
                    parameters={"x": 5, "unused": [1, 2]}, map_variable={"name": "Bob"},
                    returns=["greeting", "cwd", "run_id", "prm_x"], env={"MAGNUS_RUN_ID": "run-7"},
                    log_path=str(tmp_path / "logs" / "params.log"))
    result = run(pool, spec)
    assert result.status == SUCCESS, result.message
    assert result.parameters == {
        "doubled": 10, "shout": "HELLO BOB",  # the magnus_output cell
        "greeting": "hello Bob", "cwd": str(tmp_path), "run_id": "run-7", "prm_x": "5",  # returns
    }
    assert result.output_notebook == str(tmp_path / "out" / "Train.params.ipynb")
    executed = nbformat.read(result.output_notebook, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 5" in injected[0].source and 'name = "Bob"' in injected[0].source
    assert not any("__magnus" in c.source for c in executed.cells)  # the collection stayed hidden
    assert "{'doubled': 10" in (tmp_path / "logs" / "params.log").read_text()
    total = len(executed.cells)
    assert progress.of("Train.params") == [(i, total) for i in range(1, total + 1)]


def test_notebook_without_parameters_cell_still_gets_them(pool: TaskSlots, tmp_path: Path) -> None:
    result = run(pool, notebook("np", str(NOTEBOOKS / "noparams.ipynb"), tmp_path, parameters={"x": 3},
                                returns=["x", "z"]))
    assert result.status == SUCCESS, result.message
    assert result.parameters == {"x": 3, "z": 42}


def test_failing_cell_names_cell_and_error_and_keeps_partial_output(pool: TaskSlots, tmp_path: Path) -> None:
    result = run(pool, notebook("bad", str(NOTEBOOKS / "fail.ipynb"), tmp_path, returns=["a"]))
    assert result.status == FAIL
    assert "cell 1" in result.message and "ValueError" in result.message
    assert "boom at cell two" in result.message
    assert result.parameters == {}
    executed = nbformat.read(tmp_path / "out" / "bad.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.source for c in code] == ["a = 1", "raise ValueError('boom at cell two')", "never = True"]
    assert code[1].outputs[0]["ename"] == "ValueError"
    assert code[2].get("execution_count") is None  # stopped at the failure


def test_notebook_problems_fail_clearly(pool: TaskSlots, tmp_path: Path) -> None:
    missing = run(pool, notebook("m", "nowhere/missing.ipynb", tmp_path))
    assert missing.status == FAIL and "not found" in missing.message and "missing.ipynb" in missing.message

    trivial = str(NOTEBOOKS / "trivial.ipynb")
    undefined = run(pool, notebook("u", trivial, tmp_path, returns=["square", "nope"]))
    assert undefined.status == FAIL and "'nope'" in undefined.message and "never defines" in undefined.message

    unjsonable = run(pool, notebook("j", str(NOTEBOOKS / "unjsonable.ipynb"), tmp_path, returns=["thing"]))
    assert unjsonable.status == FAIL and "'thing'" in unjsonable.message and "JSON" in unjsonable.message

    no_kernel = run(pool, notebook("k", str(NOTEBOOKS / "trivial.ipynb"), tmp_path,
                                   kernel_name="no-such-kernel-here"))
    assert no_kernel.status == FAIL and "no-such-kernel-here" in no_kernel.message


def test_magnus_output_must_be_a_dict_literal(pool: TaskSlots, tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("print('not a dict')")
    cell.metadata["tags"] = ["magnus_output"]
    nb = nbformat.v4.new_notebook(cells=[cell])  # no kernelspec either: python3 is assumed
    nbformat.write(nb, tmp_path / "bad_output.ipynb")
    result = run(pool, notebook("o", "bad_output.ipynb", tmp_path))
    assert result.status == FAIL and "magnus_output" in result.message and "not a dict" in result.message


def test_shell_and_python_tasks_run_in_worker_processes(pool: TaskSlots, tmp_path: Path) -> None:
    (tmp_path / "where.py").write_text(textwrap.dedent("""
        import os

        def pid(tag):
            return {"pid": os.getpid(), "tag": tag}
    """))
    py = run(pool, TaskSpec("py", "python", "where.pid", str(tmp_path), parameters={"tag": "t"}))
    sh = run(pool, TaskSpec("sh", "shell", "export MAGNUS_PRM_pid=$PPID", str(tmp_path)))
    assert py.status == SUCCESS and sh.status == SUCCESS, (py.message, sh.message)
    assert py.parameters["tag"] == "t"
    assert py.parameters["pid"] != os.getpid()
    assert sh.parameters["pid"] != os.getpid()


def test_shell_exit_code_comes_back_as_fail(pool: TaskSlots, tmp_path: Path) -> None:
    result = run(pool, TaskSpec("exit1", "shell", "exit 1", str(tmp_path)))
    assert result.status == FAIL and "exited with code 1" in result.message


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_the_whole_shell_tree(pool: TaskSlots, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # 3 s: time enough for the shell to write the pid file even on a loaded machine
    spec = TaskSpec("slow", "shell", f"sleep 60 & echo $! > {pidfile}; wait", str(tmp_path), timeout=3)
    result = run(pool, spec)
    assert result.status == FAIL and result.message == "timed out after 3 s"
    assert _gone(int(pidfile.read_text()))
    after = run(pool, TaskSpec("after", "shell", "export MAGNUS_PRM_ok=1", str(tmp_path)))
    assert after.status == SUCCESS and after.parameters == {"ok": 1}  # the slot was refilled


def test_timeout_stops_a_notebook(pool: TaskSlots, tmp_path: Path) -> None:
    result = run(pool, notebook("nap", str(NOTEBOOKS / "sleep.ipynb"), tmp_path, parameters={"seconds": 60},
                                timeout=1.5))
    assert result.status == FAIL and result.message == "timed out after 1.5 s"
    again = run(pool, notebook("nap2", str(NOTEBOOKS / "sleep.ipynb"), tmp_path, parameters={"seconds": 0},
                               returns=["slept"]))
    assert again.status == SUCCESS and again.parameters == {"slept": 0}


def test_cancel_running_and_queued(pool: TaskSlots, tmp_path: Path) -> None:
    pidfile = tmp_path / "sleeper.pid"
    running = [pool.submit(TaskSpec(f"run{i}", "shell", f"echo $$ > {pidfile}{i}; sleep 60", str(tmp_path)))
               for i in range(2)]
    queued = pool.submit(TaskSpec("queued", "shell", "export MAGNUS_PRM_ran=1", str(tmp_path)))
    deadline = time.monotonic() + WAIT
    while not (Path(f"{pidfile}0").exists() and Path(f"{pidfile}1").exists()):
        assert time.monotonic() < deadline, "the sleepers never started"
        time.sleep(0.05)
    pool.cancel("queued")
    assert queued.result(timeout=WAIT).message == "cancelled"
    pool.cancel("run0")
    pool.cancel("run1")
    for i, future in enumerate(running):
        result = future.result(timeout=WAIT)
        assert result.status == FAIL and result.message == "cancelled"
        assert _gone(int(Path(f"{pidfile}{i}").read_text()))
    pool.cancel("never-submitted")  # harmless


def test_a_worker_that_dies_fails_its_task_and_is_replaced(pool: TaskSlots, tmp_path: Path) -> None:
    (tmp_path / "suicide.py").write_text(
        "import os, signal\n\ndef die():\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    result = run(pool, TaskSpec("die", "python", "suicide.die", str(tmp_path)))
    assert result.status == FAIL and "died" in result.message and "SIGKILL" in result.message
    after = run(pool, TaskSpec("after", "shell", "export MAGNUS_PRM_ok=2", str(tmp_path)))
    assert after.status == SUCCESS and after.parameters == {"ok": 2}


def test_at_most_workers_tasks_run_at_once(pool: TaskSlots, tmp_path: Path) -> None:
    futures = [pool.submit(TaskSpec(f"s{i}", "shell", "sleep 0.5", str(tmp_path))) for i in range(4)]
    results = [f.result(timeout=WAIT) for f in futures]
    assert all(r.status == SUCCESS for r in results), [r.message for r in results]
    spans = sorted((stamp(r.start_time), stamp(r.end_time)) for r in results)
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start < e)
        assert running <= 2
    # two waves: the third task starts only after one of the first two finished
    assert spans[2][0] >= min(spans[0][1], spans[1][1])


def test_twenty_notebooks_on_four_workers_all_succeed(tmp_path: Path) -> None:
    with TaskSlots(4) as slots:
        futures = [slots.submit(notebook(f"nb{i}", str(NOTEBOOKS / "trivial.ipynb"), tmp_path,
                                         parameters={"i": i}, returns=["square"])) for i in range(20)]
        results = [f.result(timeout=WAIT) for f in futures]
    assert [r.message for r in results if r.status != SUCCESS] == []
    assert [r.parameters["square"] for r in results] == [i * i for i in range(20)]


CLOSE_SCRIPT = """
import json, os, sys
from pathlib import Path
from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.executor.task import TaskSpec

def descendants():
    found, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = {int(p) for p in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return sorted(found)

def files():
    return sorted(str(p) for p in Path(os.environ["JUPYTER_RUNTIME_DIR"]).glob("kernel-*.json"))

notebook, folder = sys.argv[1], sys.argv[2]
slots = TaskSlots(2)
busy = slots.submit(TaskSpec("busy", "shell", "sleep 60", folder))
done = slots.submit(TaskSpec("one", "notebook", notebook, folder,
                             notebook_output_path=os.path.join(folder, "one_out.ipynb"))).result()
during = {"processes": descendants(), "files": files(), "status": done.status, "message": done.message}
slots.close()
slots.close()
try:
    slots.submit(TaskSpec("late", "shell", "true", folder))
    late = "accepted"
except RuntimeError:
    late = "refused"
after = {"processes": descendants(), "files": files(), "busy": busy.result(timeout=1).message, "late": late}
print(json.dumps({"during": during, "after": after}))
"""


def test_close_leaves_no_processes_behind(tmp_path: Path) -> None:
    """In a process of its own, so no other pool shares its forkserver: close() must leave
    no worker, kernel, shell, forkserver or resource tracker, and no kernel connection file."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    args = [sys.executable, "-c", CLOSE_SCRIPT, str(NOTEBOOKS / "trivial.ipynb"), str(tmp_path)]
    proc = subprocess.run(args,
                          env=env, capture_output=True, text=True, timeout=WAIT, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    during, after = report["during"], report["after"]
    assert during["status"] == SUCCESS, during["message"]
    assert len(during["processes"]) >= 5  # forkserver, 2 workers, a shell, kernels
    assert during["files"]  # the warm kernels' connection files
    assert after["processes"] == []
    assert after["files"] == []
    assert after["busy"] == "cancelled: the task pool was closed"
    assert after["late"] == "refused"


SIGKILL_SCRIPT = """
import json, os, signal, sys, time
from pathlib import Path
from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.executor.task import TaskSpec

notebook, folder = sys.argv[1], sys.argv[2]
slots = TaskSlots(2)
slots.submit(TaskSpec("sleeper", "shell", f"echo $$ > {folder}/sleeper.pid; sleep 600", folder))
done = slots.submit(TaskSpec("one", "notebook", notebook, folder,
                             notebook_output_path=os.path.join(folder, "one_out.ipynb"))).result()
while not Path(folder, "sleeper.pid").exists():
    time.sleep(0.05)
def children(pid):
    kids = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return kids
    for task in tasks:
        try:
            kids |= {int(p) for p in (task / "children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError):  # a thread or process that ended meanwhile
            pass
    return kids
found, todo = set(), [os.getpid()]
while todo:
    kids = children(todo.pop())
    todo.extend(kids - found)
    found |= kids
print(json.dumps({"status": done.status, "processes": sorted(found)}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit
"""


def test_a_killed_orchestrator_takes_workers_kernels_and_shells_along(tmp_path: Path) -> None:
    args = [sys.executable, "-c", SIGKILL_SCRIPT, str(NOTEBOOKS / "trivial.ipynb"), str(tmp_path)]
    out = tmp_path / "out.txt"
    with out.open("w") as handle:  # a file, not a pipe: survivors must not keep this test waiting
        proc = subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, timeout=WAIT, check=False)
    assert proc.returncode == -9, out.read_text()
    report = json.loads(out.read_text().strip().splitlines()[-1])
    assert report["status"] == SUCCESS
    assert len(report["processes"]) >= 6  # forkserver, workers, zygotes, kernels, the shell and its sleep
    # the shell sleeps 600 s: anything still there after 30 s would have outlived its orchestrator
    deadline = time.monotonic() + 30
    survivors = [pid for pid in report["processes"] if not _gone(pid, within=deadline - time.monotonic())]
    assert survivors == []


def _kernelspec(name: str, launcher: str) -> None:
    """A kernelspec in this session's Jupyter data dir whose command is ``launcher`` first."""
    folder = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, launcher, "{connection_file}"], "display_name": name, "language": "python",
    }))


def test_kernel_start_failures_are_retried_not_reported(pool: TaskSlots, tmp_path: Path) -> None:
    """A kernel that dies on its first launch (as on a port race): the notebook still runs."""
    marker = tmp_path / "first-launch-happened"
    launcher = tmp_path / "flaky_kernel.py"
    launcher.write_text(textwrap.dedent(f"""
        import os, sys
        from pathlib import Path

        marker = Path({str(marker)!r})
        if not marker.exists():
            marker.write_text("died")
            sys.exit(1)  # dies before answering, like a kernel that lost its port
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", sys.argv[1]])
    """))
    _kernelspec("flaky-once", str(launcher))
    result = run(pool, notebook("flaky", str(NOTEBOOKS / "trivial.ipynb"), tmp_path, kernel_name="flaky-once",
                                parameters={"i": 4}, returns=["square"]))
    assert result.status == SUCCESS, result.message
    assert result.parameters == {"square": 16}
    assert marker.read_text() == "died"  # the first launch really failed


def test_a_kernel_that_never_starts_fails_after_retries(pool: TaskSlots, tmp_path: Path) -> None:
    launcher = tmp_path / "dead_kernel.py"
    launcher.write_text("import sys\n\nsys.exit(3)\n")
    _kernelspec("always-dead", str(launcher))
    spec = notebook("dead", str(NOTEBOOKS / "trivial.ipynb"), tmp_path, kernel_name="always-dead")
    result = run(pool, spec)
    assert result.status == FAIL
    assert "always-dead" in result.message and "3 attempts" in result.message and "died" in result.message


def test_without_warm_kernels_notebooks_start_their_own(tmp_path: Path) -> None:
    with TaskSlots(1, warm_kernels=False) as slots:
        assert slots.ready_kernels == 0
        spec = notebook("cold", str(NOTEBOOKS / "trivial.ipynb"), tmp_path, parameters={"i": 3},
                        returns=["square"])
        result = slots.submit(spec).result(timeout=WAIT)
    assert result.status == SUCCESS and result.parameters == {"square": 9}, result.message
