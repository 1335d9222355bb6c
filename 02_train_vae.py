"""Stage 02: train V, the convolutional VAE, on the frames of stage 01.

    python 02_train_vae.py --start_batch 0 --max_batch 9 --new_model

Reads ./data/obs_data_<env>_<batch>.npy for batches start..max (memory-mapped, uint8), trains batch file by batch file
for --epochs passes (the files in an order shuffled anew every epoch, the frames of each too), and after every batch
file writes ./vae/<env>.weights.h5 and ./vae/<env>.npz whole, plus ./vae/<env>.history.json, a loss curve
./vae/<env>.loss.png and ./vae/<env>.reconstructions.png (eight frames of the first file above what V makes of them).
Without --new_model it resumes from the saved weights; a run stopped part-way through an epoch resumes at the batch file
after the last one it saved (that epoch counts as one of --epochs).

--holdout_batches N keeps the last N batch files of the range out of training and prints V's losses on 2,000 of their
frames before training and after every epoch (in the history and the curve too): how well V draws frames it never saw,
such as a controller's episodes when it was trained on random ones. With --epochs 0 it only prints them for the saved V
and writes nothing:

    python 02_train_vae.py --start_batch 10 --max_batch 12 --holdout_batches 3 --epochs 0

--init_from DIR starts a new V from DIR/<env>.npz, a V's NumPy copy such as the shipped pretrained/<env>/vae (Adam
starts afresh), to go on training it on new frames from a clone that has no Keras file.

--jit auto (the default) times V's training step compiled by XLA and without it, in a child process on the run's own
frames, and trains with the faster (XLA is slower on some CPUs, faster on others); --jit on or off takes that one. The
history's rows say which step trained ("xla").
"""

from __future__ import annotations

import dataclasses
import os
import time

from cli import SettingsParser, UserError, check_init_from, option, run_cli
from config import folder_option
from stage_settings import (BatchRange, check_seed_and_start, init_from_option, new_model_option, show_tf_log,
                            tf_log_option)

HELD_OUT_FRAMES = 2000  # frames of the --holdout_batches files V's held-out losses are measured on


@dataclasses.dataclass(frozen=True)
class Settings(BatchRange):
    new_model: bool = new_model_option("vae")
    epochs: int = option(10, "passes over all batch files (default 10)")
    batch_size: int | None = option(None, "frames per minibatch (default: paper's 100)")
    learning_rate: float | None = option(None, "Adam step (default: paper's 1e-4; a resumed run keeps its own unless "
                                               "given)")
    steps_per_file: int | None = option(None, "train on at most this many minibatches per batch file and epoch "
                                              "(default: all frames)")
    holdout_batches: int = option(0, f"last N batch files of the range: not trained on; V's losses on "
                                     f"{HELD_OUT_FRAMES:,} of their frames printed before training and after every "
                                     f"epoch (with --epochs 0: printed for the saved V, nothing trained or written)")
    jit: str = option("auto", "the training step with XLA (on) or without (off); auto (default): time a few "
                              "minibatches each way on the first file and train with the faster",
                      choices=("auto", "on", "off"))
    seed: int = option(0, "seed of the weights, the order of files and frames, and the draws")
    init_from: str | None = init_from_option("V", "vae")
    data_dir: str = folder_option("data")
    vae_dir: str = folder_option("vae")
    verbose: int = option(1, "fit() output: 1 = progress bar", choices=(0, 1, 2))
    tf_log: bool = tf_log_option()

    def __post_init__(self):
        check_seed_and_start(self, at_least={"epochs": 0, "batch_size": 1, "steps_per_file": 1, "holdout_batches": 0},
                             positive=("learning_rate",))
        if self.epochs == 0 and not self.holdout_batches:
            raise UserError("--epochs must be at least 1 to train (0 trains nothing: with --holdout_batches N it "
                            "prints the saved V's losses on the last N batch files)")
        check_init_from(self.init_from, self.vae_dir, "--vae_dir", "V")
        if self.epochs == 0 and self.init_from is not None:
            raise UserError("--init_from must be left out with --epochs 0: give that folder as --vae_dir to measure "
                            "its V (its NumPy copy where it has no Keras file)")
        if self.epochs == 0 and self.new_model:
            raise UserError("--new_model must be left out with --epochs 0: it would measure untrained weights, not "
                            "the saved V")
        self.check_range()  # before the held-out check, which would blame --holdout_batches
        files = self.max_batch - self.start_batch + 1
        if self.epochs and self.holdout_batches >= files:
            raise UserError(f"--holdout_batches must leave at least one of batches {self.start_batch}.."
                            f"{self.max_batch} to train on (got {self.holdout_batches})")
        if not self.epochs and self.holdout_batches > files:
            raise UserError(f"--holdout_batches must be at most {files}, the batch files {self.start_batch}.."
                            f"{self.max_batch} (got {self.holdout_batches})")


def parse_args(argv=None) -> Settings:
    settings = SettingsParser(Settings, description="Train the VAE (V) on random-rollout frames.").parse(argv)
    show_tf_log(settings)
    return settings


def main(argv=None):
    args = parse_args(argv)
    # --- set-up: inputs checked before TensorFlow loads, so a missing file fails fast -----------------------------
    from config import get_config, vae_weights_path
    from keras_setup import quiet_tensorflow
    from model_files import check_room_for_model, claim_model_folder, new_or_resumed
    from rollout_files import read_rollout_range

    config = get_config(args.env_name)
    batches = read_rollout_range(args.env_name, args.start_batch, args.max_batch, args.data_dir)
    trained = len(batches) - args.holdout_batches
    batches, held = batches[:trained], batches[trained:]
    claim_model_folder(args.vae_dir, args.env_name, "--vae_dir", lock=args.epochs > 0)  # --epochs 0 writes nothing

    quiet_tensorflow()  # TensorFlow's start-up log hidden unless --tf_log
    import keras

    from vae.train import (HeldOut, epoch_file_order, fit_file, frames_to_show, load_vae, new_vae, report_held_out,
                           resume_point, save_progress, saved_vae, set_jit)

    keras.utils.set_random_seed(args.seed)
    batch_size = args.batch_size or config.vae_batch_size
    held_out = HeldOut.of(held, args.max_batch, HELD_OUT_FRAMES) if held else None
    if not args.epochs:  # --epochs 0: measure the saved V (its NumPy copy where there is no Keras file), write nothing
        report_held_out(saved_vae(config, args.vae_dir, args.seed), held_out, batch_size, "the saved V")
        return
    # --- model: new, from a NumPy copy, or resumed -------------------------------------------------------------------
    weights_path = vae_weights_path(args.env_name, vae_dir=args.vae_dir)
    history_path = os.path.join(args.vae_dir, f"{args.env_name}.history.json")
    vae, history = new_or_resumed(
        "VAE", weights_path, history_path, args.new_model or args.init_from is not None,
        make=lambda: new_vae(config, args.seed, args.learning_rate or config.vae_learning_rate, args.init_from),
        load=lambda: load_vae(config, args.vae_dir, seed=args.seed, learning_rate=args.learning_rate))
    check_room_for_model(vae, args.vae_dir)  # a full disk is named now, not after training the first file
    print(f"VAE for {args.env_name}: z = {config.z_size}, {vae.count_params():,} parameters; {len(batches)} batch "
          f"files, {args.epochs} epochs, minibatch {batch_size}, Adam {float(vae.optimizer.learning_rate):g}")
    if held:
        report_held_out(vae, held_out, batch_size, "before training")
    if args.jit != "auto":
        set_jit(vae, args.jit == "on")

    # --- training loop: every epoch visits every batch file (in an order of its own), saving after each ------------
    shown_frames = frames_to_show(batches[0].frames, batches[0].lengths)  # reconstructed after each file
    started = time.time()
    # a resumed run continues the count (and a stopped epoch)
    first_epoch, done = resume_point(history, [os.path.basename(b.path) for b in batches], seed=args.seed)
    last_epoch = first_epoch + args.epochs - 1
    for epoch in range(first_epoch, last_epoch + 1):
        for position, file in enumerate(epoch_file_order(args.seed, epoch, len(batches))):
            if epoch == first_epoch and position < done:
                continue  # trained on before the last run stopped
            time_jit = args.jit == "auto" and epoch == first_epoch and position == done  # this run's first file
            frames, losses = fit_file(vae, args, batches[file], batch_size, epoch, last_epoch, position, time_jit)
            history.append({"epoch": epoch, "file": os.path.basename(batches[file].path), "position": position,
                            "files": len(batches), "frames": frames, "xla": bool(vae.jit_compile),
                            "elapsed_s": round(time.time() - started, 1),
                            **losses})
            if held and position == len(batches) - 1:  # the epoch's last file: how V does on frames it never saw
                history[-1].update(report_held_out(vae, held_out, batch_size, f"after epoch {epoch}"))
            save_progress(vae, args.env_name, args.vae_dir, history, history_path, shown_frames)
    print(f"saved {weights_path} and its NumPy copy ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
