"""The paper's temperature table for your Doom world model: for each tau, train a controller in the dream at tau,
then score it in the dream (at tau) and in the real game.

    python sweep_temperature.py doom_take_cover --temperatures 0.1 0.5 1.0 1.15 1.3 --generations 50 \\
        --num_worker 2 --num_worker_trial 32 --num_episode 4

Each tau trains with 05_train_controller.py --dream_mode 1 --temperature tau in its own folder,
./controller/tau<tau>/ (logs in ./log/tau<tau>/), so the runs never overwrite each other. --generations is each
tau's total: a tau whose folder holds a checkpoint of fewer generations is resumed for the rest (an interrupted
sweep goes on where it stopped when the same command is run again), one that holds as many is only scored. Scores
are means +- std over --episodes episodes (100, as the paper) from model.py's code. The table is printed and written to
./log/<env>.temperature_sweep.json.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

from blas import prepare_blas
from cli import SettingsParser, UserError, check_flags, option, run_cli
from processes import run_child
from config import folder_option

prepare_blas()  # before NumPy loads its BLAS

ROOT = os.path.dirname(os.path.abspath(__file__))
PAPER = {0.1: ("2086 ± 140", "193 ± 58"), 0.5: ("2060 ± 277", "196 ± 50"), 1.0: ("1145 ± 690", "868 ± 511"),
         1.15: ("918 ± 546", "1092 ± 556"), 1.3: ("732 ± 269", "753 ± 139")}


@dataclasses.dataclass(frozen=True)
class Settings:
    env_name: str = option(help="the environment (the paper swept Doom's)", positional=True,
                           choices=["doom_take_cover"])
    temperatures: tuple[float, ...] = option(tuple(sorted(PAPER)), "the dream temperatures tau to train at, one 05 "
                                                                   "run each (default: the paper's)")
    generations: int = option(50, "dream generations per temperature, in all, a multiple of --eval_steps (a rerun "
                                  "trains only those still owed)")
    num_worker: int = option(os.cpu_count() or 1, "05's worker processes, and model.py's (default: all cores)",
                             flags=("-n",))
    num_worker_trial: int = option(8, "05's solutions per worker: population = num_worker x num_worker_trial",
                                   flags=("-t",))
    num_episode: int = option(4, "05's dream episodes per solution", flags=("-e",))
    eval_steps: int = option(10, "05 evaluates the mean every this many generations")
    episodes: int = option(100, "episodes of each score (default 100, as the paper)")
    real_episodes: int = option(32, "real-game episodes 05 scores each new dream best with")
    seed: int = option(111, "05's --seed_start and model.py's --seed")
    controller_dir: str = folder_option("controller")
    log_dir: str = folder_option("log")

    def __post_init__(self):
        check_flags(self, at_least={"generations": 0, "num_worker": 1, "num_worker_trial": 1, "num_episode": 1,
                                    "eval_steps": 1, "episodes": 1, "real_episodes": 1}, seeds=("seed",))
        for tau in self.temperatures:  # each is passed to 05 and model.py as --temperature: refused before any run
            if not math.isfinite(tau) or tau <= 0:
                raise UserError(f"--temperatures must be a finite number above 0, got {tau}")
        if self.generations % self.eval_steps:  # else a run shorter than --eval_steps would have no controller at all
            raise UserError(f"--generations must be a multiple of --eval_steps ({self.eval_steps}), got "
                            f"{self.generations}: each temperature's controller is its best evaluation, and 05 "
                            f"evaluates every --eval_steps generations")
        if self.num_worker * self.num_worker_trial < 2:
            raise UserError("the population (num_worker x num_worker_trial) needs at least 2 solutions")


def parse_args(argv=None) -> Settings:
    return SettingsParser(Settings, description="Train in the dream at several temperatures; score dream and "
                                                "real.").parse(argv)


def score(settings: Settings, best: str, dream: bool, temperature: float) -> tuple[float, float]:
    """Mean and std over settings.episodes episodes, in the dream at `temperature` or in the real game (model.py's
    scoring.Play.of and scoring.score_episodes)."""
    import numpy as np

    from config import get_config
    from controller.controller import load_params
    from scoring import Play, score_episodes

    params, _, exp_mode = load_params(best, get_config(settings.env_name))
    play = Play.of(settings.env_name, params, exp_mode, dream=dream, temperature=temperature)
    seeds = [settings.seed + i for i in range(settings.episodes)]
    scores = np.array([episode.reward for episode in score_episodes(play, seeds, settings.num_worker)])
    return float(scores.mean()), float(scores.std())


def trained_generations(checkpoint: str) -> int:
    """Generations a sweep's checkpoint holds (0 when there is none); a damaged one is a one-line error."""
    if not os.path.exists(checkpoint):
        return 0
    from controller.training import TrainingState
    from es import load_optimizer

    _, data = load_optimizer(checkpoint)
    return TrainingState.from_json(data, checkpoint).generation


def main(argv=None) -> None:
    args = parse_args(argv)
    from files import save_json

    population = args.num_worker * args.num_worker_trial
    rows = []
    for tau in args.temperatures:
        folder = f"tau{tau:g}"
        controller_dir = os.path.join(args.controller_dir, folder)
        log_dir = os.path.join(args.log_dir, folder)
        base = f"{args.env_name}.cma.{args.num_episode}.{population}"
        checkpoint = os.path.join(controller_dir, f"{base}.es.pk")
        best = os.path.join(controller_dir, f"{base}.best.json")
        done = trained_generations(checkpoint)
        if done:
            print(f"== tau {tau:g}: {checkpoint} holds {done} generation(s) of {args.generations}", flush=True)
        if args.generations > done:
            command = [sys.executable, os.path.join(ROOT, "05_train_controller.py"), args.env_name, "--dream_mode", "1",
                       "--temperature", str(tau), "--num_worker", str(args.num_worker), "--num_worker_trial",
                       str(args.num_worker_trial), "--num_episode", str(args.num_episode), "--eval_steps",
                       str(args.eval_steps), "--generations", str(args.generations - done), "--controller_dir",
                       controller_dir, "--log_dir", log_dir, "--real_episodes", str(args.real_episodes)]
            if done:
                command += ["--init_opt", checkpoint]
            print(f"== tau {tau:g}: training in the dream ({' '.join(command[2:])})", flush=True)
            if run_child(command) != 0:
                raise UserError(f"training at tau {tau:g} failed (its error is above)")
        if not os.path.exists(best):
            raise UserError(f"{best} is missing: train at tau {tau:g} first (--generations > 0)")
        dream_mean, dream_std = score(args, best, True, tau)
        real_mean, real_std = score(args, best, False, tau)
        rows.append({"temperature": tau, "dream_mean": dream_mean, "dream_std": dream_std, "real_mean": real_mean,
                     "real_std": real_std, "controller": best})
        print(f"== tau {tau:g}: dream {dream_mean:.0f} ± {dream_std:.0f}, real {real_mean:.0f} ± {real_std:.0f}",
              flush=True)
    print(f"\n{'tau':>6}  {'dream score':>14}  {'real score':>14}  {'paper dream':>12}  {'paper real':>12}")
    for row in rows:
        paper = PAPER.get(round(row["temperature"], 2), ("", ""))
        print(f"{row['temperature']:>6g}  {row['dream_mean']:>7.0f} ± {row['dream_std']:<4.0f}  "
              f"{row['real_mean']:>7.0f} ± {row['real_std']:<4.0f}  {paper[0]:>12}  {paper[1]:>12}")
    path = os.path.join(args.log_dir, f"{args.env_name}.temperature_sweep.json")
    save_json(path, {"episodes": args.episodes, "generations": args.generations, "population": population,
                     "num_episode": args.num_episode, "rows": rows}, indent=1)
    print(f"table saved to {path}")


if __name__ == "__main__":
    run_cli(main)
