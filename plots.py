"""Controller runs side by side in one PNG (no display needed), written whole:

    python plots.py [--out FILE] [--official] [--title TEXT] [LABEL=]RUN.hist.json [[LABEL=]RUN.hist.json ...]

Each run is 05's ./log/<base>.hist.json: its population average per generation as a line and, where its .log.json
lies beside it, the evaluated means as dots of the same colour. --official adds the official estool CarRacing run's
population average (the paper's agent: population 64, 16 episodes each). Default output: ./log/runs.png. The files
are read as JSON data and checked (rows of finite numbers): a malformed one is refused with one line. The drawing
(and the training curves and reconstructions of 02 and 04) is figures.py's.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from cli import SettingsParser, UserError, option, run_cli
from files import check_writable
from figures import parse_run, save_runs


@dataclasses.dataclass(frozen=True)
class Settings:
    runs: tuple[str, ...] = option((), "a run's ./log/<base>.hist.json; +N: the run went on from another's "
                                       "generation N (a restart), so it is drawn from N + 1", positional=True,
                                   nargs="*", metavar="[LABEL=]HIST_JSON[+N]")
    out: str = option(os.path.join("log", "runs.png"), "the PNG to write")
    official: bool = option(False, "add the official estool CarRacing run's population average, up to the last "
                                   "generation shown")
    title: str = option("", "the plot's title")
    reproduce: str | None = option(None, "add the last controller phases of every reproduce.py run of ENV (each "
                                         "seed, restarts after the generation they went on from)", metavar="ENV")
    reproduce_root: str = option(os.path.join("runs", "reproduce"), "where reproduce.py's runs are")

    def __post_init__(self):
        if not self.out.endswith(".png"):
            raise UserError(f"--out {self.out}: the plot is a PNG; give a file name ending in .png")


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    return SettingsParser(Settings, description="Controller runs side by side: population averages per generation "
                          "and evaluated means, from 05's ./log/<base>.hist.json (and .log.json).").parse(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    runs = [parse_run(run) for run in args.runs]
    if args.reproduce:
        from recipe.report import reproduce_runs

        runs += reproduce_runs(args.reproduce_root, args.reproduce)
    if not runs:
        raise UserError("give the runs to draw: .hist.json files, or --reproduce ENV")
    check_writable(os.path.dirname(os.path.abspath(args.out)))
    print(save_runs(args.out, runs, args.official, args.title))


if __name__ == "__main__":
    run_cli(main)
