"""The DAG picture: structure, colours by state, escaping, depth, files and the CLI.

The SVG checks run the real Graphviz ``dot`` and read its output as XML, so a
label that broke out of its quotes, or a cluster that lost its branch, fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from magnus_jupyter import render
from magnus_jupyter.errors import PipelineError
from magnus_jupyter.model import Dag, Fail, Map, Parallel, Pipeline, Step, Stub, Success, Task, join_name
from magnus_jupyter.yaml_io import load_yaml

COMPAT = Path(__file__).resolve().parents[1] / "data" / "compat" / "magnus-0.5"
COMPAT_FILES = sorted(COMPAT.glob("*.yaml"))
PIPELINES = [p for p in COMPAT_FILES if not p.name.endswith(".params.yaml")]
SVG = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"
TIMEOUT = 120  # seconds per CLI subprocess: a hang fails the test instead of stalling the suite

NASTY = [
    "<script>alert(1)</script>",
    'say "hi" \\"there\\"',
    "back\\slash \\n \\l \\N not escapes",
    "a &lt; b &amp; c & d",
    "ünïcødé → ✓",
    "{braces} [brackets]; semi = colon: -> --",
]


# ---- helpers -------------------------------------------------------------------------------------


def chain(*steps: Step, start_at: str | None = None) -> Pipeline:
    """``steps`` linked by ``next`` in order, ending in success; plus a fail step."""
    pipeline = Pipeline(start_at=start_at or steps[0].name)
    for step, after in zip(steps, [*steps[1:], None], strict=True):
        if step.next is None:
            step.next = after.name if after else "success"
        pipeline.add(step)
    pipeline.add(Success(name="success"))
    pipeline.add(Fail(name="fail"))
    return pipeline


def nested(depth: int) -> tuple[Pipeline, str]:
    """Parallel steps nested ``depth`` levels, each with two branches; returns the innermost task's name."""
    inner = chain(Task(name="leaf", command="leaf.ipynb", command_type="notebook"))
    path = ["leaf"]
    for level in range(depth):
        side = chain(Stub(name=f"side {level}"))
        inner = chain(Parallel(name=f"p{level}", parallel_branches={f"b{level}": inner, "side": side}))
        path = [f"p{level}", f"b{level}", *path]
    return inner, ".".join(path)


def expected_states(pipeline_file: Path) -> dict[str, str]:
    return json.loads(pipeline_file.with_suffix("").with_suffix(".expected.json").read_text())["steps"]


def svg_groups(svg: str) -> dict[str, ET.Element]:
    """Every SVG group by id; parsing also proves the SVG is well-formed XML."""
    root = ET.fromstring(svg)
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def fills(element: ET.Element) -> set[str]:
    return {e.get("fill") for e in element.iter() if e.get("fill") not in (None, "none")}


def node_line(dot: str, node_id: str) -> str:
    [line] = [ln for ln in dot.splitlines() if ln.strip().startswith(f"{node_id} [")]
    return line


def edge_lines(dot: str, tail: str, head: str) -> list[str]:
    return [ln.strip() for ln in dot.splitlines() if re.match(rf"\s*{tail} -> {head}\b", ln)]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)


@pytest.fixture(scope="module")
def parallel() -> Pipeline:
    return load_yaml(COMPAT / "concepts_parallel.yaml")


# ---- the compat corpus ---------------------------------------------------------------------------


def test_the_compat_corpus_is_there() -> None:
    assert len(PIPELINES) >= 8, f"expected magnus' example pipelines in {COMPAT}"


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_every_compat_pipeline_draws_every_step(path: Path) -> None:
    """Every step but a fail step nothing leads to (no next or on_failure names it)."""
    pipeline = load_yaml(path)
    drawing = render.draw(pipeline)
    unconnected = {name for name, step, holder in pipeline.walk() if isinstance(step, Fail) and not any(
        s.TRAVERSAL and step.name in (s.next, s.on_failure) for s in holder.steps.values())}
    internal_names = {name for name, _, _ in pipeline.walk()}
    assert internal_names - unconnected <= set(drawing.ids)
    assert not unconnected & set(drawing.ids)
    groups = svg_groups(render.to_svg(pipeline))
    for name, step, _ in pipeline.walk():
        if name in unconnected:
            continue
        group = groups[drawing.ids[name]]
        if step.is_composite:
            assert step.name in " ".join(texts(group))  # the cluster's own title
        else:
            assert texts(group) == [step.name]


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_states_from_magnus_run_logs_colour_the_steps_they_name(path: Path) -> None:
    pipeline = load_yaml(path)
    states = expected_states(path)
    drawing = render.draw(pipeline, states)
    groups = svg_groups(render.to_svg(pipeline, states))
    for name, status in states.items():
        assert name in drawing.ids, f"{name} from the run log is not drawn"
        drawn = drawing.ids[name]
        if drawn.startswith("cluster_"):  # a composite step or a branch: its box is tinted
            want = render.CLUSTER_FILL[status]
        elif 'shape="octagon"' in node_line(drawing.source, drawn):  # a reached fail step reads as failure
            want = render.NODE_FILL["FAIL"]
        else:
            want = render.NODE_FILL[status]
        assert want in fills(groups[drawn]), name
    for name, drawn in drawing.ids.items():
        if name not in states and drawn.startswith("n"):
            assert fills(groups[drawn]) == {"white"}, f"{name} has no state but is coloured"


def test_parallel_svg_has_the_clusters_of_train_models_and_its_branches(parallel: Pipeline) -> None:
    svg = render.to_svg(parallel)
    clusters = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("class") == "cluster"]
    titles = [" ".join(texts_of_own_label(g)) for g in clusters]
    assert any("Train Models" in t for t in titles)
    assert "XGBoost" in titles and "RF model" in titles
    drawing = render.draw(parallel)
    groups = svg_groups(svg)
    # each branch's steps sit in that branch's cluster: the DOT nests them, so the SVG box holds them
    xgb, rf, outer = (drawing.ids[f"Train Models{n}"] for n in (".XGBoost", ".RF model", ""))
    assert _inside(groups, drawing.ids["Train Models.XGBoost.Train XGBoost"], xgb)
    assert not _inside(groups, drawing.ids["Train Models.XGBoost.Train XGBoost"], rf)
    assert _inside(groups, drawing.ids["Train Models.RF model.Train RF Model"], rf)
    assert _inside(groups, xgb, outer) and _inside(groups, rf, outer)
    assert not _inside(groups, drawing.ids["Get Features"], outer)


def texts_of_own_label(cluster: ET.Element) -> list[str]:
    return [t.text or "" for t in cluster.findall(f"{SVG}text")]


def _box(group: ET.Element) -> tuple[float, float, float, float]:
    """The bounding box of a group's first outline (polygon points or an ellipse)."""
    for shape in group.iter():
        if shape.tag == f"{SVG}polygon" or shape.tag == f"{SVG}path":
            nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", shape.get("points") or shape.get("d"))]
            xs, ys = nums[0::2], nums[1::2]
            return min(xs), min(ys), max(xs), max(ys)
        if shape.tag == f"{SVG}ellipse":
            cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
            return cx - rx, cy - ry, cx + rx, cy + ry
    raise AssertionError("no outline")


def _inside(groups: dict[str, ET.Element], inner: str, outer: str) -> bool:
    a, b = _box(groups[inner]), _box(groups[outer])
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]


# ---- structure -----------------------------------------------------------------------------------


def test_next_is_solid_and_on_failure_dashed_and_labelled() -> None:
    pipeline = load_yaml(COMPAT / "on-failure.yaml")
    drawing = render.draw(pipeline)
    ids = drawing.ids
    [to_step2] = edge_lines(drawing.source, ids["step 1"], ids["step 2"])
    [to_step3] = edge_lines(drawing.source, ids["step 1"], ids["step 3"])
    assert "dashed" not in to_step2 and "label" not in to_step2
    assert 'style="dashed"' in to_step3 and 'label="on failure"' in to_step3
    edges = [g for g in ET.fromstring(render.to_svg(pipeline)).iter(f"{SVG}g") if g.get("class") == "edge"]
    dashed = [g for g in edges if any(e.get("stroke-dasharray") for e in g.iter())]
    assert len(edges) == 4 and len(dashed) == 1 and texts(dashed[0]) == ["on failure"]


def test_success_and_fail_steps_have_their_own_shapes(parallel: Pipeline) -> None:
    reached = {"fail": "SUCCESS"}  # magnus logs a reached fail step SUCCESS: it is drawn, in red
    ids = render.draw(parallel, reached).ids
    dot = render.to_dot(parallel, reached)
    success, fail, stub = (node_line(dot, ids[n]) for n in ("success", "fail", "Get Features"))
    assert 'shape="ellipse"' in success and "peripheries=2" in success
    assert 'shape="octagon"' in fail
    assert 'shape="box"' in stub
    groups = svg_groups(render.to_svg(parallel))
    assert len(list(groups[ids["success"]].iter(f"{SVG}ellipse"))) == 2


def test_a_fail_step_is_drawn_only_where_an_edge_leads_to_it() -> None:
    """Unconnected fail octagons in every branch read as failed steps: only a named one is drawn."""
    pipeline = load_yaml("""
dag:
  start_at: fan
  steps:
    fan:
      type: parallel
      next: success
      branches:
        plain:
          start_at: a
          steps:
            a: {type: stub, next: success}
            success: {type: success}
            fail: {type: fail}
        guarded:
          start_at: b
          steps:
            b: {type: task, command_type: shell, command: "false", next: success, on_failure: fail}
            success: {type: success}
            fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
""")
    drawing = render.draw(pipeline)
    assert "fail" not in drawing.ids and "fan.plain.fail" not in drawing.ids
    assert "fan.guarded.fail" in drawing.ids
    [edge] = edge_lines(drawing.source, drawing.ids["fan.guarded.b"], drawing.ids["fan.guarded.fail"])
    assert "on failure" in edge
    octagons = [ln for ln in drawing.source.splitlines() if 'shape="octagon"' in ln]
    assert len(octagons) == 1
    assert "fail" in render.draw(pipeline, {"fail": "SUCCESS"}).ids  # a reached one is drawn


def test_branches_hang_between_the_fork_and_join_bars(parallel: Pipeline) -> None:
    drawing = render.draw(parallel)
    ids, dot = drawing.ids, drawing.source
    index = ids["Train Models"].removeprefix("cluster_")
    fork, join = f"f{index}", f"j{index}"
    assert edge_lines(dot, ids["Get Features"], fork)
    assert edge_lines(dot, fork, ids["Train Models.XGBoost.Prepare for XGBoost"])
    assert edge_lines(dot, fork, ids["Train Models.RF model.Train RF Model"])
    assert edge_lines(dot, ids["Train Models.XGBoost.XGBoost success"], join)
    assert edge_lines(dot, ids["Train Models.RF model.RF Model Success"], join)
    assert edge_lines(dot, join, ids["Ensemble Modelling"])


def test_node_ids_are_generated_never_the_step_names() -> None:
    pipeline = chain(*(Stub(name=n) for n in NASTY))
    drawing = render.draw(pipeline)
    assert all(re.fullmatch(r"n\d+|cluster_\d+", v) for v in drawing.ids.values())
    statements = [ln.strip() for ln in drawing.source.splitlines()[4:-1]]
    for line in statements:
        assert re.match(r"(n\d+|[fj]\d+|subgraph cluster_\d+|graph \[|\})", line), line


def test_map_without_states_draws_its_branch_once_under_the_placeholder() -> None:
    pipeline = load_yaml(COMPAT / "concepts_map_shell.yaml")
    drawing = render.draw(pipeline)
    assert drawing.source.count("subgraph cluster_") == 2
    branch = drawing.ids["iterate and execute.{start_index}"]
    assert "{start_index}" in texts_of_own_label(svg_groups(render.to_svg(pipeline))[branch])
    assert "iterate and execute.{start_index}.execute" in drawing.ids


def test_map_with_states_draws_one_branch_per_value_in_the_order_seen() -> None:
    pipeline = load_yaml(COMPAT / "concepts_map_shell.yaml")
    states = {"chunk files": "SUCCESS", "iterate and execute": "PROCESSING",
              "iterate and execute.10.execute": "SUCCESS", "iterate and execute.0": "PROCESSING",
              "iterate and execute.1.5.execute": "FAIL", "iterate and execute.1.5": "FAIL"}
    drawing = render.draw(pipeline, states)
    branches = [n for n in drawing.ids if n.count(".") == 1 or n == "iterate and execute.1.5"]
    assert branches == ["iterate and execute.10", "iterate and execute.0", "iterate and execute.1.5"]
    assert "iterate and execute.{start_index}" not in drawing.ids
    groups = svg_groups(render.to_svg(pipeline, states))
    assert render.NODE_FILL["SUCCESS"] in fills(groups[drawing.ids["iterate and execute.10.execute"]])
    assert render.NODE_FILL["FAIL"] in fills(groups[drawing.ids["iterate and execute.1.5.execute"]])
    assert fills(groups[drawing.ids["iterate and execute.0.execute"]]) == {"white"}
    assert render.CLUSTER_FILL["PROCESSING"] in fills(groups[drawing.ids["iterate and execute"]])


def test_processing_and_unknown_statuses() -> None:
    pipeline = chain(Stub(name="a"), Stub(name="b"))
    dot = render.to_dot(pipeline, {"a": "processing", "b": "CREATED"})
    ids = render.draw(pipeline).ids
    line = node_line(dot, ids["a"])
    assert render.NODE_FILL["PROCESSING"] in line and "penwidth=2" in line
    assert 'fillcolor="white"' in node_line(dot, ids["b"])


def test_drawing_is_a_pure_function_of_model_and_states(parallel: Pipeline) -> None:
    states = {"Get Features": "SUCCESS", "Train Models.XGBoost.Train XGBoost": "PROCESSING"}
    before = dict(states)
    first = render.to_dot(parallel, states)
    assert render.to_dot(parallel, dict(states)) == first and states == before
    assert render.to_dot(load_yaml(COMPAT / "concepts_parallel.yaml"), states) == first
    plain = render.to_dot(parallel)
    assert plain != first
    # states change colours (and a tooltip's status line) only, never the graph
    assert _uncoloured(first) == _uncoloured(plain)


def _uncoloured(dot: str) -> str:
    dot = re.sub(r'fillcolor="[^"]*"|, penwidth=2|style="rounded,filled"|style="rounded"', "", dot)
    return re.sub(r"\\n(SUCCESS|PROCESSING|FAIL)\"", '"', dot)


def test_dag_step_from_a_dag_definition_file_is_a_cluster(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text(
        "dag:\n  start_at: x\n  steps:\n    x:\n      type: stub\n      next: ok\n"
        "    ok:\n      type: success\n    ko:\n      type: fail\n")
    (tmp_path / "outer.yaml").write_text(
        "dag:\n  start_at: d\n  steps:\n    d:\n      type: dag\n      dag_definition: inner.yaml\n"
        "      next: success\n    success:\n      type: success\n    fail:\n      type: fail\n")
    pipeline = load_yaml(tmp_path / "outer.yaml")
    drawing = render.draw(pipeline)
    groups = svg_groups(render.to_svg(pipeline))
    assert "d (dag: inner.yaml)" in texts_of_own_label(groups[drawing.ids["d"]])
    assert texts(groups[drawing.ids["d.dag.x"]]) == ["x"]


def test_a_map_whose_branch_is_missing_is_still_a_node() -> None:
    pipeline = chain(Map(name="m", iterate_on="xs", iterate_as="x"))
    drawing = render.draw(pipeline)
    assert drawing.ids["m"].startswith("n") and 'shape="box3d"' in node_line(drawing.source, drawing.ids["m"])


# ---- escaping ------------------------------------------------------------------------------------


def test_nasty_names_stay_literal_text_in_the_svg() -> None:
    pipeline = chain(*(Stub(name=n) for n in NASTY))
    drawing = render.draw(pipeline, title="<b>title</b> & \"q\"")
    svg = render.to_svg(pipeline, title="<b>title</b> & \"q\"")
    groups = svg_groups(svg)  # well-formed XML, or this raises
    for name in NASTY:
        assert texts(groups[drawing.ids[name]]) == [name]
        tooltip = [a.get(XLINK_TITLE) for a in groups[drawing.ids[name]].iter(f"{SVG}a")]
        assert tooltip and tooltip[0].startswith(name.replace("\\", "\u29f5") + "\n")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "<script" not in svg.lower()
    assert "<b>" not in svg and "&lt;b&gt;title&lt;/b&gt; &amp; &quot;q&quot;" in svg
    assert "a &amp;lt; b &amp;amp; c &amp; d" in svg  # entities stay text, not decoded


def test_newlines_and_control_characters_in_names() -> None:
    names = ["two\nlines", "crlf\r\nhere", "bell\x07tab\tnul\x00"]
    pipeline = chain(*(Stub(name=n) for n in names))
    drawing = render.draw(pipeline)
    assert all("\n" not in line.replace("\\n", "") or not line for line in drawing.source.splitlines())
    groups = svg_groups(render.to_svg(pipeline))
    assert texts(groups[drawing.ids["two\nlines"]]) == ["two", "lines"]
    assert texts(groups[drawing.ids["crlf\r\nhere"]]) == ["crlf", "here"]
    assert texts(groups[drawing.ids["bell\x07tab\tnul\x00"]]) == ["bell\u2407tab\u2409nul\u2400"]


def test_quote_escapes_what_graphviz_would_interpret() -> None:
    assert render.quote('a"b') == '"a\\"b"'
    assert render.quote("a\\nb") == '"a\\\\nb"'
    assert render.quote("x\ny") == '"x\\ny"'
    assert render.quote("&lt;") == '"&amp;lt;"'


# ---- depth ---------------------------------------------------------------------------------------


def test_fifty_levels_of_parallel_branches_draw_to_svg() -> None:
    pipeline, leaf = nested(50)
    drawing = render.draw(pipeline, {leaf: "PROCESSING"})
    assert drawing.source.count("subgraph cluster_") == 50 + 2 * 50
    assert leaf in drawing.ids
    groups = svg_groups(render.to_svg(pipeline, {leaf: "PROCESSING"}))
    assert texts(groups[drawing.ids[leaf]]) == ["leaf"]
    assert render.NODE_FILL["PROCESSING"] in fills(groups[drawing.ids[leaf]])
    assert _inside(groups, drawing.ids[leaf], drawing.ids["p49"])


def test_depth_costs_no_python_recursion() -> None:
    pipeline, leaf = nested(1000)  # thousands of frames deep if drawing recursed
    drawing = render.draw(pipeline)
    assert leaf in drawing.ids and drawing.source.count("subgraph cluster_") == 3 * 1000


def test_mixed_nesting_map_in_dag_in_parallel() -> None:
    inner_map = Map(name="m", iterate_on="xs", iterate_as="x", branch=chain(Task(name="t", command="echo",
                                                                              command_type="shell")))
    dag = Dag(name="d", branch=chain(inner_map))
    pipeline = chain(Parallel(name="p", parallel_branches={"b": chain(dag)}))
    states = {"p.b.d.dag.m.7.t": "SUCCESS"}
    drawing = render.draw(pipeline, states)
    assert join_name("p.b.d.dag.m.7", "t") in drawing.ids
    assert "p.b.d.dag.m.{x}" not in drawing.ids
    groups = svg_groups(render.to_svg(pipeline, states))
    assert _inside(groups, drawing.ids["p.b.d.dag.m.7.t"], drawing.ids["p.b.d.dag.m"])
    assert _inside(groups, drawing.ids["p.b.d.dag.m"], drawing.ids["p.b.d"])


# ---- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".dot", ".svg", ".png", ".SVG"])
def test_write_makes_parents_and_only_the_output(tmp_path: Path, parallel: Pipeline, suffix: str) -> None:
    out = tmp_path / "a" / "b" / f"dag{suffix}"
    written = render.write(parallel, out)
    assert written == str(out)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [out.name]
    data = out.read_bytes()
    if suffix == ".dot":
        assert data.decode() == render.to_dot(parallel)
    elif suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert "Train Models" in data.decode() and data.decode() == render.to_svg(parallel)


@pytest.mark.parametrize("name", ["dag.pdf", "dag", "dag.svg.txt"])
def test_write_refuses_an_unknown_suffix(tmp_path: Path, parallel: Pipeline, name: str) -> None:
    out = tmp_path / "sub" / name
    with pytest.raises(PipelineError) as info:
        render.write(parallel, out)
    message = str(info.value)
    assert str(out) in message and ".svg" in message and ".png" in message and ".dot" in message
    assert not (tmp_path / "sub").exists()


def test_write_names_an_output_it_cannot_create(tmp_path: Path, parallel: Pipeline) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PipelineError, match="cannot write"):
        render.write(parallel, tmp_path / "file" / "dag.dot")


def test_dot_rejecting_its_input_is_a_pipeline_error() -> None:
    with pytest.raises(PipelineError, match="Graphviz 'dot' failed"):
        render._run_dot("digraph { a -> }", "svg")


# ---- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["svg", "png", "dot"])
def test_cli_render(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "deep" / f"parallel.{suffix}"
    result = cli("render", str(COMPAT / "concepts_parallel.yaml"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and str(out) in result.stdout
    data = out.read_bytes()
    assert data.startswith({"svg": b"<?xml", "png": b"\x89PNG", "dot": b"digraph pipeline {"}[suffix])
    if suffix == "svg":
        assert b"<svg" in data and b">Train Models (parallel)</text>" in data
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_cli_render_bad_suffix_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "dag.jpeg"
    result = cli("render", str(COMPAT / "concepts_parallel.yaml"), "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(out) in result.stderr and ".svg" in result.stderr
    assert not out.exists()


def test_cli_render_without_graphviz_says_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}  # no `dot` anywhere on PATH
    out = tmp_path / "dag.svg"
    result = cli("render", str(COMPAT / "concepts_parallel.yaml"), "-o", str(out), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "install Graphviz" in result.stderr and ".dot" in result.stderr
    assert not out.exists()
    dot_out = tmp_path / "dag.dot"
    result = cli("render", str(COMPAT / "concepts_parallel.yaml"), "-o", str(dot_out), env=env)
    assert result.returncode == 0, result.stderr  # DOT needs no Graphviz
    assert dot_out.read_text() == render.to_dot(load_yaml(COMPAT / "concepts_parallel.yaml"))


def test_render_keeps_graphviz_out_of_the_package_import() -> None:
    code = "import sys, magnus_jupyter.render\nprint('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                         check=True)
    assert out.stdout.strip() == "False"
