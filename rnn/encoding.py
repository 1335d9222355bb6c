"""Stage 03's work: the recorded frames of a rollout batch encoded with V into M's training sequences (the encoder's
Gaussian per frame, one z draw as M's input, each episode's first frame, its lengths and done flags).

NumPy at import; TensorFlow only when a Keras V is loaded (load_encoder), after the inputs are checked.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cli import UserError
from config import MAKES_VAE, vae_file_to_read

ENCODE_CHUNK = 1000  # frames encoded per forward pass
KINDS = ("rnn_input", "rnn_mu", "rnn_logvar", "rnn_initial", "rnn_length", "rnn_done")  # written, a batch each


class EncoderFile(NamedTuple):
    """The V that 03 encodes with: its path, and whether it is the NumPy copy (no Keras file in the folder)."""

    path: str
    numpy_copy: bool


def encoder_file(env_name: str, vae_dir: str) -> EncoderFile:
    """V's file in `vae_dir` (the Keras weights, or where there are none its NumPy copy); a missing one is a
    UserError naming the command that makes it."""
    from files import require_file

    path, numpy_copy = vae_file_to_read(env_name, vae_dir)
    if not numpy_copy:
        require_file(path, MAKES_VAE.format(env=env_name))
    return EncoderFile(path, numpy_copy)


def load_encoder(config, vae_dir: str, encoder: EncoderFile):
    """V, from its NumPy copy (said so) or its Keras weights (TensorFlow loads)."""
    if encoder.numpy_copy:
        from vae.numpy_vae import NumpyVAE

        print(f"V: its NumPy copy {encoder.path} (no Keras file in {vae_dir})")
        return NumpyVAE.load(encoder.path, config.z_size, MAKES_VAE.format(env=config.name))
    from vae.train import load_vae

    return load_vae(config, vae_dir)


def encode_batch(vae, config, batch, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The six arrays (KINDS) of one rollout batch (rollout_files.RolloutBatch, with actions and dones); rng draws
    the z of rnn_input. Only recorded frames are encoded (a Doom file is mostly padding): padding keeps mu = logvar
    = 0. A NaN or infinite encoding is a UserError (finite weights can still overflow; M must not train on it)."""
    from tqdm import tqdm

    from npyio import all_finite
    from rnn.train import rnn_arrays

    frames, lengths = batch.frames, batch.lengths
    episodes, time_steps = frames.shape[:2]
    mu = np.zeros((episodes, time_steps, config.z_size), dtype=np.float32)
    logvar = np.zeros_like(mu)
    flat = frames.reshape((-1, 64, 64, 3))
    recorded = np.flatnonzero(np.arange(time_steps)[None, :] < np.minimum(lengths, time_steps)[:, None])
    flat_mu, flat_logvar = mu.reshape(-1, config.z_size), logvar.reshape(-1, config.z_size)
    for start in tqdm(range(0, len(recorded), ENCODE_CHUNK), desc=f"encoding batch {batch.batch}", unit="chunk"):
        rows = recorded[start:start + ENCODE_CHUNK]
        chunk_mu, chunk_logvar = vae.encode(np.asarray(flat[rows[0]:rows[-1] + 1])[rows - rows[0]])
        flat_mu[rows], flat_logvar[rows] = np.asarray(chunk_mu), np.asarray(chunk_logvar)
    if not (all_finite(mu) and all_finite(logvar)):
        raise UserError(f"V encodes frames of batch {batch.batch} to NaN or infinite values; retrain V: "
                        f"{MAKES_VAE.format(env=config.name)}")
    rnn_input, _ = rnn_arrays(mu, logvar, batch.actions, lengths, config.use_done, rng)
    return {"rnn_input": rnn_input, "rnn_mu": mu, "rnn_logvar": logvar,
            "rnn_initial": np.stack([mu[:, 0], logvar[:, 0]], axis=1), "rnn_length": lengths.astype(np.int32),
            "rnn_done": batch.dones.astype(bool)}
