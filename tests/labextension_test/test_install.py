"""The JupyterLab extension comes with the Python package: `pip install` built it and JupyterLab finds it.

`make setup` installs the package, and with it the extension built from labextension/ (pyproject.toml's
jupyter-builder hook). These tests ask JupyterLab itself, as a user would, with the test's own
JUPYTER_* folders (tests/conftest.py), so only what the environment holds can answer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "labextension" / "package.json"
JUPYTER = Path(sys.executable).with_name("jupyter")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _listed() -> dict[str, tuple[Path, str]]:
    """Each extension `jupyter labextension list` shows: its folder of extensions and its status line."""
    done = subprocess.run(
        [str(JUPYTER), "labextension", "list"], capture_output=True, text=True, timeout=120, check=True
    )
    listed: dict[str, tuple[Path, str]] = {}
    folder: Path | None = None
    for line in ANSI.sub("", done.stdout + done.stderr).splitlines():
        if line.startswith("/"):
            folder = Path(line.strip())
        elif line.startswith((" ", "\t")) and folder is not None and line.split():
            listed.setdefault(line.split()[0], (folder, line.strip()))
    return listed


def test_the_extension_is_installed_enabled_and_ok_by_the_python_package() -> None:
    name = json.loads(SOURCE.read_text())["name"]
    listed = _listed()
    assert name in listed, f"{name} not in `jupyter labextension list`: {sorted(listed)}"
    words = listed[name][1].split()
    assert words[2:4] == ["enabled", "OK"], listed[name][1]
    assert listed[name][1].endswith("(python, magnus-jupyter)"), (
        f"{listed[name][1]!r}: not installed by the magnus-jupyter package (linked by hand?); `make setup`"
    )


def test_the_installed_extension_is_the_one_built_from_labextension() -> None:
    source = json.loads(SOURCE.read_text())
    listed = _listed()
    assert source["name"] in listed, f"{source['name']} not in `jupyter labextension list`"
    folder, line = listed[source["name"]]
    installed = json.loads((folder / source["name"] / "package.json").read_text())
    assert (installed["name"], installed["version"]) == (source["name"], source["version"])
    assert line.split()[1] == f"v{source['version']}"
    assert "_build" in installed["jupyterlab"], "the installed package.json is not a built extension"


def test_the_server_extension_is_enabled_and_ok_by_the_python_package() -> None:
    """Lab opens run records in hidden folders through it (magnus_jupyter/server.py), with no server flag."""
    done = subprocess.run(
        [str(JUPYTER), "server", "extension", "list"], capture_output=True, text=True, timeout=120, check=True
    )
    lines = [line.strip() for line in ANSI.sub("", done.stdout + done.stderr).splitlines()]
    listing = "\n".join(lines)
    assert "magnus_jupyter enabled" in lines, f"not enabled in `jupyter server extension list`:\n{listing}"
    assert any(re.fullmatch(r"magnus_jupyter \S+ OK", line) for line in lines), listing
    config = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "magnus_jupyter.json"
    enabled = {"ServerApp": {"jpserver_extensions": {"magnus_jupyter": True}}}
    assert json.loads(config.read_text()) == enabled, (
        f"{config}: not installed by the package (pyproject.toml's shared-data); `make setup`"
    )
