"""The run history (``magnus-jupyter runs``): real runs made by the CLI, magnus' own run logs, bad logs.

The runs are produced by ``magnus-jupyter run`` / ``retry`` in a subprocess: a
parallel, a map, a task that fails once and is retried, a failing run and its
retry. magnus 0.5.1's own logs (file-system and chunked-fs, with metrics and a
``--use-cached`` re-run) come from ``tests/data/compat/magnus-0.5-runs``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.executor.runlog import flatten
from magnus_jupyter.history import diff_runs, index, list_runs, load_run, step_rows, store
from magnus_jupyter.history.store import RunLogError

ROOT = Path(__file__).resolve().parents[2]
MAGNUS_RUNS = ROOT / "tests" / "data" / "compat" / "magnus-0.5-runs"

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
              command: "test -f wobbled || { touch wobbled; echo first try fails; exit 1; }"
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
          show: {type: task, command_type: shell, command: "echo $MAGNUS_PRM_item > item.txt", next: success}
          success: {type: success}
          fail: {type: fail}
    last:
      type: task
      command_type: shell
      command: "test -f fixed || { echo 'not fixed yet' >&2; exit 3; }"
      next: success
    success: {type: success}
    fail: {type: fail}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with three real runs: ``first`` fails at ``last``, ``second`` retries it, ``third`` is new."""
    folder = tmp_path_factory.mktemp("history")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    first = cli(folder, "run", "pipeline.yaml", "--run-id", "first", "--param", "items=[1, 2]", "--quiet")
    assert first.returncode == 1, first.stdout + first.stderr
    (folder / "fixed").touch()
    second = cli(folder, "retry", "first", "--run-id", "second", "--quiet")
    assert second.returncode == 0, second.stdout + second.stderr
    third = cli(folder, "run", "pipeline.yaml", "--run-id", "third", "--param", "items=[1, 2, 3]", "--quiet")
    assert third.returncode == 0, third.stdout + third.stderr
    return folder


@pytest.fixture
def copy(history: Path, tmp_path: Path) -> Path:
    """A private copy of the history, for tests that change it."""
    target = tmp_path / "copy"
    shutil.copytree(history, target, symlinks=True)
    (target / ".run_log_store" / index.INDEX_NAME).unlink(missing_ok=True)
    return target


@pytest.fixture
def magnus_runs(tmp_path: Path) -> Path:
    """magnus 0.5.1's own records, laid out as magnus keeps them (hidden folders)."""
    folder = tmp_path / "magnus"
    shutil.copytree(MAGNUS_RUNS / "run_log_store", folder / ".run_log_store")
    shutil.copytree(MAGNUS_RUNS / "catalog", folder / ".catalog")
    return folder


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["run_id"]: r for r in rows}


# ---- the list ---------------------------------------------------------------------------------


def test_runs_lists_newest_first_with_counts_retry_links_and_times(history: Path) -> None:
    rows = list_runs(history)
    assert [r["run_id"] for r in rows] == ["third", "second", "first"]
    runs = _by_id(rows)  # type: ignore[arg-type]
    first, second, third = runs["first"], runs["second"], runs["third"]
    assert first["status"] == "FAIL" and second["status"] == "SUCCESS" and third["status"] == "SUCCESS"
    # tasks and stubs: prepare, q, wobble, show x2, last
    assert (first["succeeded"], first["failed"], first["reused"]) == (5, 1, 0)
    # the retry reused prepare, wobble and both map iterations; q (a stub) and last ran
    assert (second["succeeded"], second["failed"], second["reused"]) == (2, 0, 4)
    assert second["original_run_id"] == "first" and first["original_run_id"] == ""
    assert (third["succeeded"], third["done"], third["total"]) == (7, 7, 7)
    for row in rows:
        assert row["start"] and row["end"] and row["duration"] is not None and row["duration"] >= 0
        assert row["start"] <= row["end"]
        assert row["path"].endswith(f"{row['run_id']}.json") and row["note"] == ""
    assert first["end"] <= second["start"]  # reused steps' old times do not count for the retry


def test_runs_command_prints_a_table_and_json(history: Path) -> None:
    table = cli(history, "runs")
    assert table.returncode == 0 and table.stderr == "", table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "id", "status"]
    assert [line.split()[0] for line in lines[2:]] == ["third", "second", "first"]
    assert "first" in lines[3].split()  # second's "retry of" column
    listed = cli(history, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [d["run_id"] for d in data] == ["third", "second", "first"]
    for key in ("status", "start", "duration", "succeeded", "failed", "reused", "original_run_id", "tag"):
        assert all(key in d for d in data), key
    assert all(isinstance(d["duration"], float) and isinstance(d["succeeded"], int) for d in data)


def test_an_empty_folder_has_no_runs(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == []
    result = cli(tmp_path, "runs")
    assert result.returncode == 0 and "no runs in" in result.stdout
    assert json.loads(cli(tmp_path, "runs", "--json").stdout) == []


def test_magnus_own_file_system_and_chunked_fs_logs_are_listed(magnus_runs: Path) -> None:
    runs = _by_id(list_runs(magnus_runs))  # type: ignore[arg-type]
    assert set(runs) == {"magnus-failed", "magnus-retried", "magnus-chunked"}
    assert runs["magnus-failed"]["status"] == "FAIL" and runs["magnus-failed"]["tag"] == "nightly"
    assert runs["magnus-retried"]["original_run_id"] == "magnus-failed"
    assert runs["magnus-retried"]["reused"] == 2  # magnus marks the steps it did not run again "mock"
    chunked = runs["magnus-chunked"]
    assert chunked["status"] == "SUCCESS" and chunked["path"].endswith("magnus-chunked")
    assert (chunked["succeeded"], chunked["failed"]) == (7, 0)
    # the chunks come back together as one run log, steps inside their branches
    whole = load_run("magnus-chunked", magnus_runs)
    assert flatten(whole) == {
        "prepare": "SUCCESS", "metrics": "SUCCESS", "fan out": "SUCCESS",
        "fan out.left": "SUCCESS", "fan out.left.stub left": "SUCCESS", "fan out.left.success": "SUCCESS",
        "fan out.right": "SUCCESS", "fan out.right.say": "SUCCESS", "fan out.right.success": "SUCCESS",
        "each": "SUCCESS", "each.1": "SUCCESS", "each.1.show": "SUCCESS", "each.1.success": "SUCCESS",
        "each.2": "SUCCESS", "each.2.show": "SUCCESS", "each.2.success": "SUCCESS",
        "breaks": "SUCCESS", "success": "SUCCESS"}
    assert whole["parameters"] == {"items": [1, 2], "seed": 9}


# ---- bad logs ---------------------------------------------------------------------------------


def _bad_logs(folder: Path) -> dict[str, str]:
    """Corrupt logs and other tools' JSON beside the good ones; name -> what the error says."""
    logs = folder / ".run_log_store"
    good = (logs / "first.json").read_text()
    (logs / "truncated.json").write_text(good[: len(good) // 2])
    (logs / "foreign.json").write_text(json.dumps({"name": "left-pad", "version": "1.3.0"}))
    (logs / "array.json").write_text("[1, 2]")
    (logs / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    deep = json.loads(good)
    deep["steps"]["fan"]["branches"]["fan.flaky"]["steps"]["fan.flaky.wobble"]["attempts"][0] = "oops"
    (logs / "deep.json").write_text(json.dumps(deep))
    escape = json.loads(good)
    escape["run_id"] = "../../outside"
    (logs / "escape.json").write_text(json.dumps(escape))
    return {"truncated": "corrupt JSON", "foreign": "no 'run_id', 'status', 'steps'", "array": "a JSON list",
            "binary": "not UTF-8", "deep": "attempts[0] is not a mapping", "escape": "cannot name a run"}


def test_the_list_skips_bad_logs_with_one_warning_each_and_shows_the_rest(copy: Path) -> None:
    bad = _bad_logs(copy)
    warnings: list[str] = []
    rows = list_runs(copy, warn=warnings.append)
    assert [r["run_id"] for r in rows] == ["third", "second", "first"]
    assert len(warnings) == len(bad)
    for name, says in bad.items():
        assert any(str(copy / ".run_log_store" / f"{name}.json") in w and says in w for w in warnings), name
    result = cli(copy, "runs")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["third", "second", "first"]
    lines = result.stderr.splitlines()
    assert len(lines) == len(bad) and all(line.startswith("warning: ") for line in lines), result.stderr
    again = cli(copy, "runs")  # the second listing reads the index: the same warnings, still one each
    assert sorted(again.stderr.splitlines()) == sorted(lines)


@pytest.mark.parametrize("command", [["runs", "show", "{}"], ["runs", "diff", "first", "{}"],
                                     ["timeline", "{}", "-o", "out.svg"], ["runs", "rm", "{}"]])
def test_a_bad_log_or_unknown_run_is_one_line_naming_the_file_and_exit_2(copy: Path,
                                                                        command: list[str]) -> None:
    bad = _bad_logs(copy)
    for name, says in [*bad.items(), ("nosuch", "no run log at")]:
        result = cli(copy, *[part.format(name) for part in command])
        path = copy / ".run_log_store" / f"{name}.json"
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(path) in result.stderr and says in result.stderr, result.stderr
        assert result.stdout == ""
        assert path.exists() or name == "nosuch"  # nothing was removed
    assert not (copy / "out.svg").exists()


def test_library_errors_name_the_file(copy: Path) -> None:
    _bad_logs(copy)
    with pytest.raises(RunLogError, match=r"deep\.json: not a magnus run log"):
        load_run("deep", copy)
    with pytest.raises(RunLogError, match="run id"):
        load_run("../first", copy)


# ---- the index --------------------------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = store.read_run_file

    def counted(run: store.RunFile) -> dict[str, Any]:
        reads.append(run.run_id)
        return real(run)

    monkeypatch.setattr("magnus_jupyter.history.summary.read_run_file", counted)
    return reads


def test_the_index_spares_rereading_unchanged_logs_and_rereads_changed_ones(
        copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "SETTLE_NS", 0)  # the logs were just copied: count them as settled
    reads = _counting(monkeypatch)
    before = list_runs(copy)
    assert sorted(reads) == ["first", "second", "third"]
    assert (copy / ".run_log_store" / index.INDEX_NAME).is_file()
    reads.clear()
    assert list_runs(copy) == before
    assert reads == []
    # rewritten as the run log store writes (a new file replaces the old): read again
    path = copy / ".run_log_store" / "third.json"
    data = json.loads(path.read_text())
    data["tag"] = "retagged"
    tmp = path.with_name(".third.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    rows = _by_id(list_runs(copy))  # type: ignore[arg-type]
    assert reads == ["third"] and rows["third"]["tag"] == "retagged"
    # removed: gone from the list and from the index
    path.unlink()
    assert [r["run_id"] for r in list_runs(copy)] == ["second", "first"]
    assert "third" not in json.loads((copy / ".run_log_store" / index.INDEX_NAME).read_text())["runs"]


def test_a_log_rewritten_in_place_with_the_same_size_and_mtime_is_read_again(
        copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "SETTLE_NS", 0)
    reads = _counting(monkeypatch)
    list_runs(copy)
    path = copy / ".run_log_store" / "first.json"
    text = path.read_text()
    st = os.stat(path)
    changed = text.replace('"tag": ""', '"tag": "x"', 1).replace('\n "dag_hash"', '\n"dag_hash"', 1)
    assert len(changed) == len(text)
    with open(path, "r+", encoding="utf-8") as fh:  # in place: same inode
        fh.write(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    reads.clear()
    assert _by_id(list_runs(copy))["first"]["tag"] == "x"  # type: ignore[arg-type]
    assert reads == ["first"]


def test_a_just_written_log_is_not_cached_and_a_broken_index_is_rebuilt(
        copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _counting(monkeypatch)
    list_runs(copy)  # every log was copied a moment ago: too fresh to cache
    assert index.load(copy / ".run_log_store") == {}
    monkeypatch.setattr(index, "SETTLE_NS", 0)
    (copy / ".run_log_store" / index.INDEX_NAME).write_text("{not json")
    reads.clear()
    assert len(list_runs(copy)) == 3 and len(reads) == 3
    reads.clear()
    assert len(list_runs(copy)) == 3 and reads == []


# ---- show, diff ---------------------------------------------------------------------------------


def test_step_rows_are_the_tree_with_attempts_and_spans(history: Path) -> None:
    rows = step_rows(load_run("first", history))
    by_name = {r["internal_name"]: r for r in rows}
    assert [r["internal_name"] for r in rows][:4] == ["prepare", "fan", "fan.quick", "fan.quick.q"]
    assert by_name["fan.quick"]["kind"] == "branch" and by_name["fan.quick"]["depth"] == 1
    assert by_name["fan.flaky.wobble"]["depth"] == 2
    assert rows[by_name["fan.flaky.wobble"]["parent"]]["internal_name"] == "fan.flaky"
    wobble = by_name["fan.flaky.wobble"]
    assert [a["status"] for a in wobble["attempts"]] == ["FAIL", "SUCCESS"] and wobble["status"] == "SUCCESS"
    assert "exited with code 1" in wobble["attempts"][0]["message"]
    assert by_name["last"]["status"] == "FAIL" and "exited with code 3" in by_name["last"]["message"]
    assert by_name["each.2.show"]["status"] == "SUCCESS"
    fan = by_name["fan"]  # a composite spans its branches
    assert fan["start"] == min(by_name[n]["start"] for n in ("fan.quick.q", "fan.flaky.wobble"))
    assert fan["duration"] is not None and fan["duration"] >= wobble["duration"]
    reused = {r["internal_name"]: r for r in step_rows(load_run("second", history))}
    assert reused["prepare"]["reused_from"] == "first" and reused["last"]["reused_from"] == ""


def test_runs_show_prints_the_tree_with_attempts_and_messages(history: Path) -> None:
    result = cli(history, "runs", "show", "first")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status:    FAIL" in out and 'initial parameters: {"items": [1, 2]}' in out
    assert '"size": 3' in out  # the final parameters
    lines = out.splitlines()
    wobble = next(i for i, line in enumerate(lines) if line.strip().startswith("wobble"))
    assert lines[wobble + 1].split()[:3] == ["attempt", "1", "FAIL"]
    assert lines[wobble + 2].split()[:3] == ["attempt", "2", "SUCCESS"]
    assert any(line.startswith("last") and "exited with code 3" in line for line in lines)
    shown = cli(history, "runs", "show", "second", "--json")
    data = json.loads(shown.stdout)
    assert data["run"]["original_run_id"] == "first"
    assert {r["internal_name"]: r["reused_from"] for r in data["steps"]}["each.1.show"] == "first"


def test_runs_show_prints_magnus_metrics(magnus_runs: Path) -> None:
    result = cli(magnus_runs, "runs", "show", "magnus-chunked")
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:3] == ["metric", "accuracy", "0.9"] for line in result.stdout.splitlines())


def test_diff_compares_parameters_steps_and_catalog_files(history: Path) -> None:
    diff = diff_runs(load_run("first", history), load_run("third", history), history)
    initial = {p["key"]: p for p in diff["initial_parameters"] or []}
    assert initial["items"]["a"] == [1, 2] and initial["items"]["b"] == [1, 2, 3]
    assert not initial["items"]["same"]
    final = {p["key"]: p for p in diff["final_parameters"]}
    assert final["size"]["same"] and final["size"]["a"] == 3
    steps = {p["internal_name"]: p for p in diff["steps"]}
    assert not steps["last"]["same"] and steps["last"]["a"]["status"] == "FAIL"  # type: ignore[typeddict-item]
    # every task receives items, which differ: their fingerprints do; a map iteration counts its value only
    assert not steps["prepare"]["same"] and steps["prepare"]["a"]["status"] == "SUCCESS"  # type: ignore[typeddict-item]
    assert steps["prepare"]["a"]["fingerprint"] != steps["prepare"]["b"]["fingerprint"]  # type: ignore[typeddict-item]
    assert steps["each.1.show"]["same"] and steps["each.1.show"]["a"]["attempts"] == 1  # type: ignore[typeddict-item]
    assert len(steps["each.1.show"]["a"]["fingerprint"]) == 32  # type: ignore[typeddict-item]
    assert "each.3.show" in steps and "a" not in steps["each.3.show"] and not steps["each.3.show"]["same"]
    files = {p["key"]: p for p in diff["catalog"]}
    assert files["data.txt"]["same"]  # the same content in both catalogs
    assert files["data.txt"]["a"] == files["data.txt"]["b"] and len(files["data.txt"]["a"]) == 64
    assert any(not p["same"] for p in diff["catalog"])  # the task logs differ from run to run


def test_diff_of_magnus_runs_shows_metrics_side_by_side(magnus_runs: Path) -> None:
    result = cli(magnus_runs, "runs", "diff", "magnus-failed", "magnus-chunked")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert any(line.split() == ["metrics:", "accuracy", "0.7", "0.9", "\u2260"] for line in out), out
    assert any(line.split() == ["seed", "7", "9", "\u2260"] for line in out), result.stdout
    assert any(line.startswith("breaks") and "FAIL" in line and "SUCCESS" in line for line in out)
    data = json.loads(cli(magnus_runs, "runs", "diff", "magnus-failed", "magnus-chunked", "--json").stdout)
    assert data["initial_parameters"] is None  # magnus records none
    metrics = {(m["step"], m["key"]): m for m in data["metrics"]}
    assert metrics[("metrics", "rounds")]["a"] == 7 and metrics[("metrics", "rounds")]["b"] == 9
    files = {f["key"]: f for f in data["catalog"]}
    assert files["data/x.txt"]["same"]


def test_diff_of_a_run_with_itself_has_nothing_to_show(history: Path) -> None:
    result = cli(history, "runs", "diff", "third", "third")
    assert result.returncode == 0
    assert "\u2260" not in result.stdout and "steps (status, time, fingerprint): all" in result.stdout


def test_diff_compares_fingerprints_when_step_logs_carry_them(copy: Path) -> None:
    for run_id, value in (("first", "abc"), ("third", "abd")):
        path = copy / ".run_log_store" / f"{run_id}.json"
        data = json.loads(path.read_text())
        data["steps"]["prepare"]["fingerprint"] = value
        path.write_text(json.dumps(data))
    diff = diff_runs(load_run("first", copy), load_run("third", copy), copy)
    prepare = next(p for p in diff["steps"] if p["internal_name"] == "prepare")
    assert not prepare["same"] and prepare["a"]["fingerprint"] == "abc"  # type: ignore[typeddict-item]


# ---- rm, prune ----------------------------------------------------------------------------------


def test_rm_removes_log_and_catalog_and_says_so(copy: Path) -> None:
    result = cli(copy, "runs", "rm", "first", "second")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("removed first: run log ")
    assert str(copy / ".catalog" / "first") in lines[0] and "files)" in lines[0]
    for run_id in ("first", "second"):
        assert not (copy / ".run_log_store" / f"{run_id}.json").exists()
        assert not (copy / ".catalog" / run_id).exists()
    assert (copy / ".catalog" / "third").is_dir() and [r["run_id"] for r in list_runs(copy)] == ["third"]


def test_rm_with_one_unknown_id_removes_nothing(copy: Path) -> None:
    result = cli(copy, "runs", "rm", "first", "nosuch")
    assert result.returncode == 2 and "nosuch" in result.stderr
    assert (copy / ".run_log_store" / "first.json").exists() and (copy / ".catalog" / "first").is_dir()


def test_prune_keeps_the_newest_and_leaves_unreadable_logs_alone(copy: Path) -> None:
    (copy / ".run_log_store" / "broken.json").write_text("{")
    result = cli(copy, "runs", "prune", "--keep", "1")
    assert result.returncode == 0, result.stderr
    assert "broken.json" in result.stderr
    assert result.stdout.splitlines()[-1] == "removed 2 runs; kept the 1 newest"
    assert sorted(p.name for p in (copy / ".run_log_store").glob("*.json")) == ["broken.json", "third.json"]
    assert sorted(p.name for p in (copy / ".catalog").iterdir()) == ["third"]


def test_prune_needs_a_count(copy: Path) -> None:
    for args in (["runs", "prune"], ["runs", "prune", "--keep", "-1"], ["runs", "prune", "--keep", "x"]):
        result = cli(copy, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, args
    assert len(list_runs(copy)) == 3


def test_chunked_fs_runs_are_removed_whole(magnus_runs: Path) -> None:
    result = cli(magnus_runs, "runs", "rm", "magnus-chunked")
    assert result.returncode == 0, result.stderr
    assert not (magnus_runs / ".run_log_store" / "magnus-chunked").exists()
    assert not (magnus_runs / ".catalog" / "magnus-chunked").exists()


def test_every_runs_command_has_help(tmp_path: Path) -> None:
    for args in (["runs"], ["runs", "show"], ["runs", "diff"], ["runs", "rm"], ["runs", "prune"],
                 ["timeline"]):
        result = cli(tmp_path, *args, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, args


def test_a_processing_run_this_machine_cannot_check_is_kept_unless_forced(copy: Path) -> None:
    path = copy / ".run_log_store" / "first.json"
    data = json.loads(path.read_text())
    data["status"] = "PROCESSING"
    data["run_config"]["orchestrator"]["host"] = "another-host"
    path.write_text(json.dumps(data))
    row = _by_id(list_runs(copy))["first"]  # type: ignore[arg-type]
    assert row["status"] == "PROCESSING" and "another-host" in row["note"] and row["duration"] is not None
    refused = cli(copy, "runs", "rm", "first")
    assert refused.returncode == 2 and "may still be running" in refused.stderr
    assert "--force" in refused.stderr
    pruned = cli(copy, "runs", "prune", "--keep", "0")
    assert "kept first: it may still be running" in pruned.stdout and path.exists()
    forced = cli(copy, "runs", "rm", "first", "--force")
    assert forced.returncode == 0 and not path.exists(), forced.stderr


def test_the_history_library_imports_nothing_of_jupyter() -> None:
    probe = ("import sys, magnus_jupyter.history as h\n"
             "for name in h.__all__: getattr(h, name)\n"
             "import magnus_jupyter.history.cli, magnus_jupyter.history.tables\n"
             "print(' '.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            check=True, cwd=ROOT).stdout.split()
    heavy = ("papermill", "IPython", "ipywidgets", "nbclient", "jupyter_client", "zmq", "jupyter_server",
             "tornado", "yaml")
    assert not [m for m in loaded if m.split(".")[0] in heavy]


def test_a_run_log_being_created_is_not_a_corrupt_one(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run log store reserves a new run's id with an empty file, then writes it: not a warning."""
    (copy / ".run_log_store" / "starting.json").touch()
    warnings: list[str] = []
    assert [r["run_id"] for r in list_runs(copy, warn=warnings.append)] == ["third", "second", "first"]
    assert warnings == []
    monkeypatch.setattr(index, "SETTLE_NS", 0)  # an empty log that stays empty is worth a warning
    list_runs(copy, warn=warnings.append)
    assert len(warnings) == 1 and "starting.json: the run log is empty" in warnings[0]
    shown = cli(copy, "runs", "show", "starting")
    assert shown.returncode == 2 and "the run log is empty" in shown.stderr
