"""EnvSpec: everything the pipeline knows about one environment, in one object.

Each environment module (envs/car_racing.py, envs/doom.py) subclasses EnvSpec and makes one instance of it; the rest
of the project asks that spec (envs.get_spec(config.name)) instead of switching on the environment's name. (Not
Gymnasium's EnvSpec, the registration record an env holds as `env.spec`: a Gymnasium env here that keeps ours names
the attribute `env_spec`.)
"""

from __future__ import annotations

import abc
from typing import Callable

import gymnasium
import numpy as np
from PIL import Image

from config import FRAME_SIZE, EnvConfig


class EnvSpec(abc.ABC):
    """One environment: its settings (`config`, config.py's EnvConfig), how to build it, the 64x64 frame the VAE
    encodes, the data-collection policy of stage 01, and the actions as the controller, the environment and M see them.

    Actions. The controller's tanh outputs a (controller_outputs,) in [-1, 1] become the environment's action
    (`to_env_action`); M is trained on the action as stage 01 records it (`model_action`), which is what the
    environment carried out. The dream shares the real environment's `action_space`.
    """

    config: EnvConfig
    video_fps: int  # frames per second of a recorded video: the simulator's own rate
    observation_shape: tuple[int, int, int]  # the real environment's observation, (H, W, 3) uint8
    gym_id: str  # its Gymnasium id (envs/registration.py)
    against_the_paper: str  # how its scores compare with the paper's (a shipped agent's model card says it)
    has_simulator: bool = True  # a real environment to play (stage 01 collects from it)

    @property
    def name(self) -> str:
        """The environment's name, as on the command lines and in file names ("car_racing")."""
        return self.config.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def make(self, render_mode: str | None = None, fast: bool = True,
             max_episode_steps: int | None = None) -> gymnasium.Env:
        """The real environment under a TimeLimit of `max_episode_steps` steps (default config.max_episode_length;
        the step that reaches it is truncated). `render_mode` is passed through: None renders only the observation,
        "rgb_array" gives video frames, "human" opens a window. `fast`: a faster renderer where there is one."""
        limit = max_episode_steps or self.config.max_episode_length
        return gymnasium.wrappers.TimeLimit(self.make_unwrapped(render_mode, fast), max_episode_steps=limit)

    @abc.abstractmethod
    def make_unwrapped(self, render_mode: str | None, fast: bool) -> gymnasium.Env:
        """The environment itself, without the TimeLimit."""

    @abc.abstractmethod
    def crop(self, observation: np.ndarray) -> np.ndarray:
        """The part of an observation (H, W, 3) the VAE sees: rows of it, before the resize."""

    def process_frame(self, observation: np.ndarray) -> np.ndarray:
        """One observation -> the (64, 64, 3) uint8 frame the VAE encodes: `crop`, then a bilinear resize."""
        cropped = self.crop(observation)
        image = Image.fromarray(np.ascontiguousarray(cropped)).resize((FRAME_SIZE, FRAME_SIZE), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    @abc.abstractmethod
    def to_env_action(self, output: np.ndarray) -> np.ndarray:
        """The controller's tanh output (controller_outputs,) -> the environment's action (action_size,) float32."""

    @abc.abstractmethod
    def to_env_actions(self, outputs: np.ndarray) -> np.ndarray:
        """`to_env_action` for a batch: tanh outputs (B, outputs) -> environment actions (B, action_size), float32."""

    @abc.abstractmethod
    def model_action(self, env_action: np.ndarray) -> np.ndarray:
        """The action M sees for an environment action (..., action_size), as stage 01 records it, float32."""

    @abc.abstractmethod
    def action_space(self) -> gymnasium.spaces.Box:
        """The real environment's action space, which the dream (dream.DreamEnv) shares."""

    @abc.abstractmethod
    def random_policy(self, seed: int) -> Callable[[], np.ndarray]:
        """Stage 01's data-collection policy for one episode, seeded: call it for each step's action (float32)."""
