"""What differs between two runs, as plain data: parameters, steps, metrics and catalog files.

Every section lists every key either run has, with both values and ``same``;
a key one run lacks has no ``a`` (or ``b``). Values compare as JSON (``1`` and
``true`` differ). A step is the same when its status and fingerprint (when
either run records one) agree: durations always differ, and are shown, not
compared. Catalog files compare by the sha256 of their content in
``.catalog/<run_id>/``, read now, not as the run log recorded them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from ..executor.catalog import data_hash
from .store import RunFolder
from .tree import step_rows


class ValuePair(TypedDict):
    key: str
    a: NotRequired[Any]
    b: NotRequired[Any]
    same: bool


class MetricPair(ValuePair):
    step: str


class StepSide(TypedDict):
    status: str
    duration: float | None
    fingerprint: str
    attempts: int
    reused_from: str


class StepPair(TypedDict):
    internal_name: str
    kind: str
    a: NotRequired[StepSide]
    b: NotRequired[StepSide]
    same: bool


class RunDiff(TypedDict):
    """``initial_parameters`` is None when either run did not record them (magnus does not)."""

    a: str
    b: str
    initial_parameters: list[ValuePair] | None
    final_parameters: list[ValuePair]
    steps: list[StepPair]
    metrics: list[MetricPair]
    catalog: list[ValuePair]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> list[ValuePair]:
    out: list[ValuePair] = []
    for key in dict.fromkeys([*a, *b]):
        pair: ValuePair = {"key": str(key), "same": key in a and key in b and _json(a[key]) == _json(b[key])}
        if key in a:
            pair["a"] = a[key]
        if key in b:
            pair["b"] = b[key]
        out.append(pair)
    return out


def initial_parameters(run_log: dict[str, Any]) -> dict[str, Any] | None:
    value = (run_log.get("run_config") or {}).get("initial_parameters")
    return value if isinstance(value, dict) else None


def catalog_hashes(folder: Path) -> dict[str, str]:
    """Every file under a run's catalog folder, by path relative to it (``/``-separated) -> sha256.
    Symbolic links are not followed."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            try:
                out[path.relative_to(folder).as_posix()] = data_hash(path)
            except OSError as exc:
                out[path.relative_to(folder).as_posix()] = f"unreadable: {exc.strerror or exc}"
    return out


def _steps(a: dict[str, Any], b: dict[str, Any]) -> list[StepPair]:
    sides: list[dict[str, tuple[str, StepSide]]] = []
    for run_log in (a, b):
        sides.append({row["internal_name"]: (row["kind"], {
            "status": row["status"], "duration": row["duration"], "fingerprint": row["fingerprint"],
            "attempts": len(row["attempts"]), "reused_from": row["reused_from"]})
            for row in step_rows(run_log) if row["kind"] != "branch"})
    out: list[StepPair] = []
    for name in dict.fromkeys([*sides[0], *sides[1]]):
        left, right = sides[0].get(name), sides[1].get(name)
        same = (left is not None and right is not None and left[1]["status"] == right[1]["status"]
                and left[1]["fingerprint"] == right[1]["fingerprint"])
        pair: StepPair = {"internal_name": name, "kind": (left or right)[0], "same": same}  # type: ignore[index]
        if left is not None:
            pair["a"] = left[1]
        if right is not None:
            pair["b"] = right[1]
        out.append(pair)
    return out


def _metrics(a: dict[str, Any], b: dict[str, Any]) -> list[MetricPair]:
    found: list[dict[str, dict[str, Any]]] = []
    for run_log in (a, b):
        found.append({row["internal_name"]: row["metrics"] for row in step_rows(run_log) if row["metrics"]})
    out: list[MetricPair] = []
    for step in dict.fromkeys([*found[0], *found[1]]):
        for pair in _pairs(found[0].get(step, {}), found[1].get(step, {})):
            out.append({"step": step, **pair})  # type: ignore[typeddict-item]
    return out


def diff_runs(a: dict[str, Any], b: dict[str, Any], folder: str | os.PathLike[str] | RunFolder | None = None,
              ) -> RunDiff:
    """Run logs ``a`` and ``b`` (store.py's ``load_run``) compared; catalogs are read in ``folder``."""
    where = RunFolder.of(folder)
    ids = str(a["run_id"]), str(b["run_id"])
    first, second = initial_parameters(a), initial_parameters(b)
    return {
        "a": ids[0], "b": ids[1],
        "initial_parameters": _pairs(first, second) if first is not None and second is not None else None,
        "final_parameters": _pairs(a.get("parameters") or {}, b.get("parameters") or {}),
        "steps": _steps(a, b),
        "metrics": _metrics(a, b),
        "catalog": _pairs(catalog_hashes(where.catalog_of(ids[0])), catalog_hashes(where.catalog_of(ids[1]))),
    }
