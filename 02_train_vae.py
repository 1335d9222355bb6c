"""Stage 02: train V, the convolutional VAE, on the frames of stage 01.

    python 02_train_vae.py --start_batch 0 --max_batch 9 --new_model

Reads ./data/obs_data_<env>_<batch>.npy for batches start..max (memory-mapped, uint8), trains batch file by batch
file for --epochs passes, and after every batch file writes ./vae/<env>.weights.h5 and ./vae/<env>.npz whole, plus
./vae/<env>.history.json, a loss curve ./vae/<env>.loss.png and ./vae/<env>.reconstructions.png (eight frames of
the first file above what V makes of them). Without --new_model it resumes from the saved weights; a run stopped
part-way through an epoch resumes at the batch file after the last one it saved (that epoch counts as one of --epochs).
"""

from __future__ import annotations

import argparse
import os
import time

from utils import UserError, check_flags, run_cli

RECONSTRUCTED_FRAMES = 8  # frames shown in ./vae/<env>.reconstructions.png


def parse_args(argv=None):
    from config import CONFIGS, add_folder_flags

    parser = argparse.ArgumentParser(description="Train the VAE (V) on random-rollout frames.")
    parser.add_argument("--env_name", default="car_racing", choices=sorted(CONFIGS))
    parser.add_argument("--start_batch", type=int, default=0)
    parser.add_argument("--max_batch", type=int, default=0)
    parser.add_argument("--new_model", action="store_true", help="start from fresh weights instead of ./vae/")
    parser.add_argument("--epochs", type=int, default=10, help="passes over all batch files (default 10)")
    parser.add_argument("--batch_size", type=int, default=None, help="frames per minibatch (default: paper's 100)")
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="Adam step (default: paper's 1e-4; a resumed run keeps its own unless given)")
    parser.add_argument("--steps_per_file", type=int, default=None,
                        help="train on at most this many minibatches per batch file and epoch (default: all frames)")
    parser.add_argument("--seed", type=int, default=0)
    add_folder_flags(parser, "data", "vae")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="fit() output: 1 = progress bar")
    args = parser.parse_args(argv)
    check_flags(args, at_least={"epochs": 1, "batch_size": 1, "steps_per_file": 1, "start_batch": 0,
                                "seed": 0},
                positive=("learning_rate",))
    return args


def main(argv=None):
    args = parse_args(argv)
    # --- set-up: inputs checked before TensorFlow loads, so a missing file fails fast -----------------------------
    from config import MAKES_OBS_DATA, data_file, get_config
    from utils import (batch_range_files, check_lengths, load_npy, lock_outputs, new_or_resumed, save_json,
                       temporaries_of)

    config = get_config(args.env_name)
    made_by = MAKES_OBS_DATA.format(env=args.env_name)
    obs_paths = batch_range_files("obs_data", args.env_name, args.start_batch, args.max_batch, made_by, args.data_dir)
    batches = []
    for batch, path in obs_paths:
        frames = load_npy(path, made_by, ndim=5, trailing_shape=(64, 64, 3), dtype="uint8")
        length_path = data_file("length_data", args.env_name, batch, args.data_dir)
        lengths = load_npy(length_path, made_by, mmap=False, ndim=1)
        if len(lengths) != len(frames):
            raise UserError(f"{length_path} has {len(lengths)} episodes but {path} has {len(frames)}; "
                            f"remake them with: {made_by}")
        check_lengths(lengths, frames.shape[1], length_path, made_by)
        batches.append((path, frames, lengths))
    # one run at a time writes ./vae/<env>.*; the lock file is also the check that the folder takes files
    lock_outputs(args.vae_dir, args.env_name, [(args.vae_dir, temporaries_of(rf"{args.env_name}\..+"))])

    import keras
    import numpy as np

    from plots import save_curves, save_reconstructions
    from vae.arch import make_vae
    from utils import check_room_for_model
    from vae.train import FrameBatches, StopOnNonFiniteLoss, load_vae, resume_point, save_vae, valid_frame_index
    from config import vae_weights_path

    keras.utils.set_random_seed(args.seed)
    # --- model: new or resumed ---------------------------------------------------------------------------------------
    weights_path = vae_weights_path(args.env_name, vae_dir=args.vae_dir)
    learning_rate = args.learning_rate or config.vae_learning_rate
    history_path = os.path.join(args.vae_dir, f"{args.env_name}.history.json")
    vae, history = new_or_resumed(
        "VAE", weights_path, history_path, args.new_model,
        make=lambda: make_vae(config, seed=args.seed, learning_rate=learning_rate),
        load=lambda: load_vae(config, args.vae_dir, seed=args.seed, learning_rate=args.learning_rate))
    learning_rate = float(vae.optimizer.learning_rate)  # a resumed run without the flag keeps its saved rate
    check_room_for_model(vae, args.vae_dir)  # a full disk is named now, not after training the first file
    batch_size = args.batch_size or config.vae_batch_size
    print(f"VAE for {args.env_name}: z = {config.z_size}, {vae.count_params():,} parameters; "
          f"{len(batches)} batch files, {args.epochs} epochs, minibatch {batch_size}, Adam {learning_rate:g}")

    # --- training loop: every epoch visits every batch file, saving after each -----------------------------------
    # the same frames of the first file, reconstructed after each file: ./vae/<env>.reconstructions.png
    first_frames, first_lengths = batches[0][1], batches[0][2]
    recorded = valid_frame_index(first_lengths, first_frames.shape[1])
    shown = recorded[np.linspace(0, len(recorded) - 1, RECONSTRUCTED_FRAMES).astype(int)]
    shown_frames = np.asarray(first_frames.reshape((-1, *first_frames.shape[2:]))[shown])
    started = time.time()
    names = [os.path.basename(path) for path, _, _ in batches]
    first_epoch, done = resume_point(history, names)  # a resumed run continues the count (and a stopped epoch)
    last_epoch = first_epoch + args.epochs - 1
    for epoch in range(first_epoch, last_epoch + 1):
        for position, (path, frames, lengths) in enumerate(batches):
            if epoch == first_epoch and position < done:
                continue  # trained on before the last run stopped
            index = valid_frame_index(lengths, frames.shape[1])
            dataset = FrameBatches(frames, index, batch_size, seed=args.seed * 1000 + epoch,
                                   max_batches=args.steps_per_file)
            print(f"epoch {epoch}/{last_epoch}: {os.path.basename(path)} ({len(index):,} frames)")
            stop = StopOnNonFiniteLoss()
            result = vae.fit(dataset, epochs=1, verbose=args.verbose, callbacks=[stop]).history
            dataset.close()
            if stop.batch is not None:  # this file's steps changed the weights: save nothing of them
                raise UserError(f"V's loss became {stop.loss} in epoch {epoch}, minibatch {stop.batch + 1} of "
                                f"{os.path.basename(path)}; stopped without saving ({weights_path} keeps the last "
                                f"good weights); try a lower --learning_rate (this run: {learning_rate:g})")
            history.append({"epoch": epoch, "file": os.path.basename(path), "position": position,
                            "files": len(batches), "frames": int(len(index)),
                            "elapsed_s": round(time.time() - started, 1),
                            **{name: float(values[-1]) for name, values in result.items()}})
            save_vae(vae, args.env_name, args.vae_dir)
            save_json(history_path, history, indent=1)
            mu, _ = vae.encode(shown_frames)
            save_reconstructions(os.path.join(args.vae_dir, f"{args.env_name}.reconstructions.png"), shown_frames,
                                 np.asarray(vae.decoder(mu)))
            save_curves(os.path.join(args.vae_dir, f"{args.env_name}.loss.png"),
                        {name: [row[name] for row in history] for name in ("loss", "reconstruction_loss", "kl_loss")},
                        xlabel="batch file visited", ylabel="loss per frame", title=f"VAE training ({args.env_name})")
    print(f"saved {weights_path} and its NumPy copy ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
