"""BLAS pinning: one thread and the same OpenBLAS kernels on every machine (prepare_blas, before NumPy loads), and
the kernels this process runs (blas_kernel).
"""

from __future__ import annotations

import functools
import os
import platform


# The thread-count variables of every BLAS/OpenMP runtime NumPy may load: the one list (rollout workers, model.py,
# MPI children, benchmarks and tests all set them through here).
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                  "NUMEXPR_NUM_THREADS")


# OpenBLAS picks its kernels by CPU, and kernels add in different orders: the same controller's actions differ in
# the last bits with OpenBLAS's SkylakeX kernels (AVX-512, its choice on some CPUs) and its Haswell ones (AVX2), and
# a CarRacing episode grows that into another score (145.3 against 142.4 for one short episode of a shipped agent).
# Pinned to the AVX2 + FMA kernels, which every x86-64 CPU since 2013 runs, an episode scores the same on every such
# machine.
BLAS_KERNEL = "Haswell"
PINNED_MARKER = "WORLD_MODELS_PINNED_BLAS"  # says OPENBLAS_CORETYPE was set here, not by the user


def runs_avx2_fma() -> bool:
    """Whether this is an x86-64 CPU with AVX2 and FMA (Linux: /proc/cpuinfo; elsewhere, unknown: False)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return {"avx2", "fma"} <= set(line.partition(":")[2].split())
    except OSError:
        pass
    return False


def prepare_blas(one_thread: bool = True) -> None:
    """Call before importing NumPy. Every BLAS/OpenMP runtime gets one thread (the agent's matrices are small, and
    one thread a process is fastest when every core runs a worker; one_thread=False leaves the counts alone), and
    OpenBLAS the kernels of BLAS_KERNEL where the CPU runs them, so that a seeded episode scores the same on every
    such machine. A kernel the user set wins; one pinned by a parent process (an MPI launch reaching other hosts) is
    decided again for this CPU."""
    if one_thread:
        for variable in BLAS_VARIABLES:
            os.environ.setdefault(variable, "1")
    if os.environ.get(PINNED_MARKER) and os.environ.get("OPENBLAS_CORETYPE") == os.environ[PINNED_MARKER]:
        del os.environ["OPENBLAS_CORETYPE"]
    if not os.environ.get("OPENBLAS_CORETYPE") and runs_avx2_fma():
        os.environ["OPENBLAS_CORETYPE"] = os.environ[PINNED_MARKER] = BLAS_KERNEL


@functools.cache
def blas_kernel() -> str | None:
    """The kernels NumPy's OpenBLAS runs in this process ("Haswell", "SkylakeX", ...), None where that is unknown
    (fixed once NumPy has loaded: looked up once a process)."""
    import ctypes
    import glob

    import numpy

    libraries = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libraries, "libscipy_openblas*.so")):
        try:
            library = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
                function = getattr(library, name, None)
                if function is not None:
                    function.restype = ctypes.c_char_p
                    return function().decode()
        except (OSError, AttributeError, UnicodeDecodeError):  # a build without the symbol, a NULL answer
            return None
    return None
