""".npy and .npz files: written whole (save_npy, save_npy_set, save_npz), opened with their shape, dtype and values
checked (load_npy, require_finite, check_lengths), and the data batches a stage reads (batch_range_files).

Nothing here imports TensorFlow, and NumPy is imported only inside the functions that need it, so
`blas.prepare_blas()` still works after `import npyio`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import TYPE_CHECKING, Sequence

from cli import UserError
from files import atomic_path
from processes import signals_deferred

if TYPE_CHECKING:
    import numpy as np


def save_npy(path: str, array: np.ndarray) -> None:
    """Write one .npy file whole (temporary file, then rename)."""
    import numpy as np

    with atomic_path(path, suffix=".npy") as temporary:
        np.save(temporary, array)


def save_npy_set(files: dict[str, np.ndarray]) -> None:
    """Write several .npy files as one set: every array to its temporary file first, then the renames, all under
    signals_deferred. A full disk or a stop part-way leaves every file as it was, never some new beside some old
    (one rewrite of a batch's files after another, from a retrained V, would have mixed the two)."""
    import numpy as np

    with signals_deferred(), contextlib.ExitStack() as renames:  # the renames run as the stack unwinds
        for path, array in files.items():
            temporary = renames.enter_context(atomic_path(path, suffix=".npy"))
            np.save(temporary, array)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """Write one uncompressed .npz file whole."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, **arrays)


def load_npy(path: str, made_by: str, mmap: bool = True, ndim: int | None = None,
             trailing_shape: Sequence[int] | None = None, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Open a .npy file, checking it exists, parses, and has the expected rank, trailing shape and dtype.

    `made_by` is the command that writes the file; it is named when the file is missing. With `mmap` the array is
    memory-mapped read-only, so a 700 MB frame file costs no memory until its pages are touched.
    """
    import numpy as np

    from reading import DATA_NPY_BYTES, read_npy

    if not os.path.lexists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    array = read_npy(path, DATA_NPY_BYTES, f"delete it and run again: {made_by}", mmap)
    if not array.flags.c_contiguous:  # only a foreign file: readers such as 02's read frames as raw C-order bytes
        raise UserError(f"{path} is stored in Fortran order; this project reads and writes C order: "
                        f"remake it with: {made_by}")
    if ndim is not None and array.ndim != ndim:
        raise UserError(f"{path} has shape {array.shape}, expected {ndim} dimensions; remake it with: {made_by}")
    if trailing_shape is not None and tuple(array.shape[-len(trailing_shape):]) != tuple(trailing_shape):
        raise UserError(f"{path} has shape {array.shape}, expected (..., {', '.join(map(str, trailing_shape))}); "
                        f"remake it with: {made_by}")
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise UserError(f"{path} has dtype {array.dtype}, expected {np.dtype(dtype)}; remake it with: {made_by}")
    require_finite(array, path, made_by)
    return array


def all_finite(array: np.ndarray, chunk_elements: int = 1 << 24) -> bool:
    """True if no element of a float array is NaN or infinite (other dtypes: always True). A memory-mapped array
    is checked a slab of its first axis at a time, so the check never holds more than a slab's mask in memory."""
    import numpy as np

    if array.dtype.kind not in "fc":
        return True
    if array.ndim == 0 or array.size <= chunk_elements:
        return bool(np.isfinite(array).all())
    rows = max(1, chunk_elements // max(1, array.size // len(array)))
    return all(bool(np.isfinite(array[start:start + rows]).all()) for start in range(0, len(array), rows))


def require_finite(array: np.ndarray, path: str, made_by: str, what: str = "") -> None:
    """A UserError naming `path` (and `what` inside it) if a float array holds NaN or infinite values: they would
    train to NaN weights or end every episode at once, and such a file is never worth running on."""
    if not all_finite(array):
        raise UserError(f"{path}{': ' + what if what else ''} holds NaN or infinite values; "
                        f"remake it with: {made_by}")


def check_lengths(lengths: np.ndarray, time_steps: int, path: str, made_by: str) -> None:
    """Episode lengths (episodes,) must be integers in 1..time_steps: a length of 0 or a negative one records no
    frame (all-zero lengths leave nothing to train on), and one beyond the file's steps reads past its end."""
    if lengths.dtype.kind not in "iu":
        raise UserError(f"{path} has dtype {lengths.dtype}, expected integer episode lengths; remake it with: "
                        f"{made_by}")
    if len(lengths) == 0:  # only a foreign file: 01 writes at least one episode a batch
        raise UserError(f"{path} holds no episodes; remake it with: {made_by}")
    if not (lengths.min() >= 1 and lengths.max() <= time_steps):
        raise UserError(f"{path} has episode lengths from {lengths.min()} to {lengths.max()}, expected 1.."
                        f"{time_steps}; remake it with: {made_by}")


def batch_range_files(kind: str, env_name: str, start_batch: int, max_batch: int, made_by: str,
                      data_dir: str) -> list[tuple[int, str]]:
    """(batch, path) of the batch files start..max (inclusive). Every one must exist: a UserError names the missing
    batches and `made_by` (a file silently skipped would train on less than the user asked for; a range with a gap
    on purpose is two runs, one a side)."""
    from config import DATA_DIR, data_file

    if start_batch < 0:
        raise UserError(f"--start_batch must be 0 or more, got {start_batch}")
    if max_batch < start_batch:
        raise UserError(f"--max_batch {max_batch} is below --start_batch {start_batch}")
    paths = [(b, data_file(kind, env_name, b, data_dir)) for b in range(start_batch, max_batch + 1)]
    missing = [b for b, p in paths if not os.path.exists(p)]
    if len(missing) == len(paths):
        raise UserError(f"no {kind} files for batches {start_batch}..{max_batch} in {data_dir} "
                        f"(looked for {paths[0][1]}); make them with: {made_by}")
    if missing:
        import re

        first, last = missing[0], missing[0]
        while last + 1 in missing:
            last += 1
        # the command for the first run of missing batches, in this data folder
        command = re.sub(r"--max_batch \d+", f"--max_batch {last}",
                         re.sub(r"--start_batch \d+", f"--start_batch {first}", made_by))
        if os.path.normpath(data_dir) != os.path.normpath(DATA_DIR):
            command += f" --data_dir {shlex.quote(data_dir)}"
        if "--total_episodes" in command:  # 01 writes as many batches as its episodes fill: only the missing ones,
            # of the size of the batches beside them (the seeds follow batch x batch_size), else it writes over those
            size = batch_episodes(next(path for b, path in paths if b not in missing))
            if size is None:
                command += " (--total_episodes: the missing batches' episodes, with the --batch_size that made them)"
            else:
                command = re.sub(r"--total_episodes \d+", f"--total_episodes {(last - first + 1) * size} "
                                 f"--batch_size {size}", command)
            command += " and the flags that made the batches beside them (--controller, --seed, --time_steps)"
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise UserError(f"batches {number_ranges(missing)} of {start_batch}..{max_batch} are missing "
                        f"({data_file(kind, env_name, first, data_dir)}{more}); make them with: {command}; or run "
                        f"the ranges on either side of the gap one after the other")
    return paths


def batch_episodes(path: str) -> int | None:
    """The number of episodes in a batch file (its first dimension), from its header; None if it cannot be read."""
    from reading import DATA_NPY_BYTES, npy_shape

    try:
        shape, _ = npy_shape(path, DATA_NPY_BYTES, "")
        return int(shape[0])
    except (UserError, IndexError):  # any unreadable file: the caller names no size
        return None


def number_ranges(numbers: Sequence[int]) -> str:
    """[3, 5, 6, 7, 9] -> '3, 5..7, 9'."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)
