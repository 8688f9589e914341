"""Runs started at the same moment in one folder keep their run logs, catalogs and notebooks apart."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from .conftest import Cli, read_log, steps, write_notebook

pytestmark = pytest.mark.slow

PIPELINE = textwrap.dedent("""
    dag:
      start_at: nb
      steps:
        nb:
          type: task
          command_type: notebook
          command: echo.ipynb
          notebook_output_path: out/echo.ipynb
          returns: [seen]
          next: success
        success: {type: success}
        fail: {type: fail}
""")


def test_concurrent_runs_never_clobber_each_other_and_a_taken_run_id_is_refused(
        cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    write_notebook(tmp_path / "echo.ipynb", "seen = x * 10")
    common = ("run", "p.yaml", "--workers", "1", "--quiet")
    procs = {
        "same-a": cli.start(*common, "--run-id", "same", "--param", "x=1"),
        "same-b": cli.start(*common, "--run-id", "same", "--param", "x=2"),
        "auto-3": cli.start(*common, "--param", "x=3"),
        "auto-4": cli.start(*common, "--param", "x=4"),
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        done[name] = (proc.returncode, out, err)
    codes = sorted(done[n][0] for n in ("same-a", "same-b"))
    assert codes == [0, 2], done  # exactly one of the two got the id; the other was refused, clearly
    refused = next(err for code, _, err in (done["same-a"], done["same-b"]) if code == 2)
    assert "run id 'same' already exists" in refused and "Traceback" not in refused
    ids = {}
    for name, (code, out, err) in done.items():
        if code == 2:
            continue
        assert code == 0, out + err
        ids[name] = out.splitlines()[0].removeprefix("run_id: ")
    assert len(set(ids.values())) == 3
    for name, run_id in ids.items():
        log = read_log(tmp_path, run_id)
        assert log is not None and log["status"] == "SUCCESS"
        x = log["parameters"]["x"]
        assert log["parameters"]["seen"] == x * 10
        if name.startswith("auto"):
            assert x == int(name[-1])
        # its executed notebook is its own: in its own catalog, with its own parameter injected
        entries = [e for e in steps(log)["nb"]["data_catalog"] if e["name"].endswith(".ipynb")]
        assert entries and all(e["catalog_relative_path"].startswith(run_id) for e in entries)
        executed = json.loads((tmp_path / ".catalog" / entries[0]["catalog_relative_path"]).read_text())
        injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert f"x = {x}" in "".join(injected[0]["source"])
    # the shared notebook_output_path holds one whole notebook (a copy of whichever finished last)
    assert json.loads((tmp_path / "out" / "echo.ipynb").read_text())["cells"]
