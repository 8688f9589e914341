"""Issue 6: the demo pipeline's wall time on the local executor and on a 2-worker Dask LocalCluster.

Two views, each the median of ``--repeat`` runs in fresh folders (own Jupyter/IPython dirs):

- whole command: ``magnus-jupyter run notebooks/pipeline.yaml --workers 2`` with and
  without ``--executor dask`` (interpreter, pool or cluster start-up and exit included),
  the two alternated;
- steady state: one process holds a warm ``TaskSlots(2)`` and a ``DaskSlots(2)``
  (cluster up, workers' kernels warm after a first run) and times ``run_pipeline`` alone.

Target: Dask within 1.5x of local on this machine.

Run:  .venv/bin/python bench/dask_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5


def demo_folder(base: Path, name: str) -> Path:
    folder = base / name
    (folder / "notebooks").mkdir(parents=True)
    for file in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(file, folder / "notebooks" / file.name)
    shutil.copy(ROOT / "notebooks" / "pipeline.yaml", folder / "notebooks" / "pipeline.yaml")
    return folder


def whole_command(base: Path, executor: str, i: int, env: dict[str, str]) -> float:
    folder = demo_folder(base, f"cli-{executor}-{i}")
    args = [sys.executable, "-m", "magnus_jupyter", "run", "notebooks/pipeline.yaml", "--workers", "2",
            "--quiet", "--executor", executor]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{executor} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def steady(base: Path, repeat: int) -> dict[str, list[float]]:
    from magnus_jupyter.executor.dask_slots import DaskSlots
    from magnus_jupyter.executor.engine import run_pipeline
    from magnus_jupyter.executor.slots import TaskSlots
    from magnus_jupyter.yaml_io import load_yaml

    times: dict[str, list[float]] = {"local": [], "dask": []}
    with TaskSlots(2) as local, DaskSlots(2) as dask:
        pools = {"local": local, "dask": dask}
        for i in range(repeat + 1):  # the first round warms the workers' kernels; not counted
            for name, slots in pools.items():
                if name == "local":
                    deadline = time.monotonic() + 60
                    while local.ready_kernels < 2 and time.monotonic() < deadline:
                        time.sleep(0.05)
                folder = demo_folder(base, f"steady-{name}-{i}")
                pipeline = load_yaml(folder / "notebooks" / "pipeline.yaml")
                start = time.perf_counter()
                result = run_pipeline(pipeline, cwd=folder, slots=slots, workers=2)
                elapsed = time.perf_counter() - start
                if result.status != "SUCCESS":
                    sys.exit(f"{name} steady run failed: {result.run_log}")
                if i:
                    times[name].append(elapsed)
    return times


def report(title: str, times: dict[str, list[float]]) -> bool:
    local, dask = statistics.median(times["local"]), statistics.median(times["dask"])
    ratio = dask / local
    ok = ratio <= TARGET
    print(f"{title}")
    for label, name, median in (("local executor, 2 workers     ", "local", local),
                                ("dask LocalCluster, 2 processes", "dask", dask)):
        print(f"  {label}  {median:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"  dask / local                    {ratio:6.2f}x  target <= {TARGET}x  {'OK' if ok else 'MISSED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as tmp:
        base = Path(tmp)
        for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            (base / var).mkdir()
            os.environ[var] = str(base / var)
        os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
        env = dict(os.environ)
        print(f"demo pipeline (6 notebooks, 2 parallel branches), {os.cpu_count()} CPUs, "
              f"median of {args.repeat}\n")
        cli: dict[str, list[float]] = {"local": [], "dask": []}
        for i in range(args.repeat):  # alternated, so the machine's other work weighs on both alike
            for name in cli:
                cli[name].append(whole_command(base, name, i, env))
        ok = report("whole command (start-up included)", cli)
        print()
        ok = report("steady state (pool / cluster already up)", steady(base, args.repeat)) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
