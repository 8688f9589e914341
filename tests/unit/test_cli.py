"""The command line: one line on success, located errors and exit 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from magnus_jupyter import load_yaml, to_yaml

SEED = Path(__file__).resolve().parents[2] / "notebooks" / "pipeline.yaml"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magnus_jupyter", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_validate_prints_one_line_and_exits_0() -> None:
    result = cli("validate", str(SEED))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "valid magnus pipeline" in result.stdout


def test_yaml_prints_the_canonical_form() -> None:
    result = cli("yaml", str(SEED))
    assert result.returncode == 0, result.stderr
    assert result.stdout == to_yaml(load_yaml(SEED))


def test_seed_pipeline_lives_in_notebooks_and_names_real_notebooks() -> None:
    pipeline = load_yaml(SEED)
    root = SEED.parent.parent
    commands = [s.command for _, s, _ in pipeline.walk() if getattr(s, "kind", "") == "notebook"]
    assert len(commands) == 6
    assert all((root / c).is_file() for c in commands)
    names = [name for name, _, _ in pipeline.walk()]
    assert "Train Models.XGBoost.Train XGBoost" in names and "Train Models.RF model.Train RF Model" in names


@pytest.mark.parametrize("command", ["validate", "yaml", "render"])
def test_every_command_has_help(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    for args in (["nonsense"], ["validate"], ["validate", str(tmp_path / "missing.yaml")]):
        result = cli(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr


def test_a_bad_pipeline_names_file_line_and_step(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dag:\n  start_at: a\n  steps:\n    a:\n      type: stub\n      next: b\n"
                   "    success:\n      type: success\n    fail:\n      type: fail\n")
    result = cli("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:6: step 'a': next names 'b'" in result.stderr  # the line of 'next: b'
    assert "Traceback" not in result.stderr
