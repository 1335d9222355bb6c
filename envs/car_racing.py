"""CarRacing: Gymnasium's CarRacing-v3 (continuous actions [steer, gas, brake]), its frames, actions and data policy.

The environment is built through envs.fast_car_racing.FastCarRacing (same pixels, faster) unless `fast` is False.
Observations are 96x96x3 uint8; the VAE sees the top 84 rows resized to 64x64.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from config import CAR_RACING
from envs.spec import EnvSpec

CROP_ROWS = 84  # rows 0..84 of the 96x96 frame: the dashboard below is cut (paper, appendix A.1)
VIDEO_FPS = 50  # CarRacing's own rate (its metadata's render_fps)


class RandomPolicy:
    """The data-collection policy of stage 01 (seed article), seeded per episode: full gas [0, 1, 0] for the first 60
    steps, then every 5 steps a new random action held for 5 steps: 10% nothing, 40% gas in [0, 1], 30% steer left
    in [-1, 0], 10% steer right in [0, 1], 10% brake in [0, 1].

    Its generator is NumPy's default_rng(seed), the very stream Gymnasium's reset(seed=seed) builds the track from
    (np_random(seed) is the same PCG64): the first random action's two draws are the first checkpoint's angle and
    radius draws. Known and kept: the shipped world model was trained on these episodes, and a separate stream would
    change every recorded batch of a given seed."""

    FULL_GAS_STEPS = 60
    HOLD_STEPS = 5

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.step_count = 0
        self.action = np.zeros(CAR_RACING.action_size, dtype=np.float32)

    def __call__(self) -> np.ndarray:
        if self.step_count < self.FULL_GAS_STEPS:
            action = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        elif (self.step_count - self.FULL_GAS_STEPS) % self.HOLD_STEPS == 0:
            action = self._draw()
        else:
            action = self.action
        self.step_count += 1
        self.action = action
        return action.copy()

    def _draw(self) -> np.ndarray:
        choice, amount = self.rng.random(), self.rng.random()
        if choice < 0.1:
            return np.array([0.0, 0.0, 0.0], dtype=np.float32)
        if choice < 0.5:
            return np.array([0.0, amount, 0.0], dtype=np.float32)
        if choice < 0.8:
            return np.array([-amount, 0.0, 0.0], dtype=np.float32)
        if choice < 0.9:
            return np.array([amount, 0.0, 0.0], dtype=np.float32)
        return np.array([0.0, 0.0, amount], dtype=np.float32)


class CarRacingSpec(EnvSpec):
    """CarRacing. Actions from the tanh output a: [steer, gas, brake] = [a0, (a1 + 1) / 2, clip(a2, 0, 1)], in the
    box [-1, 0, 0]..[1, 1, 1]; M sees that action itself. Capped at 1000 steps, as Gymnasium registers it."""

    config = CAR_RACING
    video_fps = VIDEO_FPS
    observation_shape = (96, 96, 3)  # CarRacing's STATE_H x STATE_W
    gym_id = "WorldModels/CarRacing-v3"
    against_the_paper = ("The paper scored 906 ± 21 on gym's CarRacing-v0, which Gymnasium's CarRacing-v3 replaces "
                         "here: the task is the same, the scores are not strictly comparable.")

    def make_unwrapped(self, render_mode: str | None, fast: bool) -> gymnasium.Env:
        """FastCarRacing, or Gymnasium's own CarRacing when `fast` is False (the renderer is loaded here, so that
        the other users of this module, the dream's workers among them, never import pygame and Box2D)."""
        if fast:
            from envs.fast_car_racing import FastCarRacing as env_class
        else:
            from gymnasium.envs.box2d.car_racing import CarRacing as env_class
        return env_class(render_mode=render_mode)

    def crop(self, observation: np.ndarray) -> np.ndarray:
        return observation[:CROP_ROWS]

    def to_env_action(self, output: np.ndarray) -> np.ndarray:
        return np.array([output[0], (output[1] + 1.0) * 0.5, min(max(output[2], 0.0), 1.0)], dtype=np.float32)

    def to_env_actions(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs, dtype=np.float32)
        return np.stack([outputs[:, 0], (outputs[:, 1] + 1.0) * 0.5, np.clip(outputs[:, 2], 0.0, 1.0)], axis=1)

    def model_action(self, env_action: np.ndarray) -> np.ndarray:
        return np.asarray(env_action, dtype=np.float32)

    def action_space(self) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(np.array([-1.0, 0.0, 0.0], dtype=np.float32),
                                    np.array([1.0, 1.0, 1.0], dtype=np.float32), dtype=np.float32)

    def random_policy(self, seed: int) -> RandomPolicy:
        return RandomPolicy(seed)


SPEC = CarRacingSpec()
