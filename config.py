"""Per-environment settings, in one place.

Every default is the paper's value (Ha & Schmidhuber 2018, arXiv 1803.10122, appendix A) or, where the paper is
silent, the official code's (hardmaru/WorldModelsExperiments). The numbered scripts read these; their command-line
flags override a few of them. Sizes are counts, times are environment steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os

DATA_DIR = "./data"  # rollouts (01) and encoded sequences (03)
VAE_DIR = "./vae"  # VAE weights (02)
RNN_DIR = "./rnn"  # MDN-RNN weights (04)
CONTROLLER_DIR = "./controller"  # CMA-ES state and best parameters (05)
LOG_DIR = "./log"  # per-generation JSON history and training curves (05)
VIDEO_DIR = "./video"  # MP4 recordings (model.py)

FOLDERS = {  # --<name>_dir flag: (default, what the folder holds)
    "data": (DATA_DIR, "rollouts (01) and encoded sequences (03)"),
    "vae": (VAE_DIR, "VAE weights (02)"),
    "rnn": (RNN_DIR, "MDN-RNN weights (04)"),
    "controller": (CONTROLLER_DIR, "optimizer state and best parameters (05)"),
    "log": (LOG_DIR, "per-generation histories, curves and final scores"),
    "video": (VIDEO_DIR, "MP4 recordings"),
}


def folder_option(name: str):
    """--<name>_dir (data, vae, rnn, controller, log, video) as a field of a settings dataclass (cli.option)."""
    from cli import option

    default, holds = FOLDERS[name]
    return option(default, f"{holds}; default {default}")


def _zero_or_one(text: str) -> int:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"takes 0, 1 or nothing (1), got {text!r} (an ENV goes before --dream_mode)")
    return int(text)


def dream_mode_option(help: str, kind: type = int):
    """--dream_mode as a field of a settings dataclass (cli.option), one flag with the same forms in 05 and model.py:
    bare or `--dream_mode 1` is the dream (estool's 05 spelled it with a value, model.py as a switch), `--dream_mode
    0` or leaving it out the real game. `kind`: the value's type, int (05's checkpoints keep it as 0 or 1) or bool
    (model.py's .final.json)."""
    from cli import option

    return option(kind(0), f"{help} (bare: 1; default 0)", type=lambda text: kind(_zero_or_one(text)), nargs="?",
                  const=kind(1), metavar="{0,1}")


FRAME_SIZE = 64  # V sees 64x64 RGB frames, stored as uint8

FINAL_EPISODES = 100  # the paper scores over 100 trials (model.py --final_mode)
FIRST_SEED = 111  # model.py's --seed and 05's --seed_start by default, as in the command lines users know


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Settings of one environment. Fields are documented where they are declared."""

    name: str  # the name used on the command line and in file names
    action_size: int  # width of the action vector the world model sees (a in z+a)
    z_size: int  # VAE latent size (32 CarRacing, 64 Doom)
    kl_tolerance: float  # free bits per latent dim: KL loss is max(KL, kl_tolerance * z_size)
    rnn_size: int  # LSTM units of the MDN-RNN (256 CarRacing, 512 Doom)
    num_mixtures: int  # Gaussians per latent dimension in the MDN head (5)
    use_done: bool  # MDN-RNN also predicts episode end and takes the restart flag as input (Doom)
    done_weight: float  # weight of positive examples in the done loss (x10 in the Doom model)
    time_steps: int  # default length of a random rollout in 01 (300 CarRacing, 2100 Doom)
    max_episode_length: int  # hard cap of an episode in the real env and in the dream
    vae_learning_rate: float  # Adam, paper 1e-4
    vae_batch_size: int  # frames per VAE minibatch, paper 100
    rnn_learning_rate: float  # Adam, paper 1e-3
    rnn_min_learning_rate: float  # final learning rate of the decay (equal to the start: no decay)
    rnn_grad_clip: float  # gradient clipping by value, paper 1.0
    rnn_batch_size: int  # sequences per MDN-RNN minibatch, paper 100
    exp_mode: str  # the paper's controller input (EXP_MODES): "zh" = [z, h] (CarRacing), "zch" = [z, c, h] (Doom)
    controller_bias: bool  # a = tanh(W x + b) (CarRacing) or tanh(W x) (Doom)
    controller_outputs: int  # actions the controller emits (3 CarRacing, 1 Doom)
    dream_temperature: float  # tau used when sampling dreams (0.7 view-only CarRacing, 1.15 Doom)

    @property
    def rnn_input_size(self) -> int:
        """Width of one MDN-RNN input step: z, action and (Doom) the restart flag."""
        return self.z_size + self.action_size + (1 if self.use_done else 0)

    @property
    def controller_param_count(self) -> int:
        """Parameters of the paper's controller (exp_mode): 867 for CarRacing (32+256 inputs x 3 outputs + 3
        biases), 1,088 for Doom (64+512+512, no bias). Other modes: controller_shape(config, mode)."""
        return controller_shape(self).param_count


CAR_RACING = EnvConfig(
    name="car_racing",
    action_size=3,
    z_size=32,
    kl_tolerance=0.5,
    rnn_size=256,
    num_mixtures=5,
    use_done=False,
    done_weight=1.0,
    time_steps=300,
    max_episode_length=1000,
    vae_learning_rate=1e-4,
    vae_batch_size=100,
    rnn_learning_rate=1e-3,
    rnn_min_learning_rate=1e-3,
    rnn_grad_clip=1.0,
    rnn_batch_size=100,
    exp_mode="zh",
    controller_bias=True,
    controller_outputs=3,
    dream_temperature=0.7,
)

DOOM_TAKE_COVER = EnvConfig(
    name="doom_take_cover",
    action_size=1,
    z_size=64,
    kl_tolerance=0.5,
    rnn_size=512,
    num_mixtures=5,
    use_done=True,
    done_weight=10.0,
    time_steps=2100,
    max_episode_length=2100,
    vae_learning_rate=1e-4,
    vae_batch_size=100,
    rnn_learning_rate=1e-3,
    rnn_min_learning_rate=1e-5,
    rnn_grad_clip=1.0,
    rnn_batch_size=100,
    exp_mode="zch",
    controller_bias=False,
    controller_outputs=1,
    dream_temperature=1.15,
)

CONFIGS = {c.name: c for c in (CAR_RACING, DOOM_TAKE_COVER)}

# What the controller sees, by the official code's EXP_MODE names (paper, table 1): z alone, z through one hidden
# layer of CONTROLLER_HIDDEN_UNITS tanh units, [z, c], [z, h] (the paper's CarRacing agent) or [z, c, h] (Doom's).
EXP_MODES = ("z", "z_hidden", "zc", "zh", "zch")
CONTROLLER_HIDDEN_UNITS = 40


@dataclasses.dataclass(frozen=True)
class ControllerShape:
    """The controller of one environment and mode, and the layout of its flat parameter vector:

        linear modes   W (outputs, inputs) row-major, then b (outputs,)
        z_hidden       W1 (40, z) row-major, b1 (40,), W2 (outputs, 40) row-major, b2 (outputs,)

    inputs are the parts in `parts` order (z, then c, then h); the biases exist only where the environment's
    controller has them (CarRacing yes, Doom no). CarRacing: z 99, z_hidden 1,443, zc 867, zh 867, zch 1,635.
    """

    mode: str
    parts: tuple[str, ...]  # "z", "c", "h" in input order
    input_size: int
    hidden: int  # tanh units between input and output (0: none)
    outputs: int
    bias: bool

    @property
    def blocks(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(name, shape) of each block of the flat parameter vector, in order."""
        layers = [("hidden", self.hidden, self.input_size), ("output", self.outputs, self.hidden)] if self.hidden \
            else [("output", self.outputs, self.input_size)]
        blocks = []
        for name, rows, columns in layers:
            blocks.append((f"{name}_weight", (rows, columns)))
            if self.bias:
                blocks.append((f"{name}_bias", (rows,)))
        return tuple(blocks)

    @property
    def param_count(self) -> int:
        return sum(math.prod(shape) for _, shape in self.blocks)


def controller_shape(config: EnvConfig, mode: str | None = None) -> ControllerShape:
    """The controller of `config` in `mode` (one of EXP_MODES; None: the paper's, config.exp_mode)."""
    mode = config.exp_mode if mode is None else mode
    if mode not in EXP_MODES:
        raise ValueError(f"unknown controller mode {mode!r}; choose one of: {', '.join(EXP_MODES)}")
    parts = ("z",) if mode in ("z", "z_hidden") else tuple(mode)
    sizes = {"z": config.z_size, "c": config.rnn_size, "h": config.rnn_size}
    return ControllerShape(mode=mode, parts=parts, input_size=sum(sizes[part] for part in parts),
                           hidden=CONTROLLER_HIDDEN_UNITS if mode == "z_hidden" else 0,
                           outputs=config.controller_outputs, bias=config.controller_bias)


def get_config(env_name: str) -> EnvConfig:
    """The settings of `env_name`; a ValueError lists the known names otherwise."""
    try:
        return CONFIGS[env_name]
    except KeyError:
        raise ValueError(f"unknown environment {env_name!r}; choose one of: {', '.join(CONFIGS)}") from None


def data_file(kind: str, env_name: str, batch: int, data_dir: str = DATA_DIR) -> str:
    """Path of one batch file, e.g. data_file("obs_data", "car_racing", 0) -> ./data/obs_data_car_racing_0.npy."""
    return f"{data_dir}/{kind}_{env_name}_{batch}.npy"


def vae_weights_path(env_name: str, numpy_export: bool = False, vae_dir: str = VAE_DIR) -> str:
    """./vae/<env>.weights.h5 (Keras, what 02 trains and resumes) or ./vae/<env>.npz (NumPy copy for rollouts)."""
    return f"{vae_dir}/{env_name}.npz" if numpy_export else f"{vae_dir}/{env_name}.weights.h5"


def vae_file_to_read(env_name: str, vae_dir: str = VAE_DIR) -> tuple[str, bool]:
    """(path, is_numpy_copy) of the V a reader uses: the Keras weights, or where there are none its NumPy copy (the
    shipped pretrained/<env>/vae holds only that one; both encode alike, tests/test_agent.py: to 1e-4)."""
    keras_path = vae_weights_path(env_name, vae_dir=vae_dir)
    numpy_path = vae_weights_path(env_name, numpy_export=True, vae_dir=vae_dir)
    if not os.path.exists(keras_path) and os.path.exists(numpy_path):
        return numpy_path, True
    return keras_path, False


def rnn_weights_path(env_name: str, numpy_export: bool = False, rnn_dir: str = RNN_DIR) -> str:
    """./rnn/<env>.weights.h5 (Keras, what 04 trains and resumes) or ./rnn/<env>.npz (NumPy copy for rollouts)."""
    return f"{rnn_dir}/{env_name}.npz" if numpy_export else f"{rnn_dir}/{env_name}.weights.h5"


# The commands that make each input, named in the error when the input is missing.
MAKES_OBS_DATA = "python 01_generate_data.py {env} --total_episodes 2000 --start_batch 0"  # --time_steps: the env's default
MAKES_VAE = "python 02_train_vae.py --env_name {env} --start_batch 0 --max_batch 9 --new_model"
MAKES_RNN_DATA = "python 03_generate_rnn_data.py --env_name {env} --start_batch 0 --max_batch 9"
MAKES_RNN = "python 04_train_rnn.py --env_name {env} --start_batch 0 --max_batch 9 --new_model"
