"""The recipe of a shipped agent as one resumable command: stages 01 to 05, every round of iterative training, the
selection of the controller, its two 100-episode scores and the packed agent (docs/reproduce.md).

    python reproduce.py car_racing --seed 1                 (a run; stopped at any moment, the same command goes on)
    python reproduce.py car_racing --seed 1 --status        (where it stands)
    python reproduce.py car_racing --preset tiny            (the same schedule at toy sizes, in minutes)

State lives in ROOT/<env>/seed<N>/ (default ROOT runs/reproduce); at the end summary.json and agent/<env>/.
"""

from __future__ import annotations

import os
import sys

from cli import ArgumentParser, UserError, run_cli


def parse_args(argv=None):
    from recipe.presets import ENVS, PRESETS

    parser = ArgumentParser(description="Run the recipe of a shipped agent, resumable, from a fresh clone.")
    parser.add_argument("env_name", metavar="ENV", help=f"one of {', '.join(ENVS)}")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed: every seed of every stage derives from it")
    parser.add_argument("--workers", type=int, default=2, help="processes of each stage (must divide populations)")
    parser.add_argument("--preset", default="full", help=f"one of {', '.join(PRESETS)}")
    parser.add_argument("--status", action="store_true", help="say where the run stands and exit")
    parser.add_argument("--root", default=os.path.join("runs", "reproduce"), help="where the runs' state folders go")
    args = parser.parse_args(argv)
    if args.env_name not in ENVS:
        raise UserError(f"unknown ENV {args.env_name!r}: give one of {', '.join(ENVS)}")
    if args.preset not in PRESETS:
        raise UserError(f"--preset {args.preset!r} is unknown: give one of {', '.join(PRESETS)}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the stages' TensorFlow start-up lines, not their progress
    from recipe import report
    from recipe.presets import RECIPES
    from recipe.run import Run

    try:
        run = Run(RECIPES[(args.env_name, args.preset)], args.seed, args.root, args.workers)
    except ValueError as error:  # a --seed out of range
        raise UserError(str(error)) from None
    if args.status:
        print("\n".join(report.status_lines(run)))
        return
    summary = report.read_summary(run.folder)
    if run.state.finished and summary is not None:
        print(f"{run.folder} is finished; its summary ({os.path.join(run.folder, 'summary.json')}):")
        print("\n".join(report.summary_lines(summary)))
        return
    try:
        summary = run.run()
    except KeyboardInterrupt as stop:
        from cli import Terminated
        from processes import python_command

        terminated = isinstance(stop, Terminated)
        print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: nothing done is lost; resume with: "
              f"{run.command_line(python_command())}" + (f" --root {args.root}" if args.root != os.path.join("runs", "reproduce")
                                         else ""), file=sys.stderr)
        sys.exit(143 if terminated else 130)
    print("\n".join(report.summary_lines(summary)))
    print(f"packed agent: {os.path.join(run.folder, 'agent', args.env_name)}")


if __name__ == "__main__":
    run_cli(main)
