"""Widget benchmark: a 200-node pipeline renders in < 0.3 s; 1,000 state updates apply in < 1 s.

    .venv/bin/python bench/widget_bench.py [--repeat 7]

"Render" is building the DAG widget from scratch: status object, Graphviz
layout (one ``dot`` run), the coloured SVG and the ipywidgets. "1,000 updates"
is 1,000 engine events (step started / finished, from 4 threads as the engine
sends them) through the status object and the throttled view, until the final
render has landed. Medians of several runs; prints pass/fail, exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from magnus_jupyter.executor import events as ev  # noqa: E402
from magnus_jupyter.model import Fail, Parallel, Pipeline, Stub, Success  # noqa: E402
from magnus_jupyter.widget.view import DagWidget  # noqa: E402

RENDER_TARGET = 0.3
UPDATE_TARGET = 1.0


def big_pipeline(branches: int = 8, per_branch: int = 23) -> tuple[Pipeline, list[str]]:
    """A parallel of ``branches`` chains: ~200 drawn nodes; returns it and its leaf step names."""
    top = Pipeline(start_at="Start")
    top.add(Stub(name="Start", next="Fan"))
    fan = Parallel(name="Fan", next="End")
    leaves = ["Start"]
    for b in range(branches):
        branch = Pipeline(start_at="s0")
        for i in range(per_branch):
            branch.add(Stub(name=f"s{i}", next=f"s{i + 1}" if i + 1 < per_branch else "success"))
            leaves.append(f"Fan.b{b}.s{i}")
        branch.add(Success(name="success"))
        branch.add(Fail(name="fail"))
        fan.parallel_branches[f"b{b}"] = branch
    top.add(fan)
    top.add(Stub(name="End", next="success"))
    leaves.append("End")
    top.add(Success(name="success"))
    top.add(Fail(name="fail"))
    return top, leaves


def time_render(pipeline: Pipeline) -> tuple[float, int]:
    start = time.perf_counter()
    widget = DagWidget(pipeline)
    elapsed = time.perf_counter() - start
    return elapsed, sum(1 for node in widget.picture._ids.values() if not node.startswith("cluster_"))


def time_updates(pipeline: Pipeline, leaves: list[str], updates: int = 1000) -> tuple[float, int, float]:
    widget = DagWidget(pipeline)  # laid out before the clock starts: this measures updates
    status = widget.status
    events: list[ev.Event] = [ev.RunStarted("bench", "bench.json", ".", {}, 4)]
    names = (leaves * (updates // (2 * len(leaves)) + 1))[: updates // 2]
    for name in names:
        short = name.rsplit(".", 1)[-1]
        events += [ev.StepStarted(name, short, "stub"), ev.StepFinished(name, short, "stub", "SUCCESS", "")]
    parts = [events[1 + i::4] for i in range(4)]
    start = time.perf_counter()
    status(events[0])
    threads = [threading.Thread(target=lambda p=p: [status(e) for e in p]) for p in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status(ev.RunFinished("bench", "SUCCESS", {}, "bench.json", "."))  # the final render lands here
    elapsed = time.perf_counter() - start
    assert 'data-state="success"' in widget.last_svg
    redraw = time.perf_counter()
    widget.render()  # one more redraw of the finished state: what each throttled update costs
    return elapsed, widget.renders, time.perf_counter() - redraw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    pipeline, leaves = big_pipeline()
    time_render(pipeline)  # warm imports and the dot binary's page cache
    renders = [time_render(pipeline) for _ in range(args.repeat)]
    nodes = renders[0][1]
    updates = [time_updates(pipeline, leaves) for _ in range(args.repeat)]
    render_median = statistics.median(r[0] for r in renders)
    update_median = statistics.median(u[0] for u in updates)
    redraws = statistics.median(u[1] for u in updates)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    ok_render = render_median < RENDER_TARGET
    ok_update = update_median < UPDATE_TARGET
    print(f"render {nodes}-node pipeline: median {render_median * 1000:.0f} ms over {args.repeat} runs "
          f"(target < {RENDER_TARGET * 1000:.0f} ms): {'PASS' if ok_render else 'FAIL'}")
    print(f"one redraw of the finished {nodes}-node picture: {updates[-1][2] * 1000:.1f} ms")
    print(f"1,000 state updates (4 threads) to final render: median {update_median * 1000:.0f} ms, "
          f"{redraws:.0f} redraws (target < {UPDATE_TARGET * 1000:.0f} ms): "
          f"{'PASS' if ok_update else 'FAIL'}")
    return 0 if ok_render and ok_update else 1


if __name__ == "__main__":
    sys.exit(main())
