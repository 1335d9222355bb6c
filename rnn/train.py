"""Training plumbing for M: sequences rebuilt from the encoder's Gaussians, masks, and whole-file checkpoints.

Files: ./rnn/<env>.weights.h5 (Keras weights, what training resumes from) and ./rnn/<env>.npz (NumPy copy for
TensorFlow-free rollout and dream workers). Both are written whole (temporary file, then rename).
"""

from __future__ import annotations

import os

import numpy as np

from cli import UserError
from config import MAKES_RNN, rnn_weights_path
from model_files import require_finite_model, save_model_files


def rnn_arrays(mu, logvar, actions, lengths, use_done: bool, rng):
    """Build (rnn_input, rnn_output) from one batch's encodings (E, T, z), actions (E, T, A), lengths (E,).

    rnn_input[e, t] = [z_t, a_t (, restart_t)], rnn_output[e, t] = z_{t+1}; both zero after the episode's end, and
    rnn_output is zero at the last recorded step (no next frame). Stage 03 writes the input of one draw; stage 04
    makes a fresh draw of z, inputs and targets, every epoch.
    """
    episodes, time_steps, _ = mu.shape
    valid = (np.arange(time_steps)[None, :] < lengths[:, None])[..., None]
    z = np.where(valid, mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape).astype(np.float32), 0.0)
    parts = [z, np.where(valid, actions, 0.0)]
    if use_done:
        restart = np.zeros((episodes, time_steps, 1), dtype=np.float32)
        restart[:, 0] = 1.0
        parts.append(restart)
    rnn_input = np.concatenate(parts, axis=-1).astype(np.float32)
    has_next = (np.arange(time_steps)[None, :] < (lengths[:, None] - 1))[..., None]
    rnn_output = np.zeros_like(z)
    rnn_output[:, :-1] = z[:, 1:]
    rnn_output = np.where(has_next, rnn_output, 0.0).astype(np.float32)
    return rnn_input, rnn_output


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random stream of one epoch of 04 (its z draws and minibatches), a function of the seed and the epoch number
    alone: a resumed run draws anew, and 1 + 1 epochs draw what 2 in one go do."""
    return np.random.default_rng([seed, epoch])


def training_masks(lengths, dones, time_steps: int):
    """Masks for one batch of sequences: lengths (E,), dones (E, T) ->

    z_mask (E, T): 1 where step t has a next frame (t < length - 1), so the MDN loss covers it;
    done_target (E, T): 1 at the step where the episode ended by termination (Doom: the player died);
    done_mask (E, T): 1 on every recorded step (t < length), so the done loss covers it.
    """
    steps = np.arange(time_steps)[None, :]
    lengths = np.asarray(lengths)[:, None]
    z_mask = (steps < lengths - 1).astype(np.float32)
    done_mask = (steps < lengths).astype(np.float32)
    return z_mask, np.asarray(dones, dtype=np.float32) * done_mask, done_mask


def step_norms(lengths) -> tuple:
    """(z_norm, done_norm), each (E, 1): every episode's share of a minibatch's normaliser, the mean number of steps
    an episode has a loss on (length - 1 with a next frame for z, every recorded step for done). A minibatch's loss
    is its sum over steps divided by its rows' norms (MDNRNN): every step of the epoch weighs the same."""
    lengths = np.asarray(lengths, dtype=np.float64)
    z_steps, done_steps = np.maximum(lengths - 1, 0).mean(), lengths.mean()
    return (np.full((len(lengths), 1), z_steps, np.float32), np.full((len(lengths), 1), done_steps, np.float32))


def length_buckets(lengths, batch_size: int, rng, multiple: int = 64, max_steps: int | None = None):
    """One epoch's minibatches of similar-length episodes: a list of (episode indices, steps to keep).

    Episodes are sorted by length plus a uniform jitter of up to `multiple` steps (so the batches differ between
    epochs), cut into groups of `batch_size`, and the groups are shuffled. Each group keeps its longest episode's
    length rounded up to a multiple of `multiple` (few distinct shapes for TensorFlow to trace), at most `max_steps`.
    Every episode is in exactly one group; the steps cut off are padding in every episode of the group, where all
    masks are 0, so the losses are those of the whole padded sequences. Doom episodes last 50 to 2100 steps: without
    this, every minibatch would run the LSTM over the longest episode of the whole data set.
    """
    lengths = np.asarray(lengths)
    max_steps = int(max_steps or lengths.max())
    order = np.argsort(lengths + rng.uniform(0.0, multiple, len(lengths)), kind="stable")
    groups = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    return [(np.sort(group), min(-(-int(lengths[group].max()) // multiple) * multiple, max_steps))
            for group in groups]


def save_rnn(rnn, env_name: str, rnn_dir: str, history: tuple[str, list] | None = None) -> str:
    """Write ./rnn/<env>.weights.h5 and ./rnn/<env>.npz whole, with the history (path, rows) that counts them if
    given; returns the Keras weights path."""
    path = rnn_weights_path(env_name, rnn_dir=rnn_dir)
    save_model_files(rnn, "M", path, rnn_weights_path(env_name, numpy_export=True, rnn_dir=rnn_dir), history)
    return path


def rnn_from_numpy_copy(config, path: str, learning_rate: float | None = None):
    """A new MDN-RNN whose weights are those of an M's NumPy copy (`<rnn_dir>/<env>.npz`, the shipped
    `pretrained/<env>/rnn` one included), Adam starting afresh; a missing, corrupt or mismatched file is a UserError."""
    from rnn.arch import make_rnn
    from rnn.numpy_rnn import expected_rnn_shapes
    from vae.numpy_vae import load_npz_weights

    weights = load_npz_weights(path, expected_rnn_shapes(config), MAKES_RNN.format(env=config.name))
    rnn = make_rnn(config, learning_rate)
    for layer in (rnn.lstm, rnn.mdn, rnn.done_head):
        for variable in layer.weights if layer is not None else ():
            variable.assign(weights[f"{layer.name}/{variable.name}"])
    return rnn


def saved_optimizer_variables(path: str) -> int:
    """How many optimizer variables a Keras .weights.h5 file holds (its group optimizer/vars)."""
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle.get("optimizer/vars")
        return 0 if group is None else len(group)


def load_rnn(config, rnn_dir: str, learning_rate: float | None = None):
    """The trained MDN-RNN of `config`; a UserError names the command to run if its weights are missing or corrupt."""
    from rnn.arch import make_rnn

    path = rnn_weights_path(config.name, rnn_dir=rnn_dir)
    made_by = MAKES_RNN.format(env=config.name)
    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    from reading import WEIGHTS_BYTES, check_h5

    check_h5(path, WEIGHTS_BYTES, f"delete it and run: {made_by}")
    rnn = make_rnn(config, learning_rate)
    try:
        saved = saved_optimizer_variables(path)
        if saved != len(rnn.optimizer.variables):  # Keras would skip Adam's state with a warning, and go on afresh
            raise UserError(f"{path} holds an optimizer of {saved} variables, this M's Adam has "
                            f"{len(rnn.optimizer.variables)} (saved by another version of this project?); resuming "
                            f"would lose Adam's state: start afresh with --new_model, or from its weights with "
                            f"--init_from on a folder holding its {config.name}.npz")
        rnn.load_weights(path)
    except UserError:
        raise
    except Exception as error:  # h5py/keras raise several types on truncated or foreign files
        raise UserError(f"{path} is corrupt or not an MDN-RNN for {config.name} ({type(error).__name__}); "
                        f"delete it and run: {made_by}") from None
    require_finite_model(rnn, path, made_by)
    if learning_rate is not None and not callable(rnn.optimizer._learning_rate):
        # load_weights restored the saved run's constant rate with Adam's state: a given one wins (a decaying
        # schedule is not stored; make_rnn built it from `learning_rate`)
        rnn.optimizer.learning_rate = learning_rate
    return rnn
