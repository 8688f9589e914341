"""The magics' arguments as one table, read from their own parsers, for the JupyterLab highlighter.

labextension/src/tokenizer.ts colours a magic line as the kernel reads it; it imports this table
from labextension/src/magics.generated.ts, which is committed (the extension builds without
Python) and regenerated after any change to a magic's arguments:

    python -m magnus_jupyter.magic_table labextension/src/magics.generated.ts

tests/labextension_test/test_magic_table.py fails while the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .magics import MAGICS

HEADER = """\
// Generated from the magics' argument parsers (magnus_jupyter/magics.py): do not edit.
// Regenerate: python -m magnus_jupyter.magic_table labextension/src/magics.generated.ts
"""
# What the tokenizer knows how to read; anything else must be taught to it before it enters the table.
_FLAG_ACTIONS = (argparse._StoreAction, argparse._AppendAction, argparse._StoreTrueAction)
_TYPES = {None: None, int: "int"}
_MOST = {None: 1, "?": 1, "+": None, "*": None}  # how many words a positional takes at most
_LEAST = {None: 1, "?": 0, "+": 1, "*": 0}


def _spec(magic: str, parser: argparse.ArgumentParser | None) -> dict[str, Any]:
    """One magic's flags (taking a value or not), the values they allow, and its positional words.

    A magic without a parser takes no arguments at all (magics.py refuses any).
    """
    spec: dict[str, Any] = {"values": [], "switches": [], "choices": {}, "ints": [],
                            "minPositional": 0, "maxPositional": 0}
    for action in parser._actions if parser else ():
        if not isinstance(action, _FLAG_ACTIONS) or action.type not in _TYPES:
            raise ValueError(f"%{magic} {action.dest}: {type(action).__name__} of type {action.type} "
                             "is unknown to the highlighter (labextension/src/tokenizer.ts)")
        if not action.option_strings:
            if action.nargs not in _MOST or spec["maxPositional"] != 0:
                raise ValueError(f"%{magic} {action.dest}: nargs={action.nargs!r} after another "
                                 "positional is unknown to the highlighter")
            spec["minPositional"], spec["maxPositional"] = _LEAST[action.nargs], _MOST[action.nargs]
            continue
        takes_value = action.nargs != 0
        spec["values" if takes_value else "switches"].extend(action.option_strings)
        for flag in action.option_strings if takes_value else ():
            if action.choices is not None:
                spec["choices"][flag] = list(action.choices)
            if _TYPES[action.type] == "int":
                spec["ints"].append(flag)
    return spec


def table() -> dict[str, dict[str, Any]]:
    """Every magic by name: whether it is a line and/or a cell magic, and how its line is read."""
    magics: dict[str, dict[str, Any]] = {}
    for cls in MAGICS:
        for kind, names in cls.magics.items():
            for name, method in names.items():
                entry = magics.setdefault(name, {"line": False, "cell": False})
                entry[kind] = True
                entry.update(_spec(name, getattr(getattr(cls, method), "parser", None)))
    return dict(sorted(magics.items()))


def source() -> str:
    """The TypeScript module tokenizer.ts imports."""
    body = json.dumps(table(), indent=2)
    return f"{HEADER}\nexport const MAGIC_TABLE = {body} as const;\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m magnus_jupyter.magic_table OUT.ts", file=sys.stderr)
        return 2
    Path(args[0]).write_text(source(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
