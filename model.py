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

The flags are scoring.ModelSettings; the work is scoring.py (the episodes, on a pool of processes, and the
.final.json) and recording.py (a window, videos).
"""

from __future__ import annotations

from blas import blas_kernel, prepare_blas
from cli import SettingsParser, run_cli

prepare_blas()  # before NumPy loads its BLAS

from scoring import (ModelSettings, check_inputs, load_play, played_files, save_final, score_episodes,  # noqa: E402
                     summary_line)


def parse_args(argv=None) -> ModelSettings:
    parser = SettingsParser(ModelSettings, description="Run a trained agent: watch it, record it, or score it.")
    return parser.parse(argv)


def main(argv=None) -> None:
    settings = parse_args(argv)
    if settings.pretrained:
        from shipping.agents import use_pretrained

        settings, lines = use_pretrained(settings)
        print("\n".join(lines))
    play, line = load_play(settings)
    print(line)
    check_inputs(settings)
    played = played_files(settings) if settings.final_mode else {}  # hashed before the episodes, as read by them
    kernel = blas_kernel()  # asked now: nothing after the episodes may fail but the write
    if settings.render_mode or settings.record_video:
        from recording import watch

        results = watch(play, settings)
    else:
        results = score_episodes(play, settings.seeds, settings.num_worker)
    print(summary_line(settings, play, results))
    if settings.final_mode:
        print(f"scores saved to {save_final(settings, play, results, played, kernel)}")


if __name__ == "__main__":
    run_cli(main)
