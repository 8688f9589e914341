"""Benchmark (d) of issue 3: the engine's own overhead, with nothing but stubs to run.

Times ``magnus-jupyter run`` as whole shell commands (interpreter start and
imports included) on two generated pipelines:

- a linear chain of 1,000 stub steps (real magnus 0.5.1: RecursionError);
- a parallel step of 8 branches x 50 stubs (real magnus 0.5.1: 53.7 s).

Target: <= 1 s each. Run:  .venv/bin/python bench/stubs_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
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

TARGET = 1.0
ROOT = Path(__file__).resolve().parent.parent


def linear(n: int) -> str:
    lines = ["dag:", "  start_at: step 0", "  steps:"]
    for i in range(n):
        following = f"step {i + 1}" if i + 1 < n else "success"
        lines.append(f"    step {i}: {{type: stub, next: {following}}}")
    lines += ["    success: {type: success}", "    fail: {type: fail}"]
    return "\n".join(lines) + "\n"


def parallel(branches: int, length: int) -> str:
    lines = ["dag:", "  start_at: fan out", "  steps:", "    fan out:", "      type: parallel",
             "      next: success", "      branches:"]
    for b in range(branches):
        lines += [f"        branch {b}:", "          start_at: s0", "          steps:"]
        for i in range(length):
            following = f"s{i + 1}" if i + 1 < length else "success"
            lines.append(f"            s{i}: {{type: stub, next: {following}}}")
        lines += ["            success: {type: success}", "            fail: {type: fail}"]
    lines += ["    success: {type: success}", "    fail: {type: fail}"]
    return "\n".join(lines) + "\n"


def command() -> list[str]:
    script = Path(sys.executable).parent / "magnus-jupyter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "magnus_jupyter"]


def time_run(folder: Path, pipeline: str, extra: list[str], expect_steps: int) -> float:
    """Seconds for one whole command; checks the run really did every step."""
    for sub in (".run_log_store", ".catalog"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([*command(), "run", pipeline, "--run-id", "bench", *extra], cwd=folder,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{pipeline}: exit {done.returncode}\n{done.stderr}")
    log = json.loads((folder / ".run_log_store" / "bench.json").read_text())
    count = _count(log)
    if log["status"] != "SUCCESS" or count != expect_steps:
        raise SystemExit(f"{pipeline}: status {log['status']}, {count} steps logged, expected {expect_steps}")
    return took


def _count(log: dict) -> int:
    total, stack = 0, [log["steps"]]
    while stack:
        for step in stack.pop().values():
            total += 1
            stack.extend(b["steps"] for b in step["branches"].values())
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case; the median is reported")
    args = parser.parse_args()
    cases = [
        ("1,000 stubs in a line", "linear.yaml", linear(1000), ["--quiet"], 1001),
        ("  same, progress lines to a pipe", "linear.yaml", linear(1000), [], 1001),
        ("8 branches x 50 stubs", "parallel.yaml", parallel(8, 50), ["--quiet"], 2 + 8 * 51),
        ("  same, progress lines to a pipe", "parallel.yaml", parallel(8, 50), [], 2 + 8 * 51),
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"command: {' '.join(Path(c).name for c in command())} run FILE --run-id bench [--quiet]; "
          f"median of {args.repeat} (min, max)")
    failed = False
    with tempfile.TemporaryDirectory(prefix="stubs-bench-") as tmp:
        folder = Path(tmp)
        for label, name, text, extra, steps in cases:
            (folder / name).write_text(text)
            times = [time_run(folder, name, extra, steps) for _ in range(args.repeat)]
            median = statistics.median(times)
            verdict = "ok" if median <= TARGET else "OVER TARGET"
            failed |= median > TARGET
            print(f"{label:<36} {median:6.3f} s  ({min(times):.3f}, {max(times):.3f})  "
                  f"target <= {TARGET:.0f} s: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
