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

import dataclasses
import os
import time

from blas import prepare_blas
from cli import SettingsParser, UserError, check_flags, option, run_cli

prepare_blas()

from config import CONFIGS, folder_option, get_config  # noqa: E402
from envs import REAL_ENVS  # noqa: E402
from files import lock_outputs, temporaries_of  # noqa: E402
from parallel import ProcessPool  # noqa: E402
from rollouts import (KINDS, RolloutTask, batch_numbers, load_player, refuse_to_overwrite, rollout,  # noqa: E402
                      write_batch)


@dataclasses.dataclass(frozen=True)
class Settings:
    env_name: str = option("car_racing", "the environment to play (default car_racing)", positional=True,
                           choices=sorted(CONFIGS))
    total_episodes: int = option(2000, "episodes to collect (default 2000)")
    start_batch: int = option(0, "number of the first batch file to write (default 0)")
    time_steps: int | None = option(None, "steps per episode (default: 300 CarRacing, 2100 Doom)")
    batch_size: int = option(200, "episodes per batch file (default 200)")
    render: bool = option(False, "show the episodes in a window (needs a display)")
    run_all_envs: bool = option(False, f"collect for every env: {', '.join(REAL_ENVS)}")
    # --num_workers: 01's spelling before --num_worker, as 05 and model.py spell it
    num_worker: int = option(os.cpu_count() or 1, "parallel rollout processes (default: all cores)",
                             hidden=("--num_workers",))
    seed: int = option(0, "episode i of batch b is seeded seed + b x batch_size + i (default 0)")
    controller: str | None = option(None, "play this controller (05's best.json, with V and M) instead of the "
                                          "random policy")
    overwrite: bool = option(False, "write over batch files that exist (refused otherwise, naming the first)")
    data_dir: str = folder_option("data")
    vae_dir: str = folder_option("vae")
    rnn_dir: str = folder_option("rnn")

    def __post_init__(self):
        for flag in ("total_episodes", "batch_size", "num_worker"):
            if getattr(self, flag) < 1:
                raise UserError(f"--{flag} must be at least 1")
        if self.time_steps is not None and self.time_steps < 2:
            raise UserError("--time_steps must be at least 2")
        for env_name in self.env_names:
            limit = get_config(env_name).max_episode_length
            if self.time_steps is not None and self.time_steps > limit:  # steps no episode of 05 or model.py reaches
                raise UserError(f"--time_steps must be at most {limit}, {env_name}'s episode length, got "
                                f"{self.time_steps}")
        if self.start_batch < 0:
            raise UserError("--start_batch must be 0 or more")
        check_flags(self, seeds=("seed",))  # NumPy and Gymnasium take only non-negative seeds
        if self.controller and self.run_all_envs:
            raise UserError("--controller plays one environment's controller; leave out --run_all_envs")

    @property
    def env_names(self) -> tuple[str, ...]:
        return REAL_ENVS if self.run_all_envs else (self.env_name,)


def parse_args(argv=None) -> Settings:
    return SettingsParser(Settings, description="Collect rollouts (the random policy, or a trained controller) for "
                                                "the world model.").parse(argv)


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    render = args.render
    if render and not os.environ.get("DISPLAY"):
        print("--render needs a display (none found: DISPLAY is unset); collecting without a window", flush=True)
        render = False
    if not render:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    for env_name in args.env_names:
        if env_name not in REAL_ENVS:
            raise UserError(f"no real environment for {env_name!r} yet; available: {', '.join(REAL_ENVS)}")
    player = None
    if args.controller:
        player = load_player(args.controller, args.env_name, args.vae_dir, args.rnn_dir)
        print(f"playing the controller {args.controller} (V from {args.vae_dir}, M from {args.rnn_dir})", flush=True)
    for env_name in args.env_names:  # one run writes an env's batch files; a killed one's temporary files go
        lock_outputs(args.data_dir, f"rollouts_{env_name}",
                     [(args.data_dir, temporaries_of(rf"(?:{'|'.join(KINDS)})_{env_name}_\d+\.npy"))])
    batches = batch_numbers(args.start_batch, args.total_episodes, args.batch_size)
    if not args.overwrite:
        refuse_to_overwrite(args.env_names, batches, args.data_dir)
    workers = 1 if render else min(args.num_worker, args.total_episodes)
    started = time.time()
    # Workers die with this process (SIGKILL included) and leave through Python on SIGTERM (closing their env);
    # an error, Ctrl-C or SIGTERM stops them and ends 01 with one line (parallel.ProcessPool).
    with ProcessPool(workers, rollout) as pool:
        for env_name in args.env_names:
            time_steps = args.time_steps or get_config(env_name).time_steps
            with tqdm(total=args.total_episodes, desc=f"{env_name} rollouts", unit="ep") as progress:
                for batch in batches:  # episode i of batch b: seed + b x batch_size + i
                    first = batch * args.batch_size
                    episodes = min(args.batch_size, args.total_episodes - (batch - args.start_batch) * args.batch_size)
                    tasks = [RolloutTask(env_name, args.seed + first + i, time_steps, render, player)
                             for i in range(episodes)]
                    write_batch(pool, tasks, batch, args.data_dir, progress)
            print(f"{env_name}: wrote batches {args.start_batch}..{batches[-1]} to {args.data_dir} "
                  f"({args.total_episodes} episodes, {time.time() - started:.0f} s)")


if __name__ == "__main__":
    run_cli(main)
