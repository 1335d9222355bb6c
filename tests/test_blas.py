"""One BLAS for every machine: prepare_blas() gives each process one BLAS thread and pins OpenBLAS to the AVX2 + FMA
kernels (Haswell) on every x86-64 CPU that runs them, unless the user chose a kernel. Another kernel adds in another
order, and a seeded CarRacing episode then scores differently (tests/test_shipped.py replays the shipped agents'
episodes, recorded on an AMD CPU, on whatever machine runs the suite). Checked in fresh processes, as NumPy reads the
setting once, when it loads.

The suite expects an x86-64 CPU with AVX2 and FMA (where the shipped episodes replay exactly)."""

import os
import sys

import pytest

import blas
from files import repo_root
from tests.scripts import run_command

PROBE = ("import os, blas; blas.prepare_blas(); import numpy; "
         "print(blas.blas_kernel(), os.environ.get('OPENBLAS_CORETYPE'), os.environ['OPENBLAS_NUM_THREADS'])")


def probe(code=PROBE, **variables):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", blas.PINNED_MARKER)}
    environment.update(variables)
    result = run_command([sys.executable, "-c", code], env=environment, timeout=120, cwd=repo_root())
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def cpu_flags():
    with open("/proc/cpuinfo") as cpuinfo:
        return next(set(line.partition(":")[2].split()) for line in cpuinfo if line.startswith("flags"))


def test_the_suites_machines_run_the_avx2_kernels():
    assert {"avx2", "fma"} <= cpu_flags()  # where the shipped agents' episodes replay exactly
    assert blas.runs_avx2_fma()


def test_every_avx2_machine_runs_the_haswell_kernels_with_one_thread():
    assert probe() == ["Haswell", "Haswell", "1"]


def test_a_kernel_or_thread_count_the_user_chose_is_kept():
    assert probe(OPENBLAS_CORETYPE="Sandybridge", OPENBLAS_NUM_THREADS="2") == ["Sandybridge", "Sandybridge", "2"]


def test_the_suite_itself_runs_the_pinned_kernels():
    assert blas.blas_kernel() == blas.BLAS_KERNEL == "Haswell"


def test_a_kernel_pinned_by_a_parent_process_is_decided_again_here():
    """An MPI launch passes its environment to every rank, on other hosts too: a rank on a CPU without AVX2 must not
    inherit the pin as if the user had asked for it (OpenBLAS would run instructions the CPU lacks)."""
    parent = {"OPENBLAS_CORETYPE": "Sandybridge", blas.PINNED_MARKER: "Sandybridge"}  # as if pinned to that
    assert probe(**parent)[:2] == ["Haswell", "Haswell"]
    user = {"OPENBLAS_CORETYPE": "Sandybridge", blas.PINNED_MARKER: "Haswell"}  # the user changed it since
    assert probe(**user)[:2] == ["Sandybridge", "Sandybridge"]


@pytest.mark.parametrize("script", ["01_generate_data.py", "03_generate_rnn_data.py", "05_train_controller.py",
                                    "model.py", "pretrained.py", "sweep_temperature.py"])
def test_every_script_that_runs_numpy_models_pins_the_kernels_when_it_loads(script):
    """Loading the script (not running it) must pin before NumPy loads; 03 (V's NumPy copy encodes there) keeps
    NumPy's thread count, the others ask for one thread."""
    code = ("import importlib.util, os, sys; sys.argv = ['x']; "
            f"spec = importlib.util.spec_from_file_location('script', {script!r}); "
            "module = sys.modules['script'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            "import numpy, blas; "
            "print(blas.blas_kernel(), os.environ.get('OPENBLAS_CORETYPE'), os.environ.get('OPENBLAS_NUM_THREADS'))")
    assert probe(code) == ["Haswell", "Haswell", "None" if script.startswith("03") else "1"]
