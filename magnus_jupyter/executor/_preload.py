"""Imported once by the forkserver, so every worker forked from it starts with papermill loaded.

Never imported by the orchestrator: papermill and friends cost a noticeable
part of a second to import, and ``import magnus_jupyter`` must stay fast.
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):  # a worker reports the import error when a notebook needs it
    import jupyter_client  # noqa: F401
    import nbclient  # noqa: F401
    import nbformat  # noqa: F401
    import papermill  # noqa: F401

    from . import kernels, notebooks, runners, worker  # noqa: F401
