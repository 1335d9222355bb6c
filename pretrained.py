"""Trained agents that ship with the repository: play them without training, and check what they score.

    python model.py car_racing --pretrained --record_video          (watch the shipped CarRacing agent)
    python model.py car_racing --pretrained --final_mode            (its 100-episode score: the manifest's)
    python pretrained.py play                                       (make play: an MP4 of each shipped agent, in
                                                                     its game and in its dream)
    python pretrained.py card car_racing                            (its model card, pretrained/<env>/README.md,
                                                                     from the manifest; pack writes it too)
    python pretrained.py pack car_racing --filename ./controller/<base>.best.json --final ./log/<base>.best.final.json \
        --command "python 01_generate_data.py ..." --command ...   (how a trained agent is packed for shipping;
                                                                     reproduce.py adds --untouched and --run)
    python pretrained.py verify car_racing --replay                 (every file against the manifest, and its short
                                                                     check episodes played again)

The shipped files and their manifest are described in shipping/ (the library this script calls). `model.py
--pretrained` checks every file against the manifest's sha256 before anything is loaded; a missing or altered file,
or an environment with nothing shipped, is one line and a non-zero exit. The files are data (NumPy arrays read with
allow_pickle=False, JSON): loading them runs no code. `from pretrained import load_agent` gives a shipped agent (or
your own) as a Python object for a Gymnasium loop (shipping.agents.load_agent).
"""

from __future__ import annotations

import dataclasses
import os

from blas import prepare_blas
from cli import ArgumentParser, add_settings, option, run_cli, settings_from
from config import CONFIGS, folder_option
from shipping.manifest import MANIFEST, PRETRAINED_DIR, TRAINED_IN

prepare_blas()  # the check episodes are played here, with the BLAS settings of model.py's workers

from shipping.agents import load_agent  # noqa: E402  (the public name of a shipped agent as a Python object)

__all__ = ["load_agent"]

ENV = dict(help="the environment", positional=True, choices=sorted(CONFIGS))
ROOT_HELP = "where shipped agents live (default: pretrained/ of this repository)"


@dataclasses.dataclass(frozen=True)
class PackSettings:
    """pack: copy V, M, C and first frames, write the manifest."""

    env_name: str = option(**ENV)
    filename: str = option(help="the controller's .best.json")
    final: str = option(help="model.py --final_mode's .final.json of that controller")
    command: list[str] | None = option(None, "a command that made the files (repeat)", action="append")
    untouched: str | None = option(None, "another .final.json of the same files, on seeds nothing trained or chose "
                                         "on (reproduce.py's 10,000,000..): the manifest keeps it beside --final's")
    run: str | None = option(None, "the folder of the run that made the agent (reproduce.py's "
                                   "runs/reproduce/<env>/seed<N>): the manifest names it")
    trained_in: str | None = option(None, "where C was trained: dream (only inside M's dream) or game; the manifest "
                                          "and model card say it (default: dream if a --command trains C with "
                                          "--dream_mode 1, else game)", choices=TRAINED_IN)
    root: str = option(PRETRAINED_DIR, ROOT_HELP)
    vae_dir: str = folder_option("vae")
    rnn_dir: str = folder_option("rnn")
    data_dir: str = folder_option("data")


@dataclasses.dataclass(frozen=True)
class VerifySettings:
    """verify: check the manifest against itself and every shipped file's sha256."""

    env_name: str = option(**ENV)
    replay: bool = option(False, "also play the manifest's short check episodes and compare their scores exactly")
    root: str = option(PRETRAINED_DIR, ROOT_HELP)


@dataclasses.dataclass(frozen=True)
class CardSettings:
    """card: write the model card pretrained/<env>/README.md from the manifest."""

    env_name: str = option(**ENV)
    root: str = option(PRETRAINED_DIR, ROOT_HELP)


@dataclasses.dataclass(frozen=True)
class PlaySettings:
    """play: record every shipped agent in its game and its dream (make play)."""

    root: str = option(PRETRAINED_DIR, ROOT_HELP)
    video_dir: str = option("./video", "where the MP4s go (default ./video)")
    stills: str | None = option(None, "also write a PNG frame of each video to this folder")
    max_length: int = option(-1, "steps per episode at most (default: the env's)")


COMMANDS = {"pack": PackSettings, "verify": VerifySettings, "card": CardSettings, "play": PlaySettings}


def parse_args(argv=None) -> PackSettings | VerifySettings | CardSettings | PlaySettings:
    parser = ArgumentParser(description="Pack a trained agent into pretrained/<env>/, or check one.")
    commands = parser.add_subparsers(dest="action", required=True)
    for name, settings_class in COMMANDS.items():
        summary = settings_class.__doc__.split(": ", 1)[1].rstrip(".")  # "pack: copy V, M, ..."
        add_settings(commands.add_parser(name, help=summary), settings_class)
    namespace = parser.parse_args(argv)
    return settings_from(COMMANDS[namespace.action], namespace)


def main(argv=None) -> None:
    settings = parse_args(argv)
    if isinstance(settings, PlaySettings):
        from shipping.videos import play

        for video in play(settings.root, settings.stills, settings.video_dir, settings.max_length):
            print(f"video {video}")
    elif isinstance(settings, CardSettings):
        from shipping.card import write_model_card
        from shipping.manifest import verify

        verify(settings.env_name, settings.root)
        print(f"model card {write_model_card(settings.env_name, settings.root)}")
    elif isinstance(settings, PackSettings):
        from shipping.pack import pack

        path = pack(settings.env_name, settings.filename, settings.final, list(settings.command or []),
                    settings.vae_dir, settings.rnn_dir, settings.data_dir, settings.root, settings.untouched,
                    settings.run, settings.trained_in)
        print(f"packed {settings.env_name} into {os.path.dirname(path)}")
    else:
        from shipping.manifest import verify
        from shipping.pack import replay_check

        manifest = verify(settings.env_name, settings.root)
        print(f"{settings.env_name}: every file matches {MANIFEST}, which agrees with itself; score "
              f"{manifest['mean']:.2f} +- {manifest['std']:.2f} over {manifest['episodes']} episodes from seed "
              f"{manifest['first_seed']} (model.py {settings.env_name} --pretrained --final_mode plays them again)")
        if settings.replay:
            print(f"{settings.env_name}: {replay_check(settings.env_name, settings.root)}")


if __name__ == "__main__":
    run_cli(main)
