"""Packing a trained agent for shipping (pack: its files, their short check episodes and the manifest, moved into
root/<env>/ whole), and playing a shipped agent's check episodes again (replay_check, play_check).

Nothing here loads NumPy at import: pretrained.py calls `blas.prepare_blas()` first.
"""

from __future__ import annotations

import datetime
import os
import shutil
from typing import TYPE_CHECKING

from blas import blas_kernel
from cli import UserError
from files import save_json
from processes import python_command
from shipping.card import trains_only_in_the_dream, write_model_card
from shipping.manifest import (CHECK_EPISODES, CHECK_STEPS, MANIFEST, PRETRAINED_DIR, ROLES, SCORE_FIELDS,
                               TRAINED_IN, read_final, repo_relative, seed_range, seeds_apart, sha256, shipped_files,
                               verify, walk_files)

if TYPE_CHECKING:
    from scoring import EpisodeScore

INITIAL_ROWS = 200  # first frames shipped for the dream (of the thousands 03 writes): enough variety, 50 KB
MAX_TOTAL_BYTES = 60 * 1024 * 1024  # everything in pretrained/ together (the budget)


def replay_check(env_name: str, root: str = PRETRAINED_DIR) -> str:
    """Play the manifest's check episodes again and compare every score exactly; returns a line saying so, a
    UserError naming the first that differs."""
    manifest = verify(env_name, root)
    check = manifest.get("check")
    if check is None:
        raise UserError(f"{os.path.join(root, env_name, MANIFEST)} records no check episodes to replay")
    played = play_folder(env_name, os.path.join(root, env_name), check["seeds"], check["max_length"])
    for (seed, reward, _), recorded in zip(played, check["scores"]):
        if reward != recorded:
            kernel, shipped = blas_kernel(), manifest.get("blas_kernel")
            why = (f" (they were played with OpenBLAS's {shipped} kernels, this machine runs "
                   f"{kernel or 'another BLAS'})"
                   if shipped and shipped != kernel else "")
            raise UserError(f"the check episode of seed {seed} scores {reward!r} here, the manifest says {recorded!r}"
                            f"{why}")
    return (f"{len(played)} check episodes of at most {check['max_length']} steps replayed: every score equals the "
            f"manifest's")


def play_check(env_name: str, root: str, seeds: list[int]) -> list[EpisodeScore]:
    """The EpisodeScore (seed, reward, steps) of the shipped agent in root/<env>/ on `seeds`, CHECK_STEPS steps at
    most, in this process (model.py --pretrained --max_length CHECK_STEPS plays the same episodes)."""
    verify(env_name, root)
    return play_folder(env_name, os.path.join(root, env_name), seeds)


def play_folder(env_name: str, folder: str, seeds: list[int], max_length: int = CHECK_STEPS) -> list[EpisodeScore]:
    """play_check's episodes from the files in `folder` (laid out as shipped_files), unverified."""
    from config import get_config
    from controller.controller import load_params
    from scoring import Play, score_episodes

    params, _, exp_mode = load_params(os.path.join(folder, shipped_files(env_name)["controller"]), get_config(env_name))
    play = Play.of(env_name, params, exp_mode, max_length=max_length, vae_dir=os.path.join(folder, "vae"),
                   rnn_dir=os.path.join(folder, "rnn"), data_dir=os.path.join(folder, "data"))
    return score_episodes(play, seeds, workers=1)


def pack(env_name: str, filename: str, final: str, commands: list[str], vae_dir: str, rnn_dir: str, data_dir: str,
         root: str = PRETRAINED_DIR, untouched: str | None = None, run: str | None = None,
         trained_in: str | None = None) -> str:
    """Copy a trained agent into root/<env>/ and write its manifest; returns the manifest's path.

    `final` is model.py --final_mode's ./log/<name>.final.json of this very controller with these V and M (the
    sha256 it records of each must be theirs); its mean, std, first seed, episode count and episode length go into
    the manifest, and it must be of the real game over at least 100 episodes. `untouched`, if given, is another such
    score of the same files on seeds nothing trained or chose on (reproduce.py's 10,000,000..), none of them
    `final`'s: the manifest keeps it as "untouched". `run`: the folder of the run that made the agent (reproduce.py's
    runs/reproduce/<env>/seed<N>), kept as "run", relative to the repository when inside it. `trained_in`: where
    C was trained, "dream" (inside M's dream only) or "game", kept as "trained_in" (the model card says it); when
    not given, "dream" if a command trains C only in the dream (05 with --dream_mode 1), else "game".
    """
    import numpy as np

    from config import MAKES_RNN_DATA, data_file, get_config, rnn_weights_path, vae_weights_path
    from controller.agent import check_weight_files
    from controller.controller import load_params
    from files import storage_error
    from npyio import load_npy
    from processes import signals_deferred

    if trained_in is None:
        trained_in = "dream" if any(trains_only_in_the_dream(command) for command in commands) else "game"
    if trained_in not in TRAINED_IN:
        raise UserError(f"trained_in must be one of {', '.join(TRAINED_IN)}, not {trained_in!r}")
    config = get_config(env_name)
    score = read_final(final, env_name)
    other = read_final(untouched, env_name) if untouched is not None else None
    load_params(filename, config)  # refuses a file of another env or a broken one
    check_weight_files(config, vae_dir, rnn_dir, read=True)  # missing, corrupt or mis-shaped: named with its maker
    sources = {"vae": vae_weights_path(env_name, numpy_export=True, vae_dir=vae_dir),
               "rnn": rnn_weights_path(env_name, numpy_export=True, rnn_dir=rnn_dir), "controller": filename}
    again = (f"{python_command()} model.py {env_name} --filename {filename} --vae_dir {vae_dir} --rnn_dir "
             f"{rnn_dir} --final_mode")
    if score.get("random_policy") or not isinstance(score.get("filename"), str):
        whose = "stage 01's random policy" if score.get("random_policy") else "a random controller"
        raise UserError(f"{final} is the score of {whose}, not of {filename}; score it with: {again}")
    played = score.get("sha256")
    if not isinstance(played, dict):
        raise UserError(f"{final} does not record which V, M and controller it played (an older model.py wrote it); "
                        f"score them again: {again}")
    source_hashes = {role: sha256(source) for role, source in sources.items()}
    for role, source in sources.items():
        if played.get(role) != source_hashes[role]:
            raise UserError(f"{final} is the score of another {ROLES[role]}: {source} is not the file it played; "
                            f"score these files with: {again}")
    kernel = blas_kernel()
    if "blas_kernel" not in score:
        raise UserError(f"{final} does not say which BLAS kernels played it (an older model.py wrote it, with "
                        f"OpenBLAS's SkylakeX kernels on the machine of that time); score it again: {again}")
    if score["blas_kernel"] != kernel:  # the manifest's episodes and its check must be played alike
        raise UserError(f"{final} was played with OpenBLAS's {score['blas_kernel'] or 'unknown'} kernels and this "
                        f"process runs {kernel or 'another BLAS'}: score the controller again here, with: {again}")
    if other is not None:
        if not isinstance(other.get("sha256"), dict) or any(other["sha256"].get(role) != source_hashes[role]
                                                            for role in sources):
            raise UserError(f"{untouched} is not a score of the files {final} played (its sha256 of V, M and the "
                            f"controller differ); score these files on the untouched seeds with: {again} --seed N")
        if other.get("blas_kernel") != score["blas_kernel"]:
            raise UserError(f"{untouched} was played with OpenBLAS's {other.get('blas_kernel') or 'unknown'} kernels, "
                            f"{final} with {score['blas_kernel'] or 'unknown'}: score both on one machine")
        if not seeds_apart(score, other):
            raise UserError(f"{untouched} plays seeds {seed_range(other)}, which overlap {final}'s "
                            f"({seed_range(score)}): an untouched score is of other seeds")
    made_by = MAKES_RNN_DATA.format(env=env_name)
    initial = load_npy(data_file("rnn_initial", env_name, 0, data_dir), made_by, mmap=False, ndim=3,
                       trailing_shape=(2, config.z_size), dtype="float32")[:INITIAL_ROWS]
    folder = os.path.join(root, env_name)
    files = shipped_files(env_name)
    # Everything is made in a staging folder first (the files, then the short check episodes played from them), and
    # only then moved in, the manifest last, with Ctrl-C and SIGTERM held until all are in: a pack that fails or is
    # stopped before the move leaves the shipped agent as it was.
    staging = os.path.join(root, f".{env_name}.packing")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        for role, source in sources.items():
            os.makedirs(os.path.dirname(os.path.join(staging, files[role])), exist_ok=True)
            shutil.copyfile(source, os.path.join(staging, files[role]))
        os.makedirs(os.path.join(staging, "data"), exist_ok=True)
        np.save(os.path.join(staging, files["initial"]), np.ascontiguousarray(initial, dtype=np.float32))
        # the short episodes a fast test replays (tests/test_shipped.py), played from the packed files themselves
        seeds = list(range(score["first_seed"], score["first_seed"] + CHECK_EPISODES))
        check = {"seeds": seeds, "max_length": CHECK_STEPS,
                 "scores": [result.reward for result in play_folder(env_name, staging, seeds)]}
        hashes = {relative: sha256(os.path.join(staging, relative)) for relative in files.values()}
        replaced = {os.path.join(folder, relative) for relative in list(files.values()) + [MANIFEST]}
        total = sum(os.path.getsize(path) for path in walk_files(root) if path not in replaced)  # staging counted
        if total > MAX_TOTAL_BYTES:
            raise UserError(f"{root} would hold {total / 2**20:.1f} MB, over the {MAX_TOTAL_BYTES / 2**20:.0f} MB "
                            f"budget; nothing was changed")
        manifest = {"env": env_name, "mean": score["mean"], "std": score["std"], "first_seed": score["first_seed"],
                    "episodes": score["episodes"], "max_length": score["max_length"], "scores": score["scores"],
                    "lengths": score["lengths"], "commands": commands, "date": datetime.date.today().isoformat(),
                    "sha256": hashes, "check": check, "blas_kernel": kernel, "trained_in": trained_in}
        if other is not None:
            manifest["untouched"] = {key: other[key] for key in SCORE_FIELDS}
        if run is not None:
            manifest["run"] = repo_relative(run)
        with signals_deferred():
            for relative in files.values():
                os.makedirs(os.path.dirname(os.path.join(folder, relative)), exist_ok=True)
                os.replace(os.path.join(staging, relative), os.path.join(folder, relative))
            path = os.path.join(folder, MANIFEST)
            save_json(path, manifest, indent=1)
            write_model_card(env_name, root)
    except OSError as error:  # a full disk, a read-only or forbidden folder
        raise storage_error(error, root) or UserError(f"cannot pack into {root}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path

