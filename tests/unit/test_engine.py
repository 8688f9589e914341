"""The engine's traversal, failure policy, parameters, run log and events.

Leaf tasks go to a fake pool (threads, not processes) whose behaviour each test
scripts, so these tests pin magnus' traversal rules exactly; the real pool is
exercised by the compat tests and the CLI tests at the end.
"""

from __future__ import annotations

import _thread
import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.errors import ExecutionError, ValidationError
from magnus_jupyter.executor import events as ev
from magnus_jupyter.executor.engine import FILE_THREADS, RunResult, branch_window, run_pipeline
from magnus_jupyter.executor.task import FAIL, SUCCESS, TaskResult, TaskSpec
from magnus_jupyter.yaml_io import load_yaml

WAIT = 30  # seconds: a guard against hangs, never a timing expectation

Behaviour = Callable[[TaskSpec, threading.Event], TaskResult]


class FakeSlots:
    """A pool with ``workers`` slots that runs each task's scripted behaviour in a thread."""

    def __init__(self, workers: int, *, on_progress: Callable[[str, int, int], None] | None = None,
                 warm_kernels: bool = True, behaviours: dict[str, Behaviour] | None = None) -> None:
        self.workers = workers
        self.on_progress = on_progress
        self.behaviours = behaviours or {}
        self.specs: list[TaskSpec] = []
        self.cancels: dict[str, threading.Event] = {}
        self.cancel_calls: list[str] = []
        self._slots = threading.Semaphore(workers)
        self._pool = ThreadPoolExecutor(max_workers=64)
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.closed = False

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        with self._lock:
            self.specs.append(spec)
            cancel = self.cancels.setdefault(spec.internal_name, threading.Event())
        return self._pool.submit(self._run, spec, cancel)

    def _run(self, spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        with self._slots:
            with self._lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            try:
                name = spec.command.split(".")[1]
                behaviour = self.behaviours.get(name) or DEFAULTS[name]
                return behaviour(spec, cancel)
            except Exception as exc:
                return TaskResult(FAIL, f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self.running -= 1

    def cancel(self, internal_name: str) -> None:
        with self._lock:
            self.cancel_calls.append(internal_name)
            self.cancels.setdefault(internal_name, threading.Event()).set()

    def close(self) -> None:
        self.closed = True
        self._pool.shutdown(wait=True)


def _ok(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
    return TaskResult(SUCCESS)


def _fail(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
    return TaskResult(FAIL, "exit status 1")


def _until_cancelled(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
    """Runs until the engine cancels it; succeeds if nobody does (which the test then catches)."""
    if cancel.wait(WAIT):
        return TaskResult(FAIL, "cancelled")
    return TaskResult(SUCCESS, "never cancelled")


DEFAULTS: dict[str, Behaviour] = {"ok": _ok, "fail": _fail, "until_cancelled": _until_cancelled}


class Harness:
    """Runs pipelines in a temp folder with a FakeSlots; keeps the pool and the events."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.slots: FakeSlots | None = None
        self.events: list[ev.Event] = []
        self.behaviours: dict[str, Behaviour] = {}

    def factory(self, workers: int, **kwargs: Any) -> FakeSlots:
        self.slots = FakeSlots(workers, behaviours=self.behaviours, **kwargs)
        return self.slots

    def run(self, yaml_text: str, **kwargs: Any) -> RunResult:
        pipeline = load_yaml(textwrap.dedent(yaml_text).strip() + "\n")
        kwargs.setdefault("workers", 4)
        result: list[RunResult] = []
        errors: list[BaseException] = []

        subscribers = [self.events.append, *kwargs.pop("subscribers", ())]

        def target() -> None:
            try:
                result.append(run_pipeline(pipeline, cwd=self.tmp_path, slots_factory=self.factory,
                                           subscribers=subscribers, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(WAIT * 2)
        assert not thread.is_alive(), "the run did not finish: a deadlock"
        if errors:
            raise errors[0]
        return result[0]

    def specs(self, name: str) -> list[TaskSpec]:
        assert self.slots is not None
        return [s for s in self.slots.specs if s.internal_name == name]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def find(run_log: dict[str, Any], internal_name: str) -> dict[str, Any]:
    """A step or branch log by internal name, searched at every depth."""
    stack = [run_log["steps"]]
    while stack:
        for key, step in stack.pop().items():
            if key == internal_name:
                return step
            for bkey, branch in step["branches"].items():
                if bkey == internal_name:
                    return branch
                stack.append(branch["steps"])
    raise KeyError(internal_name)


# ---- traversal ------------------------------------------------------------------------------


def test_on_failure_goes_to_the_named_step_and_the_run_can_still_succeed(h: Harness) -> None:
    result = h.run("""
        dag:
          start_at: one
          steps:
            one: {type: task, command: t.fail, next: two, on_failure: three}
            two: {type: stub, next: three}
            three: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
    """)
    assert result.status == SUCCESS
    assert result.steps() == {"one": FAIL, "three": SUCCESS, "success": SUCCESS}
    assert find(result.run_log, "one")["message"] == "exit status 1"


def test_a_failure_without_on_failure_goes_to_the_fail_step(h: Harness) -> None:
    result = h.run("""
        dag:
          start_at: one
          steps:
            one: {type: task, command: t.fail, next: two}
            two: {type: stub, next: success}
            success: {type: success}
            the end: {type: fail}
    """)
    assert result.status == FAIL
    # magnus: the fail step itself "succeeds"; it is the run that fails
    assert result.steps() == {"one": FAIL, "the end": SUCCESS}
    one = find(result.run_log, "one")
    assert [a["status"] for a in one["attempts"]] == [FAIL]


NESTED = """
dag:
  start_at: outer
  steps:
    outer:
      type: parallel
      next: success
      branches:
        left:
          start_at: each
          steps:
            each:
              type: map
              iterate_on: xs
              iterate_as: x
              next: success
              branch:
                start_at: inner
                steps:
                  inner:
                    type: parallel
                    next: success
                    branches:
                      a:
                        start_at: work
                        steps:
                          work: {type: task, command: t.ok, next: success}
                          success: {type: success}
                          fail: {type: fail}
                      b:
                        start_at: sub
                        steps:
                          sub:
                            type: dag
                            next: success
                            branch:
                              start_at: deep
                              steps:
                                deep: {type: task, command: t.ok, next: success}
                                success: {type: success}
                                fail: {type: fail}
                          success: {type: success}
                          fail: {type: fail}
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
        right:
          start_at: stub
          steps:
            stub: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.mark.parametrize("workers", [1, 3])
def test_nested_parallel_in_map_in_parallel_runs_every_branch_without_deadlock(h: Harness,
                                                                              workers: int) -> None:
    result = h.run(NESTED, parameters={"xs": [1, "b"]}, workers=workers)
    assert result.status == SUCCESS
    steps = result.steps()
    for x in ("1", "b"):
        base = f"outer.left.each.{x}"
        assert steps[base] == SUCCESS
        assert steps[f"{base}.inner.a.work"] == SUCCESS
        assert steps[f"{base}.inner.b.sub.dag"] == SUCCESS
        assert steps[f"{base}.inner.b.sub.dag.deep"] == SUCCESS
    assert steps["outer.right.stub"] == SUCCESS
    assert all(status == SUCCESS for status in steps.values())
    # the iterated value reaches the task as a parameter and as the map variable, and no further
    (deep,) = h.specs("outer.left.each.b.inner.b.sub.dag.deep")
    assert deep.parameters["x"] == "b" and deep.map_variable == {"x": "b"}
    assert "x" not in result.parameters
    assert h.slots is not None and h.slots.most_running <= workers


def test_the_run_counts_as_the_nested_shape_says(h: Harness) -> None:
    """The flattened tree holds exactly the steps magnus would log for the nested pipeline."""
    result = h.run(NESTED, parameters={"xs": [7]})
    names = set(result.steps())
    expected = {"outer", "outer.left", "outer.left.each", "outer.left.each.7",
                "outer.left.each.7.inner", "outer.left.each.7.inner.a", "outer.left.each.7.inner.a.work",
                "outer.left.each.7.inner.a.success", "outer.left.each.7.inner.b",
                "outer.left.each.7.inner.b.sub", "outer.left.each.7.inner.b.sub.dag",
                "outer.left.each.7.inner.b.sub.dag.deep", "outer.left.each.7.inner.b.sub.dag.success",
                "outer.left.each.7.inner.b.success", "outer.left.each.7.success", "outer.left.success",
                "outer.right", "outer.right.stub", "outer.right.success", "success"}
    assert names == expected


PARALLEL_TWO = """
dag:
  start_at: par
  steps:
    par:
      type: parallel
      {policy}
      next: after
      on_failure: recover
      branches:
        a:
          start_at: boom
          steps:
            boom: {{type: task, command: t.boom, next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
        b:
          start_at: slow
          steps:
            slow: {{type: task, command: t.slow, next: later}}
            later: {{type: stub, next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
    after: {{type: stub, next: success}}
    recover: {{type: stub, next: success}}
    success: {{type: success}}
    fail: {{type: fail}}
"""


def test_by_default_every_branch_runs_to_its_end_when_a_sibling_fails(h: Harness) -> None:
    boomed = threading.Event()

    def boom(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        boomed.set()
        return TaskResult(FAIL, "boom")

    def slow(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert boomed.wait(WAIT)  # b is still running when a has failed
        return TaskResult(SUCCESS)

    h.behaviours.update(boom=boom, slow=slow)
    result = h.run(PARALLEL_TWO.format(policy=""))
    steps = result.steps()
    assert steps["par.a"] == FAIL and steps["par.b"] == SUCCESS
    assert steps["par.b.later"] == SUCCESS
    assert steps["par"] == FAIL
    assert "after" not in steps and steps["recover"] == SUCCESS
    assert result.status == SUCCESS
    assert h.slots is not None and h.slots.cancel_calls == []


def test_fail_fast_cancels_the_running_siblings(h: Harness) -> None:
    started = threading.Event()

    def boom(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert started.wait(WAIT)  # fail only once the sibling's task is running
        return TaskResult(FAIL, "boom")

    def slow(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        started.set()
        return _until_cancelled(spec, cancel)

    h.behaviours.update(boom=boom, slow=slow)
    result = h.run(PARALLEL_TWO.format(policy="failure_policy: fail_fast"))
    steps = result.steps()
    assert steps["par.a"] == FAIL and steps["par.b"] == FAIL
    assert steps["par.b.slow"] == FAIL
    assert "par.b.later" not in steps  # a cancelled branch starts nothing more
    assert "fail_fast" in find(result.run_log, "par.b.slow")["message"]
    assert h.slots is not None and h.slots.cancel_calls == ["par.b.slow"]
    assert steps["par"] == FAIL and steps["recover"] == SUCCESS


def test_fail_fast_in_a_map_cancels_sibling_iterations_and_their_nested_tasks(h: Harness) -> None:
    started = threading.Barrier(3)

    def work(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        started.wait(WAIT)
        if spec.parameters["v"] == 2:
            return TaskResult(FAIL, "bad value")
        return _until_cancelled(spec, cancel)

    h.behaviours["work"] = work
    result = h.run("""
        dag:
          start_at: m
          steps:
            m:
              type: map
              iterate_on: vs
              iterate_as: v
              failure_policy: fail_fast
              next: success
              branch:
                start_at: d
                steps:
                  d:
                    type: dag
                    next: success
                    branch:
                      start_at: w
                      steps:
                        w: {type: task, command: t.work, next: success}
                        success: {type: success}
                        fail: {type: fail}
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, parameters={"vs": [1, 2, 3]})
    steps = result.steps()
    assert result.status == FAIL
    assert {steps[f"m.{v}.d.dag.w"] for v in (1, 2, 3)} == {FAIL}
    assert h.slots is not None and sorted(h.slots.cancel_calls) == ["m.1.d.dag.w", "m.3.d.dag.w"]


def test_max_attempts_retries_and_records_every_attempt(h: Harness) -> None:
    calls: list[int] = []

    def flaky(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        calls.append(spec.attempt)
        if spec.attempt < 3:
            return TaskResult(FAIL, f"try {spec.attempt} failed", parameters={"leaked": True})
        return TaskResult(SUCCESS, parameters={"done": spec.attempt})

    h.behaviours["flaky"] = flaky
    text = """
        dag:
          start_at: t
          steps:
            t: {type: task, command: t.flaky, max_attempts: %d, next: success}
            success: {type: success}
            fail: {type: fail}
    """
    result = h.run(text % 3)
    t = find(result.run_log, "t")
    assert [(a["attempt_number"], a["status"]) for a in t["attempts"]] == [(1, FAIL), (2, FAIL), (3, SUCCESS)]
    assert t["status"] == SUCCESS and result.status == SUCCESS
    assert result.parameters == {"done": 3}  # a failed attempt's updates are never merged
    assert calls == [1, 2, 3]

    calls.clear()
    result = h.run(text % 2)
    t = find(result.run_log, "t")
    assert [a["status"] for a in t["attempts"]] == [FAIL, FAIL]
    assert t["status"] == FAIL and t["message"] == "try 2 failed"
    assert result.status == FAIL and result.parameters == {}


MAP_ON = """
dag:
  start_at: m
  steps:
    m:
      type: map
      iterate_on: chunks
      iterate_as: c
      next: success
      on_failure: handle
      branch:
        start_at: w
        steps:
          w: {type: task, command: t.ok, next: success}
          success: {type: success}
          fail: {type: fail}
    handle: {type: stub, next: fail}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.mark.parametrize(("chunks", "phrase"), [
    ("0,10,20", "must be a list, found str '0,10,20'"),
    ({"a": 1}, "must be a list, found dict"),
    (None, "is not set"),
    ([1, "1"], "more than once (1)"),
])
def test_map_over_a_non_list_fails_the_step_with_a_clear_message(h: Harness, chunks: Any,
                                                                  phrase: str) -> None:
    params = {} if chunks is None else {"chunks": chunks}
    result = h.run(MAP_ON, parameters=params)
    m = find(result.run_log, "m")
    assert m["status"] == FAIL
    assert phrase in m["message"] and "'chunks'" in m["message"]
    assert m["branches"] == {}
    assert result.steps() == {"m": FAIL, "handle": SUCCESS, "fail": SUCCESS}
    assert result.status == FAIL


def test_map_over_an_empty_list_succeeds_with_no_branches(h: Harness) -> None:
    result = h.run(MAP_ON, parameters={"chunks": []})
    assert result.steps() == {"m": SUCCESS, "success": SUCCESS}


def test_the_map_list_can_come_from_an_earlier_task(h: Harness) -> None:
    h.behaviours["make"] = lambda spec, cancel: TaskResult(SUCCESS, parameters={"chunks": [0, 10]})
    text = MAP_ON.replace("start_at: m\n", "start_at: make\n").replace(
        "  steps:\n    m:", "  steps:\n    make: {type: task, command: t.make, next: m}\n    m:", 1)
    result = h.run(text)
    assert result.status == SUCCESS
    assert result.steps()["m.10.w"] == SUCCESS


# ---- parameters -----------------------------------------------------------------------------


def test_each_task_sees_current_parameters_and_successful_updates_flow_on(h: Harness) -> None:
    def first(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert spec.parameters == {"a": 1, "b": "x"}
        # a shell task hands back everything it saw; only real changes count
        return TaskResult(SUCCESS, parameters={"a": 2, "b": "x", "new": [1]})

    def second(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert spec.parameters == {"a": 2, "b": "x", "new": [1]}
        return TaskResult(FAIL, "no", parameters={"a": 99})

    h.behaviours.update(first=first, second=second)
    result = h.run("""
        dag:
          start_at: one
          steps:
            one: {type: task, command: t.first, next: two}
            two: {type: task, command: t.second, next: success, on_failure: success}
            success: {type: success}
            fail: {type: fail}
    """, parameters={"a": 1, "b": "x"})
    assert result.steps() == {"one": SUCCESS, "two": FAIL, "success": SUCCESS}
    assert result.parameters == {"a": 2, "b": "x", "new": [1]}
    assert result.run_log["parameters"] == result.parameters
    assert find(result.run_log, "two")["attempts"][0]["parameters"] == {"a": 2, "b": "x", "new": [1]}


def test_parallel_branches_writing_one_parameter_last_finisher_wins_with_a_warning(h: Harness) -> None:
    a_done = threading.Event()

    def write_a(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        return TaskResult(SUCCESS, parameters={"shared": "from a", "only_a": 1})

    def write_b(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert a_done.wait(WAIT)  # b finishes last
        return TaskResult(SUCCESS, parameters={"shared": "from b"})

    def after_a(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        a_done.set()
        return TaskResult(SUCCESS)

    h.behaviours.update(write_a=write_a, write_b=write_b, after_a=after_a)
    result = h.run("""
        dag:
          start_at: par
          steps:
            par:
              type: parallel
              next: success
              branches:
                a:
                  start_at: w
                  steps:
                    w: {type: task, command: t.write_a, next: x}
                    x: {type: task, command: t.after_a, next: success}
                    success: {type: success}
                    fail: {type: fail}
                b:
                  start_at: w
                  steps:
                    w: {type: task, command: t.write_b, next: success}
                    success: {type: success}
                    fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """)
    assert result.status == SUCCESS
    assert result.parameters == {"shared": "from b", "only_a": 1}
    (warning,) = result.warnings
    assert "'shared'" in warning and "'par.a'" in warning and "'par.b'" in warning
    assert "('par.b') wins" in warning
    assert result.run_log["warnings"] == [warning]
    assert [e.message for e in h.events if isinstance(e, ev.RunWarning)] == [warning]


def test_writes_from_one_branch_in_nested_fan_outs_are_no_conflict_at_the_outer_level(h: Harness) -> None:
    h.behaviours["w"] = lambda spec, cancel: TaskResult(SUCCESS, parameters={"last": spec.parameters["i"]})
    result = h.run("""
        dag:
          start_at: par
          steps:
            par:
              type: parallel
              next: success
              branches:
                only:
                  start_at: m
                  steps:
                    m:
                      type: map
                      iterate_on: items
                      iterate_as: i
                      next: success
                      branch:
                        start_at: w
                        steps:
                          w: {type: task, command: t.w, next: success}
                          success: {type: success}
                          fail: {type: fail}
                    success: {type: success}
                    fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, parameters={"items": ["p", "q"]})
    (warning,) = result.warnings  # the map's iterations conflict; the parallel's one branch does not
    assert "'par.only.m.p'" in warning and "'par.only.m.q'" in warning and "of 'par.only.m'" in warning
    assert result.parameters["last"] in ("p", "q")


# ---- run log, catalog, events ---------------------------------------------------------------


def test_the_run_log_has_magnus_structure_and_is_written_coalesced(h: Harness) -> None:
    steps = "\n".join(f"    s{i}: {{type: stub, next: s{i + 1}}}" for i in range(300))
    text = f"dag:\n  start_at: s0\n  steps:\n{steps}\n    s300: {{type: success}}\n    fail: {{type: fail}}\n"
    result = h.run(text, run_id="fixed-id", write_interval=3600)
    path = h.tmp_path / ".run_log_store" / "fixed-id.json"
    assert result.run_log_path == path
    data = json.loads(path.read_text())
    assert data["run_id"] == "fixed-id" and data["status"] == SUCCESS
    assert set(data) >= {"run_id", "status", "parameters", "steps", "run_config", "dag_hash", "tag"}
    s5 = data["steps"]["s5"]
    assert set(s5) >= {"name", "internal_name", "status", "step_type", "message", "attempts", "branches",
                       "data_catalog"}
    (attempt,) = s5["attempts"]
    assert set(attempt) >= {"attempt_number", "start_time", "end_time", "duration", "status", "message"}
    assert len(data["steps"]) == 301
    assert sorted(p.name for p in path.parent.iterdir()) == ["fixed-id.json"]  # no temp files left
    # coalesced: the creation, at most one background write (the next would wait an hour), the final one
    assert 2 <= result.run_log_writes <= 3
    assert h.slots is None  # stubs never start the pool


def test_a_reader_never_sees_a_torn_run_log(h: Harness, tmp_path: Path) -> None:
    steps = "\n".join(f"    s{i}: {{type: stub, next: s{i + 1}}}" for i in range(400))
    text = f"dag:\n  start_at: s0\n  steps:\n{steps}\n    s400: {{type: success}}\n    fail: {{type: fail}}\n"
    path = tmp_path / ".run_log_store" / "watched.json"
    stop = threading.Event()
    reads: list[int] = []
    torn: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen = path.read_text()
            except FileNotFoundError:
                continue
            if not seen:
                continue  # the reserved, not yet written file
            try:
                reads.append(len(json.loads(seen)["steps"]))
            except ValueError as exc:
                torn.append(str(exc))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        h.run(text, run_id="watched", write_interval=0)
    finally:
        stop.set()
        thread.join(WAIT)
    assert torn == []
    assert reads == sorted(reads)  # the log only grows


def test_an_existing_run_id_is_refused_and_a_bad_one_explained(h: Harness) -> None:
    text = """
        dag:
          start_at: s
          steps:
            s: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
    """
    h.run(text, run_id="taken")
    with pytest.raises(ExecutionError, match="'taken' already exists"):
        h.run(text, run_id="taken")
    with pytest.raises(ExecutionError, match="run id '../up'"):
        h.run(text, run_id="../up")
    ids = {h.run(text).run_id for _ in range(5)}
    assert len(ids) == 5


def test_an_invalid_pipeline_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    pipeline = load_yaml("dag:\n  start_at: s\n  steps:\n    s: {type: stub, next: success}\n"
                         "    success: {type: success}\n    fail: {type: fail}\n")
    del pipeline.steps["fail"]
    with pytest.raises(ValidationError, match="exactly one step of type fail"):
        run_pipeline(pipeline, cwd=tmp_path)
    assert not (tmp_path / ".run_log_store").exists()


def test_catalog_put_and_get_copy_files_and_are_recorded(h: Harness) -> None:
    def produce(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        data = Path(spec.cwd) / "data"
        data.mkdir(exist_ok=True)
        (data / "out.csv").write_text("1,2\n")
        Path(spec.log_path or "").write_text("produced\n")
        return TaskResult(SUCCESS)

    def consume(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        got = (Path(spec.cwd) / "data" / "out.csv").read_text()
        return TaskResult(SUCCESS if got == "1,2\n" else FAIL, got)

    def remove(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        (Path(spec.cwd) / "data" / "out.csv").unlink()
        return TaskResult(SUCCESS)

    h.behaviours.update(produce=produce, consume=consume, remove=remove)
    result = h.run("""
        dag:
          start_at: produce
          steps:
            produce: {type: task, command: t.produce, next: remove, catalog: {put: ["data/*.csv"]}}
            remove: {type: task, command: t.remove, next: consume}
            consume: {type: task, command: t.consume, next: missing, catalog: {get: ["data/out.csv"]}}
            missing: {type: stub, next: success, catalog: {get: ["nothing*"]}}
            success: {type: success}
            fail: {type: fail}
    """)
    catalog = result.catalog_path
    assert (catalog / "data" / "out.csv").read_text() == "1,2\n"
    produce = find(result.run_log, "produce")
    stages = {(e["name"], e["stage"]) for e in produce["data_catalog"]}
    assert ("data/out.csv", "put") in stages
    assert ("produce.execution.log", "put") in stages
    assert (catalog / "produce.execution.log").read_text() == "produced\n"
    consume = find(result.run_log, "consume")
    assert consume["status"] == SUCCESS
    assert [e["stage"] for e in consume["data_catalog"] if e["name"] == "data/out.csv"] == ["get"]
    missing = find(result.run_log, "missing")
    assert missing["status"] == FAIL and "no file matches" in missing["message"]
    assert result.status == FAIL


def test_notebook_outputs_are_kept_apart_per_map_value(h: Harness) -> None:
    def write(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert spec.notebook_output_path is not None
        Path(spec.notebook_output_path).write_text(json.dumps(spec.map_variable))
        return TaskResult(SUCCESS)

    h.behaviours["ok"] = write
    result = h.run("""
        dag:
          start_at: m
          steps:
            m:
              type: map
              iterate_on: xs
              iterate_as: x
              next: success
              branch:
                start_at: nb step
                steps:
                  nb step: {type: task, command_type: notebook, command: t.ok.ipynb, next: given}
                  given:
                    type: task
                    command_type: notebook
                    command: t.ok.ipynb
                    notebook_output_path: out/given.ipynb
                    next: success
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, parameters={"xs": [1, 2]})
    assert result.status == SUCCESS
    outputs = {s.internal_name: s.notebook_output_path for s in h.slots.specs}  # type: ignore[union-attr]
    catalog = result.catalog_path
    assert outputs["m.1.nb step"] == str(catalog / "m.1.nb_step_out.ipynb")
    assert outputs["m.2.nb step"] == str(catalog / "m.2.nb_step_out.ipynb")
    # every notebook runs into the run's own catalog (concurrent runs never share a file) ...
    assert outputs["m.1.given"] == str(catalog / "m.1.given_out.ipynb")
    assert len(set(outputs.values())) == 4
    # ... and a given notebook_output_path gets a copy, one per map value
    assert json.loads((h.tmp_path / "out" / "given_1.ipynb").read_text()) == {"x": 1}
    assert json.loads((h.tmp_path / "out" / "given_2.ipynb").read_text()) == {"x": 2}


def test_events_arrive_in_order_and_cells_are_forwarded(h: Harness) -> None:
    def cells(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        assert h.slots is not None and h.slots.on_progress is not None
        for i in range(1, 4):
            h.slots.on_progress(spec.internal_name, i, 3)
        return TaskResult(SUCCESS)

    h.behaviours["cells"] = cells
    result = h.run("""
        dag:
          start_at: par
          steps:
            par:
              type: parallel
              next: success
              branches:
                a:
                  start_at: t
                  steps:
                    t: {type: task, command: t.cells, next: success}
                    success: {type: success}
                    fail: {type: fail}
                b:
                  start_at: s
                  steps:
                    s: {type: stub, next: success}
                    success: {type: success}
                    fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """)
    events = h.events
    assert isinstance(events[0], ev.RunStarted) and events[0].run_id == result.run_id
    assert isinstance(events[-1], ev.RunFinished) and events[-1].status == SUCCESS
    assert sum(isinstance(e, ev.RunStarted | ev.RunFinished) for e in events) == 2
    position = {(type(e).__name__, getattr(e, "internal_name", "")): i for i, e in enumerate(events)}
    for name in result.steps():
        if name in ("par.a", "par.b"):
            assert position[("BranchStarted", name)] < position[("BranchFinished", name)]
        else:
            assert position[("StepStarted", name)] < position[("StepFinished", name)]
    assert position[("BranchStarted", "par.a")] < position[("StepStarted", "par.a.t")]
    assert position[("StepFinished", "par.a.success")] < position[("BranchFinished", "par.a")]
    assert position[("BranchFinished", "par.b")] < position[("StepFinished", "par")]
    assert [(e.done, e.total) for e in events if isinstance(e, ev.CellExecuted)] == [(1, 3), (2, 3), (3, 3)]
    cell_at = [i for i, e in enumerate(events) if isinstance(e, ev.CellExecuted)]
    assert position[("StepStarted", "par.a.t")] < cell_at[0]
    assert cell_at[-1] < position[("StepFinished", "par.a.t")]
    finished = [e for e in events if isinstance(e, ev.StepFinished)]
    assert {e.internal_name: e.status for e in finished} == {
        k: v for k, v in result.steps().items() if k not in ("par.a", "par.b")}


def test_a_failing_subscriber_does_not_stop_the_run(tmp_path: Path) -> None:
    def broken(event: ev.Event) -> None:
        raise RuntimeError("view bug")

    pipeline = load_yaml("dag:\n  start_at: s\n  steps:\n    s: {type: stub, next: success}\n"
                         "    success: {type: success}\n    fail: {type: fail}\n")
    assert run_pipeline(pipeline, cwd=tmp_path, subscribers=[broken]).status == SUCCESS


# ---- the command line (real task slots) -----------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", "run", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


STUBS = "dag:\n  start_at: s\n  steps:\n    s: {type: stub, next: success}\n" \
        "    success: {type: success}\n    fail: {type: fail}\n"


def test_cli_prints_the_run_id_first_then_a_summary_and_the_paths(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(STUBS)
    done = _cli(tmp_path, "p.yaml", "--run-id", "r1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "run_id: r1"
    assert any(line.split()[:3] == ["s", "stub", "SUCCESS"] for line in lines)
    assert f"run log: {tmp_path / '.run_log_store' / 'r1.json'}" in lines
    assert f"catalog: {tmp_path / '.catalog' / 'r1'}" in lines
    again = _cli(tmp_path, "p.yaml", "--run-id", "r1")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize(("args", "phrase"), [
    (["--param", "novalue"], "expected NAME=VALUE"),
    (["-p", "list.yaml"], "list.yaml:1: a parameters file must be a mapping"),
    (["-p", "absent.yaml"], "absent.yaml: no such parameters file"),
    (["-p", "broken.yaml"], "broken.yaml:2: YAML syntax error"),
    (["--workers", "0"], "at least 1"),
])
def test_cli_bad_input_exits_2_with_one_located_line(tmp_path: Path, args: list[str], phrase: str) -> None:
    (tmp_path / "p.yaml").write_text(STUBS)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    done = _cli(tmp_path, "p.yaml", *args)
    assert done.returncode == 2
    assert phrase in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".run_log_store").exists()


def test_cli_params_reach_a_shell_task_and_a_failed_pipeline_exits_1(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        dag:
          start_at: check
          steps:
            check:
              type: task
              command_type: shell
              command: test "$MAGNUS_PRM_n" = 3 && test "$MAGNUS_PRM_who" = '"file"'
              next: success
            success: {type: success}
            fail: {type: fail}
    """))
    (tmp_path / "params.yaml").write_text("who: file\nn: 1\n")
    ok = _cli(tmp_path, "p.yaml", "-p", "params.yaml", "--param", "n=3", "--quiet")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _cli(tmp_path, "p.yaml", "-p", "params.yaml", "--quiet")
    assert bad.returncode == 1
    assert "status:  FAIL" in bad.stdout


def test_an_engine_error_in_one_branch_fails_that_branch_only(h: Harness,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from magnus_jupyter.executor.engine import _Engine

    original = _Engine.task

    def task(self: _Engine, step: Any, internal: str, *args: Any) -> tuple[str, str]:
        if internal == "par.a.t":
            raise RuntimeError("engine bug")
        return original(self, step, internal, *args)

    monkeypatch.setattr(_Engine, "task", task)
    result = h.run(PARALLEL_TWO.format(policy="").replace("t.boom", "t.ok").replace("t.slow", "t.ok")
                   .replace("boom", "t"))
    steps = result.steps()
    assert steps["par.a"] == FAIL and steps["par.a.t"] == FAIL  # never left PROCESSING
    assert steps["par.b"] == SUCCESS and steps["par"] == FAIL
    assert any("internal error: RuntimeError: engine bug" in w for w in result.warnings)


def test_a_stub_pipeline_never_imports_the_pool_or_papermill(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(STUBS)
    code = ("import sys; from magnus_jupyter.cli import main; code = main(['run', 'p.yaml', '--quiet']); "
            "heavy = [m for m in ('papermill', 'multiprocessing', 'magnus_jupyter.executor.slots', "
            "'nbclient', 'IPython') if m in sys.modules]; print('HEAVY', heavy); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


# ---- the walk: no thread per branch ------------------------------------------------------------


class ThreadWatch:
    """A subscriber noting, at every event, how many threads were started since it was made (the fake
    pool's own threads aside: they stand for worker processes) and how many branches run at once."""

    def __init__(self) -> None:
        self.before = set(threading.enumerate())
        self.threads = 0
        self.branches = 0
        self.most_branches = 0

    def __call__(self, event: ev.Event) -> None:
        new = [t for t in threading.enumerate()
               if t not in self.before and not t.name.startswith("ThreadPoolExecutor")]
        self.threads = max(self.threads, len(new))
        if isinstance(event, ev.BranchStarted | ev.BranchFinished):
            self.branches += 1 if isinstance(event, ev.BranchStarted) else -1
            self.most_branches = max(self.most_branches, self.branches)


# the harness' thread that calls run_pipeline, the run-log writer and the helper threads for file work
WALK_THREADS = 2 + FILE_THREADS


def nested_parallels(depth: int) -> str:
    """``depth`` parallel steps, each inside the last: a ``deeper`` branch and a ``side`` branch whose stub
    puts a file in the catalog (file work in a helper thread) before a task (the pool)."""
    ends = {"success": {"type": "success"}, "fail": {"type": "fail"}}

    def level(i: int) -> dict[str, Any]:
        if i == depth:
            return {"start_at": "deepest",
                    "steps": {"deepest": {"type": "task", "command": "t.ok", "next": "success"}, **ends}}
        side = {"start_at": "keep", "steps": {
            "keep": {"type": "stub", "catalog": {"put": ["data.txt"]}, "next": "t"},
            "t": {"type": "task", "command": "t.ok", "next": "success"}, **ends}}
        branches = {"deeper": level(i + 1), "side": side}
        return {"start_at": f"p{i}",
                "steps": {f"p{i}": {"type": "parallel", "next": "success", "branches": branches}, **ends}}

    import yaml

    return yaml.safe_dump({"dag": level(0)}, sort_keys=False)


@pytest.mark.parametrize("workers", [1, 3])
def test_nested_composites_deeper_than_any_thread_pool_neither_deadlock_nor_add_threads(
        h: Harness, workers: int) -> None:
    depth = 70  # deeper than the fake pool's 64 threads and the engine's helper threads
    (h.tmp_path / "data.txt").write_text("kept at every level")
    watch = ThreadWatch()
    result = h.run(nested_parallels(depth), workers=workers, subscribers=[watch])
    steps = result.steps()
    assert result.status == SUCCESS
    assert all(status == SUCCESS for status in steps.values())
    deepest = ".".join(f"p{i}.deeper" for i in range(depth)) + ".deepest"
    assert steps[deepest] == SUCCESS
    assert len(h.slots.specs) == depth + 1  # type: ignore[union-attr]
    assert watch.threads <= WALK_THREADS, f"{watch.threads} threads for {depth} levels"


def test_a_map_wider_than_the_window_walks_a_few_branches_at_once(h: Harness) -> None:
    watch = ThreadWatch()
    result = h.run("""
        dag:
          start_at: m
          steps:
            m:
              type: map
              iterate_on: vs
              iterate_as: v
              next: success
              branch:
                start_at: w
                steps:
                  w: {type: task, command: t.ok, next: success}
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, parameters={"vs": list(range(600))}, workers=2, subscribers=[watch])
    assert result.status == SUCCESS
    steps = result.steps()
    assert sum(1 for name in steps if name.endswith(".w")) == 600
    assert all(status == SUCCESS for status in steps.values())
    assert 1 < watch.most_branches <= branch_window(2)  # memory follows the pool, not the map
    assert watch.threads <= WALK_THREADS


def test_fail_fast_ends_branches_that_never_started_at_once_and_announces_them(h: Harness) -> None:
    result = h.run("""
        dag:
          start_at: m
          steps:
            m:
              type: map
              iterate_on: vs
              iterate_as: v
              failure_policy: fail_fast
              next: success
              branch:
                start_at: w
                steps:
                  w: {type: task, command: t.fail, next: success}
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, parameters={"vs": list(range(50))}, workers=1)
    window = branch_window(1)
    assert result.status == FAIL
    branches = find(result.run_log, "m")["branches"]
    assert [b["status"] for b in branches.values()] == [FAIL] * 50
    assert [bool(b["steps"]) for b in branches.values()] == [True] * window + [False] * (50 - window)
    assert find(result.run_log, "m")["message"] == "branches failed: m.0, m.1, m.2, m.3, m.4 and 45 more"
    told = [(type(e).__name__, e.internal_name) for e in h.events
            if isinstance(e, ev.BranchStarted | ev.BranchFinished)]
    for v in range(50):
        assert [kind for kind, name in told if name == f"m.{v}"] == ["BranchStarted", "BranchFinished"]


MAP_OF_TWO = """
    dag:
      start_at: m
      steps:
        m:
          type: map
          iterate_on: vs
          iterate_as: v
          next: success
          branch:
            start_at: w
            steps:
              w: {type: task, command: t.block, next: success}
              success: {type: success}
              fail: {type: fail}
        success: {type: success}
        fail: {type: fail}
"""


def test_run_pipeline_in_a_thread_running_an_event_loop_as_a_jupyter_cell_does(h: Harness) -> None:
    h.behaviours["block"] = _ok
    pipeline = load_yaml(textwrap.dedent(MAP_OF_TWO).strip() + "\n")
    results: list[RunResult] = []

    async def cell() -> None:  # ipykernel runs a cell's code while its event loop runs
        results.append(run_pipeline(pipeline, cwd=h.tmp_path, slots_factory=h.factory, workers=2,
                                    parameters={"vs": [1, 2]}))

    thread = threading.Thread(target=asyncio.run, args=(cell(),), daemon=True)
    thread.start()
    thread.join(WAIT * 2)
    assert not thread.is_alive(), "the run did not finish"
    [result] = results
    assert result.status == SUCCESS and result.steps()["m.2.w"] == SUCCESS


def test_an_interrupt_in_a_cell_running_the_pipeline_cancels_it(h: Harness) -> None:
    started = threading.Event()

    def block(spec: TaskSpec, cancel: threading.Event) -> TaskResult:
        started.set()
        return _until_cancelled(spec, cancel)

    h.behaviours["block"] = block
    pipeline = load_yaml(textwrap.dedent(MAP_OF_TWO).strip() + "\n")
    threading.Thread(target=lambda: started.wait(WAIT) and _thread.interrupt_main(), daemon=True).start()

    async def cell() -> None:
        run_pipeline(pipeline, cwd=h.tmp_path, slots_factory=h.factory, workers=2, run_id="cell",
                     parameters={"vs": [1, 2]})

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        loop.close()
    log = json.loads((h.tmp_path / ".run_log_store" / "cell.json").read_text())
    assert log["status"] == FAIL and log["message"] == "cancelled"
    assert log["warnings"] == ["the run was interrupted"]
    for v in (1, 2):
        step = find(log, f"m.{v}.w")
        assert step["status"] == FAIL and "cancelled" in step["message"]


# ---- with the real task slots -----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_slots() -> Any:
    from magnus_jupyter.executor.slots import TaskSlots

    with TaskSlots(3, warm_kernels=False) as pool:
        yield pool


def _real(tmp_path: Path, text: str, slots: Any, **kwargs: Any) -> RunResult:
    return run_pipeline(load_yaml(textwrap.dedent(text).strip() + "\n"), cwd=tmp_path, slots=slots, **kwargs)


def test_real_shell_tasks_see_the_map_value_as_parameter_and_map_variable(tmp_path: Path,
                                                                          real_slots: Any) -> None:
    result = _real(tmp_path, """
        dag:
          start_at: m
          steps:
            m:
              type: map
              iterate_on: xs
              iterate_as: x
              next: success
              branch:
                start_at: w
                steps:
                  w:
                    type: task
                    command_type: shell
                    command: echo "$MAGNUS_MAP_VARIABLE" > "seen_$MAGNUS_PRM_x.json"
                    next: success
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, real_slots, parameters={"xs": [1, 2]})
    assert result.status == SUCCESS, result.steps()
    assert json.loads((tmp_path / "seen_1.json").read_text()) == {"x": 1}
    assert json.loads((tmp_path / "seen_2.json").read_text()) == {"x": 2}
    assert result.parameters == {"xs": [1, 2]}  # the map value and the read-back copies do not leak


def test_real_fail_fast_kills_a_running_sibling_task(tmp_path: Path, real_slots: Any) -> None:
    result = _real(tmp_path, """
        dag:
          start_at: par
          steps:
            par:
              type: parallel
              failure_policy: fail_fast
              next: success
              branches:
                a:
                  start_at: wait then fail
                  steps:
                    wait then fail:
                      type: task
                      command_type: shell
                      command: while [ ! -f started ]; do sleep 0.05; done; exit 1
                      next: success
                    success: {type: success}
                    fail: {type: fail}
                b:
                  start_at: long
                  steps:
                    long: {type: task, command_type: shell, command: touch started && sleep 60, next: success}
                    success: {type: success}
                    fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, real_slots)
    steps = result.steps()
    assert steps["par.a.wait then fail"] == FAIL
    assert steps["par.b.long"] == FAIL
    assert "fail_fast" in find(result.run_log, "par.b.long")["message"]
    assert result.status == FAIL


@pytest.mark.slow
def test_real_notebooks_in_a_map_get_the_value_keep_outputs_apart_and_report_cells(tmp_path: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 0\nscale = 1")
    params.metadata["tags"] = ["parameters"]
    notebook.cells = [params, nbformat.v4.new_code_cell("total = x * scale"),
                      nbformat.v4.new_code_cell("print(total)")]
    nbformat.write(notebook, tmp_path / "square.ipynb")
    events: list[ev.Event] = []
    result = run_pipeline(load_yaml(textwrap.dedent("""
        dag:
          start_at: m
          steps:
            m:
              type: map
              iterate_on: xs
              iterate_as: x
              next: success
              branch:
                start_at: nb
                steps:
                  nb:
                    type: task
                    command_type: notebook
                    command: square.ipynb
                    returns: [total]
                    next: success
                  success: {type: success}
                  fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """).strip() + "\n"), parameters={"xs": [3, 4], "scale": 10}, cwd=tmp_path, workers=2,
                          subscribers=[events.append])
    assert result.status == SUCCESS, result.steps()
    assert result.parameters["total"] in (30, 40)  # both iterations write it: the last to finish wins
    assert any("'total'" in w for w in result.warnings)
    for x in (3, 4):
        out = result.catalog_path / f"m.{x}.nb_out.ipynb"
        executed = nbformat.read(out, as_version=4)
        assert f"{x * 10}" in json.dumps(executed.cells[-1].outputs)  # the map value was injected
        names = {e["name"] for e in find(result.run_log, f"m.{x}.nb")["data_catalog"]}
        assert out.name in names
    cells = [e for e in events if isinstance(e, ev.CellExecuted) and e.internal_name == "m.3.nb"]
    assert cells and cells[-1].done == cells[-1].total


# ---- retry ------------------------------------------------------------------------------------


def test_retry_runs_again_a_succeeded_step_whose_catalog_files_are_gone_and_says_why(h: Harness) -> None:
    from magnus_jupyter.executor.retry import retry_run

    (h.tmp_path / "data.txt").write_text("made by a")
    text = """
        dag:
          start_at: a
          steps:
            a: {type: task, command: t.ok, catalog: {put: [data.txt]}, next: b}
            k: {type: task, command: t.ok, next: b}
            b: {type: task, command: t.fail, next: success}
            success: {type: success}
            fail: {type: fail}
    """
    first = h.run(text, run_id="first")
    assert first.status == FAIL
    (first.catalog_path / "data.txt").unlink()  # someone cleaned the catalog
    pipeline = load_yaml(textwrap.dedent(text).strip() + "\n")
    again = retry_run("first", pipeline, cwd=h.tmp_path, slots_factory=h.factory, workers=2,
                      new_run_id="second", subscribers=[h.events.append])
    assert [s.internal_name for s in h.slots.specs] == ["a", "b"]  # type: ignore[union-attr]
    assert "reused_from" not in find(again.run_log, "a")
    assert any("'a' succeeded in run first but runs again: its catalog file" in w for w in again.warnings)
    assert again.run_log["original_run_id"] == "first"


def test_a_cancelled_run_leaves_no_step_processing_and_says_cancelled(h: Harness) -> None:
    cancel = threading.Event()
    started = threading.Event()

    def block(spec: TaskSpec, stop: threading.Event) -> TaskResult:
        started.set()
        return _until_cancelled(spec, stop)

    h.behaviours["block"] = block
    threading.Thread(target=lambda: (started.wait(WAIT), cancel.set()), daemon=True).start()
    result = h.run("""
        dag:
          start_at: p
          steps:
            p:
              type: parallel
              next: success
              branches:
                one:
                  start_at: t
                  steps:
                    t: {type: task, command: t.block, next: success}
                    success: {type: success}
                    fail: {type: fail}
            success: {type: success}
            fail: {type: fail}
    """, cancel=cancel)
    assert result.status == FAIL and result.run_log["message"] == "cancelled"
    assert find(result.run_log, "p.one.t")["status"] == FAIL
    assert "cancelled" in find(result.run_log, "p.one.t")["message"]
    assert all(status != "PROCESSING" for status in result.steps().values())
