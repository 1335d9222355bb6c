"""Training plumbing for V: uint8 minibatches straight from memory-mapped batch files, and whole-file checkpoints.

Files: ./vae/<env>.weights.h5 (Keras weights, what training resumes from) and ./vae/<env>.npz (the same weights as
NumPy arrays, what TensorFlow-free rollout workers load). Both are written whole (temporary file, then rename).
"""

from __future__ import annotations

import os

import numpy as np

from config import MAKES_VAE, vae_weights_path
from utils import UserError, atomic_path, save_npz
from vae.arch import make_vae

import keras  # noqa: E402  (vae.arch configured the backend)


def valid_frame_index(lengths: np.ndarray, time_steps: int) -> np.ndarray:
    """Flat indices (episode * T + t) of the recorded frames, skipping the zero padding after each episode's end."""
    steps = np.arange(time_steps)
    mask = steps[None, :] < np.asarray(lengths)[:, None]
    return np.flatnonzero(mask.ravel())


class FrameBatches(keras.utils.PyDataset):
    """Shuffled minibatches of uint8 frames (B, 64, 64, 3) from one memory-mapped obs file.

    Only the frames of one minibatch are read into memory at a time; they stay uint8 until the model scales them,
    so a 737 MB batch file never becomes a 2.9 GB float32 copy. Indices are sorted inside a minibatch so the reads
    go forward through the file.
    """

    def __init__(self, frames: np.ndarray, index: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.flat = frames.reshape((-1,) + frames.shape[2:])  # a view of the memory map, no copy
        self.index = np.array(index)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.index) / self.batch_size))

    def __getitem__(self, i):
        chosen = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        return np.asarray(self.flat[chosen])

    def on_epoch_end(self):
        self.order = self.rng.permutation(self.index)


def save_vae(vae, env_name: str, vae_dir: str) -> str:
    """Write ./vae/<env>.weights.h5 and ./vae/<env>.npz whole; returns the Keras weights path."""
    path = vae_weights_path(env_name, vae_dir=vae_dir)
    with atomic_path(path, suffix=".weights.h5") as temporary:
        vae.save_weights(temporary)
    save_npz(vae_weights_path(env_name, numpy_export=True, vae_dir=vae_dir), **vae.numpy_weights())
    return path


def load_vae(config, vae_dir: str, seed: int | None = None, learning_rate: float | None = None):
    """The trained VAE of `config`; a UserError names the command to run if its weights are missing or corrupt."""
    path = vae_weights_path(config.name, vae_dir=vae_dir)
    made_by = MAKES_VAE.format(env=config.name)
    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    vae = make_vae(config, seed=seed, learning_rate=learning_rate)
    try:
        vae.load_weights(path)
    except Exception as error:  # h5py/keras raise several types on truncated or foreign files
        raise UserError(f"{path} is corrupt or not a VAE for {config.name} ({type(error).__name__}); "
                        f"delete it and run: {made_by}") from None
    return vae
