"""Regenerate the fixture notebooks: ``python tests/notebooks/make_fixtures.py``.

Small on purpose: each exercises one behaviour of notebook tasks.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def code(source: str, *tags: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


NOTEBOOKS = {
    # parameters cell + magnus_output cell + plain variables for `returns`
    "params.ipynb": [
        new_markdown_cell("Parameters arrive in the cell after the one tagged `parameters`."),
        code('x = 1\nname = "nobody"', "parameters"),
        code("y = x * 2\ngreeting = f'hello {name}'"),
        code("print({'doubled': y, 'shout': greeting.upper()})", "magnus_output"),
        code("import os\n\ncwd = os.getcwd()\nenviron = dict(os.environ)\n"
             "run_id = environ.get('MAGNUS_RUN_ID')\nprm_x = environ.get('MAGNUS_PRM_x')"),
    ],
    "fail.ipynb": [
        code("a = 1"),
        code("raise ValueError('boom at cell two')"),
        code("never = True"),
    ],
    "noparams.ipynb": [
        code("z = 41 + 1"),
    ],
    "sleep.ipynb": [
        code("seconds = 1.0", "parameters"),
        code("import time\n\ntime.sleep(seconds)\nslept = seconds"),
    ],
    "trivial.ipynb": [
        code("i = 0", "parameters"),
        code("square = i * i"),
    ],
    "unjsonable.ipynb": [
        code("thing = object()\nnumbers = __import__('array').array('i', [1])"),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
        nb = new_notebook(cells=cells, metadata=metadata)
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    main()
