"""Experiment trackers: ``do-nothing`` and ``mlflow``, as magnus 0.5 configures them.

The orchestrator publishes each task's tracked metrics after the task (magnus'
``publish_data``); a task's ``get_experiment_tracker_context()`` opens the same
tracker run from the task's own process. With mlflow both find the run by its
name, the magnus run id, in the experiment named by the run's tag (else
``Default``), and create it the first time. mlflow is an optional extra
(``pip install 'magnus-jupyter[mlflow]'``), imported only here, only when used.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "Default"


class TrackerError(Exception):
    """The tracker cannot be used (mlflow missing, server unreachable); the message says which."""


def tracker_for(config: dict[str, Any], run_id: str, tag: str = "") -> DoNothingTracker | MlflowTracker:
    """The tracker of a run from its ``{"type": ..., "config": {...}}`` (validated by ``config.py``)."""
    if config.get("type") == "mlflow":
        return MlflowTracker(dict(config.get("config") or {}), run_id, tag)
    return DoNothingTracker()


class DoNothingTracker:
    def publish(self, metrics: dict[str, Any]) -> None:
        """Nothing to do."""

    def client_context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()


class MlflowTracker:
    """One magnus run's mlflow run, found (or created) by name in the run tag's experiment."""

    def __init__(self, config: dict[str, Any], run_id: str, tag: str = "") -> None:
        self.server_url = str(config.get("server_url", ""))
        self.autolog = bool(config.get("autolog", False))
        self.run_name = run_id
        self.experiment_name = tag or DEFAULT_EXPERIMENT
        self._lock = threading.Lock()
        self._mlflow: Any = None
        self._run: str | None = None

    def _client(self) -> Any:
        if self._mlflow is None:
            try:
                import mlflow
            except ImportError:
                raise TrackerError("experiment_tracker mlflow: mlflow is not installed "
                                   "(pip install 'magnus-jupyter[mlflow]')") from None
            mlflow.set_tracking_uri(self.server_url)
            self._mlflow = mlflow
        return self._mlflow

    def _run_id(self) -> str:
        """The mlflow run of this magnus run: the one named so in the experiment, else a new one."""
        with self._lock:
            if self._run is None:
                mlflow = self._client()
                client = mlflow.MlflowClient()
                experiment = client.get_experiment_by_name(self.experiment_name)
                experiment_id = experiment.experiment_id if experiment else \
                    client.create_experiment(self.experiment_name)
                quoted = self.run_name.replace("'", "\\'")
                found = client.search_runs([experiment_id], filter_string=f"tags.mlflow.runName = '{quoted}'",
                                           max_results=1)
                self._run = found[0].info.run_id if found else \
                    client.create_run(experiment_id, run_name=self.run_name).info.run_id
            return self._run

    def publish(self, metrics: dict[str, Any]) -> None:
        """magnus' rule: a float is a metric, anything else a parameter ``<key>_<step>``; a mapping holds
        one value per step."""
        if not metrics:
            return
        client = self._client().MlflowClient()
        run = self._run_id()
        for key, value in metrics.items():
            steps = value.items() if isinstance(value, dict) else [(0, value)]
            for step, item in steps:
                number = int(step) if str(step).isdigit() else 0
                if isinstance(item, float):
                    client.log_metric(run, key, item, step=number)
                else:
                    client.log_param(run, f"{key}_{step}", item)

    @contextlib.contextmanager
    def client_context(self) -> Iterator[Any]:
        """``mlflow.start_run`` on this magnus run's mlflow run: the task logs beside the step's metrics."""
        mlflow = self._client()
        if self.autolog:
            mlflow.autolog(log_models=False)
        with mlflow.start_run(run_id=self._run_id()) as active:
            yield active
