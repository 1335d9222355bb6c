"""Stage 02: train V, the convolutional VAE, on the frames of stage 01.

    python 02_train_vae.py --start_batch 0 --max_batch 9 --new_model

Reads ./data/obs_data_<env>_<batch>.npy for batches start..max (memory-mapped, uint8), trains batch file by batch
file for --epochs passes (the files in an order shuffled anew every epoch, the frames of each too), and after every
batch file writes ./vae/<env>.weights.h5 and ./vae/<env>.npz whole, plus
./vae/<env>.history.json, a loss curve ./vae/<env>.loss.png and ./vae/<env>.reconstructions.png (eight frames of
the first file above what V makes of them). Without --new_model it resumes from the saved weights; a run stopped
part-way through an epoch resumes at the batch file after the last one it saved (that epoch counts as one of --epochs).

--holdout_batches N keeps the last N batch files of the range out of training and prints V's losses on 2,000 of their
frames before training and after every epoch (in the history and the curve too): how well V draws frames it never
saw, such as a controller's episodes when it was trained on random ones. With --epochs 0 it only prints them for the
saved V and writes nothing:

    python 02_train_vae.py --start_batch 10 --max_batch 12 --holdout_batches 3 --epochs 0

--jit auto (the default) times V's training step with XLA and without on a few minibatches of the run's first file
and trains with the faster (which one depends on the CPU); --jit on or off forces one. Either gives the same losses
to float32 rounding.

--init_from DIR starts a new V from DIR/<env>.npz, a V's NumPy copy such as the shipped pretrained/<env>/vae (Adam
starts afresh), to go on training it on new frames from a clone that has no Keras file.
"""

from __future__ import annotations

import os
import time

from cli import ArgumentParser, UserError, check_flags, check_init_from, run_cli

RECONSTRUCTED_FRAMES = 8  # frames shown in ./vae/<env>.reconstructions.png
HELD_OUT_FRAMES = 2000  # frames of the --holdout_batches files V's held-out losses are measured on
JIT_TIMING_STEPS = 3  # minibatches timed each way by --jit auto, after one each way that compiles


def parse_args(argv=None):
    from config import CONFIGS, add_folder_flags

    parser = ArgumentParser(description="Train the VAE (V) on random-rollout frames.")
    parser.add_argument("--env_name", default="car_racing", choices=sorted(CONFIGS), help="the environment")
    parser.add_argument("--start_batch", type=int, default=0, help="first batch file of the range")
    parser.add_argument("--max_batch", type=int, default=0, help="last batch file of the range (inclusive)")
    parser.add_argument("--new_model", action="store_true", help="start from fresh weights instead of ./vae/")
    parser.add_argument("--epochs", type=int, default=10, help="passes over all batch files (default 10)")
    parser.add_argument("--batch_size", type=int, default=None, help="frames per minibatch (default: paper's 100)")
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="Adam step (default: paper's 1e-4; a resumed run keeps its own unless given)")
    parser.add_argument("--steps_per_file", type=int, default=None,
                        help="train on at most this many minibatches per batch file and epoch (default: all frames)")
    parser.add_argument("--holdout_batches", type=int, default=0,
                        help=f"last N batch files of the range: not trained on; V's losses on {HELD_OUT_FRAMES:,} of "
                             "their frames printed before training and after every epoch (with --epochs 0: printed "
                             "for the saved V, nothing trained or written)")
    parser.add_argument("--jit", default="auto", choices=("auto", "on", "off"),
                        help="the training step with XLA (on) or without (off); auto (default): time a few "
                             "minibatches each way on the first file and train with the faster")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights, the order of files and frames, and the draws")
    parser.add_argument("--init_from", default=None, metavar="DIR",
                        help="a new V (as --new_model) starting from the weights of DIR/<env>.npz, a V's NumPy copy "
                             "(e.g. pretrained/<env>/vae, the shipped one); Adam starts afresh")
    add_folder_flags(parser, "data", "vae")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="fit() output: 1 = progress bar")
    parser.add_argument("--tf_log", action="store_true",
                        help="show TensorFlow's start-up log (CUDA, oneDNN and absl lines), hidden otherwise")
    args = parser.parse_args(argv)
    if args.tf_log:  # keras_setup.quiet_tensorflow() leaves TensorFlow's log alone below level 2; TF is not loaded yet
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    check_flags(args, at_least={"epochs": 0, "batch_size": 1, "steps_per_file": 1, "start_batch": 0,
                                "holdout_batches": 0},
                positive=("learning_rate",), seeds=("seed",))
    if args.epochs == 0 and not args.holdout_batches:
        raise UserError("--epochs must be at least 1 to train (0 trains nothing: with --holdout_batches N it prints "
                        "the saved V's losses on the last N batch files)")
    check_init_from(args.init_from, args.vae_dir, "--vae_dir", "V")
    if args.epochs == 0 and args.init_from is not None:
        raise UserError("--init_from must be left out with --epochs 0: give that folder as --vae_dir to measure its V "
                        "(its NumPy copy where it has no Keras file)")
    if args.epochs == 0 and args.new_model:
        raise UserError("--new_model must be left out with --epochs 0: it would measure untrained weights, not the "
                        "saved V")
    if args.max_batch < args.start_batch:  # before the held-out check, which would blame --holdout_batches
        raise UserError(f"--max_batch must be at least --start_batch ({args.start_batch}), got {args.max_batch}")
    files = args.max_batch - args.start_batch + 1
    if args.epochs and args.holdout_batches >= files:
        raise UserError(f"--holdout_batches must leave at least one of batches {args.start_batch}..{args.max_batch} "
                        f"to train on (got {args.holdout_batches})")
    if not args.epochs and args.holdout_batches > files:
        raise UserError(f"--holdout_batches must be at most {files}, the batch files {args.start_batch}.."
                        f"{args.max_batch} (got {args.holdout_batches})")
    return args


def main(argv=None):
    args = parse_args(argv)
    # --- set-up: inputs checked before TensorFlow loads, so a missing file fails fast -----------------------------
    from config import MAKES_OBS_DATA, data_file, get_config
    from files import lock_outputs, temporaries_of
    from model_files import new_or_resumed, refuse_the_other_models_folder
    from npyio import batch_range_files, check_lengths, load_npy

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
    held = batches[len(batches) - args.holdout_batches:] if args.holdout_batches else []
    batches = batches[:len(batches) - len(held)]
    refuse_the_other_models_folder(args.vae_dir, args.env_name, "--vae_dir")
    if args.epochs:  # one run at a time writes ./vae/<env>.*; the lock file also checks that the folder takes files
        lock_outputs(args.vae_dir, args.env_name, [(args.vae_dir, temporaries_of(rf"{args.env_name}\..+"))])

    from keras_setup import quiet_tensorflow

    quiet_tensorflow()  # TensorFlow's start-up log hidden unless --tf_log
    import keras
    import numpy as np

    from config import vae_file_to_read, vae_weights_path
    from model_files import check_room_for_model
    from plots import save_curves, save_reconstructions
    from vae.arch import make_vae
    from vae.train import (FrameBatches, StopOnNonFiniteLoss, choose_jit, epoch_file_order, held_out_frames,
                           held_out_losses, load_vae, resume_point, reseed_noise, save_vae, set_jit,
                           vae_from_numpy_copy, valid_frame_index)

    keras.utils.set_random_seed(args.seed)
    batch_size = args.batch_size or config.vae_batch_size
    held_out = held_out_frames([(frames, lengths) for _, frames, lengths in held], HELD_OUT_FRAMES) if held else None

    def measure_held_out(when: str) -> dict[str, float]:
        losses = held_out_losses(vae, held_out, batch_size)
        first = args.max_batch - len(held) + 1
        print(f"held-out batches {first}..{args.max_batch} ({len(held_out):,} frames), {when}: loss "
              f"{losses['holdout_loss']:.2f} = reconstruction {losses['holdout_reconstruction_loss']:.2f} + KL "
              f"{losses['holdout_kl_loss']:.2f} a frame")
        return losses

    weights_path = vae_weights_path(args.env_name, vae_dir=args.vae_dir)
    if not args.epochs:  # --epochs 0: measure the saved V (its NumPy copy where there is no Keras file), write nothing
        measured, from_numpy = vae_file_to_read(args.env_name, args.vae_dir)
        vae = (vae_from_numpy_copy(config, measured, seed=args.seed) if from_numpy
               else load_vae(config, args.vae_dir, seed=args.seed))
        print(f"V {measured}, z = {config.z_size}")
        measure_held_out("the saved V")
        return
    # --- model: new, from a NumPy copy, or resumed -------------------------------------------------------------------
    learning_rate = args.learning_rate or config.vae_learning_rate
    history_path = os.path.join(args.vae_dir, f"{args.env_name}.history.json")

    def make():
        if args.init_from is None:
            return make_vae(config, seed=args.seed, learning_rate=learning_rate)
        path = vae_weights_path(args.env_name, numpy_export=True, vae_dir=args.init_from)
        print(f"a new V from the weights of {path} (Adam starts afresh)")
        return vae_from_numpy_copy(config, path, seed=args.seed, learning_rate=learning_rate)

    vae, history = new_or_resumed(
        "VAE", weights_path, history_path, args.new_model or args.init_from is not None, make=make,
        load=lambda: load_vae(config, args.vae_dir, seed=args.seed, learning_rate=args.learning_rate))
    learning_rate = float(vae.optimizer.learning_rate)  # a resumed run without the flag keeps its saved rate
    check_room_for_model(vae, args.vae_dir)  # a full disk is named now, not after training the first file
    print(f"VAE for {args.env_name}: z = {config.z_size}, {vae.count_params():,} parameters; "
          f"{len(batches)} batch files, {args.epochs} epochs, minibatch {batch_size}, Adam {learning_rate:g}")
    if held:
        measure_held_out("before training")
    if args.jit != "auto":
        set_jit(vae, args.jit == "on")

    # --- training loop: every epoch visits every batch file (in an order of its own), saving after each ------------
    # the same frames of the first file, reconstructed after each file: ./vae/<env>.reconstructions.png
    first_frames, first_lengths = batches[0][1], batches[0][2]
    recorded = valid_frame_index(first_lengths, first_frames.shape[1])
    shown = recorded[np.linspace(0, len(recorded) - 1, RECONSTRUCTED_FRAMES).astype(int)]
    shown_frames = np.asarray(first_frames.reshape((-1, *first_frames.shape[2:]))[shown])
    started = time.time()
    names = [os.path.basename(path) for path, _, _ in batches]
    # a resumed run continues the count (and a stopped epoch)
    first_epoch, done = resume_point(history, names, seed=args.seed)
    last_epoch = first_epoch + args.epochs - 1
    for epoch in range(first_epoch, last_epoch + 1):
        for position, file in enumerate(epoch_file_order(args.seed, epoch, len(batches))):
            if epoch == first_epoch and position < done:
                continue  # trained on before the last run stopped
            path, frames, lengths = batches[file]
            index = valid_frame_index(lengths, frames.shape[1])
            # each file its own shuffle of minibatches (before, files of one size were all visited in one order)
            dataset = FrameBatches(frames, index, batch_size, seed=[args.seed, epoch, position],
                                   max_batches=args.steps_per_file)
            # the noise of z's sampling from (seed, epoch, file) too: a resumed run draws what one run draws (the
            # generator's state is not in the weights file; before, a resume replayed the first file's noise)
            reseed_noise(vae, args.seed, epoch, position)
            if args.jit == "auto" and epoch == first_epoch and position == done:  # this run's first file
                # minibatches of their own order (the training's shuffle untouched); V and Adam are put back after
                timing = FrameBatches(frames, index, batch_size, seed=[args.seed, epoch, position, 1])
                xla, rates = choose_jit(vae, [timing[i % len(timing)] for i in range(JIT_TIMING_STEPS + 1)],
                                        steps=JIT_TIMING_STEPS)
                timing.close()
                print(f"training step: XLA {rates[True]:.0f} images/s, without {rates[False]:.0f} images/s on "
                      f"{os.path.basename(path)}: {'XLA' if xla else 'without XLA'} (--jit auto)")
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
            if held and position == len(batches) - 1:  # the epoch's last file: how V does on frames it never saw
                history[-1].update(measure_held_out(f"after epoch {epoch}"))
            save_vae(vae, args.env_name, args.vae_dir, history=(history_path, history))  # together
            mu, _ = vae.encode(shown_frames)
            save_reconstructions(os.path.join(args.vae_dir, f"{args.env_name}.reconstructions.png"), shown_frames,
                                 np.asarray(vae.decoder(mu)))
            # held-out losses are points at the ends of epochs (rows of runs without them: none)
            measured = [(row_number, row) for row_number, row in enumerate(history, 1) if "holdout_loss" in row]
            points = {f"held-out {name}": ([number for number, _ in measured],
                                           [row[f"holdout_{name}"] for _, row in measured])
                      for name in ("loss", "reconstruction_loss")}
            save_curves(os.path.join(args.vae_dir, f"{args.env_name}.loss.png"),
                        {name: [row[name] for row in history] for name in ("loss", "reconstruction_loss", "kl_loss")},
                        xlabel="batch file visited", ylabel="loss per frame", title=f"VAE training ({args.env_name})",
                        points=points if measured else None)
    print(f"saved {weights_path} and its NumPy copy ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
