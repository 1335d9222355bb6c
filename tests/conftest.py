"""Test set-up: one BLAS thread and the pinned OpenBLAS kernels (as rollout workers run: blas.prepare_blas),
headless pygame, quiet TensorFlow, and no temporary folders of earlier runs left to fill the disk. The project's
modules import through its editable install (make venv); pytest.ini puts the repository root on the path for
tests.*."""

import os
import time

import pytest
from _pytest.pathlib import cleanup_numbered_dir
from _pytest.tmpdir import LOCK_TIMEOUT

from blas import prepare_blas

prepare_blas()  # before NumPy loads
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    """Whatever a test started through tests.scripts (popen, start, run) is killed with its process group when the
    test ends, passed or failed."""
    yield
    from tests.scripts import end_started

    end_started()


def pytest_sessionstart(session):
    """Earlier runs' temporary folders go before this run writes its own, not only when it exits (pytest's way),
    so that a run finds the disk the last one left. A folder still locked by a live run stays."""
    factory = getattr(session.config, "_tmp_path_factory", None)  # absent under -p no:tmpdir
    if factory is not None and factory._given_basetemp is None:
        current = factory.getbasetemp()
        cleanup_numbered_dir(current.parent, prefix="pytest-", keep=1,
                             consider_lock_dead_if_created_before=time.time() - LOCK_TIMEOUT)


@pytest.fixture
def closing():
    """Call closing(env) to have env closed at the end of the test, whatever happens."""
    opened = []
    yield lambda env: opened.append(env) or env
    for env in opened:
        env.close()
