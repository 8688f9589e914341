"""magnus pipelines in Jupyter: declare with magics, the SDK or magnus YAML; run; watch.

Importing this package stays cheap: the model and YAML I/O load on first use,
and papermill, ipywidgets and graphviz only where a run or a view needs them.
"""

from __future__ import annotations

from typing import Any

from ._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "PipelineError": "errors",
    "ValidationError": "errors",
    "load_yaml": "yaml_io",
    "to_yaml": "yaml_io",
    "validate": "validate",
    "Task": "sdk",
    "Stub": "sdk",
    "Parallel": "sdk",
    "Map": "sdk",
    "Success": "sdk",
    "Fail": "sdk",
    "Pipeline": "sdk",
    "Catalog": "sdk",
    "current_pipeline": "declare",
    # magnus 0.5's interaction API, for code running as a task (interaction.py)
    "get_parameter": "interaction",
    "set_parameter": "interaction",
    "get_from_catalog": "interaction",
    "put_in_catalog": "interaction",
    "get_object": "interaction",
    "put_object": "interaction",
    "get_secret": "interaction",
    "get_run_id": "interaction",
    "get_run_log": "interaction",
    "get_tag": "interaction",
    "track_this": "interaction",
    "get_experiment_tracker_context": "interaction",
    "start_interactive_session": "interaction",
    "end_interactive_session": "interaction",
    "InteractionError": "interaction",
}

__all__ = sorted(_LAZY) + ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext magnus_jupyter``: the magics module (and IPython's magic machinery) loads only now."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (server.py): run records in hidden folders, served read-only."""
    return [{"module": "magnus_jupyter.server"}]


__getattr__ = lazy_exports(__name__, _LAZY, globals())
