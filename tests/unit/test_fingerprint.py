"""Fingerprints: what counts (code cells, function and module source, values, file content), what does
not (outputs, metadata, markdown, timestamps), and how a difference is named."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from magnus_jupyter.executor.fingerprint import (
    Fingerprints,
    differences,
    environment_change,
    module_file,
    read_environment,
)
from magnus_jupyter.model import Task


def notebook(path: Path, *sources: str, kernel: str = "python3", markdown_first: bool = False,
             tags: dict[int, list[str]] | None = None) -> Path:
    cells: list[Any] = [new_markdown_cell("# title")] if markdown_first else []
    for i, source in enumerate(sources):
        cell = new_code_cell(source)
        if tags and i in tags:
            cell.metadata["tags"] = tags[i]
        cells.append(cell)
    metadata = {"kernelspec": {"name": kernel, "display_name": kernel}}
    nbformat.write(new_notebook(cells=cells, metadata=metadata), path)
    return path


def nb_task(**fields: Any) -> Task:
    return Task(name="t", command="nb.ipynb", command_type="notebook", next="success", **fields)


def take(folder: Path, step: Task, parameters: dict[str, Any] | None = None,
         gets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A fingerprint as a new run takes it (a fresh Fingerprints: nothing remembered)."""
    return Fingerprints(folder).task(step, parameters or {}, gets or [])


def test_a_notebook_counts_its_code_cells_and_tags_not_outputs_metadata_or_markdown(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2", "print(x + y)")
    first = take(tmp_path, nb_task())
    assert [c[0] for c in first["notebook"]["cells"]] == [1, 2, 3] and first["kernel"] == "python3"

    nb = nbformat.read(tmp_path / "nb.ipynb", as_version=4)  # as it is after running it in Jupyter
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="3\n")]
    nb.cells[2].execution_count = 7
    nb.cells[0].metadata["collapsed"] = True
    nb.metadata["language_info"] = {"name": "python", "version": "3.11"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert take(tmp_path, nb_task())["digest"] == first["digest"]

    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 3", "print(x + y)", markdown_first=True)
    assert differences(take(tmp_path, nb_task()), first)[0] == "notebook changed: cell 3"
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2", "print(x + y)", tags={0: ["parameters"]})
    assert differences(take(tmp_path, nb_task()), first) == ["notebook changed: cell 1"]
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2", "print(x + y)", "z = 0")
    assert differences(take(tmp_path, nb_task()), first) == ["notebook changed: cell 4 added"]
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2")
    assert differences(take(tmp_path, nb_task()), first) == ["notebook changed: cell 3 removed"]
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2", "print(x + y)", kernel="ir")
    assert differences(take(tmp_path, nb_task()), first) == ["kernel changed: python3 -> ir"]
    (tmp_path / "nb.ipynb").unlink()
    assert differences(take(tmp_path, nb_task()), first) == ["notebook nb.ipynb is missing"]


def test_markdown_moving_the_code_cells_is_no_change(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2")
    first = take(tmp_path, nb_task())
    notebook(tmp_path / "nb.ipynb", "x = 1", "y = 2", markdown_first=True)
    again = take(tmp_path, nb_task())
    assert [c[0] for c in again["notebook"]["cells"]] == [2, 3]  # positions as the notebook has them now
    assert again["digest"] == first["digest"]  # but the code is the same: nothing to run again


def test_the_task_definition_fields_are_named_when_they_change(tmp_path: Path) -> None:
    shell = Task(name="t", command="echo a", command_type="shell", next="success")
    first = take(tmp_path, shell)
    assert differences(take(tmp_path, Task(name="t", command="echo b", command_type="shell", next="x")),
                       first) == ["command changed"]  # next is not part of what the task does
    got = Task(name="t", command="echo a", command_type="shell", catalog={"get": ["d.csv"]}, next="success")
    assert differences(take(tmp_path, got), first) == ["catalog changed"]
    assert differences(take(tmp_path, Task(name="other", command="echo a", command_type="shell",
                                           timeout=5, max_attempts=3, next="success")), first) == []


def test_a_python_task_counts_its_function_and_its_module_found_without_importing(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("open('imported', 'w').write('the package ran')\n")
    module = package / "steps.py"
    module.write_text("def train(alpha):\n    return {'score': alpha}\n\n\ndef helper():\n    return 1\n")
    step = Task(name="t", command="pkg.steps.train", command_type="python", next="success")
    first = take(tmp_path, step)
    assert first["python"]["module"] == "pkg/steps.py" and first["python"]["function"]
    assert not (tmp_path / "imported").exists() and not Path("imported").exists()

    module.write_text("def train(alpha):\n    return {'score': alpha}\n\n\ndef helper():\n    return 2\n")
    assert differences(take(tmp_path, step), first) == ["module changed: pkg/steps.py"]
    module.write_text("@staticmethod\ndef train(alpha):\n    return {'score': alpha}\n\n\ndef helper():\n"
                      "    return 1\n")
    assert differences(take(tmp_path, step), first)[0] == "function changed: pkg.steps.train"
    module.unlink()
    assert differences(take(tmp_path, step), first)[0] == "module pkg.steps is not found"


def test_module_file_follows_import_rules(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "mod.py").write_text("")
    (tmp_path / "b" / "mod.py").write_text("")
    (tmp_path / "b" / "ns").mkdir()  # a namespace package: no __init__
    (tmp_path / "b" / "ns" / "inner.py").write_text("")
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert module_file("mod", roots) == tmp_path / "a" / "mod.py"  # the first on the path wins
    assert module_file("ns.inner", roots) == tmp_path / "b" / "ns" / "inner.py"
    assert module_file("json", [str(tmp_path)] + [p for p in __import__("sys").path if p])  # the stdlib
    assert module_file("nope.nothing", roots) is None and module_file("", roots) is None


def test_input_files_count_by_content_never_by_time(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    raw = tmp_path / "data" / "raw.csv"
    raw.write_text("a,b\n1,2\n")
    step = Task(name="t", command="echo", command_type="shell", inputs=["data/*.csv"], next="success")
    first = take(tmp_path, step)
    assert list(first["inputs"]) == ["data/raw.csv"]
    os.utime(raw, (1, 1))  # touched: the same content, another time
    assert take(tmp_path, step)["digest"] == first["digest"]
    raw.write_text("a,b\n1,3\n")
    assert differences(take(tmp_path, step), first) == ["input data/raw.csv changed"]
    raw.write_text("a,b\n1,2\n")
    (tmp_path / "data" / "more.csv").write_text("x\n")
    assert differences(take(tmp_path, step), first) == ["input data/more.csv added"]


def test_the_same_run_sees_an_edit_made_between_two_tasks(tmp_path: Path) -> None:
    """Digests are remembered by (path, size, mtime_ns, inode): an edit changes the key."""
    raw = tmp_path / "raw.txt"
    raw.write_text("one")
    step = Task(name="t", command="echo", command_type="shell", inputs=["raw.txt"], next="success")
    fingerprints = Fingerprints(tmp_path)
    first = fingerprints.task(step, {})
    raw.write_text("two")  # same size, written at once: the inode or mtime_ns differs
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 1))
    assert fingerprints.task(step, {})["inputs"] != first["inputs"]


def test_a_symlink_out_of_the_run_folder_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not ours")
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "mine.txt").write_text("ours")
    (run / "data" / "link.txt").symlink_to(outside / "secret.txt")
    step = Task(name="t", command="echo", command_type="shell", inputs=["data/*.txt"], next="success")
    assert list(take(run, step)["inputs"]) == ["data/mine.txt"]


def test_many_input_files_are_one_digest(tmp_path: Path) -> None:
    for i in range(150):
        (tmp_path / f"f{i}.txt").write_text(str(i))
    step = Task(name="t", command="echo", command_type="shell", inputs=["*.txt"], next="success")
    first = take(tmp_path, step)
    assert list(first["inputs"]) == ["*"] and first["inputs"]["*"].startswith("150 files ")
    (tmp_path / "f7.txt").write_text("changed")
    assert differences(take(tmp_path, step), first) == ["inputs changed"]


def test_parameters_are_named_with_their_values_when_short(tmp_path: Path) -> None:
    step = Task(name="t", command="echo", command_type="shell", next="success")
    big = list(range(100))
    first = take(tmp_path, step, {"alpha": 0.1, "big": big, "gone": 1})
    assert first["values"] == {"alpha": 0.1, "gone": 1}  # the long value is kept as a digest only
    again = take(tmp_path, step, {"alpha": 0.2, "big": [*big, 1], "new": "x"})
    assert differences(again, first) == ["parameter 'alpha' changed: 0.1 -> 0.2", "parameter 'big' changed",
                                         "parameter 'gone' removed", "parameter 'new' added: \"x\""]
    assert take(tmp_path, step, {"gone": 1, "big": big, "alpha": 0.1})["digest"] == first["digest"]


def test_catalog_get_files_count_by_their_hash(tmp_path: Path) -> None:
    step = Task(name="t", command="echo", command_type="shell", catalog={"get": ["d.txt"]}, next="success")
    entry = {"name": "d.txt", "data_hash": "a" * 64, "stage": "get"}
    first = take(tmp_path, step, gets=[entry])
    assert first["catalog"] == {"d.txt": "a" * 64}
    assert differences(take(tmp_path, step, gets=[{**entry, "data_hash": "b" * 64}]), first) == [
        "catalog file d.txt changed"]


def test_the_environment_names_what_changed(tmp_path: Path) -> None:
    environment = read_environment()
    assert environment["python"].split()[0] in ("CPython", "PyPy")
    assert "magnus-jupyter" in environment["distributions"]
    old = {**environment, "distributions": {**environment["distributions"], "numpy": "1.26.4"}}
    new = {**environment, "distributions": {**environment["distributions"], "numpy": "2.0.0"}}
    assert environment_change(new, old) == "environment changed: numpy 1.26.4 -> 2.0.0"
    newer = {**new, "distributions": {**new["distributions"], "zzz-extra": "1.0"}}
    assert environment_change(newer, old) == "environment changed: numpy 1.26.4 -> 2.0.0 (and 1 more)"
    assert environment_change({**old, "python": "CPython 3.12.1"}, old).startswith(
        "environment changed: python CPython")
    step = Task(name="t", command="echo", command_type="shell", next="success")
    first = take(tmp_path, step)
    assert differences({**first, "digest": "x", "environment": "other"}, first, new, old) == [
        "environment changed: numpy 1.26.4 -> 2.0.0"]


def test_a_fingerprint_is_small_json(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb", *[f"x{i} = {i}" for i in range(20)])
    text = json.dumps(take(tmp_path, nb_task(), {f"p{i}": i for i in range(10)}))
    assert len(text) < 1500  # digests, not contents
