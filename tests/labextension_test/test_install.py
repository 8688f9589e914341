"""The JupyterLab extension comes with the Python package: `pip install` built it and JupyterLab finds it.

`make setup` installs the package, and with it the extension built from labextension/ (pyproject.toml's
jupyter-builder hook). These tests ask JupyterLab itself, as a user would, with the test's own
JUPYTER_* folders (tests/conftest.py), so only what the environment holds can answer.

The slow ones install the package as a user does: a wheel built from a clean copy of the checkout
(git's files only, no build beside them), `pip install jupyterlab <wheel>` into a fresh venv from the
package registry, with no Node.js on PATH, then JupyterLab, the server and a kernel of that venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "labextension" / "package.json"
JUPYTER = Path(sys.executable).with_name("jupyter")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _jupyter(jupyter: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """The lines `jupyter ARGS` prints, without colours."""
    done = subprocess.run([str(jupyter), *args], capture_output=True, text=True, timeout=120, check=True,
                          env=env)
    return ANSI.sub("", done.stdout + done.stderr).splitlines()


def _listed(jupyter: Path = JUPYTER, env: dict[str, str] | None = None) -> dict[str, tuple[Path, str]]:
    """Each extension `jupyter labextension list` shows: its folder of extensions and its status line."""
    listed: dict[str, tuple[Path, str]] = {}
    folder: Path | None = None
    for line in _jupyter(jupyter, "labextension", "list", env=env):
        if line.startswith("/"):
            folder = Path(line.strip())
        elif line.startswith((" ", "\t")) and folder is not None and line.split():
            listed.setdefault(line.split()[0], (folder, line.strip()))
    return listed


def _server_extensions(jupyter: Path = JUPYTER, env: dict[str, str] | None = None) -> dict[Path, list[str]]:
    """The lines `jupyter server extension list` shows under each config folder, stripped."""
    shown: dict[Path, list[str]] = {}
    folder: Path | None = None
    for line in _jupyter(jupyter, "server", "extension", "list", env=env):
        if line.startswith("Config dir:"):
            folder = Path(line.removeprefix("Config dir:").strip())
            shown[folder] = []
        elif folder is not None and line.strip():
            shown[folder].append(line.strip())
    return shown


def _assert_installed_by_the_package(listed: dict[str, tuple[Path, str]], name: str) -> None:
    assert name in listed, f"{name} not in `jupyter labextension list`: {sorted(listed)}"
    words = listed[name][1].split()
    assert words[2:4] == ["enabled", "OK"], listed[name][1]
    assert listed[name][1].endswith("(python, magnus-jupyter)"), (
        f"{listed[name][1]!r}: not installed by the magnus-jupyter package (linked by hand?); `make setup`"
    )


def _assert_server_extension_enabled(lines: list[str]) -> None:
    listing = "\n".join(lines)
    assert "magnus_jupyter enabled" in lines, f"not enabled in `jupyter server extension list`:\n{listing}"
    assert any(re.fullmatch(r"magnus_jupyter \S+ OK", line) for line in lines), listing


def test_the_extension_is_installed_enabled_and_ok_by_the_python_package() -> None:
    _assert_installed_by_the_package(_listed(), json.loads(SOURCE.read_text())["name"])


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
    _assert_server_extension_enabled([line for lines in _server_extensions().values() for line in lines])
    config = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "magnus_jupyter.json"
    enabled = {"ServerApp": {"jpserver_extensions": {"magnus_jupyter": True}}}
    assert json.loads(config.read_text()) == enabled, (
        f"{config}: not installed by the package (pyproject.toml's shared-data); `make setup`"
    )


# ---- installed as a user installs it -----------------------------------------------------------

WHEEL_DATA = "magnus_jupyter-{version}.data/data/share/jupyter/labextensions/{name}/"
INSTALL_TIMEOUT = 900  # a hang, not a slow registry


def _run(args: list[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None,
         ) -> subprocess.CompletedProcess[str]:
    """Run a step of the install; a failure shows the end of what it printed."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                          env=env, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{(done.stdout + done.stderr)[-3000:]}"
    return done


def _clean_copy(to: Path) -> Path:
    """The checkout's files as a clone has them (git's, new ones not ignored): no build, no node_modules."""
    listed = _run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    assert not (to / "magnus_jupyter" / "labextension").exists(), "the copy holds the extension's build"
    return to


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with JupyterLab and the wheel, installed with no Node.js on PATH; and its environment.

    The wheel is built from a clean copy of the checkout (the build hook runs npm there). The venv's
    commands then run with only its own bin/ on PATH and Jupyter folders of their own.
    """
    base = tmp_path_factory.mktemp("user-install")
    source = _clean_copy(base / "source")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist", source])
    (wheel,) = (base / "dist").glob("magnus_jupyter-*.whl")
    package = json.loads(SOURCE.read_text())
    data = WHEEL_DATA.format(version=package["version"], name=package["name"])
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {data + "package.json", data + "static/style.js", data + "install.json"} <= names, (
        f"{wheel.name} lacks the built lab extension"
    )
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", venv])
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = str(venv / "bin")
    assert shutil.which("node", path=env["PATH"]) is None and shutil.which("npm", path=env["PATH"]) is None
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(base / "home" / var.lower())
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "jupyterlab", wheel], env=env, cwd=base)
    return venv, env


@pytest.mark.slow
def test_the_wheel_beside_jupyterlab_brings_the_lab_extension_enabled_and_ok(
    user_venv: tuple[Path, dict[str, str]],
) -> None:
    venv, env = user_venv
    name = json.loads(SOURCE.read_text())["name"]
    listed = _listed(venv / "bin" / "jupyter", env)
    _assert_installed_by_the_package(listed, name)
    assert listed[name][0] == venv / "share" / "jupyter" / "labextensions", listed[name]


@pytest.mark.slow
def test_the_wheel_enables_the_server_extension_in_the_venv(user_venv: tuple[Path, dict[str, str]]) -> None:
    venv, env = user_venv
    shown = _server_extensions(venv / "bin" / "jupyter", env)
    config = venv / "etc" / "jupyter"
    assert config in shown, f"the venv's {config} is not among the config folders: {sorted(shown)}"
    _assert_server_extension_enabled(shown[config])
    elsewhere = [f for f, lines in shown.items() if f != config and "magnus_jupyter enabled" in lines]
    assert not elsewhere, f"magnus_jupyter is enabled outside the venv too: {elsewhere}"


@pytest.mark.slow
def test_the_venvs_kernel_loads_the_extension_and_runs_a_pipeline(
    user_venv: tuple[Path, dict[str, str]], tmp_path: Path,
) -> None:
    venv, env = user_venv
    cells = ["import sys; print(sys.prefix)", "%load_ext magnus_jupyter", "%magnus_step Done --stub",
             "%magnus_run --workers 1"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "in.ipynb")
    _run([venv / "bin" / "papermill", "in.ipynb", "out.ipynb", "--cwd", "."], env=env, cwd=tmp_path)
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    outputs = [[o.get("text", "") for o in cell.outputs] for cell in executed.cells]
    assert outputs[0] == [f"{venv}\n"], "the kernel is not the venv's Python"
    assert outputs[1] == outputs[2] == [], outputs
    assert any(re.match(r"run \S+: SUCCESS\b", text) for text in outputs[3]), outputs[3]
