"""Benchmark of issue 14: what an unchanged re-run costs, and what a fingerprint costs.

(a) The demo pipeline (notebooks/pipeline.yaml, six notebooks, two parallel
    branches), whole ``magnus-jupyter run --reuse`` commands in a copy of the
    project: its first run (nothing to reuse) against the unchanged re-run
    right after it (everything reused). Target: the re-run >= 4x faster.
(b) Fingerprints of a 1,000-iteration map of a notebook task with ten
    parameters and two declared input files, as the engine takes them in one
    run (the notebook and files read once, then remembered by stat). Target:
    <= 5 ms per task.
(c) Hashing a declared file: ``Fingerprints.file_digest`` of a 256 MB file (its
    digest not remembered yet) against a bare ``hashlib.sha256`` loop over the
    same file, alternated: the fingerprint hashes at sha256's speed, so at disk
    speed wherever the disk is slower than sha256.

Run:  .venv/bin/python bench/incremental_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from magnus_jupyter.executor.fingerprint import Fingerprints  # noqa: E402
from magnus_jupyter.model import Task  # noqa: E402

RATIO_TARGET = 4.0
PER_TASK_TARGET = 0.005  # seconds


def command() -> list[str]:
    script = Path(sys.executable).parent / "magnus-jupyter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "magnus_jupyter"]


def run_demo(folder: Path, run_id: str) -> tuple[float, dict]:
    start = time.perf_counter()
    args = ["run", "notebooks/pipeline.yaml", "--reuse", "--quiet", "--workers", "4", "--run-id", run_id]
    done = subprocess.run([*command(), *args], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"demo run {run_id}: exit {done.returncode}\n{done.stderr}")
    return took, json.loads((folder / ".run_log_store" / f"{run_id}.json").read_text())


def tasks(log: dict) -> list[dict]:
    out, stack = [], [log["steps"]]
    while stack:
        for step in stack.pop().values():
            if step["step_type"] == "task":
                out.append(step)
            stack.extend(b["steps"] for b in step["branches"].values())
    return out


def demo(repeat: int) -> tuple[list[float], list[float]]:
    firsts, agains = [], []
    for i in range(repeat):
        with tempfile.TemporaryDirectory(prefix="incremental-bench-") as tmp:
            folder = Path(tmp)
            shutil.copytree(ROOT / "notebooks", folder / "notebooks")
            took, log = run_demo(folder, f"first{i}")
            if any(t.get("reused_from") for t in tasks(log)):
                raise SystemExit("the first run reused something: the copy is not fresh")
            firsts.append(took)
            took, log = run_demo(folder, f"again{i}")
            ran = [f"{t['internal_name']} ({t.get('rerun_reason')})" for t in tasks(log)
                   if t.get("reused_from") != f"first{i}"]
            if ran:
                raise SystemExit("the unchanged re-run ran a task: " + ", ".join(ran))
            agains.append(took)
    return firsts, agains


def fingerprint_cost(folder: Path, count: int = 1000) -> float:
    """Seconds per task for ``count`` map iterations' fingerprints, as one run takes them."""
    nb = {"cells": [{"cell_type": "code", "source": f"x{i} = {i}\n", "metadata": {}, "outputs": [],
                     "execution_count": None} for i in range(30)],
          "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "nb.ipynb").write_text(json.dumps(nb))
    (folder / "data").mkdir()
    (folder / "data" / "a.csv").write_bytes(os.urandom(1 << 16))
    (folder / "data" / "b.csv").write_bytes(os.urandom(1 << 16))
    step = Task(name="work", command="nb.ipynb", command_type="notebook", inputs=["data/*.csv"],
                returns=["score"], next="success")
    params = {f"p{i}": [i, str(i) * 5] for i in range(10)}
    fingerprints = Fingerprints(folder)
    fingerprints.environment()  # once per run, before the first task: not a per-task cost
    start = time.perf_counter()
    for value in range(count):
        fingerprints.task(step, {**params, "item": value}, [])
    return (time.perf_counter() - start) / count


def hashing(folder: Path, size: int = 256 << 20, times: int = 5) -> tuple[float, float]:
    """MB/s of file_digest (its stat cache cold each time) and of a bare sha256 loop over the same file,
    alternated, medians (the file is in the page cache for both: this is the hashing, not the disk)."""
    path = folder / "big.bin"
    with open(path, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(os.urandom(1 << 20))
    ours, bare = [], []
    for _ in range(times):
        start = time.perf_counter()
        digest = Fingerprints(folder).file_digest(path)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        bare.append(time.perf_counter() - start)
        assert digest == sha.hexdigest()
    return (size >> 20) / statistics.median(ours), (size >> 20) / statistics.median(bare)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="demo runs of each kind; medians reported")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    failed = False
    firsts, agains = demo(args.repeat)
    first, again = statistics.median(firsts), statistics.median(agains)
    ratio = first / again
    failed |= ratio < RATIO_TARGET
    print(f"(a) demo pipeline, whole command, median of {args.repeat}: first run {first:.2f} s "
          f"({min(firsts):.2f}-{max(firsts):.2f}), unchanged re-run {again:.2f} s "
          f"({min(agains):.2f}-{max(agains):.2f}): {ratio:.1f}x faster; target >= {RATIO_TARGET:.0f}x: "
          f"{'ok' if ratio >= RATIO_TARGET else 'UNDER TARGET'}")
    with tempfile.TemporaryDirectory(prefix="incremental-bench-") as tmp:
        costs = []
        for i in range(args.repeat):
            sub = Path(tmp) / f"map{i}"
            sub.mkdir()
            costs.append(fingerprint_cost(sub))
        cost = statistics.median(costs)
        failed |= cost > PER_TASK_TARGET
        print(f"(b) fingerprint per task, 1,000-iteration map of a notebook task (30 cells, 11 parameters, "
              f"2 input files), median of {args.repeat}: {cost * 1000:.2f} ms; target <= "
              f"{PER_TASK_TARGET * 1000:.0f} ms: {'ok' if cost <= PER_TASK_TARGET else 'OVER TARGET'}")
        ours, bare = hashing(Path(tmp))
        print(f"(c) hashing a declared 256 MB file: {ours:.0f} MB/s; a bare sha256 loop {bare:.0f} MB/s "
              f"({ours / bare:.2f}x)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
