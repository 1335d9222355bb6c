"""C: the controller of the paper (section 2.3), a = tanh(W x + b), in every input mode of the official code, and
its parameter files.

x is [z, h] in the paper's CarRacing agent (32 + 256 = 288 inputs) and [z, c, h] in its Doom agent (64 + 512 + 512
= 1,088). `--exp_mode` picks another input (config.EXP_MODES, the official EXP_MODE): z alone, [z, c], [z, c, h],
or z through a hidden layer of 40 tanh units, a = tanh(W2 tanh(W1 z + b1) + b2) (the paper's table 1 rows "V model
only" and "V model with hidden layer" are `z` and `z_hidden`). The flat parameter vector that CMA-ES searches
is laid out as config.ControllerShape says: W (outputs, inputs) in row-major order, then b (CarRacing only), so

    params[o * inputs + j] = W[o, j]       o < outputs, j < inputs (x[j] is z, then c, then h, as the mode has them)
    params[outputs * inputs + o] = b[o]

CarRacing's zh has 3 * 288 + 3 = 867 parameters and Doom's zch 1 * 1,088 = 1,088 (no bias). (The official code
stored W transposed, as (inputs, outputs); for Doom's single output the two layouts coincide.)

Actions, from the tanh output a in [-1, 1] (the environment's spec maps them: envs/, EnvSpec.to_env_action):
    CarRacing  [steer, gas, brake] = [a0, (a1 + 1) / 2, clip(a2, 0, 1)]
    Doom       a0 itself; the environment turns a0 < -1/3 into left, > 1/3 into right, else stay.

M is given the action as the recorded data holds it (EnvSpec.model_action): CarRacing the environment action itself,
Doom the move the game made, -1 (left), 0 (stay) or 1 (right), which is what stage 01's random policy stores.

Parameter files (`.best.json` from 05, `log/<base>.json`) hold the JSON list [params, score] as estool's do; this
project's 05 adds a third item, {"env": ..., "exp_mode": ...}, so that a file plays with the mode it was trained
in and is refused by another environment or mode. A file without it is the environment's paper mode.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cli import UserError
from config import ControllerShape, controller_shape, get_config
from envs import get_spec
from files import save_json
from reading import finite_number


def unflatten(shape: ControllerShape, params: np.ndarray) -> dict[str, np.ndarray]:
    """The blocks of flat parameters (..., param_count) -> {name: (..., *block shape)} float32, as
    ControllerShape.blocks lists them; leading dimensions (a population) are kept."""
    params = np.asarray(params, dtype=np.float32)
    if params.shape[-1] != shape.param_count:
        raise ValueError(f"the {shape.mode} controller has {shape.param_count} parameters, got {params.shape[-1]}")
    blocks, offset = {}, 0
    for name, block in shape.blocks:
        size = math.prod(block)
        blocks[name] = params[..., offset: offset + size].reshape(*params.shape[:-1], *block)
        offset += size
    return blocks


def forward(shape: ControllerShape, blocks: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> np.ndarray:
    """tanh outputs (..., outputs) of the controller for inputs {"z": (..., z), "c": ..., "h": ...}; the blocks
    may carry the same leading dimensions (one controller per row) or none (one controller for all)."""
    x = np.concatenate([inputs[part] for part in shape.parts], axis=-1)
    layers = ("hidden", "output") if shape.hidden else ("output",)
    for layer in layers:
        x = np.einsum("...i,...oi->...o", x, blocks[f"{layer}_weight"])
        if shape.bias:
            x = x + blocks[f"{layer}_bias"]
        x = np.tanh(x)
    return x


class Controller:
    """The controller of one EnvConfig in one mode (None: the paper's); `act(z, h, c)` returns the environment's
    action (float32)."""

    def __init__(self, config, params: np.ndarray | None = None, exp_mode: str | None = None):
        self.env_name = config.name
        self.spec = get_spec(config.name)
        self.shape = controller_shape(config, exp_mode)
        self.param_count = self.shape.param_count
        self.set_params(np.zeros(self.param_count) if params is None else params)

    def set_params(self, params: np.ndarray) -> None:
        """Unflatten `params` (param_count,) into the weight and bias blocks, as float32."""
        params = np.asarray(params, dtype=np.float32).reshape(-1)
        if params.size != self.param_count:
            raise ValueError(f"{self.env_name}'s {self.shape.mode} controller has {self.param_count} parameters, "
                             f"got {params.size}")
        self.blocks = {name: block.copy() for name, block in unflatten(self.shape, params).items()}

    def output(self, z: np.ndarray, h: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """The tanh outputs (outputs,) in [-1, 1] for z (z_size,), h and c (rnn_size,); NaN if huge weights
        overflow (act() refuses it with one line, so NumPy's overflow warnings are silenced here)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return forward(self.shape, self.blocks, {"z": z, "h": h, "c": c})

    def act(self, z: np.ndarray, h: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        """The environment action for one step (see the module docstring for the mapping). A NaN action is never
        returned: it raises NonFiniteAction (the environment would take it for some action and score it)."""
        return require_finite_action(self.env_name, self.spec.to_env_action(self.output(z, h, c)))


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


def random_params(config, seed: int, stdev: float = 0.1, exp_mode: str | None = None) -> np.ndarray:
    """Gaussian parameters with `stdev` (CMA-ES's starting spread), for running an untrained agent."""
    return np.random.default_rng(seed).normal(0.0, stdev, controller_shape(config, exp_mode).param_count)


def save_params(path: str, params: np.ndarray, score: float, env_name: str | None = None,
                exp_mode: str | None = None) -> None:
    """Write [params, score] (with env_name: [params, score, {"env", "exp_mode"}], exp_mode None the environment's
    paper mode) to `path` whole (the .best.json and log/<base>.json format)."""
    value = [np.asarray(params, dtype=np.float64).tolist(), float(score)]
    if env_name is not None:
        value.append({"env": env_name, "exp_mode": exp_mode or get_config(env_name).exp_mode})
    save_json(path, value)


class LoadedParams(NamedTuple):
    """A parameter file's contents (load_params): the parameters (float64), its score (None when it has none), and
    the controller's mode."""

    params: np.ndarray
    score: float | None
    exp_mode: str


def load_params(path: str, config, exp_mode: str | None = None) -> LoadedParams:
    """Read [params, score] (or [params], as estool's log/<base>.json; or [params, score, {"env", "exp_mode"}])
    -> LoadedParams(params float64, score or None, the controller mode).

    The mode is the file's own; a file of another environment, a mode other than `exp_mode` (when given), or
    parameters that do not fit the mode are refused with one line. A file without a mode is `exp_mode` or, when
    that is None, the environment's paper mode.
    """
    from reading import PARAMS_JSON_BYTES, read_json

    value = read_json(path, PARAMS_JSON_BYTES, "a JSON parameter file",
                      f"give a .best.json of 05 (train a controller with: python 05_train_controller.py "
                      f"{config.name})")
    if not isinstance(value, list) or not value or not isinstance(value[0], list) or len(value) > 3:
        raise UserError(f"{path} should hold [params, score], a list whose first item is the parameter list")
    # a flat list of plain numbers only (bool is an int to Python, and strings or nested lists would make NumPy
    # raise or build another shape)
    if not all(type(v) in (int, float) for v in value[0]):
        raise UserError(f"{path}: the parameter list holds something other than numbers (strings, lists, true/false "
                        f"or null)")
    try:
        params = np.asarray(value[0], dtype=np.float64)
    except OverflowError:  # an integer beyond float64 (JSON integers have no limit)
        raise UserError(f"{path} holds a parameter too large for a float") from None
    about = value[2] if len(value) > 2 else {}
    if not isinstance(about, dict) or not all(isinstance(about.get(key, ""), str) for key in ("env", "exp_mode")):
        raise UserError(f"{path}: the third item should be {{\"env\": ..., \"exp_mode\": ...}}")
    if about.get("env", config.name) != config.name:
        raise UserError(f"{path} is a {about['env']} controller, not a {config.name} one")
    mode = about.get("exp_mode") or exp_mode or config.exp_mode
    if exp_mode is not None and mode != exp_mode:
        raise UserError(f"{path} is a controller of mode {mode}; --exp_mode {exp_mode} asks for another (leave the "
                        f"flag out: the file's mode is used)")
    try:
        shape = controller_shape(config, mode)
    except ValueError as error:
        raise UserError(f"{path}: {error}") from None
    if params.size != shape.param_count:
        raise UserError(f"{path} has {params.size} parameters; {config.name}'s {mode} controller has "
                        f"{shape.param_count}")
    # the controller computes in float32: a value beyond its range (about 3.4e38; e.g. 1e308) becomes inf there
    if not np.all(np.isfinite(params)) or np.abs(params).max(initial=0.0) > np.finfo(np.float32).max:
        raise UserError(f"{path} holds NaN, infinite or out-of-range parameters (beyond float32's "
                        f"{np.finfo(np.float32).max:.1e}); a trained controller never has them")
    return LoadedParams(params, finite_number(value[1]) if len(value) > 1 else None, mode)
