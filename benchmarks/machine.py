"""What machine a benchmark ran on: the CPU model, its vector extensions and the BLAS kernels the project pins.

Every figure of `make bench` is a property of the machine as much as of the code (XLA beat plain TensorFlow by 3x on
one CPU and lost by 2x on another), so each run says where it ran and docs/benchmarks.md keeps a table per machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

# The vector extensions that decide how fast the matrix products and convolutions run, in the order printed.
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                     "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, list[str], int | None]:
    """(CPU model, its vector extensions among VECTOR_EXTENSIONS, hardware threads per core) from /proc/cpuinfo;
    where that file is missing (not Linux), platform's processor name, no extensions and None. Two threads a core
    share one core's execution units: two workers on them cannot run twice as fast as one."""
    model, flags, siblings, cores = "", set(), None, None
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key == "siblings" and siblings is None:
                    siblings = int(value)
                elif key == "cpu cores" and cores is None:
                    cores = int(value)
    except (OSError, ValueError):
        pass
    threads = siblings // cores if siblings and cores else None
    return (model or platform.processor() or platform.machine(), [name for name in VECTOR_EXTENSIONS if name in flags],
            threads)


def pinned_blas_kernel() -> str:
    """The OpenBLAS kernels a rollout worker runs (blas.prepare_blas pins them before NumPy loads), asked of a fresh
    Python: pinning them here would also set one thread for the TensorFlow the benchmarks run in this process."""
    code = "from blas import prepare_blas; prepare_blas(); from blas import blas_kernel; print(blas_kernel())"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def describe() -> str:
    """One line: CPU model, logical CPUs and threads a core, vector extensions, the OpenBLAS kernels rollout workers
    run, Python."""
    model, extensions, threads = cpu_info()
    cores = f"{os.cpu_count()} logical CPUs" + (f" ({threads} a core)" if threads else "")
    return (f"machine: {model}, {cores}; vector extensions: {' '.join(extensions) or 'none known'}; "
            f"OpenBLAS kernels (pinned for rollouts): {pinned_blas_kernel()}; Python {platform.python_version()}")
