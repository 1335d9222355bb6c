"""Stage 03: encode every recorded episode with the trained VAE, giving the MDN-RNN its training sequences.

    python 03_generate_rnn_data.py --start_batch 0 --max_batch 9

For each batch file of stage 01 it writes, whole, into ./data (E episodes, T steps, z latent size, A action size):
  rnn_input_<env>_<b>.npy    (E, T, z + A [+ 1])  [z_t, a_t] (Doom adds restart_t = 1 at an episode's first step)
  rnn_mu_<env>_<b>.npy, rnn_logvar_<env>_<b>.npy  (E, T, z)  the encoder's Gaussian, so stage 04 can draw a fresh
                                                   z every epoch as the paper does
  rnn_initial_<env>_<b>.npy  (E, 2, z)            mu and logvar of each episode's first frame (dreams start there)
  rnn_length_<env>_<b>.npy (E,) and rnn_done_<env>_<b>.npy (E, T): copies of stage 01's lengths and done flags.
z here is one draw z = mu + exp(logvar / 2) * eps; padding after an episode's end is zero.
No z_{t+1} targets are written: stage 04 draws z afresh from the encoder's Gaussian (rnn_mu, rnn_logvar) every epoch
and builds its targets from that draw (rnn.train.rnn_arrays), so a stored draw would be stale and nothing reads it.
"""

from __future__ import annotations

import os
import time

from blas import prepare_blas
from cli import ArgumentParser, UserError, check_flags, run_cli

prepare_blas(one_thread=False)  # before NumPy loads: V's NumPy copy encodes the same z on every machine

ENCODE_CHUNK = 1000  # frames encoded per forward pass
KINDS = ("rnn_input", "rnn_mu", "rnn_logvar", "rnn_initial", "rnn_length", "rnn_done")  # written


def parse_args(argv=None):
    from config import CONFIGS, add_folder_flags

    parser = ArgumentParser(description="Encode the rollouts with the VAE into MDN-RNN training data.")
    parser.add_argument("--env_name", default="car_racing", choices=sorted(CONFIGS), help="the environment")
    parser.add_argument("--start_batch", type=int, default=0, help="first batch file of the range")
    parser.add_argument("--max_batch", type=int, default=0, help="last batch file of the range (inclusive)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the z draw written to rnn_input")
    add_folder_flags(parser, "data", "vae")
    parser.add_argument("--tf_log", action="store_true",
                        help="show TensorFlow's start-up log (CUDA, oneDNN and absl lines), hidden otherwise")
    args = parser.parse_args(argv)
    if args.tf_log:  # keras_setup.quiet_tensorflow() leaves TensorFlow's log alone below level 2; TF is not loaded yet
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    check_flags(args, at_least={"start_batch": 0}, seeds=("seed",))
    return args


def main(argv=None):
    args = parse_args(argv)
    from config import MAKES_OBS_DATA, data_file, get_config, vae_file_to_read, MAKES_VAE
    from files import lock_outputs, require_file, temporaries_of
    from npyio import all_finite, batch_range_files, check_lengths, load_npy, save_npy_set

    config = get_config(args.env_name)
    made_by = MAKES_OBS_DATA.format(env=args.env_name)
    obs_paths = batch_range_files("obs_data", args.env_name, args.start_batch, args.max_batch, made_by, args.data_dir)
    makes_vae = MAKES_VAE.format(env=args.env_name)
    vae_path, use_numpy = vae_file_to_read(args.env_name, args.vae_dir)
    if not use_numpy:
        require_file(vae_path, makes_vae)
    # one run at a time writes an env's rnn_* files; the lock file is also the check that the folder takes files
    lock_outputs(args.data_dir, f"rnn_data_{args.env_name}",
                 [(args.data_dir, temporaries_of(rf"(?:{'|'.join(KINDS)})_{args.env_name}_\d+\.npy"))])

    def batch_inputs(batch: int, obs_path: str):
        """The frames (memory-mapped), actions, lengths and dones of one batch, checked (finite, matching)."""
        frames = load_npy(obs_path, made_by, ndim=5, trailing_shape=(64, 64, 3), dtype="uint8")
        inputs = {kind: load_npy(data_file(kind, args.env_name, batch, args.data_dir), made_by, mmap=False)
                  for kind in ("action_data", "length_data", "done_data")}
        actions, lengths, dones = inputs["action_data"], inputs["length_data"], inputs["done_data"]
        episodes, time_steps = frames.shape[:2]
        if actions.shape != (episodes, time_steps, config.action_size) or lengths.shape != (episodes,) \
                or dones.shape != (episodes, time_steps):
            raise UserError(f"batch {batch}: {obs_path} {frames.shape}, actions {actions.shape}, lengths "
                            f"{lengths.shape} and dones {dones.shape} do not match; remake them with: {made_by}")
        check_lengths(lengths, time_steps, data_file("length_data", args.env_name, batch, args.data_dir), made_by)
        return frames, actions, lengths, dones

    for batch, obs_path in obs_paths:  # every batch checked before TensorFlow loads: a bad file fails fast
        batch_inputs(batch, obs_path)

    import numpy as np
    from tqdm import tqdm

    from rnn.train import rnn_arrays
    from vae.train import load_vae

    if use_numpy:
        from vae.numpy_vae import NumpyVAE

        print(f"V: its NumPy copy {vae_path} (no Keras file in {args.vae_dir})")
        vae = NumpyVAE.load(vae_path, config.z_size, makes_vae)
    else:
        vae = load_vae(config, args.vae_dir)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    for batch, obs_path in obs_paths:
        frames, actions, lengths, dones = batch_inputs(batch, obs_path)
        episodes, time_steps = frames.shape[:2]
        mu = np.zeros((episodes, time_steps, config.z_size), dtype=np.float32)
        logvar = np.zeros_like(mu)
        flat = frames.reshape((-1, 64, 64, 3))
        # Only recorded frames are encoded (a Doom file is mostly padding); padding keeps mu = logvar = 0.
        recorded = np.flatnonzero(np.arange(time_steps)[None, :] < np.minimum(lengths, time_steps)[:, None])
        flat_mu, flat_logvar = mu.reshape(-1, config.z_size), logvar.reshape(-1, config.z_size)
        for start in tqdm(range(0, len(recorded), ENCODE_CHUNK), desc=f"encoding batch {batch}", unit="chunk"):
            rows = recorded[start:start + ENCODE_CHUNK]
            chunk_mu, chunk_logvar = vae.encode(np.asarray(flat[rows[0]:rows[-1] + 1])[rows - rows[0]])
            flat_mu[rows], flat_logvar[rows] = np.asarray(chunk_mu), np.asarray(chunk_logvar)
        if not (all_finite(mu) and all_finite(logvar)):  # finite weights can still overflow; M must not train on it
            raise UserError(f"V encodes frames of batch {batch} to NaN or infinite values; retrain V: {makes_vae}")
        rnn_input, _ = rnn_arrays(mu, logvar, actions, lengths, config.use_done, rng)
        outputs = {"rnn_input": rnn_input, "rnn_mu": mu, "rnn_logvar": logvar,
                   "rnn_initial": np.stack([mu[:, 0], logvar[:, 0]], axis=1), "rnn_length": lengths.astype(np.int32),
                   "rnn_done": dones.astype(bool)}
        assert set(outputs) == set(KINDS)  # the stale temporary files removed above are those of these files
        # the batch's six files as a set: a Ctrl-C, SIGTERM or full disk never leaves some new beside some old
        save_npy_set({data_file(kind, args.env_name, batch, args.data_dir): array for kind, array in outputs.items()})
    print(f"wrote rnn_* files for {len(obs_paths)} batches to {args.data_dir} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
