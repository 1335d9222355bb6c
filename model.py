"""Watch, record and score a trained agent (V + M + C, all NumPy).

    python model.py car_racing --filename ./controller/car_racing.cma.4.32.best.json --render_mode --record_video
    python model.py car_racing --filename ./controller/car_racing.cma.4.32.best.json --final_mode
    python model.py doom_take_cover --filename ./controller/doom_take_cover.cma.16.64.best.json --final_mode
    python model.py car_racing --filename ... --dream_mode --record_video        (drive inside the world model)
    python model.py doom_take_cover --random_policy --dream_mode --final_mode    (how hard is the dream?)
    python model.py car_racing --pretrained --record_video                       (the agent shipped in pretrained/)

--render_mode shows the episode in a window (needs a display: a desktop, or xvfb-run); --record_video writes
./video/<name>[.dream].seed<seed>.mp4 with or without a display (<name>: the controller file's name without .json,
e.g. car_racing.cma.4.32.best). --final_mode scores --num_episode episodes (default 100, seeds --seed, --seed + 1,
...) on --num_worker processes, prints mean +- std and writes every episode's score to ./log/<name>.final.json, with
the episode length and the sha256 of the V, M and C files played (pretrained.py pack checks them). Without
--filename the controller is random (an untrained agent). --random_policy plays stage 01's data policy instead of a
controller: its score in the dream (--dream_mode) against its score in the real game says whether M's dream is as
hard as the game, before any controller is trained in it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time

from blas import prepare_blas
from cli import ArgumentParser, StoppedPartWay, UserError, check_flags, run_cli

prepare_blas()  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

from config import DATA_DIR, FINAL_EPISODES, FIRST_SEED, RNN_DIR, VAE_DIR, get_config  # noqa: E402
from episodes import Episode  # noqa: E402


def parse_args(argv=None):
    from config import CONFIGS, EXP_MODES, add_dream_mode_flag, add_folder_flags

    parser = ArgumentParser(description="Run a trained agent: watch it, record it, or score it.")
    parser.add_argument("env_name", choices=sorted(CONFIGS), help="the environment")
    parser.add_argument("--filename", default="",
                        help="controller parameters: a .best.json from 05 (default: none, a random controller)")
    parser.add_argument("--exp_mode", default=None, choices=EXP_MODES,
                        help="the controller's input mode; default: the file's own (the paper's for a file without "
                             "one, and for a random controller)")
    parser.add_argument("--seed", type=int, default=FIRST_SEED, help="seed of the first episode")
    parser.add_argument("--max_length", type=int, default=-1, help="steps per episode at most (default: the env's)")
    parser.add_argument("--render_mode", action="store_true", help="show the episode in a window")
    parser.add_argument("--record_video", action="store_true", help="write an MP4 per episode to ./video")
    parser.add_argument("--final_mode", action="store_true", help=f"score {FINAL_EPISODES} episodes: mean +- std")
    parser.add_argument("--num_episode", type=int, default=0,
                        help=f"episodes to run (default: 1, or {FINAL_EPISODES} with --final_mode)")
    parser.add_argument("--num_worker", type=int, default=os.cpu_count() or 1,
                        help="processes for --final_mode (default: all cores)")
    add_dream_mode_flag(parser, "1: run inside the world model's dream instead of the real environment", kind=bool)
    parser.add_argument("--pretrained", action="store_true",
                        help="play the trained agent shipped in ./pretrained/<env>/ (V, M and C; no --filename)")
    parser.add_argument("--pretrained_dir", default=None, help="where shipped agents live (default ./pretrained)")
    parser.add_argument("--random_policy", action="store_true",
                        help="play stage 01's random data policy instead of a controller (no --filename)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="dream temperature tau (default: 0.7 CarRacing, 1.15 Doom)")
    add_folder_flags(parser, "video", "log", "vae", "rnn", "data")
    args = parser.parse_args(argv)
    # tau divides M's logits: 0, negative or NaN would play another dream than the one printed
    check_flags(args, at_least={"num_episode": 0, "num_worker": 1}, positive=("temperature",), seeds=("seed",))
    if args.max_length == 0 or args.max_length < -1:
        raise UserError(f"--max_length must be at least 1 (or -1: the environment's), got {args.max_length}")
    return args


def controller_name(filename: str, env_name: str, random_policy: bool = False, pretrained: bool = False) -> str:
    """./controller/car_racing.cma.4.32.best.json -> car_racing.cma.4.32.best ("random.<env>" without a file,
    "random_policy.<env>" for stage 01's data policy, "pretrained.<env>" for the shipped agent)."""
    if pretrained:
        return f"pretrained.{env_name}"
    if random_policy:
        return f"random_policy.{env_name}"
    if not filename:
        return f"random.{env_name}"
    name = os.path.basename(filename)
    return name[: -len(".json")] if name.endswith(".json") else name


@dataclasses.dataclass(frozen=True)
class Play:
    """What model.py plays, every default resolved once (Play.of): the controller's parameters (None: stage 01's
    random data policy), its input mode, the real game or the dream at `temperature`, episodes of at most
    `max_length` steps, and the folders of V, M and the dream's first frames."""

    env_name: str
    params: np.ndarray | None
    exp_mode: str | None
    dream: bool
    max_length: int
    temperature: float
    vae_dir: str
    rnn_dir: str
    data_dir: str

    @classmethod
    def of(cls, env_name: str, params: np.ndarray | None, exp_mode: str | None = None, dream: bool = False,
           max_length: int = -1, temperature: float | None = None, vae_dir: str = VAE_DIR, rnn_dir: str = RNN_DIR,
           data_dir: str = DATA_DIR) -> Play:
        """max_length -1: the environment's episode length; temperature None: the environment's dream tau."""
        config = get_config(env_name)
        return cls(env_name, params, exp_mode, dream, max_length if max_length > 0 else config.max_episode_length,
                   config.dream_temperature if temperature is None else float(temperature), vae_dir, rnn_dir,
                   data_dir)


class Session:
    """The environment and policy of one process (model.py itself, or a --final_mode worker) for a Play."""

    def __init__(self, play: Play, render: str | None):
        from envs import get_spec
        from episodes import DreamPlay, RandomPlay

        self.play = play
        config = get_config(play.env_name)
        spec = get_spec(play.env_name)
        if play.dream:
            from controller.agent import weight_files
            from dream import DreamEnv, load_dream
            from vae.numpy_vae import NumpyVAE

            rnn, initial = load_dream(config, data_dir=play.data_dir, rnn_dir=play.rnn_dir)
            (vae_path, makes_vae), _ = weight_files(config, play.vae_dir, play.rnn_dir)
            vae = NumpyVAE.load(vae_path, config.z_size, makes_vae) if render else None
            self.env = DreamEnv(rnn, config, initial, temperature=play.temperature,
                                max_episode_steps=play.max_length, vae=vae,
                                render_mode="rgb_array" if render else None)
        else:
            self.env = spec.make(render_mode=render, max_episode_steps=max(play.max_length, config.max_episode_length))
        if play.params is None:
            self.policy = RandomPlay(spec)
        elif play.dream:
            from controller.controller import Controller

            self.policy = DreamPlay(Controller(config, play.params, play.exp_mode), self.env)
        else:
            from controller.agent import Agent

            self.policy = Agent.load(config, play.params, vae_dir=play.vae_dir, rnn_dir=play.rnn_dir,
                                     exp_mode=play.exp_mode)

    def episode(self, seed: int, on_frame=None) -> Episode:
        from episodes import play_episode

        return play_episode(self.env, self.policy, seed, self.play.max_length, on_frame=on_frame)

    def close(self) -> None:
        self.env.close()


# --- --final_mode on several processes ---------------------------------------------------------------------------

_WORKER: Session | None = None


def _start_worker(play: Play) -> None:
    """The Session of a --final_mode worker process (or of model.py itself, with one worker)."""
    global _WORKER
    from envs import headless_video_driver

    headless_video_driver()
    _WORKER = Session(play, render=None)


def _score(seed: int) -> tuple[int, float, int]:
    episode = _WORKER.episode(seed)
    return seed, episode.reward, episode.steps


def score_episodes(play: Play, seeds: list[int], workers: int) -> list[tuple[int, float, int]]:
    """(seed, reward, steps) of every episode, on `workers` processes (parallel.ProcessPool: they die with
    model.py, and Ctrl-C or SIGTERM stops them), with a progress bar."""
    from tqdm import tqdm

    from parallel import ProcessPool

    results = []
    with ProcessPool(max(1, min(workers, len(seeds))), _score, _start_worker, (play,)) as pool:
        try:
            # closed however the loop ends, so that the last line on the terminal is the outcome (or why it stopped)
            with tqdm(total=len(seeds), desc=f"{play.env_name} episodes", unit="ep", dynamic_ncols=True) as progress:
                for result in pool.imap(seeds):
                    results.append(result)
                    progress.update()
                    progress.set_postfix(last=f"{result[1]:.1f}")
        except KeyboardInterrupt as stop:  # the pool ends its workers and prints the line
            raise stopped_after(stop, results, len(seeds)) from None
    return sorted(results)


def stopped_after(stop: KeyboardInterrupt, results: list[tuple[int, float, int]], count: int) -> StoppedPartWay:
    """A stop after `results` (seed, reward, steps) of `count` episodes, saying their score: the episodes come in
    seed order, so those played are the first seeds."""
    done = f"after {len(results)} of {count} episodes"
    if results:
        scores = np.array([reward for _, reward, _ in results])
        done += f": {scores.mean():.2f} +- {scores.std():.2f} over {len(results)}"
    return StoppedPartWay(stop, done)


# --- watching and recording ----------------------------------------------------------------------------------------

class Recorder:
    """Collects the frames of one episode (env.render() in rgb_array mode), shows them in a window when asked, and
    writes them as an MP4 whole (temporary file, then rename)."""

    def __init__(self, env, show: bool, record: bool):
        self.env, self.show, self.record = env, show, record
        self.frames = []
        self.screen = None

    def __call__(self) -> None:
        frame = self.env.render()
        if frame is None:
            return
        if frame.shape[0] < 256:  # a dream frame is V's 64x64 decoding: enlarge it (nearest) to be watchable
            scale = 256 // frame.shape[0]
            frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
        if self.record:
            self.frames.append(frame)
        if self.show:
            self._display(frame)

    def _display(self, frame) -> None:
        import pygame

        if self.screen is None:
            pygame.display.init()
            self.screen = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
        pygame.event.pump()
        pygame.surfarray.blit_array(self.screen, frame.swapaxes(0, 1))
        pygame.display.flip()

    def save(self, path: str, fps: int) -> None:
        import imageio.v2 as imageio

        from files import atomic_path

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path, suffix=".mp4") as temporary:
            with imageio.get_writer(temporary, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                    macro_block_size=2, ffmpeg_log_level="error") as writer:
                for frame in self.frames:
                    writer.append_data(frame)
        self.frames = []


def watch(play: Play, args, seeds: list[int]) -> list[tuple[int, float, int]]:
    """Run the episodes one by one in this process, shown (--render_mode) and/or recorded (--record_video)."""
    from envs import get_spec, headless_video_driver

    if args.render_mode and not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        raise UserError("--render_mode needs a display; run under xvfb-run -a, or use --record_video alone")
    if not args.render_mode:
        headless_video_driver()
    need_frames = args.render_mode or args.record_video
    session = Session(play, render="rgb_array" if need_frames else None)
    recorder = Recorder(session.env, show=args.render_mode, record=args.record_video)
    results = []
    try:
        for seed in seeds:
            started = time.time()
            reward, steps, _ = session.episode(seed, on_frame=recorder if need_frames else None)
            results.append((seed, reward, steps))
            line = f"seed {seed}: reward {reward:.2f} in {steps} steps ({steps / (time.time() - started):.0f} steps/s)"
            if args.record_video:
                where = "dream." if args.dream_mode else ""
                name = controller_name(args.filename, args.env_name, args.random_policy, args.pretrained)
                path = os.path.join(args.video_dir, f"{name}.{where}seed{seed}.mp4")
                recorder.save(path, get_spec(args.env_name).video_fps)  # the simulator's own rate
                line += f"; video {path}"
            print(line, flush=True)
    except KeyboardInterrupt as stop:
        raise (stopped_after(stop, results, len(seeds)) if len(seeds) > 1 else stop) from None
    finally:
        session.close()
    return results


def played_files(args, config) -> dict[str, str]:
    """role -> sha256 of the files an episode reads: the controller's, and V's and M's NumPy weights (not those of
    the random policy in the real game, which reads none)."""
    from controller.agent import weight_files
    from files import file_sha256

    paths = {"controller": args.filename} if args.filename and not args.random_policy else {}
    if args.dream_mode or not args.random_policy:
        (paths["vae"], _), (paths["rnn"], _) = weight_files(config, args.vae_dir, args.rnn_dir)
    return {role: file_sha256(path) for role, path in paths.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    from blas import blas_kernel
    from controller.agent import check_weight_files
    from controller.controller import load_params, random_params
    from files import check_writable, lock_outputs, save_json, temporaries_of

    config = get_config(args.env_name)
    if args.pretrained:
        from pretrained import PRETRAINED_DIR, use_pretrained

        manifest = use_pretrained(args, args.pretrained_dir or PRETRAINED_DIR)
        length = manifest.get("max_length", config.max_episode_length)
        print(f"pretrained {args.env_name} agent from {os.path.dirname(args.vae_dir)}: {manifest['mean']:.2f} +- "
              f"{manifest['std']:.2f} over {manifest['episodes']} episodes from seed {manifest['first_seed']}"
              + ("" if length == config.max_episode_length else f" of at most {length} steps"))
        shipped, here = manifest.get("blas_kernel"), blas_kernel()
        if shipped and shipped != here:
            print(f"note: those episodes were played with OpenBLAS's {shipped} kernels and this machine runs "
                  f"{here or 'another BLAS'}: the same seeds may score differently here")
    if args.random_policy:
        if args.filename:
            raise UserError("--random_policy plays stage 01's data policy: leave out --filename")
        params = None
        print("stage 01's random data policy" + (" in the dream" if args.dream_mode else ""))
    elif args.filename:
        params, saved_score, args.exp_mode = load_params(args.filename, config, args.exp_mode)
        print(f"controller {args.filename} ({args.exp_mode}, {len(params)} parameters)"
              + ("" if saved_score is None else f", trained score {saved_score:.2f}"))
    else:
        params = random_params(config, args.seed, exp_mode=args.exp_mode)
        print("no --filename: a random controller")
    if args.dream_mode or not args.random_policy:  # the random policy in the real game needs no model
        check_weight_files(config, args.vae_dir, args.rnn_dir, read=True)
    if args.dream_mode:  # and the dream's first frames (03's files), before any worker starts
        from dream import load_dream

        load_dream(config, data_dir=args.data_dir, rnn_dir=args.rnn_dir)
    for wanted, folder in ((args.final_mode, args.log_dir), (args.record_video, args.video_dir)):
        if wanted:
            check_writable(folder)  # a full disk or read-only folder is named now, not after the episodes
    if args.record_video:  # one run records this agent's videos; a killed one's temporary MP4s go
        name = controller_name(args.filename, args.env_name, args.random_policy, args.pretrained)
        lock_outputs(args.video_dir, f"video.{name}",
                     [(args.video_dir, temporaries_of(re.escape(name) + r"\.(?:dream\.)?seed\d+\.mp4"))])
    count = args.num_episode or (FINAL_EPISODES if args.final_mode else 1)
    if count < 1:
        raise UserError(f"--num_episode must be at least 1, got {count}")
    seeds = [args.seed + i for i in range(count)]
    played = played_files(args, config) if args.final_mode else {}  # hashed before the episodes, as read by them
    kernel = blas_kernel()  # asked now: nothing after the episodes may fail but the write
    play = Play.of(args.env_name, params, args.exp_mode, args.dream_mode, args.max_length, args.temperature,
                   args.vae_dir, args.rnn_dir, args.data_dir)
    if args.render_mode or args.record_video:
        results = watch(play, args, seeds)
    else:
        results = score_episodes(play, seeds, args.num_worker)
    scores = np.array([reward for _, reward, _ in results])
    where = f"dream at tau {play.temperature}" if args.dream_mode else "real environment"
    print(f"{args.env_name} ({where}), {count} episode(s) from seed {args.seed}: "
          f"mean {scores.mean():.2f} +- {scores.std():.2f} (min {scores.min():.2f}, max {scores.max():.2f})")
    if args.final_mode:
        name = controller_name(args.filename, args.env_name, args.random_policy, args.pretrained)
        path = os.path.join(args.log_dir, f"{name}.{'dream.' if args.dream_mode else ''}final.json")
        save_json(path, {"env": args.env_name, "filename": args.filename, "random_policy": args.random_policy,
                         "dream_mode": args.dream_mode, "temperature": play.temperature if args.dream_mode else None,
                         "exp_mode": None if params is None else args.exp_mode, "max_length": play.max_length,
                         "sha256": played, "first_seed": args.seed,
                         "episodes": count, "mean": float(scores.mean()), "std": float(scores.std()),
                         "scores": [float(s) for s in scores], "lengths": [int(n) for _, _, n in results],
                         "blas_kernel": kernel},
                  indent=1)
        print(f"scores saved to {path}")


if __name__ == "__main__":
    run_cli(main)
