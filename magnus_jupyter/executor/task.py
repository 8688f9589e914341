"""What crosses the process boundary: one task to run, and what came of it.

The engine builds a ``TaskSpec`` for each leaf task attempt and hands it to a
slot (``slots.py``); a worker process runs it (``runners.py``) and sends back a
``TaskResult``. Both are plain, picklable data, so a Dask worker can run the
same spec later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUCCESS = "SUCCESS"
FAIL = "FAIL"
PROCESSING = "PROCESSING"


@dataclass
class TaskSpec:
    internal_name: str  # full name with map values filled in: "iterate and execute.10.execute"
    kind: str  # "notebook" | "shell" | "python"
    command: str
    cwd: str  # the folder the run started in; relative commands and paths resolve here
    parameters: dict[str, Any] = field(default_factory=dict)  # the run's current parameters
    map_variable: dict[str, Any] = field(default_factory=dict)  # iterate_as -> value, outermost first
    notebook_output_path: str | None = None  # absolute path for the executed notebook
    output_cell_tag: str = "magnus_output"
    returns: list[str] = field(default_factory=list)  # notebook variables to collect
    timeout: float | None = None  # seconds; None: no limit
    log_path: str | None = None  # captured stdout/stderr of the task go here
    env: dict[str, str] = field(default_factory=dict)  # extra environment (MAGNUS_RUN_ID, ...)
    kernel_name: str | None = None  # notebook kernel; None: the notebook's own / python3
    attempt: int = 1


@dataclass
class TaskResult:
    status: str  # SUCCESS | FAIL
    message: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # updates; merged only on SUCCESS
    start_time: str = ""  # ISO timestamps, as magnus' run log has them
    end_time: str = ""
    output_notebook: str | None = None
    log_path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # MAGNUS_TRACK_ values: user_defined_metrics
    data_catalog: list[dict[str, Any]] = field(default_factory=list)  # put/get through the interaction API
