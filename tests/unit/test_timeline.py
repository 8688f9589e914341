"""``magnus-jupyter timeline``: a real run's Gantt picture, its rows, retries, reuse, escaping and formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from magnus_jupyter.history import load_run, timeline, timeline_html, timeline_svg
from magnus_jupyter.history.summary import parse_time
from magnus_jupyter.history.timeline import output_suffix
from magnus_jupyter.render import NODE_FILL

HOSTILE = "<script>alert('x')</script> & \"co\""
SVG = "{http://www.w3.org/2000/svg}"

PIPELINE = f"""\
dag:
  start_at: fan
  steps:
    fan:
      type: parallel
      next: retried
      branches:
        left:
          start_at: sleep left
          steps:
            sleep left: {{type: task, command_type: shell, command: "sleep 0.4", next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
        right:
          start_at: sleep right
          steps:
            sleep right: {{type: task, command_type: shell, command: "sleep 0.4", next: note}}
            note: {{type: stub, next: success}}
            success: {{type: success}}
            fail: {{type: fail}}
    retried:
      type: task
      command_type: shell
      command: "n=$(cat tries 2>/dev/null || echo 0); echo $((n+1)) > tries; test $n -ge 2"
      max_attempts: 3
      next: each
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: {json.dumps(HOSTILE)}
      branch:
        start_at: show
        steps:
          show: {{type: task, command_type: shell, command: "echo $MAGNUS_PRM_item", next: success}}
          success: {{type: success}}
          fail: {{type: fail}}
    {json.dumps(HOSTILE)}:
      type: task
      command_type: shell
      command: "test -f fixed || {{ echo '<img src=x onerror=alert(1)>'; exit 2; }}"
      next: success
    success: {{type: success}}
    fail: {{type: fail}}
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``broken``: parallel sleeps, a task retried twice, a map, a hostile name that fails;
    ``fixed`` retries it."""
    folder = tmp_path_factory.mktemp("timeline")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    first = cli(folder, "run", "pipeline.yaml", "--run-id", "broken", "--param", "items=[1, 2]", "--quiet",
                "--workers", "3")
    assert first.returncode == 1, first.stdout + first.stderr
    (folder / "fixed").touch()
    second = cli(folder, "retry", "broken", "--run-id", "fixed", "--quiet")
    assert second.returncode == 0, second.stdout + second.stderr
    return folder


def _rows(data: Any) -> dict[str, Any]:
    return {r["internal_name"]: r for r in data["rows"]}


def test_one_row_per_task_grouped_under_its_branch(runs: Path) -> None:
    data = timeline(load_run("broken", runs))
    names = [r["internal_name"] for r in data["rows"]]
    assert names == ["fan.left", "fan.left.sleep left", "fan.right", "fan.right.sleep right",
                     "fan.right.note", "retried", "each.1", "each.1.show", "each.2", "each.2.show", HOSTILE]
    rows = _rows(data)
    assert rows["fan.left"]["kind"] == "branch" and rows["fan.left"]["label"] == "fan \u203a left"
    assert rows["fan.left"]["level"] == 0 and rows["fan.left.sleep left"]["level"] == 1
    assert rows["retried"]["level"] == 0 and rows[HOSTILE]["status"] == "FAIL"
    assert data["status"] == "FAIL" and data["span"] > 0.4


def test_branches_that_ran_at_once_overlap_on_the_shared_axis(runs: Path) -> None:
    rows = _rows(timeline(load_run("broken", runs)))
    left = rows["fan.left.sleep left"]["segments"][0]
    right = rows["fan.right.sleep right"]["segments"][0]
    assert left["start"] < right["end"] and right["start"] < left["end"]
    assert min(left["start"], right["start"]) >= 0


def test_each_attempt_is_its_own_segment(runs: Path) -> None:
    data = timeline(load_run("broken", runs))
    retried = _rows(data)["retried"]
    assert [s["status"] for s in retried["segments"]] == ["FAIL", "FAIL", "SUCCESS"]
    assert [s["attempt"] for s in retried["segments"]] == [1, 2, 3]
    ends = [(s["start"], s["end"]) for s in retried["segments"]]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False))
    svg = ET.fromstring(timeline_svg(data))
    row = next(g for g in svg.iter(f"{SVG}g") if g.get("data-step") == "retried")
    bars = [r for r in row.iter(f"{SVG}rect") if r.get("class") == "attempt"]
    assert [b.get("fill") for b in bars] == [NODE_FILL["FAIL"], NODE_FILL["FAIL"], NODE_FILL["SUCCESS"]]
    assert "\u00d73" in "".join(row.itertext())


def test_hover_titles_name_the_step_its_times_and_message(runs: Path) -> None:
    run_log = load_run("broken", runs)
    svg = ET.fromstring(timeline_svg(timeline(run_log)))
    row = next(g for g in svg.iter(f"{SVG}g") if g.get("data-step") == HOSTILE)
    bar = next(r for r in row.iter(f"{SVG}rect") if r.get("class") == "attempt")
    title = bar.find(f"{SVG}title")
    assert title is not None and title.text is not None
    attempt = run_log["steps"][HOSTILE]["attempts"][0]
    assert title.text.startswith(HOSTILE + "\nattempt 1 of 1: FAIL\n")
    assert attempt["start_time"] in title.text and attempt["end_time"] in title.text
    assert "<img src=x onerror=alert(1)>" in title.text  # shown as text
    assert bar.get("fill") == NODE_FILL["FAIL"]


def test_names_and_messages_stay_text(runs: Path) -> None:
    text = timeline_svg(timeline(load_run("broken", runs)))
    assert "<script" not in text and "<img" not in text
    tree = ET.fromstring(text)
    assert not [e for e in tree.iter() if e.tag.endswith(("script", "img", "foreignObject"))]
    assert any(HOSTILE in "".join(e.itertext()) for e in tree.iter(f"{SVG}text"))
    assert not [k for e in tree.iter() for k in e.attrib if k.lower().startswith("on")]


def test_control_characters_and_lone_surrogates_keep_the_svg_well_formed(runs: Path) -> None:
    run_log = load_run("broken", runs)
    step = run_log["steps"]["retried"]
    step["name"] = "bell\x07 esc\x1b[31m nul\x00 \ud800 end"
    step["attempts"][0]["message"] = "form\x0cfeed"
    svg = timeline_svg(timeline(run_log))
    tree = ET.fromstring(svg.encode("utf-8"))  # encodes (no lone surrogate) and parses
    labels = "".join("".join(e.itertext()) for e in tree.iter(f"{SVG}text"))
    assert "bell\u2407 esc\u241b[31m nul\u2400 \ufffd end" in labels


def test_reused_tasks_are_marked_not_placed_at_their_old_times(runs: Path) -> None:
    data = timeline(load_run("fixed", runs))
    rows = _rows(data)
    for name in ("fan.left.sleep left", "fan.right.sleep right", "retried", "each.1.show", "each.2.show"):
        assert rows[name]["reused_from"] == "broken" and rows[name]["segments"] == [], name
    assert rows[HOSTILE]["reused_from"] == "" and rows[HOSTILE]["segments"][0]["status"] == "SUCCESS"
    assert rows["fan.right.note"]["reused_from"] == ""  # a stub runs again
    assert data["span"] < 5  # the axis is this run's, not reaching back to the old run's times
    svg = timeline_svg(data)
    assert svg.count("reused from broken</text>") == 5 and "\u21ba" in svg


def test_html_is_self_contained(runs: Path) -> None:
    page = timeline_html(timeline(load_run("broken", runs)))
    assert page.startswith("<!DOCTYPE html>") and "<svg " in page and page.rstrip().endswith("</html>")
    for outside in ("<script", "<img", "<link", "<iframe", 'src="', 'href="', "url("):
        assert outside not in page, outside
    assert page.count("http") == page.count('xmlns="http://www.w3.org/2000/svg"')


@pytest.mark.parametrize("suffix", ["svg", "html", "png"])
def test_the_command_writes_each_format(runs: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"nested/broken.{suffix}"
    result = cli(runs, "timeline", "broken", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"run broken: timeline drawn to {out}"
    data = out.read_bytes()
    if suffix == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif suffix == "svg":
        ET.fromstring(data)
    else:
        assert data.startswith(b"<!DOCTYPE html>")


def test_a_wrong_suffix_is_refused_before_anything_is_read(runs: Path, tmp_path: Path) -> None:
    for output in ("x.pdf", "noext"):
        result = cli(runs, "timeline", "nosuch", "-o", str(tmp_path / output))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and output in result.stderr
        assert "cannot draw a timeline" in result.stderr and not (tmp_path / output).exists()
    with pytest.raises(Exception, match="use one of .svg, .html, .png"):
        output_suffix("a.jpeg")


def test_a_thousand_task_run_draws_every_task(tmp_path: Path) -> None:
    branches = "\n".join(
        f"        b{b}:\n          start_at: s0\n          steps:\n"
        + "".join(f"            s{i}: {{type: stub, next: {'s' + str(i + 1) if i < 99 else 'success'}}}\n"
                  for i in range(100))
        + "            success: {type: success}\n            fail: {type: fail}" for b in range(10))
    (tmp_path / "big.yaml").write_text(
        "dag:\n  start_at: fan\n  steps:\n    fan:\n      type: parallel\n      next: success\n"
        f"      branches:\n{branches}\n    success: {{type: success}}\n    fail: {{type: fail}}\n")
    result = cli(tmp_path, "run", "big.yaml", "--run-id", "big", "--quiet")
    assert result.returncode == 0, result.stderr
    data = timeline(load_run("big", tmp_path))
    assert sum(1 for r in data["rows"] if r["kind"] == "stub") == 1000
    svg = ET.fromstring(timeline_svg(data))
    assert sum(1 for r in svg.iter(f"{SVG}rect") if r.get("class") == "attempt") == 1000


def test_png_without_rsvg_convert_says_what_to_install(runs: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "magnus_jupyter", "timeline", "broken", "-o",
                             str(tmp_path / "t.png")], capture_output=True, text=True, timeout=120, cwd=runs,
                            env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "rsvg-convert" in result.stderr and "librsvg2-bin" in result.stderr
    assert not (tmp_path / "t.png").exists()


def test_a_task_still_running_runs_to_now_only_in_a_running_run(runs: Path) -> None:
    run_log = load_run("broken", runs)
    run_log["status"] = "PROCESSING"
    hostile = run_log["steps"][HOSTILE]
    hostile.update(status="PROCESSING", attempts=[])  # as the log is while its attempt runs
    done = timeline(run_log, "ABANDONED")
    row = _rows(done)[HOSTILE]
    assert row["running"] and row["segments"] == [] and done["status"] == "ABANDONED"
    assert 'stroke-dasharray="2,1"' in timeline_svg(done)  # the marker at the right edge
    start = parse_time(timeline(run_log)["start"])
    assert start is not None
    live = timeline(run_log, "RUNNING", now=start + 100)
    assert live["span"] == pytest.approx(100)
    segment = _rows(live)[HOSTILE]["segments"][-1]
    each = _rows(live)["each.2.show"]["segments"][-1]
    assert segment["status"] == "PROCESSING" and segment["end"] == pytest.approx(100)
    assert segment["start"] >= each["end"] - 1e-6  # after the step before it in its graph
    assert timeline(run_log)["span"] == done["span"]  # the log's own PROCESSING: not extended to now
