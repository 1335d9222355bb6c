"""The suite's temporary folders: a run of pytest leaves nothing behind when its tests pass and removes the folders
of earlier finished runs when it starts (pytest.ini, conftest.py), so that runs on one machine never add up to a
full disk. Checked with a real pytest run in a child process whose temporary root is a folder of this test."""

import os
import sys
from pathlib import Path

import pytest
from _pytest.tmpdir import get_user

from tests.scripts import run_command

ROOT = Path(__file__).resolve().parent.parent


def test_a_test_writes_a_megabyte_in_tmp_path(tmp_path):
    """The child run's test (it passes, so its folder must go)."""
    (tmp_path / "weights.bin").write_bytes(bytes(1 << 20))
    assert (tmp_path / "weights.bin").stat().st_size == 1 << 20


def child_pytest(tmp_root: Path, test: str):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}  # a debug
    environment["TMPDIR"] = str(tmp_root)  # temporary root or --basetemp of the parent run would be the child's
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/{Path(__file__).name}::{test}"]
    return run_command(command, cwd=ROOT, env=environment, timeout=300)


@pytest.mark.slow
def test_a_passing_run_removes_earlier_runs_folders_and_leaves_none_of_its_own(tmp_path):
    runs = tmp_path / f"pytest-of-{get_user() or 'unknown'}"  # pytest's own name for the folder
    finished = runs / "pytest-7"  # an earlier run that ended (its lock is gone)
    finished.mkdir(parents=True)
    (finished / "old_model.bin").write_bytes(bytes(1000))
    live = runs / "pytest-6"  # a run still going in another shell: its lock is fresh
    live.mkdir()
    (live / ".lock").write_text(str(os.getpid()))
    (live / "in_use.bin").write_bytes(bytes(1000))
    result = child_pytest(tmp_path, "test_a_test_writes_a_megabyte_in_tmp_path")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not finished.exists()
    assert (live / "in_use.bin").exists()
    assert not (runs / "pytest-8").exists()  # the child's own folder, removed at its exit since its test passed
    assert sorted(path.name for path in runs.iterdir() if path.name.startswith("pytest-")) == ["pytest-6"]
