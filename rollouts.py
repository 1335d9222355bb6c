"""Stage 01's work: episodes played (the random policy or a trained controller) in rollout worker processes, and
written as a batch's four files (obs_data, action_data, length_data, done_data) that land together.

Import it after blas.prepare_blas(): it loads NumPy.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import numpy as np

from cli import UserError
from config import FRAME_SIZE, data_file, get_config
from envs import get_spec
from files import atomic_path
from parallel import WorkerDied
from processes import signals_deferred

KINDS = ("obs_data", "action_data", "length_data", "done_data")  # the four files of a batch


class Player(NamedTuple):
    """A trained controller to play instead of the random policy: its parameters, V's and M's folders, its mode."""

    params: np.ndarray
    vae_dir: str
    rnn_dir: str
    exp_mode: str


class RolloutTask(NamedTuple):
    """One episode for a worker: `player` None plays the random policy."""

    env_name: str
    seed: int
    time_steps: int
    render: bool
    player: Player | None


class Rollout(NamedTuple):
    """One played episode: frames (length, 64, 64, 3) uint8, actions (T, A) float32, its length, dones (T,) bool.
    frames[t] is the frame the policy saw before taking actions[t]; actions and dones at or after `length` are zero
    padding. Only the played frames travel back to the parent (a Doom episode averages ~300 of its 2100 steps)."""

    frames: np.ndarray
    actions: np.ndarray
    length: int
    dones: np.ndarray


_worker_env = {}
_worker_agent = {}


def _env_for(env_name: str, render: bool):
    """One environment per worker process, reused across its episodes."""
    key = (env_name, render)
    if key not in _worker_env:
        _worker_env[key] = get_spec(env_name).make(render_mode="human" if render else None, max_episode_steps=10**9)
    return _worker_env[key]


def _agent_for(env_name: str, player: Player):
    """The controller's agent (V + M + C) of a worker process, loaded once."""
    key = (env_name, player.vae_dir, player.rnn_dir, player.exp_mode)
    if key not in _worker_agent:
        from controller.agent import Agent

        _worker_agent.clear()
        _worker_agent[key] = Agent.load(get_config(env_name), None, vae_dir=player.vae_dir, rnn_dir=player.rnn_dir,
                                        exp_mode=player.exp_mode)
    agent = _worker_agent[key]
    agent.set_params(player.params)
    return agent


def rollout(task: RolloutTask) -> Rollout:
    """Play one episode (in a worker process)."""
    from episodes import RandomPlay, play_episode

    spec = get_spec(task.env_name)
    agent = _agent_for(task.env_name, task.player) if task.player is not None else None
    frames = np.zeros((task.time_steps, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    actions = np.zeros((task.time_steps, spec.config.action_size), dtype=np.float32)
    dones = np.zeros(task.time_steps, dtype=bool)

    def record(step, observation, action):
        frames[step] = agent.frame if agent is not None else spec.process_frame(observation)  # the agent's V saw it
        actions[step] = spec.model_action(action)  # as M sees it: a controller's Doom output becomes its move

    policy = agent if agent is not None else RandomPlay(spec)
    episode = play_episode(_env_for(task.env_name, task.render), policy, task.seed, task.time_steps, on_step=record)
    length = episode.steps
    dones[length - 1] = episode.terminated
    return Rollout(frames[:length], actions, length, dones)


def load_player(controller: str, env_name: str, vae_dir: str, rnn_dir: str) -> Player:
    """The controller file `controller` (05's best.json) with V and M, read and checked in the parent, so that a bad
    file stops 01 before any episode."""
    from controller.agent import check_weight_files
    from controller.controller import load_params

    config = get_config(env_name)
    check_weight_files(config, vae_dir, rnn_dir, read=True)
    params, _, exp_mode = load_params(controller, config)
    return Player(params, vae_dir, rnn_dir, exp_mode)


def batch_numbers(start_batch: int, total_episodes: int, batch_size: int) -> range:
    """The batches a run of `total_episodes` in batches of `batch_size` writes from `start_batch` on."""
    return range(start_batch, start_batch + -(-total_episodes // batch_size))


def refuse_to_overwrite(env_names, batches: range, data_dir: str) -> None:
    """A run never writes over batch files that exist (their encoded rnn_* files, made from them, would no longer
    match) unless --overwrite says so; asked under the outputs' lock, before any episode."""
    for env_name in env_names:
        for batch in batches:
            for kind in KINDS:
                path = data_file(kind, env_name, batch, data_dir)
                if os.path.exists(path):
                    raise UserError(f"{path} already exists (an earlier run's batch {batch}); pass --overwrite to "
                                    f"write over it, or give another --start_batch or --data_dir")


def write_batch(pool, tasks: list[RolloutTask], batch: int, data_dir: str, progress) -> None:
    """Play `tasks` (the episodes of one env's batch, of one length) in `pool` (a ProcessPool of `rollout`) into the
    four files of batch `batch`, each written whole; `progress` (tqdm) counts the episodes."""
    env_name, time_steps, episodes = tasks[0].env_name, tasks[0].time_steps, len(tasks)
    obs_path = data_file("obs_data", env_name, batch, data_dir)
    actions = np.zeros((episodes, time_steps, get_config(env_name).action_size), dtype=np.float32)
    lengths = np.zeros(episodes, dtype=np.int32)
    dones = np.zeros((episodes, time_steps), dtype=bool)
    # Frames go straight into the temporary .npy, episode by episode: a 200 x 300 batch (737 MB) never sits in
    # memory. The file is made sparse (its full length set, nothing written) and only the played frames are written
    # at their place, so the padding after each episode's end takes no disk: a Doom batch of 40 episodes padded to
    # 2100 steps is ~1 GB long but ~0.15 GB on disk. Ordinary writes, not a memory map: on a full disk a write
    # fails with ENOSPC (an error naming the folder, the temporary file deleted) where a mapped page kills the
    # process with SIGBUS and leaves the file behind.
    shape = (episodes, time_steps, FRAME_SIZE, FRAME_SIZE, 3)
    episode_bytes = int(np.prod(shape[1:]))
    # The four files land together: a stop (Ctrl-C, SIGTERM) after the frames are in waits until the three small
    # files are written and the frame file renamed into place, so a batch is never left as a frame file alone.
    # (The deferral is entered inside atomic_path's block but left after it, so it covers the rename.)
    landing = contextlib.ExitStack()
    with landing, atomic_path(obs_path, suffix=".npy") as temporary:
        with open(temporary, "r+b") as handle:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(handle, header)
            offset = handle.tell()
            handle.truncate(offset + episodes * episode_bytes)
            try:
                for i, episode in enumerate(pool.imap(tasks)):
                    handle.seek(offset + i * episode_bytes)
                    handle.write(np.ascontiguousarray(episode.frames, dtype=np.uint8).data)
                    actions[i], lengths[i], dones[i] = episode.actions, episode.length, episode.dones
                    progress.update(1)
                    progress.set_postfix(batch=batch, length=int(episode.length))
            except WorkerDied as error:
                raise UserError(f"{error}; batch {batch} was not written, earlier batches are complete") from None
        landing.enter_context(signals_deferred())
        for kind, array in (("action_data", actions), ("length_data", lengths), ("done_data", dones)):
            # each to its temporary file; the renames come when `landing` unwinds, after the frames' rename, and a
            # full disk here renames none of the four
            np.save(landing.enter_context(atomic_path(data_file(kind, env_name, batch, data_dir), ".npy")), array)
