"""Stage 04: train M, the MDN-RNN, to predict the next latent frame from [z_t, a_t].

    python 04_train_rnn.py --start_batch 0 --max_batch 9 --new_model

Reads the rnn_mu / rnn_logvar / rnn_input / rnn_length / rnn_done files of stage 03 for batches start..max (files of
different episode lengths train together: random play recorded for 300 steps beside a controller's 1000). Every
epoch draws a fresh z = mu + exp(logvar / 2) * eps for every frame (as the paper does), so M never fits one noisy
encoding, minibatch by minibatch. Minibatches group episodes of similar length, each cut to its longest
(rnn.train.length_buckets): Doom episodes last 50 to 2100 steps, and the LSTM need not run over padding; in memory
each episode keeps only its recorded steps (10,000 random Doom episodes: about 2 GB, not 20 padded). Every step of
the epoch weighs the same in training whatever the grouping (each minibatch's loss is its sum over steps over a
constant for the epoch, MDNRNN's norms), and the losses printed are per step. After every epoch it writes
./rnn/<env>.weights.h5 and ./rnn/<env>.npz whole, ./rnn/<env>.history.json and a loss curve ./rnn/<env>.loss.png.
Without --new_model it resumes from the saved weights.

--holdout_batches N keeps the last N batch files of the range out of training and reports M's losses on them after
every epoch (val_loss, val_z_loss, val_done_loss; one fixed draw of z): a falling training loss with a rising held-out
loss is M memorising its episodes. It cannot show M's mistakes where random play never goes (Doom: at a wall), which
a controller trained in the dream finds; for those, see docs/results.md (DoomTakeCover) and 01 --controller.
"""

from __future__ import annotations

import dataclasses
import os
import time

from cli import SettingsParser, UserError, check_init_from, option, run_cli
from config import folder_option
from stage_settings import (BatchRange, check_seed_and_start, init_from_option, new_model_option, show_tf_log,
                            tf_log_option)


@dataclasses.dataclass(frozen=True)
class Settings(BatchRange):
    new_model: bool = new_model_option("rnn")
    epochs: int = option(20, "passes over all sequences (default 20)")
    batch_size: int | None = option(None, "sequences per minibatch (default: paper's 100)")
    learning_rate: float | None = option(None, "Adam's starting step (default: the config's, 1e-3; Doom decays it "
                                               "towards 1e-5; a resumed run keeps its own rate, Doom its own "
                                               "schedule, unless given: a Doom M then decays from the given rate on)")
    holdout_batches: int = option(0, "last N batch files of the range: not trained on, their losses printed every "
                                     "epoch")
    seed: int = option(0, "seed of the weights, the minibatches and the z draws")
    init_from: str | None = init_from_option("M", "rnn")
    data_dir: str = folder_option("data")
    rnn_dir: str = folder_option("rnn")
    verbose: int = option(1, "1: a progress bar per epoch; every value prints a line per epoch", choices=(0, 1, 2))
    tf_log: bool = tf_log_option()

    def __post_init__(self):
        check_seed_and_start(self, at_least={"epochs": 1, "batch_size": 1}, positive=("learning_rate",))
        check_init_from(self.init_from, self.rnn_dir, "--rnn_dir", "M")
        self.check_range()  # before the held-out check, which would blame --holdout_batches
        if not 0 <= self.holdout_batches <= self.max_batch - self.start_batch:
            raise UserError(f"--holdout_batches {self.holdout_batches} must leave at least one of batches "
                            f"{self.start_batch}..{self.max_batch} to train on")


def parse_args(argv=None) -> Settings:
    settings = SettingsParser(Settings, description="Train the MDN-RNN (M) on VAE-encoded sequences.").parse(argv)
    show_tf_log(settings)
    return settings


def main(argv=None):
    args = parse_args(argv)
    from config import get_config, rnn_weights_path
    from keras_setup import quiet_tensorflow
    from model_files import check_room_for_model, claim_model_folder, new_or_resumed
    from rnn.train import load_sequences

    config = get_config(args.env_name)
    claim_model_folder(args.rnn_dir, args.env_name, "--rnn_dir")
    last_trained = args.max_batch - args.holdout_batches
    data = load_sequences(config, args.start_batch, last_trained, args.data_dir)
    held_out = load_sequences(config, last_trained + 1, args.max_batch, args.data_dir) if args.holdout_batches else None

    quiet_tensorflow()  # TensorFlow's start-up log hidden unless --tf_log
    import keras

    from rnn.train import held_out_evaluator, learning_rate_schedule, load_rnn, new_rnn, save_progress, train_epoch

    keras.utils.set_random_seed(args.seed)
    weights_path = rnn_weights_path(args.env_name, rnn_dir=args.rnn_dir)
    history_path = os.path.join(args.rnn_dir, f"{args.env_name}.history.json")
    rnn, history = new_or_resumed("MDN-RNN", weights_path, history_path, args.new_model or args.init_from is not None,
                                  make=lambda: new_rnn(config, args.learning_rate, args.init_from),
                                  load=lambda: load_rnn(config, args.rnn_dir, args.learning_rate))
    check_room_for_model(rnn, args.rnn_dir)  # a full disk is named now, not after the first epoch
    schedule = learning_rate_schedule(rnn, config, history, args.learning_rate, history_path)
    batch_size = args.batch_size or config.rnn_batch_size
    print(f"MDN-RNN for {args.env_name}: LSTM {config.rnn_size}, {config.num_mixtures} Gaussians per latent, "
          f"{rnn.count_params():,} parameters; {len(data.lengths)} sequences of up to {data.longest} steps "
          f"({int(data.lengths.sum()):,} in all), {args.epochs} epochs, "
          f"minibatch {batch_size}" + (f"; {len(held_out.lengths)} held-out sequences (batches "
                                       f"{last_trained + 1}..{args.max_batch})" if held_out is not None else ""))
    held_out_losses = held_out_evaluator(rnn, held_out, config, batch_size, args.seed) if held_out is not None else None
    started = time.time()
    first_epoch = len(history) + 1
    for epoch in range(first_epoch, first_epoch + args.epochs):
        minibatches, result = train_epoch(rnn, data, config, args, batch_size, epoch, held_out_losses)
        history.append({"epoch": epoch, "elapsed_s": round(time.time() - started, 1), **result,
                        "learning_rate": float(rnn.optimizer.learning_rate), **schedule})
        print(f"epoch {epoch}: {minibatches} minibatches, {history[-1]['elapsed_s']:.0f} s - "
              + " - ".join(f"{name}: {value:.4f}" for name, value in result.items()), flush=True)
        save_progress(rnn, args.env_name, args.rnn_dir, history, history_path)
    print(f"saved {weights_path} and its NumPy copy ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
