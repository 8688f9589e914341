"""The run context a task gets, and what a task hands back through its environment.

Tasks never run in the orchestrator (worker processes, kernels, Dask workers,
Argo pods), so what magnus' interaction API needs travels as environment
variables, as magnus' own ``MAGNUS_RUN_ID`` does: the run id and tag, the
step's internal name, the run's catalog folder and run log file, and the
secrets and experiment-tracker settings. What a task writes comes back the way
magnus reads it: ``MAGNUS_PRM_<name>`` variables left in the task's environment
are parameter updates, ``MAGNUS_TRACK_<key>[_STEP_<n>]`` variables are metrics.
The worker (Python tasks), the kernel (notebooks) or the shell's ``env`` output
gives their raw text; this module reads it with magnus' rules.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .params import PARAMETER_PREFIX, decode_value

RUN_ID = "MAGNUS_RUN_ID"
TAG = "MAGNUS_RUN_TAG"
STEP = "MAGNUS_JUPYTER_STEP"  # the running step's internal name; set only inside a task
CATALOG = "MAGNUS_JUPYTER_CATALOG"  # the run's catalog folder; empty: a do-nothing catalog
CATALOG_LOCATION = "MAGNUS_JUPYTER_CATALOG_LOCATION"  # as data_catalog entries name it (".catalog")
RUN_LOG = "MAGNUS_JUPYTER_RUN_LOG"  # the run log file
SECRETS = "MAGNUS_JUPYTER_SECRETS"  # {"type": ..., "config": {...}} of the run's secrets manager
TRACKER = "MAGNUS_JUPYTER_TRACKER"  # {"type": ..., "config": {...}} of its experiment tracker

SHIM = str(Path(__file__).resolve().parent / "shim")  # holds the `magnus` package tasks import
TRACK_PREFIX = "MAGNUS_TRACK_"
STEP_INDICATOR = "_STEP_"


@dataclass(frozen=True)
class RunContext:
    """What every task of one run is told: built once per run by the engine (or execute-step)."""

    run_id: str
    catalog_folder: str | None  # None: the catalog does nothing
    catalog_location: str
    run_log: str
    tag: str = ""
    secrets: dict[str, Any] = field(default_factory=lambda: {"type": "do-nothing", "config": {}})
    tracker: dict[str, Any] = field(default_factory=lambda: {"type": "do-nothing", "config": {}})

    def env(self, internal_name: str) -> dict[str, str]:
        """The variables a task of step ``internal_name`` gets."""
        out = {
            RUN_ID: self.run_id,
            STEP: internal_name,
            CATALOG: self.catalog_folder or "",
            CATALOG_LOCATION: self.catalog_location,
            RUN_LOG: self.run_log,
            SECRETS: json.dumps(self.secrets),
            TRACKER: json.dumps(self.tracker),
        }
        if self.tag:
            out[TAG] = self.tag
        return out


def run_context(run_id: str, catalog_folder: Path | None, catalog_location: str, run_log: Path,
                services: Any = None) -> RunContext:
    """The context of one run; ``services`` (a ``config.MagnusConfig``) adds its tag, secrets and tracker."""
    folder = str(catalog_folder) if catalog_folder is not None else None
    if services is None:
        return RunContext(run_id, folder, catalog_location, str(run_log))
    return RunContext(run_id, folder, catalog_location, str(run_log), tag=services.tag,
                      secrets=dict(services.secrets), tracker=dict(services.experiment_tracker))


def tracked_metrics(raw: Mapping[str, str]) -> dict[str, Any]:
    """``MAGNUS_TRACK_`` variables as magnus records them in ``user_defined_metrics``.

    ``MAGNUS_TRACK_<key>_STEP_<n>`` (``track_this(step=n, key=...)``) is the
    value of ``key`` at step ``n``; no step suffix means step 0. Keys are
    lower-cased, values JSON-decoded (else kept as text). A key tracked at step
    0 only is its value; a key tracked at several steps is ``{"step": value}``
    (string keys, as the run log's JSON has them).
    magnus 0.5.1 crashes (KeyError) on a key tracked at one step other than 0;
    here that is ``{"n": value}`` too.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, text in raw.items():
        if not name.startswith(TRACK_PREFIX):
            continue
        key, _, step = name[len(TRACK_PREFIX):].partition(STEP_INDICATOR)
        try:
            index = int(step) if step else 0
        except ValueError:  # "_STEP_" inside the key itself, not followed by a number
            key, index = name[len(TRACK_PREFIX):], 0
        found.setdefault(key.lower(), {})[str(index)] = decode_value(text)
    return {key: steps["0"] if list(steps) == ["0"] else steps for key, steps in found.items()}


def task_writes(environ: Mapping[str, str]) -> dict[str, str]:
    """The raw ``MAGNUS_PRM_`` / ``MAGNUS_TRACK_`` variables of an environment after a task ran."""
    return {k: v for k, v in environ.items() if k.startswith((PARAMETER_PREFIX, TRACK_PREFIX))}


def drop_tracking(environ: MutableMapping[str, str]) -> None:
    """magnus deletes tracked variables once read, so a later task in the process does not see them."""
    for key in [k for k in environ if k.startswith(TRACK_PREFIX)]:
        del environ[key]


@functools.cache
def magnus_shim() -> str | None:
    """The folder to add to a task's path so that ``import magnus`` works, unless magnus is installed."""
    return None if importlib.util.find_spec("magnus") is not None else SHIM
