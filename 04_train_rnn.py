"""Stage 04: train M, the MDN-RNN, to predict the next latent frame from [z_t, a_t].

    python 04_train_rnn.py --start_batch 0 --max_batch 9 --new_model

Reads the rnn_mu / rnn_logvar / rnn_input / rnn_length / rnn_done files of stage 03 for batches start..max (files of
different episode lengths train together: random play recorded for 300 steps beside a controller's 1000). Every
epoch draws a fresh z = mu + exp(logvar / 2) * eps for every frame (as the paper does), so M never fits one noisy
encoding. Minibatches group episodes of similar length, each cut to its longest (rnn.train.length_buckets): Doom
episodes last 50 to 2100 steps, and the LSTM need not run over padding. Every step of the epoch weighs the same in
training whatever the grouping (each minibatch's loss is its sum over steps over a constant for the epoch, MDNRNN's
norms), and the losses printed are per step. After every epoch it writes
./rnn/<env>.weights.h5 and ./rnn/<env>.npz whole, ./rnn/<env>.history.json and a loss curve ./rnn/<env>.loss.png.
Without --new_model it resumes from the saved weights.

--holdout_batches N keeps the last N batch files of the range out of training and reports M's losses on them after
every epoch (val_loss, val_z_loss, val_done_loss; one fixed draw of z): a falling training loss with a rising held-out
loss is M memorising its episodes. It cannot show M's mistakes where random play never goes (Doom: at a wall), which
a controller trained in the dream finds; for those, see docs/results.md (DoomTakeCover) and 01 --controller.
"""

from __future__ import annotations

import math
import os
import time

from cli import ArgumentParser, UserError, check_flags, check_init_from, run_cli


def parse_args(argv=None):
    from config import CONFIGS, add_folder_flags

    parser = ArgumentParser(description="Train the MDN-RNN (M) on VAE-encoded sequences.")
    parser.add_argument("--env_name", default="car_racing", choices=sorted(CONFIGS), help="the environment")
    parser.add_argument("--start_batch", type=int, default=0, help="first batch file of the range")
    parser.add_argument("--max_batch", type=int, default=0, help="last batch file of the range (inclusive)")
    parser.add_argument("--new_model", action="store_true", help="start from fresh weights instead of ./rnn/")
    parser.add_argument("--epochs", type=int, default=20, help="passes over all sequences (default 20)")
    parser.add_argument("--batch_size", type=int, default=None, help="sequences per minibatch (default: paper's 100)")
    parser.add_argument("--learning_rate", type=float, default=None,
                        help="Adam's starting step (default: the config's, 1e-3; Doom decays it towards 1e-5; a "
                             "resumed run keeps its own rate, Doom its own schedule, unless given: a Doom M then "
                             "decays from the given rate on)")
    parser.add_argument("--holdout_batches", type=int, default=0,
                        help="last N batch files of the range: not trained on, their losses printed every epoch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, the minibatches and the z draws")
    parser.add_argument("--init_from", default=None, metavar="DIR",
                        help="a new M (as --new_model) starting from the weights of DIR/<env>.npz, an M's NumPy copy "
                             "(e.g. pretrained/<env>/rnn, the shipped one); Adam starts afresh")
    add_folder_flags(parser, "data", "rnn")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="1: a progress bar per epoch; every value prints a line per epoch")
    parser.add_argument("--tf_log", action="store_true",
                        help="show TensorFlow's start-up log (CUDA, oneDNN and absl lines), hidden otherwise")
    args = parser.parse_args(argv)
    if args.tf_log:  # keras_setup.quiet_tensorflow() leaves TensorFlow's log alone below level 2; TF is not loaded yet
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    check_flags(args, at_least={"epochs": 1, "batch_size": 1, "start_batch": 0}, positive=("learning_rate",),
                seeds=("seed",))
    check_init_from(args.init_from, args.rnn_dir, "--rnn_dir", "M")
    if args.max_batch < args.start_batch:  # before the held-out check, which would blame --holdout_batches
        raise UserError(f"--max_batch must be at least --start_batch ({args.start_batch}), got {args.max_batch}")
    if not 0 <= args.holdout_batches <= args.max_batch - args.start_batch:
        raise UserError(f"--holdout_batches {args.holdout_batches} must leave at least one of batches "
                        f"{args.start_batch}..{args.max_batch} to train on")
    return args


def load_sequences(args, config, start_batch: int, max_batch: int):
    """Concatenate the stage-03 files of batches start..max: mu, logvar (N, T, z), actions (N, T, A), lengths, dones."""
    import numpy as np

    from config import MAKES_RNN_DATA, data_file
    from npyio import batch_range_files, check_lengths, load_npy

    made_by = MAKES_RNN_DATA.format(env=args.env_name)
    parts = {"mu": [], "logvar": [], "actions": [], "lengths": [], "dones": []}
    for batch, _ in batch_range_files("rnn_mu", args.env_name, start_batch, max_batch, made_by, args.data_dir):
        def load(kind, **checks):
            return load_npy(data_file(kind, args.env_name, batch, args.data_dir), made_by, mmap=False, **checks)

        mu = load("rnn_mu", ndim=3, trailing_shape=(config.z_size,), dtype="float32")
        logvar = load("rnn_logvar", ndim=3, trailing_shape=(config.z_size,), dtype="float32")
        rnn_input = load("rnn_input", ndim=3, trailing_shape=(config.rnn_input_size,), dtype="float32")
        lengths, dones = load("rnn_length", ndim=1), load("rnn_done", ndim=2)
        if not (mu.shape == logvar.shape and rnn_input.shape[:2] == mu.shape[:2] == dones.shape
                and lengths.shape == mu.shape[:1]):
            raise UserError(f"the rnn_* files of batch {batch} disagree in shape; remake them with: {made_by}")
        check_lengths(lengths, mu.shape[1], data_file("rnn_length", args.env_name, batch, args.data_dir), made_by)
        parts["mu"].append(mu)
        parts["logvar"].append(logvar)
        parts["actions"].append(rnn_input[..., config.z_size:config.z_size + config.action_size])
        parts["lengths"].append(lengths)
        parts["dones"].append(dones)
    # files of different episode lengths (random play recorded for 300 steps, a controller's episodes for 1000) are
    # padded to the longest: the steps past an episode's length are padding in every file already
    time_steps = max(m.shape[1] for m in parts["mu"])
    return {name: np.concatenate([pad_steps(value, time_steps) for value in values])
            for name, values in parts.items()}


def pad_steps(array, time_steps: int):
    """array (N, T, ...) with exactly `time_steps` steps on axis 1: cut, or zero-padded; (N,) arrays (lengths) are
    returned as they are."""
    import numpy as np

    if array.ndim < 2 or array.shape[1] >= time_steps:
        return array if array.ndim < 2 else array[:, :time_steps]
    widths = [(0, 0), (0, time_steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths)


def learning_rate_schedule(rnn, config, history: list, given: float | None, history_path: str) -> dict:
    """Set and print M's learning rate; returns what the history rows keep of a decaying one ({} for a constant).

    A constant rate (CarRacing) is saved with Adam's state and restored by a resume unless --learning_rate is given
    (rnn.train.load_rnn). Doom's decaying schedule is not in the weights file: its start and first step go into
    every history row, so a resume goes on with the same schedule, and one given a new --learning_rate decays from
    that rate at the current step."""
    from reading import finite_number
    from rnn.arch import decays, set_decay

    if not decays(config):
        print(f"M's learning rate: {float(rnn.optimizer.learning_rate):.3g}")
        return {}
    step = int(rnn.optimizer.iterations.numpy())
    last = history[-1] if history else {}
    if step == 0:
        start, offset = given or config.rnn_learning_rate, 0
    elif given is not None:
        start, offset = given, step
    elif "rate_start" in last:
        start, offset = last["rate_start"], last.get("rate_offset")
        if (finite_number(start) is None or not start > 0 or type(offset) is not int or not 0 <= offset <= step):
            raise UserError(f"{history_path} holds a damaged learning-rate schedule ({start!r} from step "
                            f"{offset!r}); give --learning_rate to go on from a rate of your choice")
    else:  # a history written before the schedule was kept: the default one, as those runs resumed
        start, offset = config.rnn_learning_rate, 0
    set_decay(rnn, config, start, offset)
    print(f"M's learning rate: {float(rnn.optimizer.learning_rate):.3g} at step {step}, decaying from {start:g} "
          f"(step {offset}) towards {min(config.rnn_min_learning_rate, start):g}")
    return {"rate_start": start, "rate_offset": offset}


def main(argv=None):
    args = parse_args(argv)
    from config import get_config, rnn_weights_path

    from files import lock_outputs, temporaries_of
    from model_files import refuse_the_other_models_folder

    config = get_config(args.env_name)
    refuse_the_other_models_folder(args.rnn_dir, args.env_name, "--rnn_dir")
    # one run at a time writes ./rnn/<env>.*; the lock file is also the check that the folder takes files
    lock_outputs(args.rnn_dir, args.env_name, [(args.rnn_dir, temporaries_of(rf"{args.env_name}\..+"))])
    last_trained = args.max_batch - args.holdout_batches
    data = load_sequences(args, config, args.start_batch, last_trained)
    held_out = load_sequences(args, config, last_trained + 1, args.max_batch) if args.holdout_batches else None
    # Steps after the longest episode are padding in every sequence: leave them out (a Doom file is padded to 2100
    # steps while random play survives about 300, so this skips most of the LSTM's work and changes no loss).
    parts = [part for part in (data, held_out) if part is not None]
    longest = max(int(part["lengths"].max()) for part in parts)
    for part in parts:
        for key in ("mu", "logvar", "actions", "dones"):
            part[key] = pad_steps(part[key], longest)

    from keras_setup import quiet_tensorflow

    quiet_tensorflow()  # TensorFlow's start-up log hidden unless --tf_log
    import keras

    from model_files import check_room_for_model, new_or_resumed
    from plots import save_curves
    from rnn.arch import make_rnn
    from rnn.train import (epoch_rng, length_buckets, load_rnn, rnn_arrays, rnn_from_numpy_copy, save_rnn,
                           step_norms, training_masks)
    from tqdm import tqdm

    keras.utils.set_random_seed(args.seed)
    weights_path = rnn_weights_path(args.env_name, rnn_dir=args.rnn_dir)
    history_path = os.path.join(args.rnn_dir, f"{args.env_name}.history.json")
    def make():
        if args.init_from is None:
            return make_rnn(config, args.learning_rate)
        path = rnn_weights_path(args.env_name, numpy_export=True, rnn_dir=args.init_from)
        print(f"a new M from the weights of {path} (Adam starts afresh)")
        return rnn_from_numpy_copy(config, path, args.learning_rate)

    rnn, history = new_or_resumed("MDN-RNN", weights_path, history_path, args.new_model or args.init_from is not None,
                                  make=make,
                                  load=lambda: load_rnn(config, args.rnn_dir, args.learning_rate))
    check_room_for_model(rnn, args.rnn_dir)  # a full disk is named now, not after the first epoch
    schedule = learning_rate_schedule(rnn, config, history, args.learning_rate, history_path)
    batch_size = args.batch_size or config.rnn_batch_size
    episodes, time_steps = data["mu"].shape[:2]
    print(f"MDN-RNN for {args.env_name}: LSTM {config.rnn_size}, {config.num_mixtures} Gaussians per latent, "
          f"{rnn.count_params():,} parameters; {episodes} sequences of {time_steps} steps, {args.epochs} epochs, "
          f"minibatch {batch_size}" + (f"; {len(held_out['lengths'])} held-out sequences (batches "
                                       f"{last_trained + 1}..{args.max_batch})" if held_out is not None else ""))

    z_mask, done_target, done_mask = training_masks(data["lengths"], data["dones"], time_steps)
    norms = step_norms(data["lengths"])
    held_out_losses = held_out_evaluator(rnn, held_out, config, batch_size, args.seed) if held_out else None
    started = time.time()
    first_epoch = len(history) + 1
    for epoch in range(first_epoch, first_epoch + args.epochs):
        rng = epoch_rng(args.seed, epoch)  # a resumed run's epochs 21.. do not replay the draws of its epochs 1..
        inputs, z_next = rnn_arrays(data["mu"], data["logvar"], data["actions"], data["lengths"], config.use_done,
                                    rng)
        # minibatches of similar-length episodes, each cut to its longest: the LSTM skips most of the padding
        groups = length_buckets(data["lengths"], batch_size, rng, max_steps=time_steps)
        progress = tqdm(groups, desc=f"epoch {epoch} (fresh z draw)", unit="minibatch", disable=args.verbose != 1)
        where = f"minibatch {{}} of {len(groups)}"
        try:
            result = run_minibatches(rnn.train_on_batch, progress, inputs,
                                     (z_next, z_mask, done_target, done_mask, *norms),
                                     lambda logs: progress.set_postfix(loss=f"{float(logs['loss']):.4f}"))
            where = "held-out minibatch {}"
            if held_out_losses is not None:
                result.update({f"val_{name}": value for name, value in held_out_losses().items()})
        except NonFiniteLoss as failure:  # that step changed the weights: save nothing of this epoch
            progress.close()
            rate = float(rnn.optimizer.learning_rate)  # the rate of this step (Doom's decays; a resume keeps its own)
            raise UserError(f"M's loss became {failure.loss} in epoch {epoch}, {where.format(failure.index + 1)}; "
                            f"stopped without saving ({weights_path} keeps the last good weights); try a lower "
                            f"--learning_rate (this run: {rate:g})") from None
        history.append({"epoch": epoch, "elapsed_s": round(time.time() - started, 1), **result,
                        "learning_rate": float(rnn.optimizer.learning_rate), **schedule})
        print(f"epoch {epoch}: {len(groups)} minibatches, {history[-1]['elapsed_s']:.0f} s - "
              + " - ".join(f"{name}: {value:.4f}" for name, value in result.items()), flush=True)
        save_rnn(rnn, args.env_name, args.rnn_dir, history=(history_path, history))  # together
        names = [n for n in ("loss", "z_loss", "done_loss", "val_loss", "val_z_loss", "val_done_loss")
                 if n in history[-1]]
        # a run resumed with --holdout_batches has no held-out losses for its earlier epochs: gaps in the curve
        save_curves(os.path.join(args.rnn_dir, f"{args.env_name}.loss.png"),
                    {name: [row.get(name, math.nan) for row in history] for name in names},
                    xlabel="epoch", ylabel="loss per step", title=f"MDN-RNN training ({args.env_name})")
    print(f"saved {weights_path} and its NumPy copy ({time.time() - started:.0f} s)")


class NonFiniteLoss(Exception):
    """A minibatch's loss was NaN or infinite: `index` (from 0) and the `loss`."""

    def __init__(self, index: int, loss: float):
        super().__init__(f"minibatch {index}: loss {loss}")
        self.index, self.loss = index, loss


def run_minibatches(step, groups, inputs, targets: tuple, after_each=None) -> dict:
    """step(x, y, return_dict=True) (train_on_batch or test_on_batch) on every minibatch (rows, steps) of `groups`,
    targets (z_next, z_mask, done, done_mask, z_norm, done_norm); returns the losses per step of the epoch: each
    minibatch's loss is its sum over steps divided by its rows' norms, so the norms weigh it back into the sum.
    A loss that is not finite raises NonFiniteLoss at once (every later step would train on NaN weights)."""
    sums, norms = {}, {}
    z_norm, done_norm = targets[4], targets[5]
    for index, (rows, steps) in enumerate(groups):
        logs = step(inputs[rows, :steps], tuple(target[rows, :steps] for target in targets), return_dict=True)
        if not math.isfinite(float(logs["loss"])):
            raise NonFiniteLoss(index, float(logs["loss"]))
        for name, norm in (("z_loss", z_norm), ("done_loss", done_norm)):
            if name in logs:
                weight = float(norm[rows].sum())
                sums[name] = sums.get(name, 0.0) + weight * float(logs[name])
                norms[name] = norms.get(name, 0.0) + weight
        if after_each is not None:
            after_each(logs)
    result = {name: sums[name] / max(norms[name], 1e-12) for name in sums}
    return {"loss": sum(result.values()), **result}


def held_out_evaluator(rnn, held_out: dict, config, batch_size: int, seed: int):
    """A function giving M's losses on the held-out sequences, averaged over their recorded steps.

    z is drawn once from the stored Gaussians (seed + 1), so the numbers of successive epochs are comparable.
    """
    import numpy as np

    from rnn.train import length_buckets, rnn_arrays, step_norms, training_masks

    rng = np.random.default_rng(seed + 1)
    lengths = held_out["lengths"]
    inputs, z_next = rnn_arrays(held_out["mu"], held_out["logvar"], held_out["actions"], lengths, config.use_done, rng)
    z_mask, done_target, done_mask = training_masks(lengths, held_out["dones"], inputs.shape[1])
    groups = length_buckets(lengths, batch_size, rng, max_steps=inputs.shape[1])
    targets = (z_next, z_mask, done_target, done_mask, *step_norms(lengths))
    return lambda: run_minibatches(rnn.test_on_batch, groups, inputs, targets)


if __name__ == "__main__":
    run_cli(main)
