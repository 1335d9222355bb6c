"""The dream: M, the MDN-RNN, as an environment, and a whole controller population rolled out inside it at once.

Paper, section 4.4 (DoomTakeCover): the controller is trained entirely inside M's hallucination and then moved to the
real game; sampling at a temperature tau above 1 (1.15) makes the dream harder than the game, so the controller cannot
exploit M's mistakes. CarRacing's dream is only for watching (tau 0.7, decoded through V).

One dream step, in the order of a real rollout (controller/agent.py):

    a_t = C([z_t, c_t, h_t])                                    CarRacing: C([z_t, h_t]), with a bias
    h_{t+1}, c_{t+1} = LSTM([z_t, m(a_t), restart_t], h_t, c_t)  m(a): the action as stage 01 records it (Doom: the
                                                                move -1, 0 or 1, EnvSpec.model_action); restart_t
                                                                is 1 on an episode's first step (Doom)
    done_t = done_logit(h_{t+1}) > 0                            Doom: M says the player died at this step
    z_{t+1} ~ M's mixture at h_{t+1}, tempered                  weights softmax(log_pi / tau), sigmas * sqrt(tau)
    reward_t = 1 (Doom: a step survived, the last one included), 0 (CarRacing: M predicts no reward)

An episode starts from a recorded first frame: one (mu, logvar) row of the rnn_initial_<env>_<b>.npy files of stage
03, picked at random, and z_0 = mu + exp(logvar / 2) * eps. It ends when done fires or after max_length steps.

Random numbers. Every episode owns a generator, np.random.default_rng(seed), and draws from it in a fixed order: the
index of its first frame, the eps of z_0 (z_size normals), then every NOISE_BLOCK steps a block of uniforms (they pick
the mixture components) and a block of standard normals (NOISE_BLOCK x z_size each). So the random numbers an episode
uses depend on its seed only, never on the episodes stepped beside it, and DreamEnv.reset(seed=s) draws exactly what
the episode of seed s draws in dream_rollouts. (Blocks keep the per-episode generators cheap: one call per episode
every NOISE_BLOCK steps instead of two calls every step.)

Reproducibility. The same call gives the same result, bit for bit, and a batch of one episode is computed exactly as
DreamEnv computes it. The same (params, seed) in a batch of another size or order sees the same random numbers, but
float32 matrix products are rounded differently for a different number of rows (BLAS picks its kernels and blocking
by shape), so the two copies of the episode agree only to float32 rounding (about 1e-6): they stay that close while
M's dynamics contract (tests/test_doom.py checks equal lengths with such an M), but a choice close to its threshold
(a mixture component, done at logit 0, a Doom move at +-1/3) can fall the other way, and an M whose dynamics amplify
small differences makes the copies part within tens of steps. Exact independence would need every product computed
row by row (or in fixed-size row blocks, which BLAS does not promise either), at least 1.5 times slower.

Speed. All P * k episodes of a population step together: one (B, z + a + 1 + units) x (.., 4 units) product for the
LSTM, one (B, units) x (units, 3 K z + 1) product for the mixture and done heads, vectorised sampling, and the
controller as one batched dot product per episode. Finished episodes are dropped from the batch (once an eighth of the
rows have finished), so long survivors do not pay for the dead. Run it with one BLAS thread per process
(blas.prepare_blas() before NumPy loads, as rollout workers do): on busy cores, several BLAS threads spend
their time waiting for each other.
"""

from __future__ import annotations

import glob
import os
import re

import gymnasium
import numpy as np

from cli import UserError
from config import (DATA_DIR, MAKES_RNN, MAKES_RNN_DATA, RNN_DIR, VAE_DIR, controller_shape, rnn_weights_path,
                    vae_weights_path)
from controller.controller import forward, require_finite_action, unflatten
from envs import get_spec
from npyio import load_npy
from rnn.mdn import sample_mdn_from_noise
from rnn.numpy_rnn import NumpyMDNRNN

NOISE_BLOCK = 32  # steps of random numbers an episode draws from its generator at a time
COMPACT_FRACTION = 8  # drop finished episodes from the batch once 1/8 of its rows have finished


def clip_actions(space: gymnasium.spaces.Box, actions: np.ndarray) -> np.ndarray:
    """Environment actions (..., action_size) clipped to `space`, float32: an action beyond a bound acts as the bound
    (Gymnasium's rule for Box actions). Both DreamEnv.step and dream_rollouts send their actions through this, so the
    two paths stay one mapping; actions inside the box (every controller's, a tanh being in [-1, 1]) pass unchanged,
    bit for bit (np.clip would turn a brake of -0.0 into 0.0)."""
    actions = np.asarray(actions, dtype=np.float32)
    return np.where(actions < space.low, space.low, np.where(actions > space.high, space.high, actions))


def step_reward(config) -> float:
    """Reward of one dream step: 1 in Doom (the score is the number of steps survived), 0 in CarRacing (M has no
    reward head; its dream is for watching)."""
    return 1.0 if config.use_done else 0.0


class DreamBatch:
    """B dream episodes stepped together inside M; rows are the episodes still in the batch.

    State per row: z (B, z) float32, the LSTM's h and c (B, units) float32, and `episode` (B,), the position of the
    row's episode in the `seeds` it was made with. `step(actions)` advances every row one step and returns which
    rows ended; `keep(rows)` drops the others.
    """

    def __init__(self, rnn: NumpyMDNRNN, config, initial: np.ndarray, seeds: np.ndarray, temperature: float):
        self.rnn, self.config = rnn, config
        self.temperature = float(temperature)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        if seeds.size and seeds.min() < 0:
            raise ValueError(f"dream seeds must be 0 or more, got {int(seeds.min())}")
        initial = np.asarray(initial, dtype=np.float32)
        if initial.ndim != 3 or initial.shape[1:] != (2, config.z_size) or len(initial) == 0:
            raise ValueError(f"initial must be (N, 2, {config.z_size}) first-frame mu and logvar, got {initial.shape}")
        self.generators = [np.random.default_rng(int(seed)) for seed in seeds]
        starts = np.array([g.integers(len(initial)) for g in self.generators], dtype=np.int64)
        eps = np.array([g.standard_normal(config.z_size, dtype=np.float32) for g in self.generators],
                       dtype=np.float32).reshape(len(seeds), config.z_size)
        mu, logvar = initial[starts, 0], initial[starts, 1]
        self.z = (mu + np.exp(0.5 * logvar) * eps).astype(np.float32)
        self.h, self.c = rnn.initial_state(len(seeds))
        self.episode = np.arange(len(seeds))
        self.steps = 0  # steps taken so far (the same for every row: all episodes start together)
        # the mixture parameters and the done logit from one product
        self.head_kernel, self.head_bias = rnn.mdn_kernel, rnn.mdn_bias
        if config.use_done:
            self.head_kernel = np.concatenate([rnn.mdn_kernel, rnn.done_kernel], axis=1)
            self.head_bias = np.concatenate([rnn.mdn_bias, rnn.done_bias])
        self.head_kernel = np.ascontiguousarray(self.head_kernel, dtype=np.float32)
        self.mdn_width = 3 * config.num_mixtures * config.z_size
        self.uniform = self.normal = None  # (B, NOISE_BLOCK, z) blocks, drawn when needed

    def __len__(self) -> int:
        return len(self.episode)

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Advance every row: actions (B, action_size) as M sees them (EnvSpec.model_action) -> done (B,) bool."""
        config = self.config
        parts = [self.z, np.asarray(actions, dtype=np.float32)]
        if config.use_done:
            parts.append(np.full((len(self), 1), 1.0 if self.steps == 0 else 0.0, dtype=np.float32))
        self.h, self.c = self.rnn.step(np.concatenate(parts, axis=1), self.h, self.c)
        head = self.h @ self.head_kernel
        head += self.head_bias
        if config.use_done:
            done = head[:, self.mdn_width] > 0.0  # sigmoid > 0.5
        else:
            done = np.zeros(len(self), dtype=bool)
        slot = self.steps % NOISE_BLOCK
        if slot == 0:
            self._draw_noise()
        # rnn.mdn's layout, log_pi left unnormalised (sample_mdn_from_noise takes it so)
        k = config.num_mixtures
        grouped = head[:, : self.mdn_width].reshape(len(self), config.z_size, 3 * k)
        self.z = sample_mdn_from_noise(grouped[..., :k], grouped[..., k:2 * k], grouped[..., 2 * k:], self.temperature,
                                       self.uniform[:, slot], self.normal[:, slot])
        self.steps += 1
        return done

    def _draw_noise(self) -> None:
        shape = (NOISE_BLOCK, self.config.z_size)
        rows = [self.generators[e] for e in self.episode]
        self.uniform = np.array([g.random(shape, dtype=np.float32) for g in rows]).reshape(len(self), *shape)
        self.normal = np.array([g.standard_normal(shape, dtype=np.float32) for g in rows]).reshape(len(self), *shape)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows where `rows` (B,) bool is True, in order."""
        self.z, self.h, self.c, self.episode = self.z[rows], self.h[rows], self.c[rows], self.episode[rows]
        if self.uniform is not None:
            self.uniform, self.normal = self.uniform[rows], self.normal[rows]


def dream_rollouts(rnn: NumpyMDNRNN, config, initial: np.ndarray, params: np.ndarray, seeds: np.ndarray,
                   temperature: float, max_length: int, exp_mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Roll out every controller of a population inside M, all episodes as one batch.

    rnn: M (NumpyMDNRNN); initial (N, 2, z): first-frame mu and logvar (load_dream); params (P, param_count):
    controller parameters, one row per member, in the layout config.ControllerShape gives for `exp_mode` (None:
    the paper's; W (outputs, inputs) row-major, inputs z, c, h as the mode has them, CarRacing with a bias); seeds
    (P, k) int: one episode per seed, member p playing the episodes of row p; temperature: tau; max_length: steps
    before an episode is cut (0 or less: the environment's max_episode_length).

    Returns rewards (P, k) float64 (Doom: the steps survived) and lengths (P, k) int64.
    """
    params = np.atleast_2d(np.asarray(params, dtype=np.float32))
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.int64))
    members, episodes_each = seeds.shape
    shape = controller_shape(config, exp_mode)
    if params.shape != (members, shape.param_count):
        raise ValueError(f"params must be ({members}, {shape.param_count}) for {members} rows of seeds, "
                         f"got {params.shape}")
    if max_length is None or max_length <= 0:
        max_length = config.max_episode_length
    member = np.repeat(np.arange(members), episodes_each)
    row_blocks = unflatten(shape, params[member])  # one controller per episode row: (B, *block shape) each

    spec = get_spec(config.name)
    space = spec.action_space()
    batch = DreamBatch(rnn, config, initial, seeds.reshape(-1), temperature)
    lengths = np.full(members * episodes_each, max_length, dtype=np.int64)
    running = np.ones(len(batch), dtype=bool)  # rows whose episode has not ended
    for step in range(max_length):
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow to NaN is refused just below
            output = forward(shape, row_blocks, {"z": batch.z, "c": batch.c, "h": batch.h})
        if not np.isfinite(output).all():  # Doom's move would read NaN as "stay" and survive, a poisoned best
            require_finite_action(config.name, output[~np.isfinite(output).all(axis=1)][0])
        done = batch.step(spec.model_action(clip_actions(space, spec.to_env_actions(output))))
        ended = done & running
        lengths[batch.episode[ended]] = step + 1
        running &= ~done
        finished = len(batch) - int(running.sum())
        if finished == len(batch):
            break
        if finished and finished * COMPACT_FRACTION >= len(batch):
            batch.keep(running)
            row_blocks = {name: block[running] for name, block in row_blocks.items()}
            running = np.ones(len(batch), dtype=bool)
    rewards = lengths.astype(np.float64) * step_reward(config)
    return rewards.reshape(members, episodes_each), lengths.reshape(members, episodes_each)


class DreamEnv(gymnasium.Env):
    """M's dream as a Gymnasium environment: observation z_t (z_size,) float32, action as the real environment's.

    Doom: action Box(-1, 1, (1,)) (a < -1/3 left, > 1/3 right, else stay, as envs.doom.DoomTakeCover), reward 1 a
    step, terminated when M's done logit is above 0, truncated after max_episode_steps (2100). CarRacing: action
    [steer, gas, brake] in CarRacing's box, reward 0, never terminated, truncated after max_episode_steps (1000).
    Actions outside the box are clipped to it (clip_actions), as dream_rollouts clips them.
    `z`, `h` and `c` hold the current latent and LSTM state ((z_size,), (units,), (units,)) for a controller.

    reset(seed=s) starts the episode that seed s plays in dream_rollouts (same random numbers; see the module
    docstring). With a NumpyVAE and render_mode "rgb_array", render() decodes z_t into a 64x64x3 uint8 frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, rnn: NumpyMDNRNN, config, initial: np.ndarray, temperature: float | None = None,
                 max_episode_steps: int | None = None, vae=None, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if render_mode == "rgb_array" and vae is None:
            raise ValueError("render_mode 'rgb_array' decodes z through V: pass vae=NumpyVAE")
        self.rnn, self.config = rnn, config
        self.env_spec = get_spec(config.name)  # the real environment's (not `spec`: gymnasium.Env's registration)
        self.initial = np.asarray(initial, dtype=np.float32)
        self.temperature = config.dream_temperature if temperature is None else float(temperature)
        self.max_episode_steps = max_episode_steps or config.max_episode_length
        self.vae, self.render_mode = vae, render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (config.z_size,), dtype=np.float32)
        self.action_space = self.env_spec.action_space()
        self._batch: DreamBatch | None = None

    @classmethod
    def from_files(cls, config, temperature: float | None = None, render_mode: str | None = None,
                   max_episode_steps: int | None = None, data_dir: str = DATA_DIR, rnn_dir: str = RNN_DIR,
                   vae_dir: str = VAE_DIR) -> "DreamEnv":
        """The dream of the trained M (load_dream); V is loaded too when render_mode is "rgb_array"."""
        rnn, initial = load_dream(config, data_dir, rnn_dir)
        vae = None
        if render_mode == "rgb_array":
            from config import MAKES_VAE
            from vae.numpy_vae import NumpyVAE

            vae = NumpyVAE.load(vae_weights_path(config.name, numpy_export=True, vae_dir=vae_dir), config.z_size,
                                MAKES_VAE.format(env=config.name))
        return cls(rnn, config, initial, temperature, max_episode_steps, vae, render_mode)

    @property
    def z(self) -> np.ndarray:
        return self._batch.z[0]

    @property
    def h(self) -> np.ndarray:
        return self._batch.h[0]

    @property
    def c(self) -> np.ndarray:
        return self._batch.c[0]

    @property
    def steps(self) -> int:
        return self._batch.steps

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**63 - 1))
        self._batch = DreamBatch(self.rnn, self.config, self.initial, np.array([episode_seed]), self.temperature)
        return self.z.copy(), {}

    def step(self, action):
        if self._batch is None:
            raise RuntimeError("call reset() before step()")
        action = np.reshape(np.asarray(action, dtype=np.float32), (1, self.config.action_size))
        if not np.all(np.isfinite(action)):  # clipping passes NaN: Doom took it for "stay", CarRacing's M for its input
            raise ValueError(f"DreamEnv.step: the action {action[0].tolist()} is not finite")
        env_action = clip_actions(self.action_space, action)
        terminated = bool(self._batch.step(self.env_spec.model_action(env_action))[0])
        truncated = not terminated and self.steps >= self.max_episode_steps
        return self.z.copy(), step_reward(self.config), terminated, truncated, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.frame()

    def frame(self) -> np.ndarray:
        """V's decoding of z_t, a new (64, 64, 3) uint8 array (needs a vae)."""
        return np.round(self.vae.decode(self.z[None])[0] * 255.0).astype(np.uint8)


def initial_files(env_name: str, data_dir: str = DATA_DIR) -> list[str]:
    """The rnn_initial_<env>_<batch>.npy files of stage 03 in data_dir, in batch order."""
    pattern = re.compile(re.escape(f"rnn_initial_{env_name}_") + r"(\d+)\.npy$")
    found = [(int(m.group(1)), path) for path in glob.glob(os.path.join(data_dir, f"rnn_initial_{env_name}_*.npy"))
             if (m := pattern.search(os.path.basename(path)))]
    return [path for _, path in sorted(found)]


def load_dream(config, data_dir: str = DATA_DIR, rnn_dir: str = RNN_DIR) -> tuple[NumpyMDNRNN, np.ndarray]:
    """M from ./rnn/<env>.npz and every recorded first frame (N, 2, z) float32 (mu, logvar) from the
    rnn_initial_<env>_*.npy files of stage 03. Missing or malformed files are UserErrors naming the command that
    makes them."""
    made_by_rnn = MAKES_RNN.format(env=config.name)
    made_by_data = MAKES_RNN_DATA.format(env=config.name)
    paths = initial_files(config.name, data_dir)
    if not paths:
        raise UserError(f"no first frames for the dream: {data_dir}/rnn_initial_{config.name}_<batch>.npy is missing; "
                        f"make it with: {made_by_data}")
    initial = np.concatenate([load_npy(path, made_by_data, mmap=False, ndim=3, trailing_shape=(2, config.z_size),
                                       dtype="float32") for path in paths])
    if len(initial) == 0:
        raise UserError(f"{paths[0]} holds no episodes; remake it with: {made_by_data}")
    rnn = NumpyMDNRNN.load(rnn_weights_path(config.name, numpy_export=True, rnn_dir=rnn_dir), config, made_by_rnn)
    return rnn, initial
