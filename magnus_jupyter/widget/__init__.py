"""The live DAG view of a run, built from stock ipywidgets (no front-end build).

``RunStatus`` (status.py) and the picture (picture.py) are plain Python; only
``DagWidget`` (view.py) imports ipywidgets, and only when first used, so the
status object serves headless views and tests too.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {"DagWidget": "view", "RunStatus": "status", "Throttle": "throttle", "Picture": "picture"}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY, globals())
