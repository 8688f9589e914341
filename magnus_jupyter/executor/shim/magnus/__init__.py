"""``import magnus`` in a magnus-jupyter task: magnus 0.5's interaction API and SDK, from magnus_jupyter.

This folder goes on a task's path only (the end of ``sys.path`` for Python
tasks and notebook kernels, ``PYTHONPATH`` for shell tasks), and only when no
real ``magnus`` package is installed: never into site-packages.
"""

from magnus_jupyter.interaction import (  # noqa: F401
    end_interactive_session,
    get_experiment_tracker_context,
    get_from_catalog,
    get_object,
    get_parameter,
    get_run_id,
    get_run_log,
    get_secret,
    get_tag,
    put_in_catalog,
    put_object,
    set_parameter,
    start_interactive_session,
    track_this,
)
from magnus_jupyter.sdk import Catalog, Fail, Map, Parallel, Pipeline, Stub, Success, Task  # noqa: F401
