"""Benchmarks (a)-(c) of issue 3: notebooks in parallel, CPU-bound notebooks, per-notebook overhead.

Every approach is timed as a whole shell command (interpreter start and
imports included), in a temporary folder with its own Jupyter/IPython dirs:

(a) 8 notebooks that each sleep 2 s: the papermill CLI one after another, a
    ``ProcessPoolExecutor(8)`` of ``papermill.execute_notebook``, ``TaskSlots(8)``
    and ``magnus-jupyter run --workers 8`` on an 8-branch parallel pipeline.
    Targets: >= 6x sequential papermill, >= 1.5x the process pool.
(b) 4 CPU-bound ~1.5 s notebooks on this machine: sequential papermill (CLI and
    one process) vs ``TaskSlots(2)`` and ``magnus-jupyter run --workers 2``.
    Target: >= 1.85x sequential.
(c) a chain of 10 trivial notebooks, one after the other: median time per
    notebook beyond its cells' own time, papermill alone (one process) vs ours
    (``TaskSlots``, warm kernels ready). Target: <= 0.15 s.

Run:  .venv/bin/python bench/notebooks_bench.py [--only a,b,c] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PAPERMILL = f"{BIN / 'papermill'} --no-progress-bar"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path: Path, parameters: str, body: str) -> None:
    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)],
                      metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    nbformat.write(nb, path)


CPU_CELL = "def spin(n):\n    x = 0\n    for i in range(n):\n        x += i\n    return x\n\n\nspin(loops)"


def spin(n: int) -> int:
    """The CPU notebook's loop, as a function here and there (globals in a cell run slower)."""
    x = 0
    for i in range(n):
        x += i
    return x


def calibrate_cpu(seconds: float) -> int:
    """Loop iterations that take about ``seconds`` of one core here."""
    n = 3_000_000
    start = time.perf_counter()
    spin(n)
    per = (time.perf_counter() - start) / n
    return int(seconds / per)


def timed(command: str, cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one whole shell command; a failing command stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed ({proc.returncode}): {command}\n{proc.stdout[-2000:]}"
                 f"\n{proc.stderr[-2000:]}")
    return elapsed


POOL_SCRIPT = """
import sys
from concurrent.futures import ProcessPoolExecutor
import papermill

def one(i):
    papermill.execute_notebook(sys.argv[1], f"pool_out_{i}.ipynb", progress_bar=False)

if __name__ == "__main__":
    n = int(sys.argv[2])
    with ProcessPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
"""

SEQ_INPROC_SCRIPT = """
import sys
import papermill

for i in range(int(sys.argv[2])):
    papermill.execute_notebook(sys.argv[1], f"seq_out_{i}.ipynb", progress_bar=False)
"""

SLOTS_SCRIPT = """
import os, sys
from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.executor.task import TaskSpec

notebook, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with TaskSlots(workers) as slots:
    futures = [slots.submit(TaskSpec(f"nb{i}", "notebook", notebook, os.getcwd(),
                                     notebook_output_path=os.path.abspath(f"slots_out_{i}.ipynb")))
               for i in range(n)]
    bad = [r.message for r in (f.result() for f in futures) if r.status != "SUCCESS"]
sys.exit("\\n".join(bad) if bad else 0)
"""

# (c): per-notebook time beyond the cells' own time, papermill alone and ours.
CHAIN_PAPERMILL = """
import json, sys, time
import papermill

def cell_time(nb):
    return sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in nb.cells)

out = []
for i in range(int(sys.argv[2])):
    start = time.perf_counter()
    nb = papermill.execute_notebook(sys.argv[1], f"chain_pm_{i}.ipynb", parameters={"i": i},
                                    progress_bar=False)
    out.append(time.perf_counter() - start - cell_time(nb))
print(json.dumps(out))
"""

CHAIN_SLOTS = """
import json, os, sys, time
import nbformat
from magnus_jupyter.executor.slots import TaskSlots
from magnus_jupyter.executor.task import TaskSpec

def cell_time(path):
    nb = nbformat.read(path, as_version=4)
    return sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in nb.cells)

notebook, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
with TaskSlots(workers) as slots:
    deadline = time.monotonic() + 60
    while slots.ready_kernels < workers and time.monotonic() < deadline:  # steady state: kernels booted
        time.sleep(0.05)
    for i in range(n):
        path = os.path.abspath(f"chain_ours_{i}.ipynb")
        start = time.perf_counter()
        result = slots.submit(TaskSpec(f"nb{i}", "notebook", notebook, os.getcwd(), parameters={"i": i},
                                       notebook_output_path=path)).result()
        elapsed = time.perf_counter() - start
        assert result.status == "SUCCESS", result.message
        out.append(elapsed - cell_time(path))
print(json.dumps(out))
"""


def parallel_yaml(notebook: str, branches: int) -> str:
    lines = ["dag:", "  start_at: fan out", "  steps:", "    fan out:", "      type: parallel",
             "      next: success", "      branches:"]
    for b in range(branches):
        lines += [f"        branch {b}:", "          start_at: run", "          steps:",
                  "            run:", "              type: task", "              command_type: notebook",
                  f"              command: {notebook}", "              next: success",
                  "            success: {type: success}", "            fail: {type: fail}"]
    lines += ["    success: {type: success}", "    fail: {type: fail}"]
    return "\n".join(lines) + "\n"


def cli_available(env: dict[str, str]) -> bool:
    script = BIN / "magnus-jupyter"
    if not script.exists():
        return False
    proc = subprocess.run([str(script), "run", "--help"], env=env, capture_output=True, text=True,
                          check=False)
    return proc.returncode == 0 and "--workers" in proc.stdout


def row(label: str, seconds: float, base: float | None = None, extra: str = "") -> None:
    ratio = f"{base / seconds:6.2f}x" if base else "       "
    print(f"  {label:<46} {seconds:7.2f} s  {ratio}  {extra}")


def bench_a(work: Path, env: dict[str, str], py: str, cli: bool, skip_cli: bool) -> None:
    n = 8
    write_notebook(work / "sleep2.ipynb", "seconds = 2.0", "import time\n\ntime.sleep(seconds)")
    print(f"(a) {n} notebooks that each sleep 2 s")
    results: dict[str, float] = {}
    if not skip_cli:
        seq = " && ".join(f"{PAPERMILL} sleep2.ipynb seq_cli_{i}.ipynb" for i in range(n))
        results["papermill CLI, one after another"] = timed(seq, work, env)
    results["ProcessPoolExecutor(8) of papermill"] = timed(f"{py} pool.py sleep2.ipynb {n}", work, env)
    results["TaskSlots(8)"] = timed(f"{py} slots.py sleep2.ipynb {n} 8", work, env)
    if cli:
        (work / "parallel8.yaml").write_text(parallel_yaml("sleep2.ipynb", n))
        results["magnus-jupyter run --workers 8"] = timed(
            f"{BIN / 'magnus-jupyter'} run parallel8.yaml --workers 8 --quiet", work, env)
    seq_time = results.get("papermill CLI, one after another")
    pool_time = results["ProcessPoolExecutor(8) of papermill"]
    for label, seconds in results.items():
        extra = f"vs pool {pool_time / seconds:.2f}x" if "Slots" in label or "magnus" in label else ""
        row(label, seconds, seq_time, extra)
    print("  targets: >= 6x sequential papermill, >= 1.5x the process pool")


def bench_b(work: Path, env: dict[str, str], py: str, cli: bool, skip_cli: bool) -> None:
    n = 4
    loops = calibrate_cpu(1.5)
    write_notebook(work / "cpu.ipynb", f"loops = {loops}", CPU_CELL)
    print(f"(b) {n} CPU-bound notebooks of ~1.5 s ({loops:,} loop iterations) on {os.cpu_count()} cores")
    results: dict[str, float] = {}
    if not skip_cli:
        seq = " && ".join(f"{PAPERMILL} cpu.ipynb cpu_cli_{i}.ipynb" for i in range(n))
        results["papermill CLI, one after another"] = timed(seq, work, env)
    results["papermill in one process, one after another"] = timed(f"{py} seq.py cpu.ipynb {n}", work, env)
    results["TaskSlots(2)"] = timed(f"{py} slots.py cpu.ipynb {n} 2", work, env)
    if cli:
        (work / "parallel4.yaml").write_text(parallel_yaml("cpu.ipynb", n))
        results["magnus-jupyter run --workers 2"] = timed(
            f"{BIN / 'magnus-jupyter'} run parallel4.yaml --workers 2 --quiet", work, env)
    base = results.get("papermill CLI, one after another")
    inproc = results["papermill in one process, one after another"]
    for label, seconds in results.items():
        ours = "Slots" in label or "magnus" in label
        extra = f"vs one-process papermill {inproc / seconds:.2f}x" if ours else ""
        row(label, seconds, base, extra)
    print("  target: >= 1.85x sequential")


def bench_c(work: Path, env: dict[str, str], py: str) -> None:
    n = 10
    write_notebook(work / "trivial.ipynb", "i = 0", "square = i * i")
    print(f"(c) a chain of {n} trivial notebooks: time per notebook beyond its cells' time")

    def run(script: str, *args: object) -> list[float]:
        proc = subprocess.run([py, script, "trivial.ipynb", str(n), *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{script} failed:\n{proc.stderr[-2000:]}")
        return [float(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]

    papermill_alone = run("chain_papermill.py")
    rows = [("papermill.execute_notebook, one process", papermill_alone)]
    for workers in (2, 8):
        rows.append((f"TaskSlots({workers}), warm kernels", run("chain_slots.py", workers)))
    for label, values in rows:
        print(f"  {label:<46} median {statistics.median(values):.3f} s   "
              f"(min {min(values):.3f}, max {max(values):.3f})")
    print("  target: <= 0.15 s median per notebook")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c", help="which parts to run, e.g. 'a,c'")
    parser.add_argument("--skip-cli", action="store_true", help="skip the slow sequential papermill CLI rows")
    args = parser.parse_args()
    parts = set(args.only.split(","))

    with tempfile.TemporaryDirectory(prefix="magnus-nb-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
            (work / ".home" / sub).mkdir(parents=True)
            env[var] = str(work / ".home" / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env["PYTHONWARNINGS"] = "ignore"
        scripts = {"pool.py": POOL_SCRIPT, "seq.py": SEQ_INPROC_SCRIPT, "slots.py": SLOTS_SCRIPT,
                   "chain_papermill.py": CHAIN_PAPERMILL, "chain_slots.py": CHAIN_SLOTS}
        for name, script in scripts.items():
            (work / name).write_text(textwrap.dedent(script))
        py = shlex.quote(sys.executable)
        cli = cli_available(env)
        load = os.getloadavg()[0]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
              f"{platform.python_version()}, load average {load:.2f} at start"
              + ("" if cli else "  (magnus-jupyter run not available: its rows are skipped)"))
        if "a" in parts:
            bench_a(work, env, py, cli, args.skip_cli)
        if "b" in parts:
            bench_b(work, env, py, cli, args.skip_cli)
        if "c" in parts:
            bench_c(work, env, py)


if __name__ == "__main__":
    main()
