"""Training plumbing for M: sequences rebuilt from the encoder's Gaussians, masks, and whole-file checkpoints.

Files: ./rnn/<env>.weights.h5 (Keras weights, what training resumes from) and ./rnn/<env>.npz (NumPy copy for
TensorFlow-free rollout and dream workers). Both are written whole (temporary file, then rename).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

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


# --- stage 04's steps ------------------------------------------------------------------------------------------------
class Sequences(NamedTuple):
    """Stage 03's encodings of a range of batches, each episode's recorded steps only: mu, logvar (N arrays of
    (length, z)), actions (N of (length, A)), lengths (N,), dones (N of (length,)). A Doom file is padded to 2100
    steps while random play lives about 300: 10,000 random episodes kept padded would take over 10 GB for mu and
    logvar alone, and an epoch's draw of z as much again."""

    mu: list
    logvar: list
    actions: list
    lengths: np.ndarray
    dones: list

    @property
    def longest(self) -> int:
        return int(self.lengths.max())

    def padded(self, rows, steps: int) -> tuple:
        """(mu, logvar, actions, dones) of the episodes `rows`, each zero-padded or cut to `steps` steps: (B, steps,
        ...) arrays, as one stage-03 file holds them."""
        def pad(arrays):
            out = np.zeros((len(rows), steps) + arrays[rows[0]].shape[1:], dtype=np.float32)
            for slot, row in enumerate(rows):
                part = arrays[row][:steps]
                out[slot, :len(part)] = part
            return out

        return pad(self.mu), pad(self.logvar), pad(self.actions), pad(self.dones)


def load_sequences(config, start_batch: int, max_batch: int, data_dir: str) -> Sequences:
    """The stage-03 files of batches start..max, checked, each episode kept to its recorded steps (the steps past an
    episode's length are padding in every file), so files of different lengths (random play recorded for 300 steps,
    a controller's episodes for 1000) go together."""
    from config import MAKES_RNN_DATA, data_file
    from npyio import batch_range_files, check_lengths, load_npy

    made_by = MAKES_RNN_DATA.format(env=config.name)
    mus, logvars, actions_of, dones_of, all_lengths = [], [], [], [], []
    for batch, _ in batch_range_files("rnn_mu", config.name, start_batch, max_batch, made_by, data_dir):
        def load(kind, **checks):
            return load_npy(data_file(kind, config.name, batch, data_dir), made_by, mmap=False, **checks)

        mu = load("rnn_mu", ndim=3, trailing_shape=(config.z_size,), dtype="float32")
        logvar = load("rnn_logvar", ndim=3, trailing_shape=(config.z_size,), dtype="float32")
        rnn_input = load("rnn_input", ndim=3, trailing_shape=(config.rnn_input_size,), dtype="float32")
        lengths, dones = load("rnn_length", ndim=1), load("rnn_done", ndim=2)
        if not (mu.shape == logvar.shape and rnn_input.shape[:2] == mu.shape[:2] == dones.shape
                and lengths.shape == mu.shape[:1]):
            raise UserError(f"the rnn_* files of batch {batch} disagree in shape; remake them with: {made_by}")
        check_lengths(lengths, mu.shape[1], data_file("rnn_length", config.name, batch, data_dir), made_by)
        actions = rnn_input[..., config.z_size:config.z_size + config.action_size]
        for episode, length in enumerate(int(n) for n in lengths):  # copies: the padded file is let go
            mus.append(mu[episode, :length].copy())
            logvars.append(logvar[episode, :length].copy())
            actions_of.append(actions[episode, :length].copy())
            dones_of.append(dones[episode, :length].astype(np.float32))
        all_lengths.append(np.asarray(lengths))
    return Sequences(mus, logvars, actions_of, np.concatenate(all_lengths), dones_of)


def learning_rate_schedule(rnn, config, history: list, given: float | None, history_path: str) -> dict:
    """Set and print M's learning rate; returns what the history rows keep of a decaying one ({} for a constant).

    A constant rate (CarRacing) is saved with Adam's state and restored by a resume unless --learning_rate is given
    (load_rnn). Doom's decaying schedule is not in the weights file: its start and first step go into every history
    row, so a resume goes on with the same schedule, and one given a new --learning_rate decays from that rate at the
    current step."""
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


def new_rnn(config, learning_rate: float | None, init_from: str | None = None):
    """A new M: fresh weights, or (`init_from`, a folder) those of the NumPy copy there, Adam starting afresh."""
    from rnn.arch import make_rnn

    if init_from is None:
        return make_rnn(config, learning_rate)
    path = rnn_weights_path(config.name, numpy_export=True, rnn_dir=init_from)
    print(f"a new M from the weights of {path} (Adam starts afresh)")
    return rnn_from_numpy_copy(config, path, learning_rate)


def minibatch(data: Sequences, rows, steps: int, use_done: bool, rng, norms: tuple) -> tuple:
    """(inputs, targets) of the episodes `rows` of `data`, `steps` steps long, z drawn from `rng`: what M is trained
    towards, the next z, where it counts, the done flags, where they count, and each episode's share of a
    minibatch's normalisers (`norms`: step_norms of the whole epoch's lengths, so that every step weighs the same)."""
    mu, logvar, actions, dones = data.padded(rows, steps)
    lengths = data.lengths[rows]
    inputs, z_next = rnn_arrays(mu, logvar, actions, lengths, use_done, rng)
    return inputs, (z_next, *training_masks(lengths, dones, steps), norms[0][rows], norms[1][rows])


class NonFiniteLoss(Exception):
    """A minibatch's loss was NaN or infinite: `index` (from 0) and the `loss`."""

    def __init__(self, index: int, loss: float):
        super().__init__(f"minibatch {index}: loss {loss}")
        self.index, self.loss = index, loss


def run_minibatches(step, groups, batch, after_each=None) -> dict:
    """step(x, y, return_dict=True) (train_on_batch or test_on_batch) on every minibatch (rows, steps) of `groups`,
    each made by batch(rows, steps) -> (inputs, targets) (minibatch: the z draws of an epoch, made as it goes);
    returns the losses per step of the epoch: each minibatch's loss is its sum over steps divided by its rows'
    norms (the last two targets), so the norms weigh it back into the sum. A loss that is not finite raises
    NonFiniteLoss at once (every later step would train on NaN weights)."""
    sums, norms = {}, {}
    for index, (rows, steps) in enumerate(groups):
        inputs, targets = batch(rows, steps)
        logs = step(inputs, targets, return_dict=True)
        if not math.isfinite(float(logs["loss"])):
            raise NonFiniteLoss(index, float(logs["loss"]))
        for name, norm in (("z_loss", targets[4]), ("done_loss", targets[5])):
            if name in logs:
                weight = float(norm.sum())
                sums[name] = sums.get(name, 0.0) + weight * float(logs[name])
                norms[name] = norms.get(name, 0.0) + weight
        if after_each is not None:
            after_each(logs)
    result = {name: sums[name] / max(norms[name], 1e-12) for name in sums}
    return {"loss": sum(result.values()), **result}


def held_out_evaluator(rnn, held_out: Sequences, config, batch_size: int, seed: int):
    """A function giving M's losses on the held-out sequences, averaged over their recorded steps.

    Its minibatches and its z draws are the same at every call (seed + 1), so the numbers of successive epochs are
    comparable.
    """
    norms = step_norms(held_out.lengths)
    groups = length_buckets(held_out.lengths, batch_size, np.random.default_rng(seed + 1),
                            max_steps=held_out.longest)

    def losses() -> dict:
        rng = np.random.default_rng(seed + 1)
        return run_minibatches(rnn.test_on_batch, groups,
                               lambda rows, steps: minibatch(held_out, rows, steps, config.use_done, rng, norms))

    return losses


def train_epoch(rnn, data: Sequences, config, settings, batch_size: int, epoch: int,
                held_out_losses=None) -> tuple[int, dict]:
    """One epoch of M on `data`: minibatches of similar-length episodes each cut to its longest (the LSTM skips most
    of the padding), with a fresh z draw made minibatch by minibatch (both from epoch_rng(settings.seed, epoch): a
    resumed run's epochs 21.. do not replay the draws of its epochs 1..), then the held-out losses as val_* if asked
    for; returns (minibatches, losses). A loss that is not finite is a UserError: nothing of this epoch may be saved.
    `settings`: 04's (seed, verbose, env_name, rnn_dir)."""
    from tqdm import tqdm

    rng = epoch_rng(settings.seed, epoch)
    groups = length_buckets(data.lengths, batch_size, rng, max_steps=data.longest)
    norms = step_norms(data.lengths)
    progress = tqdm(groups, desc=f"epoch {epoch} (fresh z draw)", unit="minibatch", disable=settings.verbose != 1)
    where = f"minibatch {{}} of {len(groups)}"
    try:
        result = run_minibatches(rnn.train_on_batch, progress,
                                 lambda rows, steps: minibatch(data, rows, steps, config.use_done, rng, norms),
                                 lambda logs: progress.set_postfix(loss=f"{float(logs['loss']):.4f}"))
        where = "held-out minibatch {}"
        if held_out_losses is not None:
            result.update({f"val_{name}": value for name, value in held_out_losses().items()})
    except NonFiniteLoss as failure:  # that step changed the weights: save nothing of this epoch
        progress.close()
        rate = float(rnn.optimizer.learning_rate)  # the rate of this step (Doom's decays; a resume keeps its own)
        raise UserError(f"M's loss became {failure.loss} in epoch {epoch}, {where.format(failure.index + 1)}; "
                        f"stopped without saving ({rnn_weights_path(settings.env_name, rnn_dir=settings.rnn_dir)} "
                        f"keeps the last good weights); try a lower --learning_rate (this run: {rate:g})") from None
    return len(groups), result


def save_progress(rnn, env_name: str, rnn_dir: str, history: list[dict], history_path: str) -> None:
    """After an epoch: M's two files with its history (together), and the loss curve <env>.loss.png (a run resumed
    with --holdout_batches has no held-out losses for its earlier epochs: gaps in the curve)."""
    from figures import save_curves

    save_rnn(rnn, env_name, rnn_dir, history=(history_path, history))
    names = [n for n in ("loss", "z_loss", "done_loss", "val_loss", "val_z_loss", "val_done_loss") if n in history[-1]]
    save_curves(os.path.join(rnn_dir, f"{env_name}.loss.png"),
                {name: [row.get(name, math.nan) for row in history] for name in names},
                xlabel="epoch", ylabel="loss per step", title=f"MDN-RNN training ({env_name})")
