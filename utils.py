"""Small shared pieces: whole-file writes, readable errors for the command lines, checked loading of .npy files.

Nothing here imports TensorFlow, so rollout workers can use it, and NumPy is imported only inside the functions that
need it, so `single_thread_blas()` still works after `import utils`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

if TYPE_CHECKING:
    import numpy as np


class UserError(Exception):
    """A problem the user can fix (a missing or corrupt input, a bad flag). Printed as one line, exit status 1."""


def run_cli(main: Callable[[], object]) -> None:
    """Run a script's main(): a UserError or Ctrl-C prints one line to stderr and exits non-zero, no traceback."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it.

    The rename is atomic on POSIX, so readers see either the old file or the whole new one, never a partial one.
    `suffix` keeps an extension that a writer insists on (Keras wants names ending in `.weights.h5`).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path) + "-", suffix=suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def save_npy(path: str, array: np.ndarray) -> None:
    """Write one .npy file whole (temporary file, then rename)."""
    import numpy as np

    with atomic_path(path, suffix=".npy") as temporary:
        np.save(temporary, array)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    """Write one uncompressed .npz file whole."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, **arrays)


def save_json(path: str, value: object, indent: int | None = None) -> None:
    """Write one JSON file whole."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            json.dump(value, handle, indent=indent)


def save_bytes(path: str, payload: bytes) -> None:
    """Write one binary file whole."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(payload)


def load_npy(path: str, made_by: str, mmap: bool = True, ndim: int | None = None,
             trailing_shape: Sequence[int] | None = None, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Open a .npy file, checking it exists, parses, and has the expected rank, trailing shape and dtype.

    `made_by` is the command that writes the file; it is named when the file is missing. With `mmap` the array is
    memory-mapped read-only, so a 700 MB frame file costs no memory until its pages are touched.
    """
    import numpy as np

    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as error:  # numpy raises ValueError, OSError or EOFError on truncated or foreign files
        raise UserError(f"{path} is corrupt or not a .npy file ({type(error).__name__}: {error}); "
                        f"delete it and run again: {made_by}") from None
    if ndim is not None and array.ndim != ndim:
        raise UserError(f"{path} has shape {array.shape}, expected {ndim} dimensions; remake it with: {made_by}")
    if trailing_shape is not None and tuple(array.shape[-len(trailing_shape):]) != tuple(trailing_shape):
        raise UserError(f"{path} has shape {array.shape}, expected (..., {', '.join(map(str, trailing_shape))}); "
                        f"remake it with: {made_by}")
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise UserError(f"{path} has dtype {array.dtype}, expected {np.dtype(dtype)}; remake it with: {made_by}")
    return array


def new_or_resumed(kind: str, weights_path: str, history_path: str, new_model: bool, make: Callable[[], object],
                   load: Callable[[], object]) -> tuple[object, list]:
    """The model and history a training script starts from: new (--new_model or nothing saved) or the saved one.

    A resumed model keeps its weights and Adam state and continues its history, so the epoch count goes on. The
    history is read first: one that does not parse as a list is named before the model is built, so a resume never
    silently restarts the count.
    """
    if new_model or not os.path.exists(weights_path):
        if not new_model:
            print(f"no saved {kind} at {weights_path}: starting a new model")
        return make(), []
    history = []
    if os.path.exists(history_path):
        try:
            with open(history_path) as handle:
                history = json.load(handle)
        except (OSError, ValueError):  # unreadable, truncated or not JSON
            history = None
    if not isinstance(history, list):
        raise UserError(f"{history_path} is corrupt (not a training history); delete it to resume {weights_path} "
                        f"with a fresh epoch count, or pass --new_model to start over")
    model = load()
    print(f"resuming from {weights_path} (weights and Adam state)")
    return model, history


def require_file(path: str, made_by: str) -> str:
    """Return `path` if it exists, else raise a UserError naming the command that makes it."""
    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    return path


def single_thread_blas() -> None:
    """Ask every BLAS/OpenMP runtime for one thread; call before importing NumPy in worker processes."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                     "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter; call before importing keras or tensorflow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def batch_range_files(kind: str, env_name: str, start_batch: int, max_batch: int, made_by: str,
                      data_dir: str) -> list[tuple[int, str]]:
    """(batch, path) of the batch files start..max (inclusive) that exist; a UserError names `made_by` if none do."""
    from config import data_file

    if max_batch < start_batch:
        raise UserError(f"--max_batch {max_batch} is below --start_batch {start_batch}")
    paths = [(b, data_file(kind, env_name, b, data_dir)) for b in range(start_batch, max_batch + 1)]
    present = [(b, p) for b, p in paths if os.path.exists(p)]
    if not present:
        raise UserError(f"no {kind} files for batches {start_batch}..{max_batch} in {data_dir} "
                        f"(looked for {paths[0][1]}); make them with: {made_by}")
    return present


@functools.lru_cache(maxsize=None)
def repo_root() -> str:
    """The folder this file lives in (the project's top level)."""
    return os.path.dirname(os.path.abspath(__file__))


def random_weights(shapes: dict, seed: int, scale: float = 1.0) -> dict:
    """float32 arrays of the given shapes (e.g. vae.numpy_vae.expected_vae_shapes), Gaussian and fan-in scaled so
    activations stay of order one: weights of the paper's shapes with random values, for benchmarks and tests."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {key: (rng.standard_normal(shape) * scale / np.sqrt(np.prod(shape[:-1]) if len(shape) > 1 else 10.0)
                  ).astype(np.float32) for key, shape in shapes.items()}
