"""Stage 01's batch files read back, checked: the frames (memory-mapped) and episode lengths V trains on (02), with
the actions and done flags that 03 encodes beside them. NumPy only: a bad file fails before TensorFlow loads."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cli import UserError
from config import FRAME_SIZE, MAKES_OBS_DATA, data_file
from npyio import batch_range_files, check_lengths, load_npy


class RolloutBatch(NamedTuple):
    """Batch `batch` (its frames at `path`): frames (E, T, 64, 64, 3) uint8 memory-mapped, lengths (E,); actions
    (E, T, A) and dones (E, T) where asked for (else None)."""

    batch: int
    path: str
    frames: np.ndarray
    lengths: np.ndarray
    actions: np.ndarray | None = None
    dones: np.ndarray | None = None


def read_rollout_batch(env_name: str, batch: int, obs_path: str, data_dir: str,
                       action_size: int | None = None) -> RolloutBatch:
    """The files of batch `batch` (its frames at `obs_path`), checked to match: frames and lengths, and with
    `action_size` the actions and done flags too; a UserError names the command that remakes them."""
    made_by = MAKES_OBS_DATA.format(env=env_name)
    frames = load_npy(obs_path, made_by, ndim=5, trailing_shape=(FRAME_SIZE, FRAME_SIZE, 3), dtype="uint8")
    length_path = data_file("length_data", env_name, batch, data_dir)
    actions = dones = None
    if action_size is None:
        lengths = load_npy(length_path, made_by, mmap=False, ndim=1)
        if len(lengths) != len(frames):
            raise UserError(f"{length_path} has {len(lengths)} episodes but {obs_path} has {len(frames)}; "
                            f"remake them with: {made_by}")
    else:
        actions, lengths, dones = (load_npy(data_file(kind, env_name, batch, data_dir), made_by, mmap=False)
                                   for kind in ("action_data", "length_data", "done_data"))
        episodes, time_steps = frames.shape[:2]
        if actions.shape != (episodes, time_steps, action_size) or lengths.shape != (episodes,) \
                or dones.shape != (episodes, time_steps):
            raise UserError(f"batch {batch}: {obs_path} {frames.shape}, actions {actions.shape}, lengths "
                            f"{lengths.shape} and dones {dones.shape} do not match; remake them with: {made_by}")
    check_lengths(lengths, frames.shape[1], length_path, made_by)
    return RolloutBatch(batch, obs_path, frames, lengths, actions, dones)


def read_rollout_range(env_name: str, start_batch: int, max_batch: int, data_dir: str,
                       action_size: int | None = None) -> list[RolloutBatch]:
    """Batches start..max (every one must exist), each read and checked (read_rollout_batch)."""
    made_by = MAKES_OBS_DATA.format(env=env_name)
    return [read_rollout_batch(env_name, batch, path, data_dir, action_size)
            for batch, path in batch_range_files("obs_data", env_name, start_batch, max_batch, made_by, data_dir)]
