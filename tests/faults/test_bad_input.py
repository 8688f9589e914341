"""Bad input wherever a user types it: one clear, located message; exit 2 and no traceback for the
command line; a step FAIL naming the problem for what only shows when the step runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .conftest import Cli, read_log, steps, write_notebook

PIPELINE = textwrap.dedent("""
    dag:
      start_at: a
      steps:
        a: {type: task, command_type: shell, command: "true", next: success}
        success: {type: success}
        fail: {type: fail}
""")

USAGE = [
    (["run", "p.yaml", "-p", "list.yaml"], "list.yaml:1: a parameters file must be a mapping"),
    (["run", "p.yaml", "-p", "broken.yaml"], "broken.yaml:3: YAML syntax error"),
    (["run", "p.yaml", "-p", "nothere.yaml"], "nothere.yaml: no such parameters file"),
    (["run", "p.yaml", "--param", "novalue"], "--param 'novalue': expected NAME=VALUE"),
    (["run", "p.yaml", "--param", "=3"], "--param '=3': expected NAME=VALUE"),
    (["run", "p.yaml", "--run-id", "taken"], "run id 'taken' already exists"),
    (["run", "p.yaml", "--run-id", "../up"], "run id '../up': use letters"),
    (["run", "p.yaml", "--timeout", "0"], "--timeout: must be a positive number of seconds"),
    (["run", "p.yaml", "--timeout", "soon"], "--timeout: expected a number of seconds"),
    (["run", "missing.yaml"], "missing.yaml: no such file"),
    (["retry", "never-ran"], "run 'never-ran': no run log"),
    (["retry", "taken", "missing.yaml"], "missing.yaml: no such file"),
]


@pytest.fixture
def folder(cli: Cli, tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("a: 1\nb: [1,\n")
    run_logs = tmp_path / ".run_log_store"
    run_logs.mkdir()
    (run_logs / "taken.json").write_text('{"run_id": "taken", "steps": {}, "status": "FAIL"}')
    return tmp_path


@pytest.mark.parametrize(("args", "phrase"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_command_line_mistakes_exit_2_with_one_located_line(cli: Cli, folder: Path, args: list[str],
                                                            phrase: str) -> None:
    done = cli.run(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert phrase in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len([line for line in lines if "error:" in line]) == 1, done.stderr  # one message ...
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), done.stderr  # ... after usage


BAD_STEPS = textwrap.dedent("""
    dag:
      start_at: fan
      steps:
        fan:
          type: parallel
          next: success
          branches:
            missing:
              start_at: t
              steps:
                t: {type: task, command_type: notebook, command: nowhere/gone.ipynb, next: success}
                success: {type: success}
                fail: {type: fail}
            not a notebook:
              start_at: t
              steps:
                t: {type: task, command_type: notebook, command: text.ipynb, next: success}
                success: {type: success}
                fail: {type: fail}
            no parameters cell:
              start_at: t
              steps:
                t: {type: task, command_type: notebook, command: noparams.ipynb, returns: [z], next: success}
                success: {type: success}
                fail: {type: fail}
            undefined return:
              start_at: t
              steps:
                t: {type: task, command_type: notebook, command: noparams.ipynb, returns: [ghost],
                    next: success}
                success: {type: success}
                fail: {type: fail}
            map over text:
              start_at: m
              steps:
                m:
                  type: map
                  iterate_on: word
                  iterate_as: w
                  next: success
                  branch:
                    start_at: t
                    steps:
                      t: {type: task, command_type: shell, command: "true", next: success}
                      success: {type: success}
                      fail: {type: fail}
                success: {type: success}
                fail: {type: fail}
        success: {type: success}
        fail: {type: fail}
""")


def test_bad_notebooks_returns_and_map_values_fail_their_step_naming_the_problem(
        cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(BAD_STEPS)
    (tmp_path / "text.ipynb").write_text("this is not JSON {")
    write_notebook(tmp_path / "noparams.ipynb", "z = x + 41", parameters=None)
    done = cli.run("run", "p.yaml", "--param", "x=1", "--param", "word=hello", "--run-id", "bad", "--quiet")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    log = read_log(tmp_path, "bad")
    assert log is not None
    found = steps(log)
    missing = found["fan.missing.t"]["message"]
    assert "notebook not found" in missing and str(tmp_path / "nowhere" / "gone.ipynb") in missing
    text = found["fan.not a notebook.t"]["message"]
    assert "cannot read notebook" in text and str(tmp_path / "text.ipynb") in text
    # no parameters cell: the parameters go in a cell of their own at the top, as papermill does
    assert found["fan.no parameters cell.t"]["status"] == "SUCCESS" and log["parameters"]["z"] == 42
    assert "'ghost'" in found["fan.undefined return.t"]["message"]
    assert "never defines" in found["fan.undefined return.t"]["message"]
    mapped = found["fan.map over text.m"]["message"]
    assert "'word'" in mapped and "must be a list" in mapped and "str" in mapped


def test_control_sequences_in_names_values_and_output_never_reach_the_terminal(
        cli: Cli, tmp_path: Path) -> None:
    """A name with escape sequences is refused, shown escaped; values and output are shown cleaned."""
    evil = textwrap.dedent("""\
        dag:
          start_at: "evil\\e[2J\\e]0;pwned\\a step"
          steps:
            "evil\\e[2J\\e]0;pwned\\a step":
              type: task
              command_type: shell
              command: printf 'out \\033[31mred\\033]0;title\\007 \\233 1m\\n'; echo "$MAGNUS_PRM_v"; exit 1
              next: success
            success: {type: success}
            fail: {type: fail}
    """)
    (tmp_path / "evil.yaml").write_text(evil)
    (tmp_path / "plain.yaml").write_text(evil.replace("\\e[2J\\e]0;pwned\\a", ""))
    refused = cli.run("run", "evil.yaml")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "step 'evil\\x1b[2J\\x1b]0;pwned\\x07 step': a step name may not hold" in refused.stderr
    for quiet in ([], ["--quiet"]):
        done = cli.run("run", "plain.yaml", "--param", "v=\x1b[5mblink\x07", *quiet)
        assert done.returncode == 1, done.stdout + done.stderr
        both = done.stdout + done.stderr + refused.stdout + refused.stderr
        assert "evil step" in both, both
        if not quiet:  # the failure line carries the task's last output
            assert "out red" in both, both
        for bad in ("\x1b", "\x07", "\x9b"):
            assert bad not in both, repr(both)
