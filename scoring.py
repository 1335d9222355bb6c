"""Playing a trained agent (V + M + C, all NumPy) and scoring it: what model.py is asked to play (ModelSettings, its
flags), resolved once into a Play; the episodes on a pool of processes (score_episodes), each an EpisodeScore; and
the .final.json of a --final_mode score (save_final). Watching and recording one episode at a time is recording.py.

Import it after `blas.prepare_blas()`: it loads NumPy.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import NamedTuple

import numpy as np

from cli import StoppedPartWay, UserError, check_flags, option, stop_within
from config import (CONFIGS, DATA_DIR, EXP_MODES, FINAL_EPISODES, FIRST_SEED, RNN_DIR, VAE_DIR, dream_mode_option,
                    folder_option, get_config)
from episodes import Episode


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """model.py's flags: which agent plays (a controller file, a random controller, stage 01's random policy or the
    shipped agent), where (the real game or the dream), how many episodes from which seed, and what comes of them
    (a window, videos, a .final.json)."""

    env_name: str = option(help="the environment", positional=True, choices=sorted(CONFIGS))
    filename: str = option("", "controller parameters: a .best.json from 05 (default: none, a random controller)")
    exp_mode: str | None = option(None, "the controller's input mode; default: the file's own (the paper's for a file "
                                        "without one, and for a random controller)", choices=EXP_MODES)
    seed: int = option(FIRST_SEED, "seed of the first episode")
    max_length: int = option(-1, "steps per episode at most (default: the env's)")
    render_mode: bool = option(False, "show the episode in a window")
    record_video: bool = option(False, "write an MP4 per episode to ./video")
    final_mode: bool = option(False, f"score {FINAL_EPISODES} episodes: mean +- std")
    num_episode: int = option(0, f"episodes to run (default: 1, or {FINAL_EPISODES} with --final_mode)")
    num_worker: int = option(os.cpu_count() or 1, "processes for --final_mode (default: all cores)")
    dream_mode: bool = dream_mode_option("1: run inside the world model's dream instead of the real environment",
                                         kind=bool)
    pretrained: bool = option(False, "play the trained agent shipped in ./pretrained/<env>/ (V, M and C; no "
                                     "--filename)")
    pretrained_dir: str | None = option(None, "where shipped agents live (default ./pretrained)")
    random_policy: bool = option(False, "play stage 01's random data policy instead of a controller (no --filename)")
    temperature: float | None = option(None, "dream temperature tau (default: 0.7 CarRacing, 1.15 Doom)")
    video_dir: str = folder_option("video")
    log_dir: str = folder_option("log")
    vae_dir: str = folder_option("vae")
    rnn_dir: str = folder_option("rnn")
    data_dir: str = folder_option("data")

    def __post_init__(self):
        # tau divides M's logits: 0, negative or NaN would play another dream than the one printed
        check_flags(self, at_least={"num_episode": 0, "num_worker": 1}, positive=("temperature",), seeds=("seed",))
        if self.max_length == 0 or self.max_length < -1:
            raise UserError(f"--max_length must be at least 1 (or -1: the environment's), got {self.max_length}")
        if self.random_policy and self.filename and not self.pretrained:  # --pretrained's own check says more
            raise UserError("--random_policy plays stage 01's data policy: leave out --filename")

    @property
    def name(self) -> str:
        """The agent's name in video and score file names (controller_name)."""
        return controller_name(self.filename, self.env_name, self.random_policy, self.pretrained)

    @property
    def seeds(self) -> list[int]:
        """The seeds of the episodes: --num_episode (1, or FINAL_EPISODES with --final_mode) from --seed on."""
        count = self.num_episode or (FINAL_EPISODES if self.final_mode else 1)
        return [self.seed + i for i in range(count)]


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


class LoadedPlay(NamedTuple):
    """What load_play gives: the Play, and the line that says what plays."""

    play: Play
    line: str


def load_play(settings: ModelSettings) -> LoadedPlay:
    """The Play of `settings` (its controller file read, or a random controller drawn from --seed) and the line that
    says what plays."""
    from controller.controller import load_params, random_params

    config = get_config(settings.env_name)
    exp_mode = settings.exp_mode
    if settings.random_policy:
        params = None
        line = "stage 01's random data policy" + (" in the dream" if settings.dream_mode else "")
    elif settings.filename:
        params, saved_score, exp_mode = load_params(settings.filename, config, settings.exp_mode)
        line = (f"controller {settings.filename} ({exp_mode}, {len(params)} parameters)"
                + ("" if saved_score is None else f", trained score {saved_score:.2f}"))
    else:
        params = random_params(config, settings.seed, exp_mode=settings.exp_mode)
        line = "no --filename: a random controller"
    return LoadedPlay(Play.of(settings.env_name, params, exp_mode, settings.dream_mode, settings.max_length,
                              settings.temperature, settings.vae_dir, settings.rnn_dir, settings.data_dir), line)


def check_inputs(settings: ModelSettings) -> None:
    """Before any episode: V's and M's files (unless the random policy plays the real game), the dream's first
    frames, the output folders writable, and this agent's videos locked to this run (a killed run's temporary MP4s
    removed); each problem a UserError naming it now, not after the episodes or in a worker."""
    from controller.agent import check_weight_files
    from files import check_writable, lock_outputs, temporaries_of

    config = get_config(settings.env_name)
    if settings.dream_mode or not settings.random_policy:  # the random policy in the real game needs no model
        check_weight_files(config, settings.vae_dir, settings.rnn_dir, read=True)
    if settings.dream_mode:  # and the dream's first frames (03's files), before any worker starts
        from dream import load_dream

        load_dream(config, data_dir=settings.data_dir, rnn_dir=settings.rnn_dir)
    for wanted, folder in ((settings.final_mode, settings.log_dir), (settings.record_video, settings.video_dir)):
        if wanted:
            check_writable(folder)  # a full disk or read-only folder is named now, not after the episodes
    if settings.record_video:  # one run records this agent's videos; a killed one's temporary MP4s go
        lock_outputs(settings.video_dir, f"video.{settings.name}",
                     [(settings.video_dir, temporaries_of(re.escape(settings.name) + r"\.(?:dream\.)?seed\d+\.mp4"))])


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


class EpisodeScore(NamedTuple):
    """One episode's outcome: its seed, the sum of its rewards, the steps it lasted."""

    seed: int
    reward: float
    steps: int


# --- --final_mode on several processes ---------------------------------------------------------------------------

_WORKER: Session | None = None


def _start_worker(play: Play) -> None:
    """The Session of a --final_mode worker process (or of model.py itself, with one worker)."""
    global _WORKER
    from envs import headless_video_driver

    headless_video_driver()
    _WORKER = Session(play, render=None)


def _score(seed: int) -> EpisodeScore:
    episode = _WORKER.episode(seed)
    return EpisodeScore(seed, episode.reward, episode.steps)


def score_episodes(play: Play, seeds: list[int], workers: int) -> list[EpisodeScore]:
    """Every episode's EpisodeScore, in seed order, on `workers` processes (parallel.ProcessPool: they die with
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
                    progress.set_postfix(last=f"{result.reward:.1f}")
        except (Exception, KeyboardInterrupt) as error:  # on a stop, the pool ends its workers and prints the line
            if (stop := stop_within(error)) is None:
                raise
            raise stopped_after(stop, results, len(seeds)) from None
    return sorted(results)


def stopped_after(stop: KeyboardInterrupt, results: list[EpisodeScore], count: int) -> StoppedPartWay:
    """A stop after `results` of `count` episodes, saying their score: the episodes come in seed order, so those
    played are the first seeds."""
    done = f"after {len(results)} of {count} episodes"
    if results:
        scores = np.array([result.reward for result in results])
        done += f": {scores.mean():.2f} +- {scores.std():.2f} over {len(results)}"
    return StoppedPartWay(stop, done)


def summary_line(settings: ModelSettings, play: Play, results: list[EpisodeScore]) -> str:
    """The line that ends every model.py run: where it played, how many episodes from which seed, their score."""
    scores = np.array([result.reward for result in results])
    where = f"dream at tau {play.temperature}" if settings.dream_mode else "real environment"
    return (f"{settings.env_name} ({where}), {len(results)} episode(s) from seed {settings.seed}: "
            f"mean {scores.mean():.2f} +- {scores.std():.2f} (min {scores.min():.2f}, max {scores.max():.2f})")


def played_files(settings: ModelSettings) -> dict[str, str]:
    """role -> sha256 of the files an episode reads: the controller's, and V's and M's NumPy weights (not those of
    the random policy in the real game, which reads none)."""
    from controller.agent import weight_files
    from files import file_sha256

    paths = {"controller": settings.filename} if settings.filename and not settings.random_policy else {}
    if settings.dream_mode or not settings.random_policy:
        (paths["vae"], _), (paths["rnn"], _) = weight_files(get_config(settings.env_name), settings.vae_dir,
                                                            settings.rnn_dir)
    return {role: file_sha256(path) for role, path in paths.items()}


def save_final(settings: ModelSettings, play: Play, results: list[EpisodeScore], played: dict[str, str],
               kernel: str | None) -> str:
    """Write ./log/<name>[.dream].final.json: every episode's score and length, the sha256 of the files `played`
    (pretrained.py pack checks them) and the BLAS `kernel` they ran on; returns its path."""
    from files import save_json

    scores = np.array([result.reward for result in results])
    path = os.path.join(settings.log_dir, f"{settings.name}.{'dream.' if settings.dream_mode else ''}final.json")
    save_json(path, {"env": settings.env_name, "filename": settings.filename, "random_policy": settings.random_policy,
                     "dream_mode": settings.dream_mode,
                     "temperature": play.temperature if settings.dream_mode else None,
                     "exp_mode": None if play.params is None else play.exp_mode, "max_length": play.max_length,
                     "sha256": played, "first_seed": settings.seed,
                     "episodes": len(results), "mean": float(scores.mean()), "std": float(scores.std()),
                     "scores": [float(s) for s in scores], "lengths": [int(result.steps) for result in results],
                     "blas_kernel": kernel},
              indent=1)
    return path
