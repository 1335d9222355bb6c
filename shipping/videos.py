"""Videos of the shipped agents (pretrained.py play, make play): an episode of each in its game and its dream, recorded
by model.py as a user runs it, and a still of each for the README.

Nothing here loads NumPy at import.
"""

from __future__ import annotations

import os
import shlex
import sys

from cli import UserError
from files import repo_root
from processes import python_command, run_child
from shipping.manifest import PRETRAINED_DIR, shipped

def play(root: str = PRETRAINED_DIR, stills: str | None = None, video_dir: str = "./video",
         max_length: int = -1) -> list[str]:
    """Record one episode (seed 111, FIRST_SEED) of every shipped agent in its game and its dream (decoded by V), with
    model.py as a user runs it; returns the MP4 paths. With `stills`, also write the frame a third into each video
    as <stills>/pretrained.<env>[.dream].png (the README's pictures)."""
    from config import FIRST_SEED

    envs = shipped(root)
    if not envs:
        raise UserError(f"no shipped agent in {root}: pack one with `python pretrained.py pack ...`")
    videos = []
    for env_name in envs:
        for dream in (False, True):
            command = [sys.executable, os.path.join(repo_root(), "model.py"), env_name, "--pretrained",
                       "--pretrained_dir", root, "--record_video", "--video_dir", video_dir,
                       "--max_length", str(max_length)] + \
                      (["--dream_mode"] if dream else [])
            print(f"$ {python_command()} {shlex.join(command[1:])}", flush=True)
            if run_child(command):
                raise UserError(f"model.py failed on the shipped {env_name} agent (its error is above)")
            name = f"pretrained.{env_name}.{'dream.' if dream else ''}seed{FIRST_SEED}"
            videos.append(os.path.join(video_dir, f"{name}.mp4"))
            if stills:
                save_still(videos[-1], os.path.join(stills, f"pretrained.{env_name}{'.dream' if dream else ''}.png"))
    return videos


def save_still(video: str, path: str) -> None:
    """The frame a third into `video`, as a PNG written whole."""
    import imageio.v2 as imageio

    from files import atomic_path

    frames = imageio.mimread(video, memtest=False)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, suffix=".png") as temporary:
        imageio.imwrite(temporary, frames[len(frames) // 3], format="png")

