"""One real LocalCluster of 2 worker processes (and one local pool of 2 slots) serves each test module:
starting one costs seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dask_processes import cluster_processes, wait_gone

from magnus_jupyter.executor.dask_slots import DaskSlots
from magnus_jupyter.executor.slots import TaskSlots


@pytest.fixture(scope="module")
def dask_slots() -> Iterator[DaskSlots]:
    slots = DaskSlots(2, warm_kernels=True)
    try:
        yield slots
    finally:
        started = cluster_processes(slots)
        slots.close()
        wait_gone(started, "the cluster's processes end")


@pytest.fixture(scope="module")
def local_slots() -> Iterator[TaskSlots]:
    """The local executor's pool of 2 slots, to run the same pipelines as on the cluster."""
    with TaskSlots(2, warm_kernels=True) as slots:
        yield slots
