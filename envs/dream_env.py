"""The dreams registered with Gymnasium (WorldModels/CarRacingDream-v0, WorldModels/DoomTakeCoverDream-v0): M's
dream (dream.DreamEnv) seen as frames decoded by V, or as M's state, and run by the shipped V and M by default.

    gymnasium.make("envs:WorldModels/DoomTakeCoverDream-v0")                      the shipped Doom world model
    gymnasium.make("envs:WorldModels/CarRacingDream-v0", obs_type="latent")       z, h and c instead of frames
    gymnasium.make("envs:WorldModels/CarRacingDream-v0", vae_dir="./vae", rnn_dir="./rnn", data_dir="./data")

Keyword arguments: obs_type "rgb" (default: V's decoding of z_t, (64, 64, 3) uint8) or "latent" (a Dict of z_t
(z_size,), and M's LSTM state h_t and c_t (rnn_size,) each, float32: what a controller reads); temperature (tau;
default the environment's, 0.7 CarRacing, 1.15 Doom); vae_dir, rnn_dir, data_dir (V's and M's .npz and the
rnn_initial_<env>_*.npy first frames; each defaults to the shipped agent's folder in pretrained/<env>/);
render_mode None or "rgb_array" (the decoded frame). The episodes, rewards and seeding are DreamEnv's: reset(seed=s)
plays the dream episode of seed s, Doom's ends when M's done fires (terminated), and every step earns 1 in Doom, 0 in
CarRacing (M predicts no reward there).
"""

from __future__ import annotations

import os

import gymnasium
import numpy as np

from cli import UserError
from config import FRAME_SIZE, MAKES_VAE, get_config, vae_weights_path
from dream import DreamEnv, load_dream
from files import repo_root
from vae.numpy_vae import NumpyVAE

OBS_TYPES = ("rgb", "latent")


class DreamGymEnv(DreamEnv):
    """DreamEnv whose observation is V's decoded frame of z_t (obs_type "rgb") or {"z", "h", "c"} ("latent")."""

    def __init__(self, rnn, config, initial: np.ndarray, vae: NumpyVAE | None, obs_type: str = "rgb",
                 temperature: float | None = None, render_mode: str | None = None):
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be 'rgb' (V's decoded frames) or 'latent' (z, h and c), got {obs_type!r}")
        super().__init__(rnn, config, initial, temperature=temperature, vae=vae, render_mode=render_mode)
        self.obs_type = obs_type
        if obs_type == "rgb":
            self.observation_space = gymnasium.spaces.Box(0, 255, (FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
        else:
            state = gymnasium.spaces.Box(-np.inf, np.inf, (config.rnn_size,), dtype=np.float32)
            self.observation_space = gymnasium.spaces.Dict({
                "z": gymnasium.spaces.Box(-np.inf, np.inf, (config.z_size,), dtype=np.float32), "h": state,
                "c": state})

    def _observation(self):
        if self.obs_type == "rgb":
            return self.frame()
        return {"z": self.z.copy(), "h": self.h.copy(), "c": self.c.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        _, info = super().reset(seed=seed, options=options)
        return self._observation(), info

    def step(self, action):
        _, reward, terminated, truncated, info = super().step(action)
        return self._observation(), reward, terminated, truncated, info


def make_dream(env_id: str, env_name: str, render_mode: str | None = None, obs_type: str = "rgb",
               temperature: float | None = None, vae_dir: str | None = None, rnn_dir: str | None = None,
               data_dir: str | None = None) -> DreamGymEnv:
    """The dream of `env_name` registered as `env_id`, from the given folders or the shipped agent's."""
    if obs_type not in OBS_TYPES:
        raise ValueError(f"{env_id}: obs_type must be 'rgb' (V's decoded frames) or 'latent' (z, h and c), got "
                         f"{obs_type!r}")
    config = get_config(env_name)
    shipped = os.path.join(repo_root(), "pretrained", env_name)
    vae_dir, rnn_dir, data_dir = (folder or os.path.join(shipped, part) for folder, part in
                                  ((vae_dir, "vae"), (rnn_dir, "rnn"), (data_dir, "data")))
    try:
        rnn, initial = load_dream(config, data_dir=data_dir, rnn_dir=rnn_dir)
        vae = None
        if obs_type == "rgb" or render_mode == "rgb_array":
            vae = NumpyVAE.load(vae_weights_path(env_name, numpy_export=True, vae_dir=vae_dir), config.z_size,
                                MAKES_VAE.format(env=env_name))
    except UserError as error:
        raise UserError(f"{env_id}: {error}; or give vae_dir=, rnn_dir= and data_dir= of a trained world "
                        f"model") from None
    return DreamGymEnv(rnn, config, initial, vae, obs_type, temperature, render_mode)
