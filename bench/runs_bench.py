"""Benchmark of issue 15: the run history of a folder with 1,000 runs, and the timeline of a 1,000-task run.

Makes one real run log with ``magnus-jupyter run`` (shell tasks, a parallel, a
map, a task retried once), then 1,000 runs from it in a temp folder: each its
own id and times (a run a minute), one in ten failed, one in twenty a retry
that reused steps. Then times whole shell commands (interpreter start and
imports included) against a baseline in the same run, ``python -c pass``:

- ``magnus-jupyter runs`` with no summary index (the first listing: every log read);
- ``magnus-jupyter runs`` and ``runs --json`` with the index (every later listing);
- ``magnus-jupyter timeline`` of a real 1,000-task run (10 branches x 100 shell
  tasks) to .svg, and to .png (rasterised by rsvg-convert).

Targets: ``runs`` < 1 s (with the index), timeline to .svg < 1 s.
Run:  .venv/bin/python bench/runs_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

TARGET = 1.0
RUNS = 1000

PIPELINE = """\
dag:
  start_at: prepare
  steps:
    prepare:
      type: task
      command_type: shell
      command: echo prepared > data.txt; export MAGNUS_PRM_size=3
      catalog: {put: [data.txt]}
      next: fan
    fan:
      type: parallel
      next: each
      branches:
        quick:
          start_at: q
          steps:
            q: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
        flaky:
          start_at: wobble
          steps:
            wobble:
              type: task
              command_type: shell
              command: "test -f wobbled || { touch wobbled; exit 1; }"
              max_attempts: 2
              next: success
            success: {type: success}
            fail: {type: fail}
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: last
      branch:
        start_at: show
        steps:
          show: {type: task, command_type: shell, command: "echo $MAGNUS_PRM_item", next: success}
          success: {type: success}
          fail: {type: fail}
    last: {type: task, command_type: shell, command: "true", next: success}
    success: {type: success}
    fail: {type: fail}
"""


def big_pipeline(branches: int = 10, length: int = 100) -> str:
    lines = ["dag:", "  start_at: fan out", "  steps:", "    fan out:", "      type: parallel",
             "      next: success", "      branches:"]
    for b in range(branches):
        lines += [f"        branch {b}:", "          start_at: t0", "          steps:"]
        for i in range(length):
            following = f"t{i + 1}" if i + 1 < length else "success"
            lines.append(f"            t{i}: {{type: task, command_type: shell, command: 'true', "
                         f"next: {following}}}")
        lines += ["            success: {type: success}", "            fail: {type: fail}"]
    lines += ["    success: {type: success}", "    fail: {type: fail}"]
    return "\n".join(lines) + "\n"


def command() -> list[str]:
    script = Path(sys.executable).parent / "magnus-jupyter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "magnus_jupyter"]


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*command(), *args], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"magnus-jupyter {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done


def _shift(value: Any, by: timedelta) -> Any:
    try:
        return str(datetime.fromisoformat(value) + by)
    except (TypeError, ValueError):
        return value


def _steps(container: dict[str, Any]) -> list[dict[str, Any]]:
    out, stack = [], [container]
    while stack:
        for step in stack.pop().values():
            out.append(step)
            stack.extend(b["steps"] for b in step.get("branches", {}).values())
    return out


def make_history(folder: Path, template: dict[str, Any], count: int) -> None:
    """``count`` run logs from one real one: own ids and times, some failed, some retries."""
    store = folder / ".run_log_store"
    store.mkdir(parents=True, exist_ok=True)
    base = datetime(2024, 1, 1, 9, 0)

    def run_id(i: int) -> str:
        return (base + timedelta(minutes=i)).strftime("%Y%m%d-%H%M%S") + f"-{i:06x}"

    for i in range(count):
        log = copy.deepcopy(template)
        log["run_id"] = run_id(i)
        first = min(a["start_time"] for s in _steps(log["steps"]) for a in s["attempts"])
        by = base + timedelta(minutes=i) - datetime.fromisoformat(first)
        for step in _steps(log["steps"]):
            for attempt in step["attempts"]:
                attempt["start_time"] = _shift(attempt["start_time"], by)
                attempt["end_time"] = _shift(attempt["end_time"], by)
        if i % 10 == 3:
            log["status"] = "FAIL"
            log["steps"]["last"]["status"] = "FAIL"
            log["steps"]["last"]["message"] = "shell command exited with code 3"
        if i % 20 == 7:
            log["original_run_id"] = run_id(i - 1)
            log["steps"]["prepare"]["reused_from"] = log["original_run_id"]
            log["steps"]["prepare"]["mock"] = True
        (store / f"{log['run_id']}.json").write_text(json.dumps(log, indent=1))


def timed(folder: Path, argv: list[str], repeat: int, before: Any = None) -> list[float]:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case; the median is reported")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="runs-bench-") as tmp:
        folder = Path(tmp)
        maker = folder / "maker"
        maker.mkdir()
        (maker / "pipeline.yaml").write_text(PIPELINE)
        run(maker, "run", "pipeline.yaml", "--run-id", "template", "--param", "items=[1, 2, 3]", "--quiet")
        template = json.loads((maker / ".run_log_store" / "template.json").read_text())
        history = folder / "history"
        make_history(history, template, RUNS)
        (maker / "big.yaml").write_text(big_pipeline())
        run(maker, "run", "big.yaml", "--run-id", "big", "--quiet", "--workers", "2")
        size = sum(p.stat().st_size for p in (history / ".run_log_store").iterdir()) / RUNS / 1024
        time.sleep(2.5)  # the logs settle: the index caches only logs not written in the last 2 s

        listed = run(history, "runs").stdout.splitlines()
        if len(listed) != RUNS + 2:
            raise SystemExit(f"runs listed {len(listed) - 2} runs, expected {RUNS}")
        index = history / ".run_log_store" / ".magnus-jupyter-index"
        cases: list[tuple[str, list[str], Path, Any, float | None]] = [
            ("baseline: python -c pass", [sys.executable, "-c", "pass"], history, None, None),
            (f"runs, {RUNS} runs, no index (first listing)", [*command(), "runs"], history,
             lambda: index.unlink(missing_ok=True), None),
            (f"runs, {RUNS} runs, with the index", [*command(), "runs"], history, None, TARGET),
            (f"runs --json, {RUNS} runs, with the index", [*command(), "runs", "--json"], history, None,
             None),
            ("timeline of a 1,000-task run to .svg", [*command(), "timeline", "big", "-o", "big.svg"], maker,
             None, TARGET),
            ("timeline of a 1,000-task run to .png", [*command(), "timeline", "big", "-o", "big.png"], maker,
             None, None),
        ]
        print(f"{RUNS} run logs of {size:.1f} KiB each; whole commands, median of {args.repeat} (min, max)")
        baseline = None
        for label, argv, cwd, before, target in cases:
            times = timed(cwd, argv, args.repeat, before)
            median = statistics.median(times)
            baseline = baseline if baseline is not None else median
            verdict = ""
            if target is not None:
                verdict = f"  target < {target:.0f} s: " + ("ok" if median < target else "OVER TARGET")
                failed |= median >= target
            print(f"{label:<44} {median:6.3f} s  ({min(times):.3f}, {max(times):.3f})  "
                  f"{median / baseline:5.1f}x baseline{verdict}")
        bars = (maker / "big.svg").read_text().count('class="attempt"')
        if bars != 1000:
            raise SystemExit(f"the timeline drew {bars} task bars, expected 1000")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
