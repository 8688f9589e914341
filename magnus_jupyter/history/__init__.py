"""A folder's run history, as plain data and pictures: the library behind ``magnus-jupyter runs``.

No Jupyter import anywhere here: the notebook's history view and the Lab
panel call these functions and draw what they return.

- ``list_runs(folder)`` -> ``[RunSummary]``, newest first (summary.py)
- ``load_run(run_id, folder)`` -> the checked run log; ``RunLogError`` names the file (store.py)
- ``step_rows(run_log)`` -> ``[StepRow]``, the step tree (tree.py)
- ``diff_runs(a, b, folder)`` -> ``RunDiff`` (diff.py)
- ``remove_runs(ids, folder)`` / ``prune_runs(keep, folder)`` (remove.py)
- ``timeline(run_log)`` -> ``Timeline``, drawn by ``timeline_svg`` / ``timeline_html`` /
  ``write_timeline`` (timeline.py)
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "RunFolder": "store",
    "RunFile": "store",
    "RunLogError": "store",
    "find_run": "store",
    "load_run": "store",
    "read_run_file": "store",
    "run_files": "store",
    "RunSummary": "summary",
    "list_runs": "summary",
    "summary_of": "summary",
    "StepRow": "tree",
    "step_rows": "tree",
    "RunDiff": "diff",
    "diff_runs": "diff",
    "remove_runs": "remove",
    "prune_runs": "remove",
    "Timeline": "timeline",
    "timeline": "timeline",
    "timeline_svg": "timeline",
    "timeline_html": "timeline",
    "write_timeline": "timeline",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY, globals())
