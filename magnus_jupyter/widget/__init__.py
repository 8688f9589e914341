"""The live DAG view of a run, built from stock ipywidgets (no front-end build).

``RunStatus`` (status.py) and the picture (picture.py) are plain Python; only
``DagWidget`` (view.py) imports ipywidgets, and only when first used, so the
status object serves headless views and tests too.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"DagWidget": "view", "RunStatus": "status", "Throttle": "throttle", "Picture": "picture"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
