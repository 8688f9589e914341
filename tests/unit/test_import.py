"""Import time is a feature: the core must not drag in the heavy libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("papermill", "IPython", "ipywidgets", "graphviz", "nbclient", "jupyter_client", "zmq")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_package_import_is_light() -> None:
    loaded = _loaded_after("import magnus_jupyter")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert "yaml" not in loaded  # even YAML waits until a pipeline is read


def test_core_model_yaml_and_sdk_stay_free_of_jupyter() -> None:
    code = ("import magnus_jupyter.model, magnus_jupyter.yaml_io, magnus_jupyter.validate, "
            "magnus_jupyter.sdk, magnus_jupyter.cli\n"
            "magnus_jupyter.yaml_io.load_yaml('notebooks/pipeline.yaml')")
    loaded = _loaded_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_the_interaction_api_and_config_load_no_pydantic_or_mlflow() -> None:
    """What a task imports (`import magnus` in a task is this) and what reads configs stays light:
    pydantic, mlflow and dotenv load only where a user's code or an mlflow tracker needs them."""
    loaded = _loaded_after("import magnus_jupyter\nmagnus_jupyter.get_parameter, magnus_jupyter.Pipeline\n"
                           "import magnus_jupyter.config, magnus_jupyter.executor.entrypoints, "
                           "magnus_jupyter.executor.shim.magnus")
    assert not {m for m in loaded if m.split(".")[0] in (*HEAVY, "pydantic", "mlflow", "dotenv")}
