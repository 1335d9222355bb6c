"""C: the linear controller of the paper (section 2.3), a = tanh(W x + b), and its parameter files.

x is [z, h] (CarRacing: 32 + 256 = 288 inputs) or [z, c, h] (Doom: 64 + 512 + 512 = 1,088). The flat parameter
vector that CMA-ES searches is W in row-major order, W having shape (outputs, inputs), then b (CarRacing only):

    params[o * inputs + j] = W[o, j]       o < outputs, j < inputs (x[j] is z, then c for Doom, then h)
    params[outputs * inputs + o] = b[o]

so CarRacing has 3 * 288 + 3 = 867 parameters and Doom 1 * 1,088 = 1,088 (no bias). (The official code stored
W transposed, as (inputs, outputs); for Doom's single output the two layouts coincide.)

Actions, from the tanh output a in [-1, 1]:
    CarRacing  [steer, gas, brake] = [a0, (a1 + 1) / 2, clip(a2, 0, 1)]
    Doom       a0 itself; the environment wrapper turns a0 < -1/3 into left, > 1/3 into right, else stay.

M is given the action as the recorded data holds it (`model_action`): CarRacing the environment action itself,
Doom the move the game made, -1 (left), 0 (stay) or 1 (right), which is what stage 01's random policy stores.

Parameter files (`.best.json` from 05, `log/<base>.json`) hold the JSON list [params, score].
"""

from __future__ import annotations

import json
import math

import numpy as np

from utils import UserError, save_json


class Controller:
    """a = tanh(W x + b) for one EnvConfig; `act(z, h, c)` returns the environment's action (float32)."""

    def __init__(self, config, params: np.ndarray | None = None):
        self.env_name = config.name
        self.z_size, self.rnn_size = config.z_size, config.rnn_size
        self.uses_cell = config.controller_uses_cell
        self.has_bias = config.controller_bias
        self.input_size = config.controller_input_size
        self.output_size = config.controller_outputs
        self.param_count = config.controller_param_count
        self.set_params(np.zeros(self.param_count) if params is None else params)

    def set_params(self, params: np.ndarray) -> None:
        """Unflatten `params` (param_count,) into W (outputs, inputs) and b (outputs,), as float32."""
        params = np.asarray(params, dtype=np.float32).reshape(-1)
        if params.size != self.param_count:
            raise ValueError(f"{self.env_name}'s controller has {self.param_count} parameters, got {params.size}")
        weight_count = self.input_size * self.output_size
        self.weight = params[:weight_count].reshape(self.output_size, self.input_size).copy()
        self.bias = params[weight_count:].copy() if self.has_bias else np.zeros(self.output_size, np.float32)
        # Column blocks of W, so the input never has to be concatenated: W x = W_z z (+ W_c c) + W_h h.
        self.weight_z = np.ascontiguousarray(self.weight[:, : self.z_size].T)
        rest = self.weight[:, self.z_size:]
        self.weight_c = np.ascontiguousarray(rest[:, : self.rnn_size].T) if self.uses_cell else None
        self.weight_h = np.ascontiguousarray(rest[:, -self.rnn_size:].T)

    def output(self, z: np.ndarray, h: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """tanh(W [z, (c,) h] + b): z (z_size,), h and c (rnn_size,) -> (outputs,) in [-1, 1], NaN if huge weights
        overflow (act() refuses it with one line, so NumPy's overflow warnings are silenced here)."""
        with np.errstate(over="ignore", invalid="ignore"):
            pre = z @ self.weight_z + h @ self.weight_h + self.bias
            if self.uses_cell:
                pre += c @ self.weight_c
            return np.tanh(pre)

    def act(self, z: np.ndarray, h: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """The environment action for one step (see the module docstring for the mapping). A NaN action is never
        returned: it raises NonFiniteAction (the environment would take it for some action and score it)."""
        return require_finite_action(self.env_name, to_env_action(self.env_name, self.output(z, h, c)))


class NonFiniteAction(UserError):
    """The controller computed a NaN action (V, M or the parameters hold NaN, infinite or huge values)."""


def require_finite_action(env_name: str, action: np.ndarray) -> np.ndarray:
    """`action` if every value is finite, else NonFiniteAction: CarRacing ended every such episode after 2-3 steps
    with a score of 999.8, which training took for a new best."""
    if not np.all(np.isfinite(action)):
        raise NonFiniteAction(f"the controller's {env_name} action is {np.asarray(action).tolist()} (not finite): "
                              f"V's or M's weights or the controller parameters hold NaN, infinite or huge values; "
                              f"retrain the model that diverged")
    return action


def to_env_action(env_name: str, output: np.ndarray) -> np.ndarray:
    """Map the controller's tanh output to the environment's action (float32)."""
    if env_name == "car_racing":
        return np.array([output[0], (output[1] + 1.0) * 0.5, min(max(output[2], 0.0), 1.0)], dtype=np.float32)
    return np.asarray(output, dtype=np.float32)


DOOM_ACTION_THRESHOLD = 1.0 / 3.0  # |a| above this moves the player (paper, appendix A.4)


def doom_move(output: np.ndarray) -> np.ndarray:
    """The move VizDoom makes for controller outputs a (any shape): -1 (a < -1/3, left), 1 (a > 1/3, right) or 0
    (stay), float32. The real environment (env.DoomTakeCover) and the dream (dream.py) both use this mapping."""
    output = np.asarray(output, dtype=np.float32)
    return np.where(output < -DOOM_ACTION_THRESHOLD, np.float32(-1.0),
                    np.where(output > DOOM_ACTION_THRESHOLD, np.float32(1.0), np.float32(0.0))).astype(np.float32)


def to_env_actions(env_name: str, outputs: np.ndarray) -> np.ndarray:
    """`to_env_action` for a batch: tanh outputs (B, outputs) -> environment actions (B, action_size), float32."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if env_name == "car_racing":
        return np.stack([outputs[:, 0], (outputs[:, 1] + 1.0) * 0.5, np.clip(outputs[:, 2], 0.0, 1.0)], axis=1)
    return outputs


def model_action(env_name: str, env_action: np.ndarray) -> np.ndarray:
    """The action M sees for an environment action (..., action_size), as stage 01 records it: Doom's move
    -1/0/1 (doom_move), CarRacing's [steer, gas, brake] unchanged. float32."""
    if env_name == "car_racing":
        return np.asarray(env_action, dtype=np.float32)
    return doom_move(env_action)


def random_params(config, seed: int, stdev: float = 0.1) -> np.ndarray:
    """Gaussian parameters with `stdev` (CMA-ES's starting spread), for running an untrained agent."""
    return np.random.default_rng(seed).normal(0.0, stdev, config.controller_param_count)


def save_params(path: str, params: np.ndarray, score: float) -> None:
    """Write [params, score] to `path` whole (the .best.json and log/<base>.json format)."""
    save_json(path, [np.asarray(params, dtype=np.float64).tolist(), float(score)])


def load_params(path: str, config) -> tuple[np.ndarray, float | None]:
    """Read [params, score] (or [params], as estool's log/<base>.json) -> (params float64, score or None)."""
    try:
        with open(path) as handle:
            value = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; train a controller with: python 05_train_controller.py "
                        f"{config.name}") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not a JSON parameter file ({error})") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        raise UserError(f"{path} should hold [params, score], a list whose first item is the parameter list")
    # a flat list of plain numbers only (bool is an int to Python, and strings or nested lists would make NumPy
    # raise or build another shape)
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in value[0]):
        raise UserError(f"{path}: the parameter list holds something other than numbers (strings, lists, true/false "
                        f"or null); it should be {config.controller_param_count} numbers")
    try:
        params = np.asarray(value[0], dtype=np.float64)
    except OverflowError:  # an integer beyond float64 (JSON integers have no limit)
        raise UserError(f"{path} holds a parameter too large for a float") from None
    if params.size != config.controller_param_count:
        raise UserError(f"{path} has {params.size} parameters; {config.name}'s controller has "
                        f"{config.controller_param_count}")
    # the controller computes in float32: a value beyond its range (about 3.4e38; e.g. 1e308) becomes inf there
    if not np.all(np.isfinite(params)) or np.abs(params).max(initial=0.0) > np.finfo(np.float32).max:
        raise UserError(f"{path} holds NaN, infinite or out-of-range parameters (beyond float32's "
                        f"{np.finfo(np.float32).max:.1e}); a trained controller never has them")
    score = value[1] if len(value) > 1 and isinstance(value[1], (int, float)) else None
    return params, (None if score is None or not math.isfinite(score) else float(score))
