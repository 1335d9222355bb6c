"""M: the MDN-RNN of the paper (appendix A.2), in Keras 3.

Input per step: [z_t, a_t] (CarRacing, 35 values) or [z_t, a_t, restart_t] (Doom, 66). One LSTM layer (256 units
CarRacing, 512 Doom) -> dense to 3 * K * z mixture parameters (K = 5 Gaussians per latent dimension; layout in
rnn/mdn.py) predicting z_{t+1}; Doom adds a dense(1) logit predicting that the episode ends at this step.
Parameter count: 422,368 CarRacing, 1,678,785 Doom.

Loss: mean over valid steps and latent dimensions of -log sum_k pi_k N(z_{t+1} | mu_k, sigma_k) (computed with
logsumexp); Doom adds binary cross-entropy on the done logit with positives weighted x10. Adam 1e-3, gradients
clipped by value at 1.0; Doom's learning rate decays towards 1e-5.
"""

from __future__ import annotations

import math

import numpy as np

from keras_setup import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def mdn_negative_log_likelihood(mdn_output, target, num_mixtures: int):
    """-log p(target) per latent dimension: mdn_output (..., 3*K*z), target (..., z) -> (..., z)."""
    leading = tuple(ops.shape(mdn_output)[:-1])
    grouped = ops.reshape(mdn_output, leading + (target.shape[-1], 3 * num_mixtures))
    log_pi, mu, log_sigma = ops.split(grouped, 3, axis=-1)
    log_pi = log_pi - ops.logsumexp(log_pi, axis=-1, keepdims=True)
    standardized = (ops.expand_dims(target, -1) - mu) * ops.exp(-log_sigma)
    log_gaussian = -0.5 * ops.square(standardized) - log_sigma - LOG_SQRT_TWO_PI
    return -ops.logsumexp(log_pi + log_gaussian, axis=-1)


def weighted_done_loss(done_logit, done_target, positive_weight: float):
    """Binary cross-entropy of the done logit, positives weighted `positive_weight`: (...,) x2 -> (...,)."""
    log_p = -ops.softplus(-done_logit)  # log sigmoid(x)
    log_not_p = -ops.softplus(done_logit)  # log (1 - sigmoid(x))
    return -(positive_weight * done_target * log_p + (1.0 - done_target) * log_not_p)


class DecayingLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = (start - end) * decay ** (step - offset) + end: the official Doom schedule (1e-3 towards 1e-5);
    `offset` is the step it starts at (a resumed M given a new --learning_rate decays from there)."""

    def __init__(self, start: float, end: float, decay: float = 0.99999, offset: int = 0):
        self.start, self.end, self.decay, self.offset = start, end, decay, offset

    def __call__(self, step):
        steps = ops.cast(step, "float32") - float(self.offset)
        return (self.start - self.end) * ops.power(self.decay, steps) + self.end

    def get_config(self):
        return {"start": self.start, "end": self.end, "decay": self.decay, "offset": self.offset}


class MDNRNN(keras.Model):
    """The MDN-RNN; `train_on_batch` takes (inputs, targets) with inputs (B, T, in) and targets = (z_next, mask, done,
    done_mask) or (z_next, mask, done, done_mask, z_norm, done_norm).

    mask (B, T) is 1 where z_next is a real next frame, done (B, T) is 1 at the step an episode ends (Doom) and
    the done loss covers steps with done_mask (B, T) = 1 (every recorded step, including the last one). Without
    norms each loss is the minibatch's mean over its steps. With them, z_norm and done_norm (B, 1) hold every
    episode's share of the steps a minibatch holds on average (the epoch's mean steps per episode), and each loss is
    the minibatch's sum over its steps divided by the sum of its rows' norms: every step of the epoch then weighs
    the same in training, as in the official code's fixed-size minibatches, however 04 groups episodes by length
    (a minibatch of short episodes would otherwise weigh each of its steps more).
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.z_size = config.z_size
        self.num_mixtures = config.num_mixtures
        self.use_done = config.use_done
        self.done_weight = config.done_weight
        self.input_size = config.rnn_input_size
        self.lstm = layers.LSTM(config.rnn_size, return_sequences=True, return_state=True, name="lstm")
        self.mdn = layers.Dense(3 * config.num_mixtures * config.z_size, name="mdn")
        self.done_head = layers.Dense(1, name="done") if config.use_done else None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.z_tracker = keras.metrics.Mean(name="z_loss")
        self.done_tracker = keras.metrics.Mean(name="done_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.z_tracker] + ([self.done_tracker] if self.use_done else [])

    def call(self, inputs, initial_state=None, training=False):
        """inputs (B, T, in) -> mdn (B, T, 3Kz), done logits (B, T) or None, final (h, c)."""
        hidden, h, c = self.lstm(inputs, initial_state=initial_state)
        done_logit = ops.squeeze(self.done_head(hidden), -1) if self.done_head is not None else None
        return self.mdn(hidden), done_logit, (h, c)

    def losses_of(self, inputs, z_next, mask, done, done_mask, z_norm=None, done_norm=None, training=True):
        mdn_output, done_logit, _ = self(inputs, training=training)
        z_nll = ops.mean(mdn_negative_log_likelihood(mdn_output, z_next, self.num_mixtures), axis=-1)
        z_loss = ops.sum(z_nll * mask) / ops.maximum(ops.sum(mask if z_norm is None else z_norm), 1e-6)
        if not self.use_done:
            return z_loss, z_loss, ops.zeros(())
        done_terms = weighted_done_loss(done_logit, done, self.done_weight)
        done_loss = ops.sum(done_terms * done_mask) / ops.maximum(ops.sum(done_mask if done_norm is None else
                                                                          done_norm), 1e-6)
        return z_loss + done_loss, z_loss, done_loss

    def train_step(self, data):
        import tensorflow as tf

        inputs, targets = data[0], data[1]  # fit() gives (x, y), train_on_batch (x, y, w)
        with tf.GradientTape() as tape:
            loss, z_loss, done_loss = self.losses_of(inputs, *targets)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._track(loss, z_loss, done_loss)

    def test_step(self, data):
        """The same losses without a gradient step (`test_on_batch`, `evaluate`): 04's held-out episodes."""
        inputs, targets = data[0], data[1]
        return self._track(*self.losses_of(inputs, *targets, training=False))

    def _track(self, loss, z_loss, done_loss):
        self.loss_tracker.update_state(loss)
        self.z_tracker.update_state(z_loss)
        if self.use_done:
            self.done_tracker.update_state(done_loss)
        return {m.name: m.result() for m in self.metrics}

    def build_all(self) -> "MDNRNN":
        """Create every weight with one forward pass on a blank sequence."""
        self(np.zeros((1, 1, self.input_size), dtype=np.float32))
        return self

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """Weights as float32 NumPy: 'lstm/kernel' (in, 4u), 'lstm/recurrent_kernel' (u, 4u), 'lstm/bias' (4u)
        with Keras's gate order i, f, c, o; 'mdn/kernel', 'mdn/bias'; Doom also 'done/kernel', 'done/bias'."""
        weights = {}
        for layer in (self.lstm, self.mdn, self.done_head):
            if layer is None:
                continue
            for variable in layer.weights:
                weights[f"{layer.name}/{variable.name}"] = np.asarray(variable.numpy(), dtype=np.float32)
        return weights


def decays(config) -> bool:
    """Whether M's learning rate follows DecayingLearningRate in this environment (Doom) or stays constant."""
    return config.rnn_min_learning_rate < config.rnn_learning_rate


def set_decay(rnn, config, start: float, offset: int) -> None:
    """Give a built M of a decaying environment the schedule from `start` at step `offset` (a resume: the saved
    run's own, or a new --learning_rate from the current step)."""
    rnn.optimizer.learning_rate = DecayingLearningRate(start, min(config.rnn_min_learning_rate, start), offset=offset)


def make_rnn(config, learning_rate: float | None = None) -> MDNRNN:
    """The MDN-RNN for an EnvConfig, built and compiled with Adam and clipping by value. `learning_rate` replaces
    the config's starting rate. An environment whose rate decays (Doom) always gets the schedule, from that rate to
    the config's end rate (or staying at a rate below it): Adam then has the same variables whatever the rate, so a
    saved M resumes with its Adam state under any --learning_rate."""
    rnn = MDNRNN(config).build_all()
    start = learning_rate or config.rnn_learning_rate
    if decays(config):
        learning_rate = DecayingLearningRate(start, min(config.rnn_min_learning_rate, start))
    else:
        learning_rate = start
    rnn.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipvalue=config.rnn_grad_clip))
    rnn.optimizer.build(rnn.trainable_variables)  # so saved weights carry Adam's moments and resume restores them
    return rnn
