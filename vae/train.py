"""Training plumbing for V: uint8 minibatches straight from memory-mapped batch files, and whole-file checkpoints.

Files: ./vae/<env>.weights.h5 (Keras weights, what training resumes from) and ./vae/<env>.npz (the same weights as
NumPy arrays, what TensorFlow-free rollout workers load). Both are written whole (temporary file, then rename).
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple, Sequence

import numpy as np

from cli import UserError
from config import MAKES_VAE, vae_weights_path
from model_files import require_finite_model, save_model_files
from vae.arch import make_vae

import keras


def valid_frame_index(lengths: np.ndarray, time_steps: int) -> np.ndarray:
    """Flat indices (episode * T + t) of the recorded frames, skipping the zero padding after each episode's end."""
    steps = np.arange(time_steps)
    mask = steps[None, :] < np.asarray(lengths)[:, None]
    return np.flatnonzero(mask.ravel())


class FrameBatches(keras.utils.PyDataset):
    """Shuffled minibatches of uint8 frames (B, 64, 64, 3) from one obs file.

    Frames are read with one positioned read (pread) each from the open file, so only the frames of the current
    minibatch are ever in the process's memory: no float32 copy of the file and no memory-mapped pages piling up
    in the resident set (a 200 x 300 batch file is 737 MB). They stay uint8 until the model scales them.
    `frames` is the array `npyio.load_npy` memory-mapped (its file and offset are used); a plain array also works.
    """

    def __init__(self, frames: np.ndarray, index: np.ndarray, batch_size: int, seed: int | Sequence[int],
                 max_batches: int | None = None):
        super().__init__()
        self.frame_shape = frames.shape[2:]
        self.frame_bytes = int(np.prod(self.frame_shape))
        self.time_steps = frames.shape[1]
        if isinstance(frames, np.memmap) and frames.filename:
            self.fd, self.offset, self.array = os.open(frames.filename, os.O_RDONLY), frames.offset, None
        else:
            self.fd, self.offset, self.array = None, 0, frames.reshape((-1,) + self.frame_shape)
        self.index = np.array(index)
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        batches = int(np.ceil(len(self.index) / self.batch_size))
        return min(batches, self.max_batches) if self.max_batches else batches

    def __getitem__(self, i):
        chosen = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        if self.array is not None:
            return np.asarray(self.array[chosen])
        payload = b"".join(os.pread(self.fd, self.frame_bytes, self.offset + int(k) * self.frame_bytes)
                           for k in chosen)
        return np.frombuffer(payload, dtype=np.uint8).reshape((len(chosen),) + self.frame_shape)

    def on_epoch_end(self):
        self.order = self.rng.permutation(self.index)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def reseed_noise(vae, seed: int, epoch: int, position: int) -> None:
    """Set the generator of V's sampling noise (z = mu + sigma * eps) to a state drawn from (seed, epoch, position
    of the file in the epoch)."""
    state = np.random.SeedSequence([seed, epoch, position]).generate_state(1, dtype=np.uint32)[0]
    vae.seed_generator.state.assign(np.array([state, 0], dtype=vae.seed_generator.state.dtype))


def save_vae(vae, env_name: str, vae_dir: str, history: tuple[str, list] | None = None) -> str:
    """Write ./vae/<env>.weights.h5 and ./vae/<env>.npz whole, with the history (path, rows) that counts them if
    given; returns the Keras weights path."""
    path = vae_weights_path(env_name, vae_dir=vae_dir)
    save_model_files(vae, "V", path, vae_weights_path(env_name, numpy_export=True, vae_dir=vae_dir), history)
    return path


def load_vae(config, vae_dir: str, seed: int | None = None, learning_rate: float | None = None):
    """The trained VAE of `config`; a UserError names the command to run if its weights are missing or corrupt."""
    path = vae_weights_path(config.name, vae_dir=vae_dir)
    made_by = MAKES_VAE.format(env=config.name)
    if not os.path.exists(path):
        raise UserError(f"{path} is missing; make it with: {made_by}")
    from reading import WEIGHTS_BYTES, check_h5

    check_h5(path, WEIGHTS_BYTES, f"delete it and run: {made_by}")
    vae = make_vae(config, seed=seed, learning_rate=learning_rate)
    try:
        vae.load_weights(path)
    except Exception as error:  # h5py/keras raise several types on truncated or foreign files
        raise UserError(f"{path} is corrupt or not a VAE for {config.name} ({type(error).__name__}); "
                        f"delete it and run: {made_by}") from None
    require_finite_model(vae, path, made_by)
    if learning_rate is not None:  # load_weights restored the saved run's rate with Adam's state: a given one wins
        vae.optimizer.learning_rate = learning_rate
    return vae


def vae_from_numpy_copy(config, path: str, seed: int | None = None, learning_rate: float | None = None):
    """A new VAE whose weights are those of a V's NumPy copy (`<vae_dir>/<env>.npz`, the shipped
    `pretrained/<env>/vae` one included), Adam starting afresh; a missing, corrupt or mismatched file is a UserError."""
    from vae.numpy_vae import expected_vae_shapes, load_npz_weights

    weights = load_npz_weights(path, expected_vae_shapes(config.z_size), MAKES_VAE.format(env=config.name))
    vae = make_vae(config, seed=seed, learning_rate=learning_rate)
    for model in (vae.encoder, vae.decoder):
        for layer in model.layers:
            for variable in layer.weights:
                variable.assign(weights[f"{layer.name}/{variable.name}"])
    return vae


def set_jit(vae, jit_compile: bool) -> None:
    """Make V's next fit() run its training step with XLA (True) or as a plain TensorFlow graph (False)."""
    vae.jit_compile = jit_compile
    vae.train_function = None  # made again, with the new setting, by the next fit()


class _Minibatches(keras.utils.PyDataset):
    """Given minibatches as a dataset for fit()."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


class _StepSeconds(keras.callbacks.Callback):
    """The seconds of each training step of a fit(), without fit()'s own start and end."""

    def __init__(self):
        super().__init__()
        self.seconds, self.started = [], 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def choose_jit(vae, batches, steps: int = 3) -> tuple[bool, dict[bool, float]]:
    """Time V's training step with XLA and without on `batches` (uint8 minibatches of one size, at least 1 + steps:
    one each way to compile, not timed, then `steps` each way, alternating) and set V to the faster; returns (XLA
    chosen, {XLA?: images per second, the median step's}).

    Every variable of V and of Adam (weights, moments, step count, the sampling noise's generator) is put back as it
    was, so training could go on exactly as with the chosen step from the start. The steps run through fit(), as
    training does. 02 runs this in a child process of its own (vae.jit_choice) and trains with the chosen step alone.
    """
    variables = {id(v): v for v in [*vae.variables, *vae.optimizer.variables, vae.seed_generator.state]}.values()
    saved = [np.array(variable.numpy()) for variable in variables]
    functions = {}
    for jit_compile in (False, True):
        set_jit(vae, jit_compile)
        vae.fit(_Minibatches(batches[:1]), epochs=1, verbose=0)  # traces (and with XLA compiles) the step
        functions[jit_compile] = vae.train_function
    timers = {False: _StepSeconds(), True: _StepSeconds()}
    for batch in batches[1:1 + steps]:
        for jit_compile in (False, True):
            vae.train_function = functions[jit_compile]
            vae.fit(_Minibatches([batch]), epochs=1, verbose=0, callbacks=[timers[jit_compile]])
    for variable, value in zip(variables, saved):
        variable.assign(value)
    rates = {mode: len(batches[0]) / float(np.median(timer.seconds)) for mode, timer in timers.items()}
    chosen = rates[True] > rates[False]
    vae.jit_compile, vae.train_function = chosen, functions[chosen]
    return chosen, rates


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops fit() at the first minibatch whose loss is NaN or infinite and remembers where (`batch`, `loss`).

    The step that produced it has already changed the weights, so the caller must not save them; it reports the
    place and keeps the file of the last good weights (keras.callbacks.TerminateOnNaN stops without saying so)."""

    def __init__(self):
        super().__init__()
        self.batch = self.loss = None

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not np.isfinite(loss):
            self.batch, self.loss = batch, loss
            self.model.stop_training = True


def epoch_file_order(seed: int, epoch: int, count: int) -> list[int]:
    """The order in which an epoch of 02 visits its `count` batch files: shuffled anew every epoch from (seed,
    epoch), as the official code shuffles all frames every epoch (a fixed order ended every epoch on the same file:
    the controller's episodes, where they come last in the range)."""
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(count)]


def resume_point(history: list[dict], names: list[str], seed: int | None = None) -> tuple[int, int]:
    """(epoch to start with, batch files of it already trained on) for a run over the files `names`, which an
    epoch visits in epoch_file_order(seed, ...) (with `seed`; else in the order given).

    Every history row names its epoch, its file, the file's position in the epoch and the epoch's file count. A run
    stopped part-way through an epoch (after file k of n) is finished where it stopped when the new run has the same
    files: the epoch's shuffles are seeded by its number, so the files left see the minibatches they would have
    seen. The stopped epoch then counts as one of --epochs. Rows of older runs (no position) end their epoch.
    """
    if not history:
        return 1, 0
    last = history[-1]
    epoch = last["epoch"]
    if "position" not in last or last["position"] + 1 >= last["files"]:
        return epoch + 1, 0
    done = [row["file"] for row in history if row["epoch"] == epoch]
    visits = names if seed is None else [names[i] for i in epoch_file_order(seed, epoch, len(names))]
    if last["files"] == len(names) and done == visits[:len(done)]:
        print(f"epoch {epoch} stopped after {len(done)} of {len(names)} batch files: finishing it first")
        return epoch, len(done)
    print(f"epoch {epoch} stopped after {len(done)} of {last['files']} batch files, of another file range than "
          f"this run's: starting epoch {epoch + 1}")
    return epoch + 1, 0


def held_out_frames(files: list[tuple[np.ndarray, np.ndarray]], limit: int) -> np.ndarray:
    """Up to `limit` recorded frames (uint8, (N, 64, 64, 3)) spread evenly over each file's recorded frames, an equal
    share from each of `files` ((frames (E, T, 64, 64, 3), lengths (E,)) pairs): the same frames on every call."""
    share = max(1, limit // len(files))
    chosen = []
    for frames, lengths in files:
        index = valid_frame_index(lengths, frames.shape[1])
        picked = index[np.unique(np.linspace(0, len(index) - 1, min(share, len(index))).round().astype(int))]
        chosen.append(np.asarray(frames.reshape((-1,) + frames.shape[2:])[picked]))
    return np.concatenate(chosen)


def held_out_losses(vae, frames: np.ndarray, batch_size: int) -> dict[str, float]:
    """V's mean losses a frame on uint8 `frames`, decoding z = mu (no sampling: the same weights give the same
    numbers): reconstruction (sum of squared errors over the frame's pixels), KL with training's floor of
    kl_tolerance * z_size, and their sum. The keys are the training losses' names with "holdout_" in front."""
    from vae.arch import kl_divergence, reconstruction_error, to_unit_float

    reconstruction, kl = [], []
    for start in range(0, len(frames), batch_size):
        batch = frames[start:start + batch_size]
        mu, logvar = vae.encode(batch)
        reconstruction.append(np.asarray(reconstruction_error(to_unit_float(batch), vae.decoder(mu))))
        kl.append(np.maximum(np.asarray(kl_divergence(mu, logvar)), vae.kl_tolerance * vae.z_size))
    losses = {"holdout_reconstruction_loss": float(np.concatenate(reconstruction).mean()),
              "holdout_kl_loss": float(np.concatenate(kl).mean())}
    losses["holdout_loss"] = losses["holdout_reconstruction_loss"] + losses["holdout_kl_loss"]
    for name, value in losses.items():
        if not np.isfinite(value):
            raise UserError(f"V's {name} on the held-out frames is {value}: these weights are broken")
    return losses


# --- stage 02's steps ------------------------------------------------------------------------------------------------
RECONSTRUCTED_FRAMES = 8  # frames shown in ./vae/<env>.reconstructions.png
JIT_TIMING_STEPS = 3  # minibatches timed each way by --jit auto, after one each way that compiles


def new_vae(config, seed: int, learning_rate: float, init_from: str | None = None):
    """A new V: fresh weights, or (`init_from`, a folder) those of the NumPy copy there, Adam starting afresh."""
    if init_from is None:
        return make_vae(config, seed=seed, learning_rate=learning_rate)
    path = vae_weights_path(config.name, numpy_export=True, vae_dir=init_from)
    print(f"a new V from the weights of {path} (Adam starts afresh)")
    return vae_from_numpy_copy(config, path, seed=seed, learning_rate=learning_rate)


def saved_vae(config, vae_dir: str, seed: int):
    """The saved V of `vae_dir` (its NumPy copy where there is no Keras file), as --epochs 0 measures it."""
    from config import vae_file_to_read

    measured, from_numpy = vae_file_to_read(config.name, vae_dir)
    vae = vae_from_numpy_copy(config, measured, seed=seed) if from_numpy else load_vae(config, vae_dir, seed=seed)
    print(f"V {measured}, z = {config.z_size}")
    return vae


class HeldOut(NamedTuple):
    """The frames V's held-out losses are measured on, from batch files first..last."""

    frames: np.ndarray
    first: int
    last: int

    @classmethod
    def of(cls, batches: list, last: int, limit: int) -> HeldOut:
        """Up to `limit` frames (held_out_frames) of `batches` (rollout_files.RolloutBatch), the range's last files."""
        return cls(held_out_frames([(b.frames, b.lengths) for b in batches], limit), last - len(batches) + 1, last)


def report_held_out(vae, held_out: HeldOut, batch_size: int, when: str) -> dict[str, float]:
    """Print V's held-out losses (`when`: "before training", ...) and return them (held_out_losses)."""
    losses = held_out_losses(vae, held_out.frames, batch_size)
    print(f"held-out batches {held_out.first}..{held_out.last} ({len(held_out.frames):,} frames), {when}: loss "
          f"{losses['holdout_loss']:.2f} = reconstruction {losses['holdout_reconstruction_loss']:.2f} + KL "
          f"{losses['holdout_kl_loss']:.2f} a frame")
    return losses


def frames_to_show(frames: np.ndarray, lengths: np.ndarray, count: int = RECONSTRUCTED_FRAMES) -> np.ndarray:
    """`count` recorded frames of a batch file, evenly spread: the ones reconstructed after every file."""
    recorded = valid_frame_index(lengths, frames.shape[1])
    shown = recorded[np.linspace(0, len(recorded) - 1, count).astype(int)]
    return np.asarray(frames.reshape((-1, *frames.shape[2:]))[shown])


def fit_file(vae, settings, batch, batch_size: int, epoch: int, last_epoch: int, position: int,
             time_jit: bool) -> tuple[int, dict[str, float]]:
    """Train V one pass over the recorded frames of `batch` (a rollout_files.RolloutBatch, `position` in the epoch's
    order), in a shuffle of (settings.seed, epoch, position); returns (frames, fit's losses). `time_jit`: first time
    the step with XLA and without (--jit auto, in a child process: vae.jit_choice) and train with the faster. A loss that is not finite is a UserError:
    nothing of this file may be saved. `settings`: 02's (seed, steps_per_file, verbose, env_name, vae_dir)."""
    seed, name, frames = settings.seed, os.path.basename(batch.path), batch.frames
    index = valid_frame_index(batch.lengths, frames.shape[1])
    dataset = FrameBatches(frames, index, batch_size, seed=[seed, epoch, position],
                           max_batches=settings.steps_per_file)
    # the noise of z's sampling from (seed, epoch, file) too: a resumed run draws what one run draws (the
    # generator's state is not in the weights file)
    reseed_noise(vae, seed, epoch, position)
    if time_jit:  # minibatches of their own order (the training's shuffle untouched); V and Adam are put back after
        from vae.jit_choice import choose_jit_apart

        timing = FrameBatches(frames, index, batch_size, seed=[seed, epoch, position, 1])
        minibatches = [timing[i % len(timing)] for i in range(JIT_TIMING_STEPS + 1)]
        xla, rates = choose_jit_apart(settings.env_name, minibatches, steps=JIT_TIMING_STEPS)
        timing.close()
        set_jit(vae, xla)
        print(f"training step: XLA {rates[True]:.0f} images/s, without {rates[False]:.0f} images/s on "
              f"{name}: {'XLA' if xla else 'without XLA'} (--jit auto)")
    print(f"epoch {epoch}/{last_epoch}: {name} ({len(index):,} frames)")
    stop = StopOnNonFiniteLoss()
    result = vae.fit(dataset, epochs=1, verbose=settings.verbose, callbacks=[stop]).history
    dataset.close()
    if stop.batch is not None:  # this file's steps changed the weights: save nothing of them
        raise UserError(f"V's loss became {stop.loss} in epoch {epoch}, minibatch {stop.batch + 1} of {name}; "
                        f"stopped without saving ({vae_weights_path(settings.env_name, vae_dir=settings.vae_dir)} "
                        f"keeps the last good weights); try a lower --learning_rate (this run: "
                        f"{float(vae.optimizer.learning_rate):g})")
    return len(index), {key: float(values[-1]) for key, values in result.items()}


def save_progress(vae, env_name: str, vae_dir: str, history: list[dict], history_path: str,
                  shown_frames: np.ndarray) -> None:
    """After a batch file: V's two files with its history (together), what V makes of `shown_frames`
    (<env>.reconstructions.png) and the loss curve (<env>.loss.png, held-out losses as points at epochs' ends)."""
    from figures import save_curves, save_reconstructions

    save_vae(vae, env_name, vae_dir, history=(history_path, history))
    mu, _ = vae.encode(shown_frames)
    save_reconstructions(os.path.join(vae_dir, f"{env_name}.reconstructions.png"), shown_frames,
                         np.asarray(vae.decoder(mu)))
    measured = [(row_number, row) for row_number, row in enumerate(history, 1) if "holdout_loss" in row]
    points = {f"held-out {name}": ([number for number, _ in measured], [row[f"holdout_{name}"] for _, row in measured])
              for name in ("loss", "reconstruction_loss")}
    save_curves(os.path.join(vae_dir, f"{env_name}.loss.png"),
                {name: [row[name] for row in history] for name in ("loss", "reconstruction_loss", "kl_loss")},
                xlabel="batch file visited", ylabel="loss per frame", title=f"VAE training ({env_name})",
                points=points if measured else None)
