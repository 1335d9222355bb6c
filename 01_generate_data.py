"""Stage 01: random rollouts -> ./data/obs_data_<env>_<batch>.npy and action_data_<env>_<batch>.npy.

    python 01_generate_data.py car_racing --total_episodes 2000 --start_batch 0 --time_steps 300
    python 01_generate_data.py doom_take_cover --total_episodes 10000 --start_batch 0 --time_steps 2100

Each batch file holds --batch_size episodes: obs (episodes, T, 64, 64, 3) uint8, actions (episodes, T, action_size)
float32 (CarRacing [steer, gas, brake]; Doom the move -1, 0 or 1), plus length_data (episodes,) int32 and done_data
(episodes, T) bool. An episode that ends before T steps (CarRacing: the car left the playfield or finished the lap;
Doom: the player died, done_data is True at that last step) is recorded up to its end and padded with zeros; its
length says where the real steps stop, and every later stage masks the padding. Episode i of batch b is seeded
with --seed + b x --batch_size + i (from batch 0, whatever --start_batch), so the same flags give the same files
whatever the number of workers, and a batch written again is the same batch. Runs that add batches to a folder
keep one --batch_size, or give another --seed: batch 10 of 50 episodes would replay the seeds of batches 2 and 3
of 200.

--controller FILE plays a trained controller (a best.json of stage 05, through V and M from --vae_dir and --rnn_dir,
as model.py plays it) instead of the random policy: the paper's iterative training (section 5), where the game is
played again by C and M retrained on the new episodes too, so that M learns what happens where C goes. A controller
trained in the dream goes where random play seldom does (Doom: it holds one direction into a wall), and there M's
dream may be wrong in its favour. Write such episodes to new batch numbers (--start_batch) beside the random ones.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

from blas import prepare_blas
from cli import ArgumentParser, UserError, check_flags, run_cli

prepare_blas()

import numpy as np  # noqa: E402

from config import CONFIGS, FRAME_SIZE, add_folder_flags, data_file, get_config  # noqa: E402
from envs import REAL_ENVS, get_spec  # noqa: E402
from files import atomic_path, lock_outputs, temporaries_of  # noqa: E402
from parallel import ProcessPool, WorkerDied  # noqa: E402
from processes import signals_deferred  # noqa: E402

KINDS = ("obs_data", "action_data", "length_data", "done_data")  # the four files of a batch


def parse_args(argv=None):
    parser = ArgumentParser(
        description="Collect rollouts (the random policy, or a trained controller) for the world model.")
    parser.add_argument("env_name", nargs="?", default="car_racing", choices=sorted(CONFIGS),
                        help="the environment to play (default car_racing)")
    parser.add_argument("--total_episodes", type=int, default=2000, help="episodes to collect (default 2000)")
    parser.add_argument("--start_batch", type=int, default=0,
                        help="number of the first batch file to write (default 0)")
    parser.add_argument("--time_steps", type=int, default=None,
                        help="steps per episode (default: 300 CarRacing, 2100 Doom)")
    parser.add_argument("--batch_size", type=int, default=200, help="episodes per batch file (default 200)")
    parser.add_argument("--render", action="store_true", help="show the episodes in a window (needs a display)")
    parser.add_argument("--run_all_envs", action="store_true", help=f"collect for every env: {', '.join(REAL_ENVS)}")
    parser.add_argument("--num_worker", type=int, default=os.cpu_count() or 1,
                        help="parallel rollout processes (default: all cores)")
    parser.add_argument("--num_workers", dest="num_worker", type=int, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)  # 01's spelling before --num_worker, as 05 and model.py spell it
    parser.add_argument("--seed", type=int, default=0,
                        help="episode i of batch b is seeded seed + b x batch_size + i (default 0)")
    parser.add_argument("--controller", default=None,
                        help="play this controller (05's best.json, with V and M) instead of the random policy")
    parser.add_argument("--overwrite", action="store_true",
                        help="write over batch files that exist (refused otherwise, naming the first)")
    add_folder_flags(parser, "data", "vae", "rnn")
    args = parser.parse_args(argv)
    for flag in ("total_episodes", "batch_size", "num_worker"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1")
    if args.time_steps is not None and args.time_steps < 2:
        raise UserError("--time_steps must be at least 2")
    for env_name in (REAL_ENVS if args.run_all_envs else (args.env_name,)):
        limit = get_config(env_name).max_episode_length
        if args.time_steps is not None and args.time_steps > limit:  # steps no episode of 05 or model.py reaches
            raise UserError(f"--time_steps must be at most {limit}, {env_name}'s episode length, got {args.time_steps}")
    if args.start_batch < 0:
        raise UserError("--start_batch must be 0 or more")
    check_flags(args, seeds=("seed",))  # NumPy and Gymnasium take only non-negative seeds
    if args.controller and args.run_all_envs:
        raise UserError("--controller plays one environment's controller; leave out --run_all_envs")
    return args


# --- one episode ---------------------------------------------------------------------------------------------------
_worker_env = {}
_worker_agent = {}


def _env_for(env_name: str, render: bool):
    """One environment per worker process, reused across its episodes."""
    key = (env_name, render)
    if key not in _worker_env:
        _worker_env[key] = get_spec(env_name).make(render_mode="human" if render else None, max_episode_steps=10**9)
    return _worker_env[key]


def _agent_for(env_name: str, player: tuple):
    """The controller's agent (V + M + C) of a worker process, loaded once: player = (params, vae_dir, rnn_dir,
    exp_mode)."""
    params, vae_dir, rnn_dir, exp_mode = player
    key = (env_name, vae_dir, rnn_dir, exp_mode)
    if key not in _worker_agent:
        from controller.agent import Agent

        _worker_agent.clear()
        _worker_agent[key] = Agent.load(get_config(env_name), None, vae_dir=vae_dir, rnn_dir=rnn_dir,
                                        exp_mode=exp_mode)
    agent = _worker_agent[key]
    agent.set_params(params)
    return agent


def rollout(task):
    """Play one episode: task = (env_name, seed, time_steps, render, player); player is None for the random policy
    or (controller params, vae_dir, rnn_dir) for a trained controller.

    Returns (frames (length, 64, 64, 3) uint8, actions (T, A) float32, length, dones (T,) bool): frames[t] is the
    frame the policy saw before taking actions[t]; actions and dones at or after `length` are zero padding. Only the
    played frames travel back to the parent (a Doom episode averages ~300 of its 2100 steps).
    """
    from episodes import RandomPlay, play_episode

    env_name, seed, time_steps, render, player = task
    spec = get_spec(env_name)
    agent = _agent_for(env_name, player) if player is not None else None
    frames = np.zeros((time_steps, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    actions = np.zeros((time_steps, spec.config.action_size), dtype=np.float32)
    dones = np.zeros(time_steps, dtype=bool)

    def record(step, observation, action):
        frames[step] = agent.frame if agent is not None else spec.process_frame(observation)  # the agent's V saw it
        actions[step] = spec.model_action(action)  # as M sees it: a controller's Doom output becomes its move

    policy = agent if agent is not None else RandomPlay(spec)
    episode = play_episode(_env_for(env_name, render), policy, seed, time_steps, on_step=record)
    length = episode.steps
    dones[length - 1] = episode.terminated
    return frames[:length], actions, length, dones


# --- one batch file ------------------------------------------------------------------------------------------------
def write_batch(pool, env_name: str, batch: int, first_episode: int, episodes: int, args, progress) -> None:
    """Collect `episodes` episodes into the four files of one batch, each written whole."""
    config = get_config(env_name)
    time_steps = args.time_steps or config.time_steps
    obs_path = data_file("obs_data", env_name, batch, args.data_dir)
    tasks = [(env_name, args.seed + first_episode + i, time_steps, args.render, args.player) for i in range(episodes)]
    actions = np.zeros((episodes, time_steps, config.action_size), dtype=np.float32)
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
                for i, (episode_frames, episode_actions, length, episode_dones) in enumerate(pool.imap(tasks)):
                    handle.seek(offset + i * episode_bytes)
                    handle.write(np.ascontiguousarray(episode_frames, dtype=np.uint8).data)
                    actions[i], lengths[i], dones[i] = episode_actions, length, episode_dones
                    progress.update(1)
                    progress.set_postfix(batch=batch, length=int(length))
            except WorkerDied as error:
                raise UserError(f"{error}; batch {batch} was not written, earlier batches are complete") from None
        landing.enter_context(signals_deferred())
        for kind, array in (("action_data", actions), ("length_data", lengths), ("done_data", dones)):
            # each to its temporary file; the renames come when `landing` unwinds, after the frames' rename, and a
            # full disk here renames none of the four
            np.save(landing.enter_context(atomic_path(data_file(kind, env_name, batch, args.data_dir), ".npy")), array)


def refuse_to_overwrite(env_names, args) -> None:
    """A run never writes over batch files that exist (their encoded rnn_* files, made from them, would no longer
    match) unless --overwrite says so; asked under the outputs' lock, before any episode."""
    batches = range(args.start_batch, args.start_batch + -(-args.total_episodes // args.batch_size))
    for env_name in env_names:
        for batch in batches:
            for kind in KINDS:
                path = data_file(kind, env_name, batch, args.data_dir)
                if os.path.exists(path):
                    raise UserError(f"{path} already exists (an earlier run's batch {batch}); pass --overwrite to "
                                    f"write over it, or give another --start_batch or --data_dir")


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    if args.render and not os.environ.get("DISPLAY"):
        print("--render needs a display (none found: DISPLAY is unset); collecting without a window", flush=True)
        args.render = False
    if not args.render:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env_names = REAL_ENVS if args.run_all_envs else (args.env_name,)
    for env_name in env_names:
        if env_name not in REAL_ENVS:
            raise UserError(f"no real environment for {env_name!r} yet; available: {', '.join(REAL_ENVS)}")
    args.player = None
    if args.controller:  # read and check everything in the parent, so a bad file stops 01 before any episode
        from controller.agent import check_weight_files
        from controller.controller import load_params

        config = get_config(args.env_name)
        check_weight_files(config, args.vae_dir, args.rnn_dir, read=True)
        params, _, exp_mode = load_params(args.controller, config)
        args.player = (params, args.vae_dir, args.rnn_dir, exp_mode)
        print(f"playing the controller {args.controller} (V from {args.vae_dir}, M from {args.rnn_dir})", flush=True)
    for env_name in env_names:  # one run writes an env's batch files; a killed one's temporary files go
        lock_outputs(args.data_dir, f"rollouts_{env_name}",
                     [(args.data_dir, temporaries_of(rf"(?:{'|'.join(KINDS)})_{env_name}_\d+\.npy"))])
    if not args.overwrite:
        refuse_to_overwrite(env_names, args)
    workers = 1 if args.render else min(args.num_worker, args.total_episodes)
    started = time.time()
    # Workers die with this process (SIGKILL included) and leave through Python on SIGTERM (closing their env);
    # an error, Ctrl-C or SIGTERM stops them and ends 01 with one line (parallel.ProcessPool).
    with ProcessPool(workers, rollout) as pool:
        for env_name in env_names:
            with tqdm(total=args.total_episodes, desc=f"{env_name} rollouts", unit="ep") as progress:
                done = 0
                batch = args.start_batch
                while done < args.total_episodes:
                    episodes = min(args.batch_size, args.total_episodes - done)
                    write_batch(pool, env_name, batch, batch * args.batch_size, episodes, args, progress)
                    done += episodes
                    batch += 1
            print(f"{env_name}: wrote batches {args.start_batch}..{batch - 1} to {args.data_dir} "
                  f"({args.total_episodes} episodes, {time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
