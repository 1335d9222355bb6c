"""Environments and the frame preprocessing the world model sees.

`make_env(env_name, ...)` is the one way every script builds an environment. Observations stay as the environment
returns them (CarRacing: 96x96x3 uint8); `process_frame` turns one into the 64x64x3 uint8 frame the VAE encodes.
`RandomPolicy` is the data-collection policy of stage 01.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from config import FRAME_SIZE, get_config

CAR_RACING_CROP_ROWS = 84  # rows 0..84 of the 96x96 frame: the dashboard below is cut (paper, appendix A.1)


def process_frame(observation: np.ndarray, env_name: str = "car_racing") -> np.ndarray:
    """Crop and resize one observation to (64, 64, 3) uint8.

    CarRacing: rows 0..84 of the 96x96 frame, bilinear resize to 64x64.
    Doom: the top 5/6 of the frame (the status bar is cut), bilinear resize to 64x64.
    """
    if env_name == "car_racing":
        cropped = observation[:CAR_RACING_CROP_ROWS]
    else:
        cropped = observation[: observation.shape[0] * 5 // 6]
    image = Image.fromarray(np.ascontiguousarray(cropped)).resize((FRAME_SIZE, FRAME_SIZE), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def make_env(env_name: str = "car_racing", render_mode: str | None = None, fast: bool = True,
             max_episode_steps: int | None = None):
    """Build the real environment `env_name` ("car_racing" or "doom_take_cover").

    car_racing: Gymnasium's CarRacing-v3 (continuous actions [steer, gas, brake]), through `FastCarRacing` unless
    `fast` is False, capped at 1000 steps as Gymnasium registers it. `render_mode` is passed through ("human" opens a
    window; "rgb_array" gives 600x400 frames for videos; None renders only the 96x96 state).
    """
    import gymnasium

    config = get_config(env_name)
    limit = max_episode_steps or config.max_episode_length
    if env_name == "car_racing":
        from gymnasium.envs.box2d.car_racing import CarRacing

        env_class = FastCarRacing if fast and "FastCarRacing" in globals() else CarRacing
        env = env_class(render_mode=render_mode)
        return gymnasium.wrappers.TimeLimit(env, max_episode_steps=limit)
    raise ValueError(f"no real environment for {env_name!r}")


class RandomPolicy:
    """The data-collection policy of stage 01, seeded per episode.

    CarRacing (seed article): full gas [0, 1, 0] for the first 60 steps, then every 5 steps a new random action held
    for 5 steps: 10% nothing, 40% gas in [0, 1], 30% steer left in [-1, 0], 10% steer right in [0, 1], 10% brake in
    [0, 1].
    """

    FULL_GAS_STEPS = 60
    HOLD_STEPS = 5

    def __init__(self, env_name: str, seed: int):
        self.env_name = env_name
        self.rng = np.random.default_rng(seed)
        self.step_count = 0
        self.action = np.zeros(get_config(env_name).action_size, dtype=np.float32)

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


def headless_video_driver() -> None:
    """Let pygame run without a display (CarRacing renders through pygame surfaces even with no window)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
