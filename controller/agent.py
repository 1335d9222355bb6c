"""The agent of the paper (figure 8): V encodes, C acts, M remembers, all in NumPy (no TensorFlow).

One step of a rollout, in the paper's order (and the official code's):

    z_t = V(frame_t)                      encode the 64x64 frame (EnvSpec.process_frame)
    a_t = C([z_t, h_t])                   act on the current observation and memory ([z_t, c_t, h_t] for Doom)
    frame_{t+1}, r_t = env.step(a_t)
    h_{t+1}, c_{t+1} = M([z_t, a_t], h_t, c_t)   then remember what was seen and done

(The 2018 Keras port fed a_{t-1} to M here, so h was one action behind.) M's input action is the action the
environment carried out, as in the recorded data stage 03 encodes (EnvSpec.model_action: CarRacing
[steer, gas, brake]; Doom the move -1/0/1); Doom adds the restart flag, 1 on the first step of an episode.

z_t is sampled, z = mu + exp(logvar / 2) * eps, as the official CarRacing code did during rollouts (the controller
learns to act on a noisy code, which also regularises it). eps comes from a generator seeded with the episode seed,
so the same seed and parameters give the same rollout; `sample_z=False` uses mu instead.
"""

from __future__ import annotations

import os

import numpy as np

from cli import UserError
from config import MAKES_RNN, MAKES_VAE, RNN_DIR, VAE_DIR, rnn_weights_path, vae_weights_path
from controller.controller import Controller
from envs import get_spec
from episodes import play_episode
from rnn.numpy_rnn import NumpyMDNRNN
from vae.numpy_vae import NumpyVAE


def weight_files(config, vae_dir: str = VAE_DIR, rnn_dir: str = RNN_DIR) -> list[tuple[str, str]]:
    """[(path, command that makes it)] for the two NumPy weight files the agent needs."""
    return [(vae_weights_path(config.name, numpy_export=True, vae_dir=vae_dir), MAKES_VAE.format(env=config.name)),
            (rnn_weights_path(config.name, numpy_export=True, rnn_dir=rnn_dir), MAKES_RNN.format(env=config.name))]


def check_weight_files(config, vae_dir: str = VAE_DIR, rnn_dir: str = RNN_DIR, read: bool = False) -> None:
    """Raise a UserError naming the command that makes the first missing weight file. With `read`, also read both
    as the agent does, so a corrupt, mis-shaped or non-finite file is named before any worker starts (a
    multiprocessing.Pool respawns a worker whose initializer fails, for ever); about a second for Doom's 20 MB."""
    for path, made_by in weight_files(config, vae_dir, rnn_dir):
        if not os.path.exists(path):
            raise UserError(f"{path} is missing; make it with: {made_by}")
    if not read:
        return
    (vae_path, makes_vae), (rnn_path, makes_rnn) = weight_files(config, vae_dir, rnn_dir)
    NumpyVAE.load(vae_path, config.z_size, makes_vae)
    NumpyMDNRNN.load(rnn_path, config, makes_rnn)


class Agent:
    """V + M + C for one EnvConfig, a policy of episodes.play_episode: per episode reset(seed), then act(observation)
    and advance() each step."""

    def __init__(self, config, vae: NumpyVAE, rnn: NumpyMDNRNN, controller: Controller, sample_z: bool = True):
        self.config, self.spec = config, get_spec(config.name)
        self.vae, self.rnn, self.controller = vae, rnn, controller
        self.sample_z = sample_z
        self.reset(0)

    @classmethod
    def load(cls, config, params: np.ndarray | None = None, vae_dir: str = VAE_DIR, rnn_dir: str = RNN_DIR,
             sample_z: bool = True, exp_mode: str | None = None) -> "Agent":
        """Read ./vae/<env>.npz and ./rnn/<env>.npz; missing or corrupt files are UserErrors naming their maker.
        The controller is of `exp_mode` (None: the paper's)."""
        (vae_path, makes_vae), (rnn_path, makes_rnn) = weight_files(config, vae_dir, rnn_dir)
        vae = NumpyVAE.load(vae_path, config.z_size, makes_vae)
        rnn = NumpyMDNRNN.load(rnn_path, config, makes_rnn)
        return cls(config, vae, rnn, Controller(config, params, exp_mode), sample_z)

    def set_params(self, params: np.ndarray) -> None:
        """New controller parameters (param_count,); V and M stay."""
        self.controller.set_params(params)

    def reset(self, seed: int) -> None:
        """Start an episode: zero LSTM state, the z-noise generator seeded with `seed`."""
        self.h, self.c = self.rnn.initial_state()
        self.rng = np.random.default_rng(seed)
        self.first_step = True
        self.z = np.zeros(self.config.z_size, dtype=np.float32)
        self.action = np.zeros(self.config.action_size, dtype=np.float32)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """z_t (z_size,) of one 64x64 frame (EnvSpec.process_frame): V's mu (+ sigma * eps when sampling)."""
        mu, logvar = self.vae.encode(frame)
        if not self.sample_z:
            return mu[0]
        noise = self.rng.standard_normal(self.config.z_size, dtype=np.float32)
        return mu[0] + np.exp(0.5 * logvar[0]) * noise

    def act(self, observation: np.ndarray) -> np.ndarray:
        """a_t = C([z_t, h_t]) for the raw observation of step t; the frame V saw, z_t and a_t are kept (stage 01
        records the frame, advance() reads z_t and a_t)."""
        self.frame = self.spec.process_frame(observation)
        self.z = self.encode(self.frame)
        self.action = self.controller.act(self.z, self.h[0], self.c[0])
        return self.action

    def advance(self) -> None:
        """h_{t+1}, c_{t+1} = M([z_t, a_t], h_t, c_t): call after stepping the environment with a_t."""
        parts = [self.z, self.spec.model_action(self.action)]
        if self.config.use_done:
            parts.append(np.array([1.0 if self.first_step else 0.0], dtype=np.float32))
        self.h, self.c = self.rnn.step(np.concatenate(parts)[None, :], self.h, self.c)
        self.first_step = False


class EpisodeRunner:
    """What a training worker holds: the agent and one environment; called with parameters and episode seeds."""

    def __init__(self, config, max_length: int, vae_dir: str = VAE_DIR, rnn_dir: str = RNN_DIR,
                 exp_mode: str | None = None):
        from envs import headless_video_driver

        headless_video_driver()
        self.agent = Agent.load(config, vae_dir=vae_dir, rnn_dir=rnn_dir, exp_mode=exp_mode)
        self.env = get_spec(config.name).make(max_episode_steps=max(max_length, config.max_episode_length))

    def __call__(self, params: np.ndarray, seeds: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """One episode per seed with these controller parameters -> total rewards (k,), steps (k,)."""
        self.agent.set_params(params)
        episodes = [play_episode(self.env, self.agent, int(seed), max_length) for seed in seeds]
        return (np.array([episode.reward for episode in episodes], dtype=np.float64),
                np.array([episode.steps for episode in episodes], dtype=np.int64))


class Player:
    """A trained agent for the user's own Gymnasium loop (pretrained.load_agent makes one):

        observation, _ = env.reset(seed=seed)
        player.reset(seed=seed)
        while not done:
            observation, reward, terminated, truncated, _ = env.step(player.act(observation))

    reset(seed) starts an episode: the seed of its z noise (Agent.reset), which model.py takes from the episode's seed,
    so the same seed as env.reset's plays model.py's episode exactly; None draws one. act(observation) takes the
    environment's raw observation ((96, 96, 3) uint8 for CarRacing, (240, 320, 3) for Doom) and returns the action the
    environment takes, after stepping M over the previous step (Agent.advance): the steps of episodes.play_episode.
    """

    def __init__(self, agent: Agent):
        self.agent = agent
        self.env_name = agent.config.name
        self.exp_mode = agent.controller.shape.mode
        self.observation_shape = agent.spec.observation_shape
        self.started = self.acted = False

    def reset(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"reset(seed=...) takes an integer 0 or more (the seed given to env.reset), or None; "
                             f"got {seed!r}")
        self.agent.reset(int(seed))
        self.started, self.acted = True, False

    def act(self, observation: np.ndarray) -> np.ndarray:
        if not self.started:
            raise RuntimeError("call reset(seed=...) before act(): at the start of every episode, with the seed "
                               "given to env.reset")
        if (not isinstance(observation, np.ndarray) or observation.shape != self.observation_shape
                or observation.dtype != np.uint8):
            got = (f"{observation.shape} {observation.dtype}" if isinstance(observation, np.ndarray)
                   else type(observation).__name__)
            raise ValueError(f"act() takes the {self.env_name} environment's raw observation, a "
                             f"{self.observation_shape} uint8 array; got {got}")
        if self.acted:
            self.agent.advance()
        self.acted = True
        return self.agent.act(observation).copy()
