"""A Keras model's files (V's and M's): saved whole and together with their NumPy copy and training history,
resumed, refused when they hold NaN or when the disk has no room for them.

Nothing here imports TensorFlow or NumPy at import time: the callers pass their Keras model.
"""

from __future__ import annotations

import os
from typing import Callable

from cli import UserError
from files import atomic_path, save_json
from npyio import save_npz
from processes import signals_deferred


def check_room_for_model(model, folder: str) -> None:
    """A UserError naming `folder` unless its disk has room for one more save of a Keras model's files.

    Asked before training starts and before every save: HDF5 (under Keras's save_weights) that meets a full disk
    mid-write leaves its library broken, and the process then crashes at exit (a segfault after a traceback) however
    the error is handled. A save needs its weights about four times over (the .weights.h5 holds them with Adam's two
    moments, the .npz once more), and the old files stay until the new ones are whole.
    """
    import numpy as np

    weights = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    needed = 4 * weights + (1 << 20)
    try:
        stats = os.statvfs(folder)
    except OSError:
        return  # the folder is made, and any problem named, by the save itself
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        raise UserError(f"cannot write to {folder}: the disk is full ({free / 1e6:.1f} MB free, a save of the model "
                        f"needs about {needed / 1e6:.1f} MB)")


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
    from reading import LOG_JSON_BYTES, read_json

    history = []
    if os.path.lexists(history_path):
        try:
            history = read_json(history_path, LOG_JSON_BYTES, "a training history", "")
        except UserError:  # unreadable, not a regular file, too large, truncated or not JSON
            history = None
    if not isinstance(history, list):
        raise UserError(f"{history_path} is corrupt (not a training history); delete it to resume {weights_path} "
                        f"with a fresh epoch count, or pass --new_model to start over")
    model = load()
    print(f"resuming from {weights_path} (weights and Adam state)")
    return model, history


def refuse_the_other_models_folder(folder: str, env_name: str, flag: str) -> None:
    """02 and 04 name their files alike (<env>.weights.h5, .npz, .history.json): a UserError if `folder` (the one
    given with `flag`, --vae_dir or --rnn_dir) holds the other model's, which this run would overwrite or fail on."""
    from reading import WEIGHTS_BYTES, NpzArchive

    ours, theirs, prefix = (("V", "M", "lstm/") if flag == "--vae_dir" else ("M", "V", "enc_conv0/"))
    path = os.path.join(folder, f"{env_name}.npz")
    if not os.path.lexists(path):
        return
    try:
        with NpzArchive(path, WEIGHTS_BYTES, "") as archive:
            names = archive.names
    except UserError:  # not an archive: the loaders name a damaged file themselves
        return
    if any(name.startswith(prefix) for name in names):
        raise UserError(f"{folder} holds {theirs}'s files ({path} is {theirs}, not {ours}): {ours} would write over "
                        f"them; give {ours} a folder of its own with {flag}")


def claim_model_folder(folder: str, env_name: str, flag: str, lock: bool = True) -> None:
    """Before 02 or 04 trains: refuse the other model's folder (refuse_the_other_models_folder), then (`lock`) take
    the folder's lock, so that one run at a time writes <env>.*; the lock file also checks that the folder takes
    files, and a killed run's temporary files there go."""
    from files import lock_outputs, temporaries_of

    refuse_the_other_models_folder(folder, env_name, flag)
    if lock:
        lock_outputs(folder, env_name, [(folder, temporaries_of(rf"{env_name}\..+"))])


def save_model_files(model, kind: str, weights_path: str, numpy_path: str,
                     history: tuple[str, list] | None = None) -> None:
    """Write a Keras model's weights with its optimizer's state (`weights_path`, .weights.h5) and their NumPy copy
    for the rollout workers (`numpy_path`, .npz), each whole, and the training history (path, rows) that counts
    them. A Ctrl-C or SIGTERM waits until all are written, so they never disagree (03 encodes with the first, 05
    plays with the second, a resume goes on from the history's count)."""
    require_finite_before_save(model, kind, weights_path)
    check_room_for_model(model, os.path.dirname(weights_path))  # before HDF5 can meet a full disk
    with signals_deferred():
        with atomic_path(weights_path, suffix=".weights.h5") as temporary:
            model.save_weights(temporary)
        save_npz(numpy_path, **model.numpy_weights())
        if history is not None:
            save_json(history[0], history[1], indent=1)


def nonfinite_variables(model) -> list[str]:
    """Names of a Keras model's weights and optimizer variables (Adam's moments) holding NaN or infinite values."""
    import numpy as np

    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    return [getattr(v, "path", v.name) for v in variables if not np.all(np.isfinite(np.asarray(v.numpy())))]


def require_finite_model(model, path: str, made_by: str) -> None:
    """After loading `path` into a Keras model: a UserError naming the file if any weight is NaN or infinite (a
    run that diverged; resuming from it would train NaN into every later file)."""
    bad = nonfinite_variables(model)
    if bad:
        raise UserError(f"{path} holds NaN or infinite values ({len(bad)} variables, e.g. {bad[0]}); delete it and "
                        f"run: {made_by}")


def require_finite_before_save(model, kind: str, path: str) -> None:
    """Before a training script overwrites `path`: refuse to save weights that hold NaN or infinite values, so the
    file on disk keeps the last good weights."""
    bad = nonfinite_variables(model)
    if bad:
        raise UserError(f"{kind}'s weights became NaN or infinite in training ({len(bad)} variables, e.g. {bad[0]}); "
                        f"not saved, {path} keeps the last good weights; try a lower --learning_rate")
