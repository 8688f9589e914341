"""The kernel's verdicts recorded in labextension/test/branch-cases.json, checked against declare.

The JupyterLab tokenizer is tested against the same file (labextension/test/agreement.test.ts),
so the highlighting marks as an error what the kernel rejects, and takes a body as YAML when the
kernel does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magnus_jupyter.declare import Declarations, _yaml_branches
from magnus_jupyter.errors import PipelineError

CASES_FILE = Path(__file__).resolve().parents[2] / "labextension" / "test" / "branch-cases.json"
CASES = json.loads(CASES_FILE.read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['magic']}:{c['body']!r}" for c in CASES])
def test_the_kernel_gives_the_recorded_verdict(case: dict, tmp_path: Path) -> None:
    assert (_yaml_branches(case["body"]) is not None) is case["yaml"]
    if case["rejected"] is None:  # a YAML body: only its detection is compared
        return
    kind = case["magic"].removeprefix("magnus_")
    options = {"iterate_on": "xs", "iterate_as": "x"} if kind == "map" else {}
    try:
        getattr(Declarations(root=tmp_path), kind)("P", case["body"], **options)
    except PipelineError:
        rejected = True
    else:
        rejected = False
    assert rejected is case["rejected"]


def test_the_cases_cover_both_verdicts_and_both_body_kinds() -> None:
    assert {c["rejected"] for c in CASES} == {True, False, None}
    assert {c["magic"] for c in CASES} == {"magnus_parallel", "magnus_map"}
