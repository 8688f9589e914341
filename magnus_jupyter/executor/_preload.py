"""Imported once by the forkserver, so every worker forked from it starts with papermill loaded.

Never imported by the orchestrator: papermill and friends cost seconds to
import, and ``import magnus_jupyter`` must stay fast.

Most of papermill's import time here is not papermill: nbformat's validator
imports jsonschema, which imports ``rfc3987_syntax`` only to register the
``iri``/``iri-reference`` format checkers, and that module builds a grammar at
import (~1.8 s). Notebook schemas use neither format, so while preloading we
make that optional import fail; it is importable again afterwards.
"""

from __future__ import annotations

import contextlib
import sys

_SKIPPED = "rfc3987_syntax"
_skip = _SKIPPED not in sys.modules
if _skip:
    sys.modules[_SKIPPED] = None  # type: ignore[assignment]  # makes `import` raise ImportError
try:
    with contextlib.suppress(ImportError):  # a worker reports the import error when a notebook needs it
        import ipykernel.kernelapp  # noqa: F401  # for kernels forked by each worker's zygote
        import jupyter_client  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
        import papermill  # noqa: F401

        from . import kernels, notebooks, runners, worker, zygote  # noqa: F401
finally:
    if _skip and sys.modules.get(_SKIPPED, 0) is None:
        del sys.modules[_SKIPPED]
