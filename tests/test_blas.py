"""One BLAS for every machine: prepare_blas() gives each process one BLAS thread and pins OpenBLAS to the AVX2 + FMA
kernels (Haswell) on every x86-64 CPU that runs them, unless the user chose a kernel. Another kernel adds in another
order, and a seeded CarRacing episode then scores differently (tests/test_shipped.py replays the shipped agents'
episodes, recorded on an AMD CPU, on whatever machine runs the suite). Checked in fresh processes, as NumPy reads the
setting once, when it loads.

The suite expects an x86-64 CPU with AVX2 and FMA (where the shipped episodes replay exactly)."""

import os
import subprocess
import sys

import utils

PROBE = ("import os, utils; utils.prepare_blas(); import numpy; "
         "print(utils.blas_kernel(), os.environ.get('OPENBLAS_CORETYPE'), os.environ['OPENBLAS_NUM_THREADS'])")


def probe(**variables):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")}
    environment.update(variables)
    result = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True,
                            timeout=120, cwd=utils.repo_root())
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def cpu_flags():
    with open("/proc/cpuinfo") as cpuinfo:
        return next(set(line.partition(":")[2].split()) for line in cpuinfo if line.startswith("flags"))


def test_the_cpu_check_reads_the_flags():
    assert utils.runs_avx2_fma() == ({"avx2", "fma"} <= cpu_flags())
    assert utils.runs_avx2_fma()  # the suite's machines: the shipped agents' episodes replay exactly on these


def test_every_avx2_machine_runs_the_haswell_kernels_with_one_thread():
    assert probe() == ["Haswell", "Haswell", "1"]


def test_a_kernel_or_thread_count_the_user_chose_is_kept():
    assert probe(OPENBLAS_CORETYPE="Sandybridge", OPENBLAS_NUM_THREADS="2") == ["Sandybridge", "Sandybridge", "2"]


def test_the_suite_itself_runs_the_pinned_kernels():
    assert utils.blas_kernel() == utils.BLAS_KERNEL == "Haswell"
