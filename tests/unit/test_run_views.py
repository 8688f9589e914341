"""A past run drawn as the live widget drew it, the widget's Timeline view, and the history as HTML.

Real runs (shell tasks in worker processes): a run with a parallel under
fail_fast (one branch fails, the other is cancelled), a task retried once and a
map, then its retry (succeeded tasks reused). The live widget's states are the
reference the replay from the run log must match, step for step.
"""

from __future__ import annotations

import base64
import html
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.executor import events as ev
from magnus_jupyter.executor.engine import run_pipeline
from magnus_jupyter.executor.retry import retry_run
from magnus_jupyter.history import RunFolder, diff_runs, list_runs, load_run
from magnus_jupyter.history.summary import recorded_pipeline
from magnus_jupyter.widget.pages import (
    NO_PIPELINE,
    RunPictures,
    detail_html,
    diff_html,
    run_detail,
    runs_table_html,
)
from magnus_jupyter.widget.replay import replay
from magnus_jupyter.widget.status import RunStatus
from magnus_jupyter.widget.view import DagWidget
from magnus_jupyter.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[2]
MAGNUS_RUNS = ROOT / "tests" / "data" / "compat" / "magnus-0.5-runs"
HOSTILE = "<img src=x onerror=alert(1)>"
SVG = "{http://www.w3.org/2000/svg}"

PIPELINE = f"""
dag:
  start_at: prepare
  steps:
    prepare:
      type: task
      command_type: shell
      command: "echo prepared; export MAGNUS_PRM_items='[1, 2]'"
      next: Fan
    Fan:
      type: parallel
      failure_policy: fail_fast
      next: each
      branches:
        bad:
          start_at: broken
          steps:
            broken:
              type: task
              command_type: shell
              command: "test -e fixed && exit 0; while [ ! -e started ]; do sleep 0.05; done; exit 3"
              next: success
            success: {{type: success}}
            fail: {{type: fail}}
        slow:
          start_at: nap
          steps:
            nap:
              type: task
              command_type: shell
              command: "test -e fixed || {{ touch started; sleep 60; }}"
              next: wobble
            wobble:
              type: task
              command_type: shell
              command: "test -f wobbled || {{ touch wobbled; exit 1; }}"
              max_attempts: 2
              next: success
            success: {{type: success}}
            fail: {{type: fail}}
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: "{HOSTILE}"
      branch:
        start_at: show
        steps:
          show: {{type: task, command_type: shell, command: "echo item $MAGNUS_PRM_item", next: success}}
          success: {{type: success}}
          fail: {{type: fail}}
    "{HOSTILE}": {{type: stub, next: success}}
    success: {{type: success}}
    fail: {{type: fail}}
"""


def _states(widget: DagWidget) -> dict[str, str]:
    snap = widget.status.snapshot()
    return {name: snap.state(name) for name in snap.states}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``broken`` (broken fails, nap is cancelled) and ``fixed`` (its retry), each watched by a widget."""
    folder = tmp_path_factory.mktemp("views")
    pipeline = load_yaml(PIPELINE)
    first = DagWidget(pipeline, link_base=folder)
    result = run_pipeline(pipeline, cwd=folder, workers=2, run_id="broken", subscribers=[first.status])
    assert result.status == "FAIL"
    (folder / "fixed").touch()
    second = DagWidget(pipeline, RunStatus(pipeline, retry_of=load_run("broken", folder)), link_base=folder)
    result = retry_run("broken", pipeline, cwd=folder, workers=2, new_run_id="fixed",
                       subscribers=[second.status])
    assert result.status == "SUCCESS"
    return {"folder": folder, "broken": first, "fixed": second}


@pytest.mark.parametrize("run_id", ["broken", "fixed"])
def test_a_run_replayed_from_its_log_has_the_states_the_live_widget_had(runs: dict[str, Any],
                                                                         run_id: str) -> None:
    folder, live = runs["folder"], runs[run_id]
    run_log = load_run(run_id, folder)
    pipeline = recorded_pipeline(run_log)
    assert pipeline is not None
    original = load_run("broken", folder) if run_id == "fixed" else None
    replayed = replay(pipeline, run_log, folder / ".run_log_store" / f"{run_id}.json",
                      folder / ".catalog" / run_id, original).snapshot()
    expected = _states(live)
    assert {name: replayed.state(name) for name in expected} == expected
    if run_id == "broken":  # the reason this test exists: failed and cancelled told apart from the log alone
        assert expected["Fan.bad.broken"] == "failed" and expected["Fan.slow.nap"] == "cancelled"
    else:
        assert {n for n, s in expected.items() if s == "reused"} == {"prepare"}  # the rest had not run
    snap = live.status.snapshot()
    assert replayed.outputs == snap.outputs  # the same files linked: executed notebooks and logs
    assert [(lane.prefix, lane.state, lane.succeeded, lane.total) for lane in replayed.lanes] == [
        (lane.prefix, lane.state, lane.succeeded, lane.total) for lane in snap.lanes]
    assert replayed.run_status == snap.run_status and replayed.finished is not None


def test_the_widget_offers_the_timeline_once_the_run_ends_and_the_saved_picture_keeps_it(
        runs: dict[str, Any]) -> None:
    widget: DagWidget = runs["broken"]
    assert widget.views.layout.display is None, "no Timeline switch after the run"
    assert widget.views.options == (("DAG", "dag"), ("Timeline", "timeline"))
    box = ET.fromstring(widget.timeline.value)
    assert box.tag == "div" and "overflow-x:auto" in box.get("style", "")  # a narrow output scrolls it
    (timeline,) = list(box)
    rows = {g.get("data-step") for g in timeline.iter(f"{SVG}g") if g.get("data-step")}
    assert {"prepare", "Fan.bad.broken", "Fan.slow.nap"} <= rows
    assert timeline.get("aria-label") == "timeline of run broken"
    broken = next(g for g in timeline.iter(f"{SVG}g") if g.get("data-step") == "Fan.bad.broken")
    assert len([r for r in broken.iter(f"{SVG}rect") if r.get("class") == "attempt"]) == 1
    # the switch shows one picture at a time
    assert widget.timeline.layout.display == "none" and widget.html.layout.display is None
    widget.views.value = "timeline"
    assert widget.timeline.layout.display is None and widget.html.layout.display == "none"
    widget.views.value = "dag"
    assert widget.timeline.layout.display == "none" and widget.html.layout.display is None

    page = widget.static_bundle()["text/html"]
    section = re.search(r'<details open class="magnus-timeline-view"><summary[^>]*>Timeline</summary>(.*)'
                        r"</details>", page, re.S)
    assert section is not None, "the saved picture has no timeline"
    uid = widget.picture.uid
    assert f'id="{uid}-box"' in page and f'id="{uid}-timeline-box"' in page  # two pictures, ids apart
    copy = re.search(rf'<img id="{uid}-timeline-copy" alt="timeline of run broken" [^>]*'
                     r'src="data:image/svg\+xml;base64,([^"]+)">', section.group(1))
    assert copy is not None
    image = ET.fromstring(base64.b64decode(copy.group(1)))  # a whole SVG document: an <img> shows it
    assert image.tag == f"{SVG}svg" and 'data-step="Fan.slow.nap"' in ET.tostring(image, encoding="unicode")


def test_a_run_whose_log_cannot_be_read_at_its_end_offers_no_timeline(tmp_path: Path) -> None:
    pipeline = load_yaml("dag:\n  start_at: a\n  steps:\n    a: {type: stub, next: success}\n"
                         "    success: {type: success}\n    fail: {type: fail}\n")
    status = RunStatus(pipeline)

    def remove_the_log(_status: RunStatus, event: ev.Event | None) -> None:
        if isinstance(event, ev.RunFinished):  # before the widget hears of the end
            Path(event.run_log_path).unlink()

    status.subscribe(remove_the_log)
    widget = DagWidget(pipeline, status, link_base=tmp_path)
    assert run_pipeline(pipeline, cwd=tmp_path, workers=1, subscribers=[status]).status == "SUCCESS"
    assert widget.timeline_svg == "" and widget.views.layout.display == "none"
    page = widget.static_bundle()["text/html"]
    assert "magnus-timeline-view" not in page and "SUCCESS" in page


def test_one_run_as_html_has_its_summary_dag_and_timeline_with_names_as_text(runs: dict[str, Any]) -> None:
    folder = runs["folder"]
    detail = run_detail("broken", RunFolder.of(folder), link_base=folder)
    assert detail["run"]["status"] == "FAIL" and detail["dag_note"] == ""
    page = detail_html(detail)
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert 'data-state="failed"' in detail["dag"] and 'data-state="cancelled"' in detail["dag"]
    links = re.findall(r'data-magnus-path="([^"]+)"', detail["dag"])
    assert links and all((folder / html.unescape(link)).is_file() for link in links)
    assert 'class="magnus-run-timeline"' in page and 'aria-label="timeline of run broken"' in page
    assert '<tr data-step="Fan.slow.nap">' in page


def test_pictures_are_laid_out_once_per_run_and_redrawn_from_the_cache(runs: dict[str, Any]) -> None:
    folder = RunFolder.of(runs["folder"])
    pictures = RunPictures(size=1)
    first = run_detail("fixed", folder, link_base=runs["folder"], pictures=pictures)
    again = run_detail("fixed", folder, link_base=runs["folder"], pictures=pictures)
    (picture,) = pictures._pictures.values()
    assert picture.layouts == 1 and first["dag"] == again["dag"]
    # the same folder by another path (the server's /proc/self/fd/N): the same picture, not laid out again
    fd = os.open(folder.run_logs.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        run_detail("fixed", RunFolder.of(f"/proc/self/fd/{fd}"), link_base=f"/proc/self/fd/{fd}",
                   pictures=pictures)
    finally:
        os.close(fd)
    assert picture.layouts == 1 and len(pictures._pictures) == 1
    run_detail("broken", folder, link_base=runs["folder"], pictures=pictures)
    ((_, _, kept),) = list(pictures._pictures)
    assert kept == "broken"  # the oldest went


def test_magnus_own_logs_have_no_dag_but_a_timeline_and_say_why(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(MAGNUS_RUNS / "run_log_store", tmp_path / ".run_log_store")
    detail = run_detail("magnus-failed", RunFolder.of(tmp_path), link_base=tmp_path)
    assert detail["dag"] == "" and detail["dag_note"] == NO_PIPELINE
    assert NO_PIPELINE.replace("'", "&#x27;") in detail_html(detail)
    assert "<svg" in detail["timeline"]


def test_the_runs_table_and_a_diff_as_html(runs: dict[str, Any]) -> None:
    folder = runs["folder"]
    rows = list_runs(folder, save_index=False)
    table = runs_table_html(rows, ["fixed"], folder="views")
    assert re.findall(r'<tr data-run="([^"]+)"', table) == ["fixed", "broken"]
    assert '<tr data-run="fixed" aria-selected="true"' in table
    assert re.findall(r'data-status="(\w+)"', table) == ["SUCCESS", "FAIL"]
    assert "2 runs in <code>views</code>, newest first" in table
    diff = diff_html(diff_runs(load_run("broken", folder), load_run("fixed", folder)))
    differing = re.findall(r'<tr class="differs" data-same="false" [^>]*><th scope="row"[^>]*>≠ '
                           r"<code>([^<]+)</code>", diff)
    assert {"Fan.bad.broken", "Fan.slow.nap", "Fan", "success", "fail"} <= set(differing)
    assert HOSTILE not in diff
    assert "initial parameters" in diff and "catalog files (sha256)" in diff


def test_no_runs_and_skipped_logs_are_said(tmp_path: Path) -> None:
    assert "no runs in <code>x</code> yet" in runs_table_html([], folder="x")
    table = runs_table_html([], folder="x", warnings=[f"{HOSTILE}: not a magnus run log"])
    assert "⚠ skipped:" in table and HOSTILE not in table


def test_the_timeline_function_stays_the_history_packages_export_whatever_was_imported_first() -> None:
    """A submodule named like the function would replace it on the package once imported (by the views):
    ``from magnus_jupyter.history import timeline`` gave a module, and calling it a TypeError."""
    import subprocess
    import sys

    code = ("import magnus_jupyter.widget.pages, magnus_jupyter.history.cli\n"
            "from magnus_jupyter.history import timeline, timeline_svg\n"
            "import inspect\n"
            "assert inspect.isfunction(timeline) and inspect.isfunction(timeline_svg), timeline\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
