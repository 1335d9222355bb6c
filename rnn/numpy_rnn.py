"""M in NumPy: one LSTM step and the MDN head of MDNRNN from ./rnn/<env>.npz, no TensorFlow.

Rollout workers and model.py use this; tests/test_agent.py checks it against the Keras model (rnn/arch.py) to 1e-4.

One step, with Keras's LSTM conventions (gate order i, f, c, o; sigmoid recurrent activation; tanh):

    g = [x, h] @ [[kernel], [recurrent_kernel]] + bias          (1, 4u)
    i, f, o = sigmoid(g_i), sigmoid(g_f), sigmoid(g_o);  c' = f * c + i * tanh(g_c);  h' = o * tanh(c')

x is one input step: [z_t, a_t] (CarRacing, 35 values) or [z_t, a_t, restart_t] (Doom, 66). The MDN head maps
h' to 3 * K * z mixture parameters (layout in rnn/mdn.py); Doom also has a done logit.
"""

from __future__ import annotations

import numpy as np

from vae.numpy_vae import load_npz_weights


def expected_rnn_shapes(config) -> dict[str, tuple[int, ...]]:
    """The weight keys of MDNRNN.numpy_weights() and their shapes for an EnvConfig."""
    units = config.rnn_size
    shapes = {
        "lstm/kernel": (config.rnn_input_size, 4 * units),
        "lstm/recurrent_kernel": (units, 4 * units),
        "lstm/bias": (4 * units,),
        "mdn/kernel": (units, 3 * config.num_mixtures * config.z_size),
        "mdn/bias": (3 * config.num_mixtures * config.z_size,),
    }
    if config.use_done:
        shapes.update({"done/kernel": (units, 1), "done/bias": (1,)})
    return shapes


class NumpyMDNRNN:
    """The LSTM and heads of MDNRNN from its numpy_weights() dictionary; states are (B, units) float32 arrays."""

    def __init__(self, weights: dict[str, np.ndarray], config):
        self.units = config.rnn_size
        self.input_size = config.rnn_input_size
        self.z_size = config.z_size
        self.num_mixtures = config.num_mixtures
        # [x, h] meets one stacked kernel: one matrix product a step instead of two.
        self.kernel = np.ascontiguousarray(np.concatenate([weights["lstm/kernel"], weights["lstm/recurrent_kernel"]]))
        self.bias = weights["lstm/bias"]
        # sigmoid(x) = (tanh(x / 2) + 1) / 2, so one tanh serves all four gates: x / 2 for i, f, o; x for c.
        u = self.units
        self.gate_scale = np.concatenate([np.full(2 * u, 0.5), np.ones(u), np.full(u, 0.5)]).astype(np.float32)
        self.mdn_kernel, self.mdn_bias = weights["mdn/kernel"], weights["mdn/bias"]
        self.done_kernel = weights.get("done/kernel") if config.use_done else None
        self.done_bias = weights.get("done/bias") if config.use_done else None

    @classmethod
    def load(cls, path: str, config, made_by: str) -> "NumpyMDNRNN":
        """Read ./rnn/<env>.npz; a missing, corrupt or mismatched file is a UserError naming `made_by`."""
        return cls(load_npz_weights(path, expected_rnn_shapes(config), made_by), config)

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Zero (h, c), each (batch, units): the state at the start of every episode."""
        return (np.zeros((batch, self.units), dtype=np.float32), np.zeros((batch, self.units), dtype=np.float32))

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LSTM step: x (B, in), h (B, u), c (B, u) -> new h (B, u), new c (B, u)."""
        gates = np.concatenate([x, h], axis=1).astype(np.float32, copy=False) @ self.kernel
        gates += self.bias
        gates *= self.gate_scale
        np.tanh(gates, out=gates)
        squashed = gates * 0.5 + 0.5  # the sigmoids of i, f, o (its c block is unused)
        u = self.units
        c_new = squashed[:, u:2 * u] * c + squashed[:, :u] * gates[:, 2 * u:3 * u]
        return squashed[:, 3 * u:] * np.tanh(c_new), c_new

    def mdn(self, h: np.ndarray) -> np.ndarray:
        """MDN parameters predicting z_{t+1}: h (B, u) -> (B, 3*K*z) (split with rnn.mdn.split_mdn_params)."""
        return h @ self.mdn_kernel + self.mdn_bias

    def done_logit(self, h: np.ndarray) -> np.ndarray:
        """Doom only: the logit that the episode ends at this step, h (B, u) -> (B,)."""
        return (h @ self.done_kernel + self.done_bias)[:, 0]
