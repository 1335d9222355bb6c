"""The recipe of a shipped agent as one resumable command: stages 01 to 05, every round of iterative training, the
selection of the controller, its two 100-episode scores and the packed agent (docs/reproduce.md).

    python reproduce.py car_racing --seed 1                 (a run; stopped at any moment, the same command goes on)
    python reproduce.py car_racing --seed 1 --status        (where it stands)
    python reproduce.py car_racing --preset tiny            (the same schedule at toy sizes, in minutes)

State lives in ROOT/<env>/seed<N>/ (default ROOT runs/reproduce); at the end summary.json and agent/<env>/.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from cli import SettingsParser, Terminated, UserError, option, run_cli, stop_within
from recipe.presets import ENVS, PRESETS
from recipe.run import DEFAULT_ROOT


@dataclasses.dataclass(frozen=True)
class Settings:
    """reproduce.py's flags: which recipe (environment and preset), the run's seed, its processes, and where runs
    live."""

    env_name: str = option(help=f"one of {', '.join(ENVS)}", positional=True, metavar="ENV")
    seed: int = option(0, "the run's seed: every seed of every stage derives from it")
    workers: int = option(2, "processes of each stage (must divide populations)")
    preset: str = option("full", f"one of {', '.join(PRESETS)}")
    status: bool = option(False, "say where the run stands and exit")
    root: str = option(DEFAULT_ROOT, "where the runs' state folders go")
    jit: str = option("auto", "V's training step with XLA (on) or without (off) for the run's first 02; auto "
                      "(default): 02 times both and keeps the faster; every later 02 of the run, resumed or not, "
                      "uses the same", choices=("auto", "on", "off"))

    def __post_init__(self):
        if self.env_name not in ENVS:
            raise UserError(f"unknown ENV {self.env_name!r}: give one of {', '.join(ENVS)}")
        if self.preset not in PRESETS:
            raise UserError(f"--preset {self.preset!r} is unknown: give one of {', '.join(PRESETS)}")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")


def parse_args(argv=None) -> Settings:
    parser = SettingsParser(Settings, description="Run the recipe of a shipped agent, resumable, from a fresh clone.")
    return parser.parse(argv)


def main(argv=None) -> None:
    settings = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the stages' TensorFlow start-up lines, not their progress
    from recipe import report
    from recipe.presets import RECIPES, recipe_key
    from recipe.run import Run, recipe_of

    recipe = recipe_of(settings.root, settings.env_name, settings.seed, settings.preset)
    try:
        run = Run(recipe, settings.seed, settings.root, settings.workers, settings.jit)
    except ValueError as error:  # a --seed out of range
        raise UserError(str(error)) from None
    current = RECIPES[(settings.env_name, settings.preset)]
    if recipe is not current:
        print(f"{run.folder} follows an earlier {settings.preset} recipe (key {run.key}), retired since: it goes on and "
              f"reports with it; a new --seed follows the current one (key {recipe_key(current)})")
    if settings.status:
        print("\n".join(report.status_lines(run)))
        return
    summary = report.read_summary(run.folder)
    if run.state.finished and summary is not None:
        print(f"{run.folder} is finished; its summary ({os.path.join(run.folder, 'summary.json')}):")
        print("\n".join(report.summary_lines(summary)))
        return
    try:
        summary = run.run()
    except OSError as error:  # the run's folder filled up or became read-only between two steps: one line
        from files import storage_error

        raise storage_error(error, run.folder) or error from None
    except (Exception, KeyboardInterrupt) as error:
        if (stop := stop_within(error)) is None:
            raise
        terminated = isinstance(stop, Terminated)
        print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: nothing done is lost; resume with: "
              f"{run.resume_line()}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    print("\n".join(report.summary_lines(summary)))
    print(f"packed agent: {os.path.join(run.folder, 'agent', settings.env_name)}")


if __name__ == "__main__":
    run_cli(main)
