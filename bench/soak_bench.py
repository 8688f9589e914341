"""Soak: 300 notebook tasks across nested parallel and map nodes, one in ten failing by a random fault.

The pipeline: a parallel step of 3 branches, each a map over 10 items, each
item a parallel of 2 sides, each side a chain of 5 notebook tasks
(3 x 10 x 2 x 5 = 300), every task going on to the next on failure. A seeded
random 30 of the 300 (task, item) pairs get a fault from issue 5's list,
injected by the notebook itself: an exception, ``os._exit(1)`` in the kernel,
SIGKILL of the kernel, or a hang past the task's ``timeout``.

It checks, and prints the counts of: every non-faulted task SUCCESS; every
faulted one FAIL with the reason of its fault; the run log accounting for all
300; no process left over (this process' descendants, and anything carrying
the run's environment marker, after a short grace). Exit 0 when all hold.

Run:  .venv/bin/python bench/soak_bench.py [--workers 16] [--seed 5] [--timeout 10] [--keep]
(about 50 s on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

BRANCHES, ITEMS, SIDES, CHAIN = ("A", "B", "C"), list(range(10)), ("L", "R"), 5
FAULTS = ("raise", "exit", "sigkill", "timeout")
REASON = {  # what the step's message must say for each fault
    "raise": "raised RuntimeError: injected fault",
    "exit": "died",
    "sigkill": "died",
    "timeout": "timed out after",
}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
BODY = textwrap.dedent("""\
    fault = {plan!r}.get(item)
    if fault == "raise":
        raise RuntimeError("injected fault")
    elif fault == "exit":
        import os
        os._exit(1)
    elif fault == "sigkill":
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "timeout":
        import time
        time.sleep(600)
    done = item
""")


def task_name(branch: str, item: int, side: str, step: int) -> str:
    return f"soak.{branch}.per item.{item}.sides.{side}.s{step}"


def plan_faults(seed: int) -> dict[str, str]:
    """30 of the 300 tasks, each with a fault (every kind used), by internal name."""
    rng = random.Random(seed)
    every = [(b, i, s, k) for b in BRANCHES for i in ITEMS for s in SIDES for k in range(1, CHAIN + 1)]
    chosen = rng.sample(every, len(every) // 10)
    return {task_name(*key): FAULTS[n % len(FAULTS)] for n, key in enumerate(chosen)}


def build(folder: Path, faults: dict[str, str], timeout: float) -> str:
    """One notebook per (branch, side, step), its faults per item baked in; the pipeline YAML."""
    chains = {}
    for branch in BRANCHES:
        for side in SIDES:
            steps = {}
            for k in range(1, CHAIN + 1):
                plan = {i: faults[task_name(branch, i, side, k)] for i in ITEMS
                        if task_name(branch, i, side, k) in faults}
                path = folder / "nb" / f"{branch}{side}{k}.ipynb"
                params = new_code_cell("item = -1")
                params.metadata["tags"] = ["parameters"]
                nb = new_notebook(cells=[params, new_code_cell(BODY.format(plan=plan))],
                                  metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
                path.parent.mkdir(exist_ok=True)
                nbformat.write(nb, path)
                after = f"s{k + 1}" if k < CHAIN else "success"
                steps[f"s{k}"] = {"type": "task", "command_type": "notebook",
                                  "command": str(path.relative_to(folder)), "timeout": timeout,
                                  "next": after, "on_failure": after}
            steps["success"] = {"type": "success"}
            steps["fail"] = {"type": "fail"}
            chains[(branch, side)] = {"start_at": "s1", "steps": steps}
    terminal = {"success": {"type": "success"}, "fail": {"type": "fail"}}
    branches = {}
    for branch in BRANCHES:
        sides = {"type": "parallel", "next": "success",
                 "branches": {side: chains[(branch, side)] for side in SIDES}}
        mapped = {"type": "map", "iterate_on": "items", "iterate_as": "item", "next": "success",
                  "branch": {"start_at": "sides", "steps": {"sides": sides, **terminal}}}
        branches[branch] = {"start_at": "per item", "steps": {"per item": mapped, **terminal}}
    dag = {"dag": {"start_at": "soak", "steps": {
        "soak": {"type": "parallel", "next": "success", "branches": branches}, **terminal}}}
    import yaml

    return yaml.safe_dump(dag, sort_keys=False)


def leftovers(mark: str) -> list[str]:
    import psutil

    found = []
    ours = {c.pid for c in psutil.Process().children(recursive=True)}
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.pid in ours or \
                    proc.environ().get("MAGNUS_SOAK_MARK") == mark:
                found.append(f"{proc.pid} {' '.join(proc.cmdline())[:100]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=10.0, help="every task's timeout (seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (run log, catalog)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="magnus-soak-"))
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (base / sub).mkdir()
        os.environ[var] = str(base / sub)
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    mark = uuid.uuid4().hex
    os.environ["MAGNUS_SOAK_MARK"] = mark
    folder = base / "run"
    folder.mkdir()

    from magnus_jupyter.executor.engine import run_pipeline
    from magnus_jupyter.executor.runlog import iter_steps
    from magnus_jupyter.yaml_io import load_yaml

    faults = plan_faults(args.seed)
    pipeline = load_yaml(build(folder, faults, args.timeout))
    start = time.perf_counter()
    result = run_pipeline(pipeline, cwd=folder, workers=args.workers, parameters={"items": ITEMS},
                          run_id="soak")
    took = time.perf_counter() - start
    tasks: dict[str, dict[str, Any]] = {s["internal_name"]: s for s in iter_steps(result.run_log)
                                        if s["step_type"] == "task"}
    expected = {task_name(b, i, s, k) for b in BRANCHES for i in ITEMS for s in SIDES
                for k in range(1, CHAIN + 1)}
    ok = [n for n in expected - faults.keys() if tasks.get(n, {}).get("status") == "SUCCESS"]
    caught: Counter[str] = Counter()
    wrong: list[str] = []
    for name, kind in faults.items():
        step = tasks.get(name, {})
        if step.get("status") == "FAIL" and REASON[kind] in step.get("message", ""):
            caught[kind] += 1
        else:
            wrong.append(f"{name} ({kind}): {step.get('status')} {step.get('message', '')[:100]!r}")
    wrong += [f"{n}: {tasks.get(n, {}).get('status')} {tasks.get(n, {}).get('message', '')[:100]!r}"
              for n in sorted(expected - faults.keys()) if tasks.get(n, {}).get("status") != "SUCCESS"]
    missing = sorted(expected - tasks.keys())
    extra = sorted(tasks.keys() - expected)
    left: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = leftovers(mark)
        if not left:
            break
        time.sleep(0.2)

    print(f"soak: {len(expected)} notebook tasks, --workers {args.workers}, seed {args.seed}, "
          f"{took:.1f} s, run status {result.status}")
    print(f"  in the run log:        {len(tasks.keys() & expected)} of {len(expected)}"
          + (f" (missing {len(missing)}, unexpected {len(extra)})" if missing or extra else ""))
    print(f"  healthy and SUCCESS:   {len(ok)} of {len(expected) - len(faults)}")
    print(f"  faulted, FAIL, reason: {sum(caught.values())} of {len(faults)}  "
          + ", ".join(f"{k} {caught[k]}/{sum(1 for v in faults.values() if v == k)}" for k in FAULTS))
    print(f"  processes left over:   {len(left)}")
    for line in wrong[:20] + missing[:5] + left[:10]:
        print(f"    {line}")
    good = not wrong and not missing and not extra and not left and len(ok) == len(expected) - len(faults)
    keep = args.keep or not good
    print("  ->", "all as expected" if good else "NOT as expected", f"(files in {base})" if keep else "")
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
