"""Benchmark: load + validate and to_yaml on a 10,000-step pipeline and on 50 nested levels.

    .venv/bin/python bench/load_validate.py [--check]

Target (issue 2): loading and validating a 10,000-step pipeline takes under 1 s.
In-process figures are the median of 5 runs; the CLI figure is one whole
``magnus-jupyter validate`` command (interpreter start-up included). ``--check``
exits 1 when the target is missed. Timing goals live here, never in tests.
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
from collections.abc import Callable
from pathlib import Path

from magnus_jupyter.yaml_io import load_yaml, to_yaml

RUNS = 5
TARGET_S = 1.0
STEPS = 10_000
DEPTH = 50


def linear_yaml(count: int) -> str:
    """``count`` stubs in a row, then success; the shape real magnus 0.5.1 overflows the stack on."""
    lines = ["dag:", "  start_at: s0", "  steps:"]
    for i in range(count):
        following = f"s{i + 1}" if i < count - 1 else "success"
        lines += [f"    s{i}:", "      type: stub", f"      next: {following}"]
    lines += ["    success:", "      type: success", "    fail:", "      type: fail"]
    return "\n".join(lines) + "\n"


def nested_yaml(depth: int) -> str:
    """Parallel steps, each holding one branch with the next one, ``depth`` levels deep."""
    lines, ind, indents = ["dag:", "  start_at: p0", "  steps:"], "    ", []
    for i in range(depth):
        indents.append(ind)
        lines += [f"{ind}p{i}:", f"{ind}  type: parallel", f"{ind}  next: success", f"{ind}  branches:",
                  f"{ind}    b:", f"{ind}      start_at: p{i + 1}", f"{ind}      steps:"]
        ind += " " * 8
    indents.append(ind)
    lines += [f"{ind}p{depth}:", f"{ind}  type: stub", f"{ind}  next: success"]
    for ind in reversed(indents):
        lines += [f"{ind}success:", f"{ind}  type: success", f"{ind}fail:", f"{ind}  type: fail"]
    return "\n".join(lines) + "\n"


def median_seconds(func: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    """Median wall and CPU seconds; on a busy machine the CPU figure is the steadier one."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        func()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def cli_seconds(path: Path) -> tuple[float, float]:
    """One whole ``magnus-jupyter validate`` command, as a user runs it."""
    script = shutil.which("magnus-jupyter", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "magnus_jupyter"]
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run([*command, "validate", str(path)], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"validate failed on {path}:\n{proc.stderr}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the 1 s target is missed")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="magnus-bench-") as tmp:
        cases = {f"linear {STEPS:,} steps": linear_yaml(STEPS), f"nested {DEPTH} levels": nested_yaml(DEPTH)}
        target = (0.0, 0.0)
        for label, text in cases.items():
            path = Path(tmp) / (label.split()[0] + ".yaml")
            path.write_text(text, encoding="utf-8")
            pipeline = load_yaml(path)  # warm-up, and proof it is valid (load_yaml validates)
            load_validate = median_seconds(lambda p=path: load_yaml(p))  # load_yaml validates too
            rows.append((label, "load + validate", load_validate))
            rows.append((label, "to_yaml", median_seconds(lambda p=pipeline: to_yaml(p))))
            rows.append((label, "CLI validate (whole command)", cli_seconds(path)))
            if label.startswith("linear"):
                target = load_validate
    width = max(len(r[0]) + len(r[1]) for r in rows) + 4
    print(f"magnus_jupyter load/validate bench — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"median of {RUNS} in-process runs")
    print(f"{'case':<{width}}{'wall s':>9}{'CPU s':>9}")
    for label, what, (wall, cpu) in rows:
        print(f"{label + ' · ' + what:<{width}}{wall:>9.3f}{cpu:>9.3f}")
    holds = target[0] < TARGET_S
    print(f"target: load + validate of {STEPS:,} steps < {TARGET_S:.0f} s: "
          f"{'holds' if holds else 'MISSED'} ({target[0]:.3f} s wall, {target[1]:.3f} s CPU)")
    return 0 if holds or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
