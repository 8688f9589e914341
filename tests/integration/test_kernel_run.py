"""A real kernel: the kernel's interrupt cancels a blocking %magnus_run; a --background run keeps
updating and its Stop button stops it.

A real ipykernel started with jupyter_client; the interrupt is the one the
front end sends, the click the message a front end's button sends. The task's
shell records its pid, so the test can check the process is gone rather than
trusting a status string.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import start_new_kernel

GUARD = 120.0  # seconds: a guard against hangs, never a timing expectation
WIDGET = "application/vnd.jupyter.widget-view+json"
INTERRUPTED = "interrupted: the run was cancelled, its tasks stopped"

SETUP = textwrap.dedent("""
    %load_ext magnus_jupyter
""")
DECLARE = textwrap.dedent("""\
    %%magnus_parallel "Both"
    a: `echo $$ > pid_a; sleep 120`
    b: `echo $$ > pid_b; sleep 120`
""")


def _execute(client: object, code: str) -> tuple[dict, list[dict]]:
    msg_id = client.execute(code)  # type: ignore[attr-defined]
    outputs = _outputs_of(client, msg_id)
    reply = client.get_shell_msg(timeout=GUARD)  # type: ignore[attr-defined]
    return reply["content"], outputs


def _outputs_of(client: object, msg_id: str, everything: bool = False) -> list[dict]:
    """The iopub messages of one execution request, up to its idle status (``everything``: with
    those of the run's threads, whose parent header need not be the request's)."""
    outputs = []
    while True:
        msg = client.get_iopub_msg(timeout=GUARD)  # type: ignore[attr-defined]
        if msg["parent_header"].get("msg_id") != msg_id and not everything:
            continue
        outputs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return outputs


@pytest.mark.slow
def test_interrupt_cancels_the_run_and_kills_its_tasks(tmp_path: Path) -> None:
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        reply, _ = _execute(client, SETUP)
        assert reply["status"] == "ok"
        reply, _ = _execute(client, DECLARE)
        assert reply["status"] == "ok", reply
        msg_id = client.execute("%magnus_run --workers 2")
        deadline = time.monotonic() + GUARD
        pid_files = [tmp_path / "pid_a", tmp_path / "pid_b"]
        while not all(p.is_file() and p.read_text().strip() for p in pid_files):
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in pid_files]
        assert all(psutil.pid_exists(pid) for pid in pids)
        manager.interrupt_kernel()
        while True:
            reply = client.get_shell_msg(timeout=GUARD)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"  # cells queued behind it do not run
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        outputs = _outputs_of(client, msg_id, everything=True)
        # the cell ends with one line, not a traceback through magics.py and running.py
        errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
        assert [e["traceback"] for e in errors] == [[INTERRUPTED]]
        printed = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        assert "Traceback" not in printed and "running.py" not in printed, printed
        # the busy cell's kernel could not handle a click: no Stop button, the hint instead
        opened = [m["content"]["data"]["state"] for m in outputs if m["msg_type"] == "comm_open"]
        assert opened and not [st for st in opened if st.get("description") == "Stop run"]
        assert "interrupt the kernel" in str([m["content"] for m in outputs
                                              if m["msg_type"] in ("comm_open", "comm_msg")])
        # the widget gave way to the static final picture
        updates = [m["content"]["data"] for m in outputs if m["msg_type"] == "update_display_data"]
        assert updates and WIDGET not in updates[-1] and "<svg" in updates[-1]["text/html"]
        logs = list((tmp_path / ".run_log_store").glob("*.json"))
        assert len(logs) == 1
        log = json.loads(logs[0].read_text())
        assert log["status"] == "FAIL" and any("cancelled" in w for w in log["warnings"])
        while any(psutil.pid_exists(pid) for pid in pids):
            assert time.monotonic() < deadline, "a cancelled task is still running"
            time.sleep(0.1)
        # the kernel itself survived and runs code again; ipykernel may first abort requests
        # queued right behind the interrupted one ('aborted'), so ask until one is answered for real
        for _ in range(5):
            reply, _ = _execute(client, "print('the kernel lives on')")
            if reply["status"] != "aborted":
                break
            time.sleep(0.5)
        assert reply["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_background_run_returns_at_once_and_the_widget_keeps_updating(tmp_path: Path) -> None:
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        assert _execute(client, SETUP)[0]["status"] == "ok"
        gate = tmp_path / "go"
        step = f'%%magnus_step "Wait" --shell\nwhile [ ! -e {gate} ]; do sleep 0.1; done; echo done waiting'
        assert _execute(client, step)[0]["status"] == "ok"
        reply, outputs = _execute(client, "%magnus_run --background")
        assert reply["status"] == "ok"  # the cell is done while the task still waits for its gate
        early = list((tmp_path / ".run_log_store").glob("*.json"))
        assert all(json.loads(p.read_text())["status"] != "SUCCESS" for p in early)
        shown = [m for m in outputs if m["msg_type"] == "display_data"]
        assert shown and "application/vnd.jupyter.widget-view+json" in shown[0]["content"]["data"]
        display_id = shown[0]["content"]["transient"]["display_id"]
        gate.write_text("go")
        # after the cell ended: widget state messages reach the front end, then the final static SVG
        saw_success_in_widget = False
        deadline = time.monotonic() + GUARD
        while True:
            assert time.monotonic() < deadline, "no final update of the displayed DAG"
            msg = client.get_iopub_msg(timeout=GUARD)
            content = msg["content"]
            if msg["msg_type"] == "comm_msg":
                state = content.get("data", {}).get("state", {})
                saw_success_in_widget |= "SUCCESS" in str(state.get("value", ""))
            if msg["msg_type"] == "update_display_data" and content["transient"]["display_id"] == display_id:
                svg = content["data"]["image/svg+xml"]
                if 'data-state="success"' in svg:
                    break
        assert saw_success_in_widget
        # the widget gave way to the static final picture, which is what the notebook file keeps
        assert WIDGET not in content["data"] and svg in content["data"]["text/html"]
        log = json.loads(next((tmp_path / ".run_log_store").glob("*.json")).read_text())
        assert log["status"] == "SUCCESS"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_the_stop_button_of_a_background_run_stops_it(tmp_path: Path) -> None:
    """The click a front end sends reaches the kernel (idle: the run is in the background) and stops it."""
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        assert _execute(client, SETUP)[0]["status"] == "ok"
        assert _execute(client, DECLARE)[0]["status"] == "ok"
        reply, outputs = _execute(client, "%magnus_run --workers 2 --background")
        assert reply["status"] == "ok"
        buttons = [m["content"]["comm_id"] for m in outputs if m["msg_type"] == "comm_open"
                   and m["content"]["data"]["state"].get("description") == "Stop run"]
        assert len(buttons) == 1, "a background run offers one Stop button"
        deadline = time.monotonic() + GUARD
        pid_files = [tmp_path / "pid_a", tmp_path / "pid_b"]
        while not all(p.is_file() and p.read_text().strip() for p in pid_files):
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in pid_files]
        click = client.session.msg("comm_msg", {"comm_id": buttons[0],
                                                "data": {"method": "custom", "content": {"event": "click"}}})
        client.shell_channel.send(click)
        while any(psutil.pid_exists(pid) for pid in pids):
            assert time.monotonic() < deadline, "the Stop button did not stop the tasks"
            time.sleep(0.1)
        logs = list((tmp_path / ".run_log_store").glob("*.json"))
        while json.loads(logs[0].read_text())["status"] not in ("FAIL", "SUCCESS"):
            assert time.monotonic() < deadline, "the run log never ended"
            time.sleep(0.1)
        log = json.loads(logs[0].read_text())
        assert log["status"] == "FAIL" and any("cancelled" in w for w in log["warnings"])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_pipeline_execute_in_a_notebook_shows_the_dag_widget_and_returns_the_run_log(tmp_path: Path) -> None:
    """magnus' SDK call, `Pipeline.execute()`, run in a kernel: the live DAG widget, then the run log."""
    (tmp_path / "tasks.py").write_text("def square(x):\n    return {'y': x * x}\n")
    (tmp_path / "params.yaml").write_text("x: 3\n")
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        reply, outputs = _execute(client, textwrap.dedent("""
            from magnus_jupyter import Pipeline, Task
            task = Task(name="square", command="tasks.square", terminate_with_success=True)
            log = Pipeline(steps=[task], start_at=task).execute(parameters_file="params.yaml", run_id="nb")
            print(log.status, log.parameters["y"])
        """))
        assert reply["status"] == "ok", reply
        assert any(WIDGET in m["content"].get("data", {}) for m in outputs if m["msg_type"] == "display_data")
        printed = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
        assert "SUCCESS 9" in printed, printed
        run_log = json.loads((tmp_path / ".run_log_store" / "nb.json").read_text())
        assert run_log["parameters"] == {"x": 3, "y": 9}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
