"""The run log store: magnus' shapes, atomic and coalesced writes, run ids; and the parameters' rules."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from magnus_jupyter.errors import ExecutionError, ParameterError
from magnus_jupyter.executor import params as P
from magnus_jupyter.executor import runlog as R
from magnus_jupyter.progress import TerminalProgress, summary_table


def test_create_reserves_the_id_and_writes_a_processing_log(tmp_path: Path) -> None:
    store = R.RunLogStore.create(tmp_path, "r-1", {"a": 1}, {"executor": "x"})
    data = json.loads(store.path.read_text())
    assert data["run_id"] == "r-1" and data["status"] == "PROCESSING"
    assert data["parameters"] == {"a": 1} and data["steps"] == {}
    assert store.path == tmp_path / ".run_log_store" / "r-1.json"
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode & stat.S_IRGRP  # not mkstemp's private 0600
    with pytest.raises(ExecutionError, match="'r-1' already exists"):
        R.RunLogStore.create(tmp_path, "r-1", {})


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "a..b", "x" * 300, "sp ace"])
def test_run_ids_that_cannot_name_a_file_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ExecutionError, match="run id"):
        R.RunLogStore.create(tmp_path, bad, {})
    assert not list((tmp_path / ".run_log_store").glob("*"))


def test_generated_run_ids_are_unique_and_sortable(tmp_path: Path) -> None:
    ids = [R.RunLogStore.create(tmp_path, None, {}).run_id for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(R.check_run_id(i) for i in ids)
    assert ids[0][:15] <= ids[-1][:15]  # the timestamp leads


def test_writes_are_coalesced_and_the_final_state_is_written(tmp_path: Path) -> None:
    store = R.RunLogStore.create(tmp_path, "c", {}, interval=3600)
    store.start()
    for i in range(1000):
        with store.lock:
            store.data["steps"][f"s{i}"] = R.step_log(f"s{i}", f"s{i}", "stub")
        store.touch()
    store.close()
    # creation + at most one background write (then it sleeps an hour) + the final one
    assert store.writes <= 3
    data = json.loads(store.path.read_text())
    assert len(data["steps"]) == 1000
    assert [p.name for p in store.path.parent.iterdir()] == ["c.json"]


def test_concurrent_readers_only_ever_see_whole_files(tmp_path: Path) -> None:
    store = R.RunLogStore.create(tmp_path, "w", {}, interval=0)
    store.start()
    stop = threading.Event()
    seen: list[int] = []
    torn: list[Exception] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(len(json.loads(store.path.read_text())["steps"]))
            except ValueError as exc:
                torn.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(300):
        with store.lock:
            store.data["steps"][f"s{i}"] = R.step_log(f"s{i}", f"s{i}", "stub") | {"pad": "x" * 500}
        store.touch()
    store.close()
    stop.set()
    thread.join()
    assert torn == [] and seen and seen == sorted(seen)


def test_a_new_run_log_is_never_seen_empty(tmp_path: Path) -> None:
    """A reader polling the store while runs start finds every log whole, from its first moment (a
    watcher of a starting run read the reserved, still empty file as bad JSON)."""
    folder = tmp_path / ".run_log_store"
    stop = threading.Event()
    empty: set[str] = set()

    def watch() -> None:
        while not stop.is_set():
            try:
                with os.scandir(folder) as entries:
                    empty.update(e.name for e in entries
                                 if e.name.endswith(".json") and e.stat().st_size == 0)
            except FileNotFoundError:
                continue

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for i in range(300):
            R.RunLogStore.create(tmp_path, f"r{i}", {}, {"pipeline_yaml": "x" * 20_000})
    finally:
        stop.set()
        thread.join()
    assert empty == set()
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"r{i}.json" for i in range(300))  # no temp


def test_flatten_keys_every_step_and_branch_by_internal_name() -> None:
    step = R.step_log("par", "par", "parallel")
    branch = R.branch_log("par.a")
    branch["steps"]["par.a.t"] = R.step_log("t", "par.a.t", "task") | {"status": "FAIL"}
    branch["status"] = "FAIL"
    step["branches"]["par.a"] = branch
    step["status"] = "FAIL"
    log = {"steps": {"par": step}}
    assert R.flatten(log) == {"par": "FAIL", "par.a": "FAIL", "par.a.t": "FAIL"}
    assert [s["internal_name"] for s in R.iter_steps(log)] == ["par", "par.a.t"]
    assert [s["internal_name"] for s in R.iter_steps(log, branches=True)] == ["par", "par.a", "par.a.t"]
    table = summary_table(log)
    assert "par.a.t" in table and "branch" in table


def test_attempt_durations_read_like_magnus() -> None:
    attempt = R.attempt_log(1, "2024-01-01 10:00:00.000000", "2024-01-01 10:00:01.500000", "SUCCESS")
    assert attempt["duration"] == "0:00:01.500000"
    assert R.attempt_log(1, "", "", "FAIL")["duration"] == ""


# ---- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "key", "value"), [
    ("n=3", "n", 3),
    ("xs=[1, 2]", "xs", [1, 2]),
    ("flag=true", "flag", True),
    ("name=hello world", "name", "hello world"),
    ('quoted="3"', "quoted", "3"),
    ("eq=a=b", "eq", "a=b"),
    ("empty=", "empty", ""),
])
def test_param_values_are_json_with_the_raw_text_as_fallback(text: str, key: str, value: object) -> None:
    assert P.parse_param(text) == (key, value)


@pytest.mark.parametrize("text", ["novalue", "=3", " =x"])
def test_a_param_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        P.parse_param(text)


def test_initial_parameters_layer_file_environment_and_flags(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("a: 1\nb: {c: [1, 2]}\nd: file\n")
    env = {"MAGNUS_PRM_D": '"env"', "MAGNUS_PRM_E": "plain", "OTHER": "x"}
    got = P.initial_parameters(file, ["a=2"], environ=env)
    assert got == {"a": 2, "b": {"c": [1, 2]}, "d": "env", "e": "plain"}
    assert type(got["b"]) is dict  # plain data, not the loader's line-tracking mapping


@pytest.mark.parametrize(("text", "phrase"), [
    ("- 1\n- 2\n", "p.yaml:1: a parameters file must be a mapping of name: value, found a list"),
    ("just text\n", "found str"),
    ("a: [1,\n", "YAML syntax error"),
    ("1: x\n", "parameter names must be text"),
])
def test_a_bad_parameters_file_is_a_located_error(tmp_path: Path, text: str, phrase: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(text)
    with pytest.raises(ParameterError) as info:
        P.initial_parameters(file)
    assert phrase in str(info.value) and "p.yaml" in str(info.value)


def test_an_empty_parameters_file_is_no_parameters(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("# nothing yet\n")
    assert P.initial_parameters(tmp_path / "p.yaml", environ={}) == {}


def test_only_real_changes_count_as_writes() -> None:
    assert P.changed({"a": 1, "b": [1]}, {"a": 1, "b": [1, 2], "c": None}) == {"b": [1, 2], "c": None}


def test_the_store_notes_writers_per_fan_out_and_reports_conflicts() -> None:
    store = P.ParameterStore({"x": 0})
    outer, inner = P.WriteLog("par"), P.WriteLog("par.a.m")
    store.merge({"x": 1}, [(outer, "par.a"), (inner, "par.a.m.1")])
    store.merge({"x": 2}, [(outer, "par.a"), (inner, "par.a.m.2")])
    store.merge({"y": 1}, [(outer, "par.b")])
    assert store.snapshot() == {"x": 2, "y": 1}
    assert outer.conflicts() == []
    assert inner.conflicts() == [("x", ["par.a.m.1", "par.a.m.2"])]
    snap = store.snapshot()
    snap["x"] = 99
    assert store.get("x") == 2  # snapshots are copies


def test_the_warning_names_the_branch_that_wrote_last() -> None:
    store, log = P.ParameterStore({}), P.WriteLog("par")
    for branch, value in (("par.a", 1), ("par.b", 2), ("par.a", 3)):
        store.merge({"x": value}, [(log, branch)])
    assert store.get("x") == 3
    assert log.conflicts() == [("x", ["par.b", "par.a"])]
    assert log.warnings() == ["parameter 'x' was written by parallel branches 'par.b', 'par.a' of 'par'; "
                              "the last to finish ('par.a') wins"]


# ---- terminal progress -------------------------------------------------------------------------


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.text = ""
        self.tty = tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def _events() -> list:
    from magnus_jupyter.executor import events as ev

    return [
        ev.RunStarted("r", "log", "cat", {}, 2),
        ev.StepStarted("par", "par", "parallel"),
        ev.BranchStarted("par.a"),
        ev.StepStarted("par.a.nb", "nb", "task"),
        ev.CellExecuted("par.a.nb", 2, 4),
        ev.StepFinished("par.a.nb", "nb", "task", "FAIL", "cell 3 raised ValueError"),
        ev.BranchFinished("par.a", "FAIL"),
        ev.RunWarning("parameter 'x' was written by parallel branches"),
        ev.StepFinished("par", "par", "parallel", "FAIL", "branch failed: par.a"),
        ev.RunFinished("r", "FAIL", {}, "log", "cat"),
    ]


def test_plain_progress_prints_one_line_per_finished_step() -> None:
    stream = _Stream(tty=False)
    progress = TerminalProgress(stream)  # type: ignore[arg-type]
    for event in _events():
        progress(event)
    lines = stream.text.splitlines()
    assert lines[0].startswith("FAIL    par.a.nb (task,") and lines[0].endswith(": cell 3 raised ValueError")
    assert "warning: parameter 'x' was written by parallel branches" in lines
    assert "\x1b[" not in stream.text


def test_live_progress_draws_a_bar_per_running_branch_and_clears_it_at_the_end() -> None:
    stream = _Stream(tty=True)
    progress = TerminalProgress(stream, refresh=3600)  # type: ignore[arg-type]
    events = _events()
    for event in events[:5]:
        progress(event)
    progress._draw(force=True)
    assert "par.a > nb  [##########----------] cell 2/4" in stream.text
    assert "(pipeline) > par" not in stream.text  # a composite waiting for its branches has no lane
    for event in events[5:]:
        progress(event)
    assert "branch par.a" in stream.text and "FAIL    par.a.nb" in stream.text
    assert progress._shown == 0  # the live block was cleared


def test_a_long_run_summary_lists_only_what_did_not_succeed() -> None:
    steps = {f"s{i}": R.step_log(f"s{i}", f"s{i}", "stub") | {"status": "SUCCESS"} for i in range(100)}
    assert summary_table({"steps": steps}) == "100 steps and branches: 100 SUCCESS"
    steps["s7"] = steps["s7"] | {"status": "FAIL", "message": "exit status 1\nmore"}
    table = summary_table({"steps": steps}).splitlines()
    assert table[0].split() == ["step", "type", "status", "tries", "time", "message"]
    assert table[2].split() == ["s7", "stub", "FAIL", "exit", "status", "1"]
    assert table[-1] == "100 steps and branches: 1 FAIL, 99 SUCCESS; showing the 1 not successful"


def test_live_progress_and_summary_show_untrusted_names_and_messages_without_control_sequences() -> None:
    import re

    from magnus_jupyter.executor import events as ev

    evil = "a\x1b[2J\x1b]0;pwned\x07\u202eb"
    stream = _Stream(tty=True)
    progress = TerminalProgress(stream, refresh=3600)  # type: ignore[arg-type]
    for event in (ev.RunStarted("r", "log", "cat", {}, 2), ev.StepStarted("p", "p", "parallel"),
                  ev.BranchStarted(f"p.{evil}"), ev.StepStarted(f"p.{evil}.t", "t", "task"),
                  ev.RunWarning(f"value {evil}")):
        progress(event)
    progress._draw(force=True)
    progress(ev.StepFinished(f"p.{evil}.t", "t", "task", "FAIL", f"\x1b[31m{evil}\x1b[0m"))
    progress(ev.RunFinished("r", "FAIL", {}, "log", "cat"))
    ours = re.compile(r"\x1b\[\d+F\x1b\[J")  # the live block's own cursor-up-and-clear
    shown = ours.sub("", stream.text)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "a\\u202eb" in shown  # visible, escaped, not acted on
    log = {"steps": {evil: R.step_log(evil, evil, "task") | {"status": "FAIL", "message": evil}}}
    table = summary_table(log)
    assert "\x1b" not in table and "\x07" not in table and "a\\u202eb" in table
