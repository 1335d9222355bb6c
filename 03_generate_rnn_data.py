"""Stage 03: encode every recorded episode with the trained VAE, giving the MDN-RNN its training sequences.

    python 03_generate_rnn_data.py --start_batch 0 --max_batch 9

For each batch file of stage 01 it writes, whole, into ./data (E episodes, T steps, z latent size, A action size):
  rnn_input_<env>_<b>.npy    (E, T, z + A [+ 1])  [z_t, a_t] (Doom adds restart_t = 1 at an episode's first step)
  rnn_mu_<env>_<b>.npy, rnn_logvar_<env>_<b>.npy  (E, T, z)  the encoder's Gaussian, so stage 04 can draw a fresh
                                                   z every epoch as the paper does
  rnn_initial_<env>_<b>.npy  (E, 2, z)            mu and logvar of each episode's first frame (dreams start there)
  rnn_length_<env>_<b>.npy (E,) and rnn_done_<env>_<b>.npy (E, T): copies of stage 01's lengths and done flags.
z here is one draw z = mu + exp(logvar / 2) * eps, each batch's from (--seed, batch number), so a range encoded in
parts writes what one run does; padding after an episode's end is zero.
No z_{t+1} targets are written: stage 04 draws z afresh from the encoder's Gaussian (rnn_mu, rnn_logvar) every epoch
and builds its targets from that draw (rnn.train.rnn_arrays), so a stored draw would be stale and nothing reads it.
"""

from __future__ import annotations

import dataclasses
import time

from blas import prepare_blas
from cli import SettingsParser, option, run_cli
from config import folder_option
from stage_settings import BatchRange, check_seed_and_start, show_tf_log, tf_log_option

prepare_blas(one_thread=False)  # before NumPy loads: V's NumPy copy encodes the same z on every machine


@dataclasses.dataclass(frozen=True)
class Settings(BatchRange):
    seed: int = option(0, "seed of the z draw written to rnn_input")
    data_dir: str = folder_option("data")
    vae_dir: str = folder_option("vae")
    tf_log: bool = tf_log_option()

    def __post_init__(self):
        check_seed_and_start(self)


def parse_args(argv=None) -> Settings:
    settings = SettingsParser(Settings, description="Encode the rollouts with the VAE into MDN-RNN training "
                                                    "data.").parse(argv)
    show_tf_log(settings)
    return settings


def main(argv=None):
    args = parse_args(argv)
    from config import MAKES_OBS_DATA, data_file, get_config
    from files import lock_outputs, temporaries_of
    from npyio import batch_range_files, save_npy_set
    from rnn.encoding import KINDS, encode_batch, encoder_file, load_encoder
    from rollout_files import read_rollout_batch

    config = get_config(args.env_name)
    made_by = MAKES_OBS_DATA.format(env=args.env_name)
    obs_paths = batch_range_files("obs_data", args.env_name, args.start_batch, args.max_batch, made_by, args.data_dir)
    encoder = encoder_file(args.env_name, args.vae_dir)
    # one run at a time writes an env's rnn_* files; the lock file is also the check that the folder takes files
    lock_outputs(args.data_dir, f"rnn_data_{args.env_name}",
                 [(args.data_dir, temporaries_of(rf"(?:{'|'.join(KINDS)})_{args.env_name}_\d+\.npy"))])
    # every batch checked (finite, matching) before TensorFlow loads: a bad file fails fast
    batches = [read_rollout_batch(args.env_name, batch, path, args.data_dir, config.action_size)
               for batch, path in obs_paths]

    import numpy as np

    vae = load_encoder(config, args.vae_dir, encoder)
    started = time.time()
    for batch in batches:  # each batch's draw from (seed, batch): a range encoded in parts writes what one run does
        outputs = encode_batch(vae, config, batch, np.random.default_rng([args.seed, batch.batch]))
        assert set(outputs) == set(KINDS)  # the stale temporary files removed above are those of these files
        # the batch's six files as a set: a Ctrl-C, SIGTERM or full disk never leaves some new beside some old
        save_npy_set({data_file(kind, args.env_name, batch.batch, args.data_dir): array
                      for kind, array in outputs.items()})
    print(f"wrote rnn_* files for {len(batches)} batches to {args.data_dir} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
