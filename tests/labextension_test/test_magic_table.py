"""The highlighter's table of magics is the magics' own argument parsers, and it is up to date.

labextension/src/magics.generated.ts is written by ``python -m magnus_jupyter.magic_table`` and
committed; tokenizer.ts reads every magic, flag and positional word from it. These tests compare it
with the magics that ``%load_ext magnus_jupyter`` registers in a real IPython shell, and record the
parsers' verdicts on magic lines (labextension/test/magic-line-cases.json), which
labextension/test/agreement.test.ts checks the tokenizer against.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

from magnus_jupyter import magic_table

LABEXT = Path(__file__).resolve().parents[2] / "labextension"
GENERATED = LABEXT / "src" / "magics.generated.ts"
REGENERATE = f"python -m magnus_jupyter.magic_table {GENERATED.relative_to(LABEXT.parent)}"
CASES = json.loads((LABEXT / "test" / "magic-line-cases.json").read_text())["cases"]


@pytest.fixture(scope="module")
def magics() -> dict[str, dict[str, Any]]:
    """The magnus magics a real shell has after ``%load_ext``: kind ("line"/"cell") -> name -> magic."""
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "magnus_jupyter")
    return {kind: {name: magic for name, magic in table.items() if name.startswith("magnus_")}
            for kind, table in shell.magics_manager.magics.items()}


def _committed() -> dict[str, dict[str, Any]]:
    """The table as tokenizer.ts imports it (a JSON object inside `export const ... = {...} as const;`)."""
    text = GENERATED.read_text()
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_the_committed_table_is_what_the_magics_generate() -> None:
    assert GENERATED.read_text() == magic_table.source(), f"{GENERATED.name} is stale: run {REGENERATE}"


def test_every_flag_of_every_magic_is_in_the_table_and_nothing_else(magics: dict) -> None:
    table = _committed()
    for kind in ("line", "cell"):
        assert {n for n, spec in table.items() if spec[kind]} == set(magics[kind]), f"{kind} magics"
    for name in table:
        magic = magics["line"][name]
        parser = getattr(magic, "parser", None)
        flags = [flag for action in parser._actions for flag in action.option_strings] if parser else []
        assert sorted(table[name]["values"] + table[name]["switches"]) == sorted(flags), f"%{name}"
    assert {"--executor", "--scheduler"} <= set(table["magnus_run"]["values"])
    assert "magnus_retry" in table


def _rejected(magics: dict, line: str) -> bool:
    """Whether the magic refuses the arguments of `line` (as magics.py reads them: shlex, argparse)."""
    kind = "cell" if line.startswith("%%") else "line"
    name, _, arguments = line.lstrip("%").partition(" ")
    magic = magics[kind][name]
    parser = getattr(magic, "parser", None)
    if parser is None:  # no parser: the magic itself refuses any argument
        if not arguments.strip():
            return False
        with pytest.raises(UsageError):
            magic(arguments)
        return True
    try:
        parser.parse_args(shlex.split(arguments))
    except (UsageError, ValueError):  # ValueError: shlex on an unclosed quote
        return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c["line"] for c in CASES])
def test_the_parsers_give_the_recorded_verdict(magics: dict, case: dict) -> None:
    assert _rejected(magics, case["line"]) is case["rejected"]


def test_the_cases_cover_every_magic_and_both_verdicts() -> None:
    assert {c["rejected"] for c in CASES} == {True, False}
    named = {c["line"].lstrip("%").split()[0] for c in CASES}
    assert named == set(magic_table.table())


def test_a_flag_the_highlighter_cannot_read_is_refused_by_the_generator() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--level", action="count")
    with pytest.raises(ValueError, match="%magnus_x level: _CountAction"):
        magic_table._spec("magnus_x", parser)
