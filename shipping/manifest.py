"""A shipped agent's manifest (pretrained/<env>/manifest.json): where shipped agents live, the files each ships,
and the checks that a manifest, or a .final.json score it is made from, agrees with itself and with the files.

Nothing here loads NumPy at import: pretrained.py and load_agent's users call `blas.prepare_blas()` first.
"""

from __future__ import annotations

import os

from cli import UserError
from files import file_sha256, repo_root
from reading import SMALL_JSON_BYTES, finite_number, read_json

PRETRAINED_DIR = os.path.join(repo_root(), "pretrained")
MANIFEST = "manifest.json"
CHECK_EPISODES, CHECK_STEPS = 3, 300  # the manifest's replayable check: the first seeds, short episodes


def shipped_files(env_name: str) -> dict[str, str]:
    """role -> path inside pretrained/<env>/."""
    return {"vae": f"vae/{env_name}.npz", "rnn": f"rnn/{env_name}.npz",
            "controller": f"controller/{env_name}.best.json", "initial": f"data/rnn_initial_{env_name}_0.npy"}


sha256 = file_sha256
TRAINED_IN = ("dream", "game")  # a manifest's "trained_in": C trained only inside M's dream, or in the game
SCORE_FIELDS = ("first_seed", "episodes", "max_length", "mean", "std", "scores", "lengths")  # a manifest's "untouched"
ROLES = {"vae": "V", "rnn": "M", "controller": "controller"}  # the files model.py's .final.json records a sha256 of


def _is_count(value: object, least: int) -> bool:
    return type(value) is int and value >= least


def _score_fields_ok(record: dict) -> bool:
    """A score record's mean and std are finite, its episodes, first seed and (optional) max_length counts."""
    return (finite_number(record.get("mean")) is not None and finite_number(record.get("std")) is not None
            and _is_count(record.get("episodes"), 1) and _is_count(record.get("first_seed"), 0)
            and _is_count(record.get("max_length", 1), 1))


def _manifest_problem(manifest: object, env_name: str) -> bool:
    """True unless `manifest` has every field model.py --pretrained and the tests read, of the right types."""
    return (not isinstance(manifest, dict) or manifest.get("env") != env_name
            or not isinstance(manifest.get("sha256"), dict)
            or not all(isinstance(value, str) for value in manifest["sha256"].values())
            or not _score_fields_ok(manifest) or not isinstance(manifest.get("run", ""), str)
            or manifest.get("trained_in", "game") not in TRAINED_IN)  # an older pack wrote no trained_in


def seed_range(score: dict) -> str:
    """A score's seeds, as 'first..last'."""
    return f"{score['first_seed']}..{score['first_seed'] + score['episodes'] - 1}"


def seeds_apart(first: dict, second: dict) -> bool:
    """True when two scores (first_seed, episodes) play no seed in common."""
    return (first["first_seed"] + first["episodes"] <= second["first_seed"]
            or second["first_seed"] + second["episodes"] <= first["first_seed"])


def repo_relative(path: str) -> str:
    """path relative to the repository when inside it (as a manifest names a run), else absolute."""
    absolute = os.path.abspath(path)
    inside = os.path.commonpath([absolute, repo_root()]) == repo_root()
    return os.path.relpath(absolute, repo_root()) if inside else absolute


def _untouched_problem(manifest: dict, limit: int) -> str | None:
    """What a manifest's optional "untouched" score (pack --untouched) says against itself or the main score."""
    other = manifest.get("untouched")
    if other is None:
        return None
    if (not isinstance(other, dict) or set(other) != set(SCORE_FIELDS) or not _score_fields_ok(other)
            or other["max_length"] > limit):
        return f"its untouched score is not {', '.join(SCORE_FIELDS)} of episodes of at most {limit} steps"
    problem = score_contradiction(other, other["max_length"])
    if problem is not None:
        return f"its untouched score (seeds {seed_range(other)}): {problem}"
    if not seeds_apart(manifest, other):
        return f"its untouched score's seeds {seed_range(other)} overlap its score's {seed_range(manifest)}"
    return None


def score_contradiction(record: dict, max_length: int) -> str | None:
    """What a score record (a manifest, a .final.json) says against itself, or None: its mean and std must be those
    of its scores, one score (and one length, 1..max_length) an episode, and its short check episodes (a manifest's)
    the first seeds'."""
    import numpy as np

    episodes, scores = record["episodes"], record.get("scores")
    if not isinstance(scores, list) or len(scores) != episodes or any(finite_number(s) is None for s in scores):
        return f"its scores are not {episodes} finite numbers, one an episode"
    lengths = record.get("lengths")
    if lengths is not None and (not isinstance(lengths, list) or len(lengths) != episodes
                                or not all(_is_count(n, 1) and n <= max_length for n in lengths)):
        return f"its lengths are not {episodes} episode lengths from 1 to {max_length}"
    for key, value in (("mean", float(np.mean(scores))), ("std", float(np.std(scores)))):
        if abs(record[key] - value) > 1e-6 * max(1.0, abs(value)):
            return f"its {key} {record[key]:.2f} is not that of its {episodes} scores ({value:.2f})"
    check = record.get("check")
    if check is not None:
        seeds = check.get("seeds") if isinstance(check, dict) else None
        if (not isinstance(seeds, list) or not seeds or not isinstance(check.get("scores"), list)
                or len(check["scores"]) != len(seeds) or not _is_count(check.get("max_length"), 1)
                or any(finite_number(s) is None for s in check["scores"])
                or seeds != list(range(record["first_seed"], record["first_seed"] + len(seeds)))):
            return "its check is not short episodes of its first seeds with a finite score each"
    return None


def verify(env_name: str, root: str = PRETRAINED_DIR) -> dict:
    """The manifest of pretrained/<env>/ after checking that it agrees with itself (score_contradiction) and every
    shipped file's sha256; a UserError otherwise."""
    folder = os.path.join(root, env_name)
    manifest_path = os.path.join(folder, MANIFEST)
    if not os.path.exists(manifest_path):
        raise UserError(f"no pretrained {env_name} agent in {root} (shipped: {', '.join(shipped(root)) or 'none'}); "
                        f"train one with the numbered scripts")
    manifest = read_json(manifest_path, SMALL_JSON_BYTES, f"a manifest of a pretrained {env_name} agent",
                         "git checkout it again")
    if _manifest_problem(manifest, env_name):
        raise UserError(f"{manifest_path} is not a manifest of a pretrained {env_name} agent (its env, sha256, mean, "
                        f"std, episodes, first_seed and max_length are read)")
    from config import get_config

    limit = get_config(env_name).max_episode_length
    if manifest.get("max_length", limit) > limit:
        contradiction = f"its max_length {manifest['max_length']} is beyond {env_name}'s {limit} steps"
    else:
        contradiction = (score_contradiction(manifest, manifest.get("max_length", limit))
                         or _untouched_problem(manifest, limit))
    if contradiction is not None:
        raise UserError(f"{manifest_path} contradicts itself: {contradiction}; git checkout it again")
    hashes = manifest["sha256"]
    for role, relative in shipped_files(env_name).items():
        path = os.path.join(folder, relative)
        if relative not in hashes:
            raise UserError(f"{manifest_path} lists no sha256 for {relative}")
        if not os.path.exists(path):
            raise UserError(f"{path} is missing (the pretrained {env_name} agent needs it; git checkout it again)")
        if sha256(path, "git checkout it again") != hashes[relative]:
            raise UserError(f"{path} is not the shipped file (sha256 differs from {manifest_path}); refusing to load "
                            f"it: git checkout it again")
    return manifest


def read_final(final: str, env_name: str) -> dict:
    """model.py --final_mode's .final.json, checked: a real-game score of env_name over at least 100 episodes, with
    every field the manifest takes."""
    score = read_json(final, SMALL_JSON_BYTES, "a .final.json", "give the .final.json model.py --final_mode writes")
    if (not isinstance(score, dict) or score.get("env") != env_name or score.get("dream_mode")
            or type(score.get("episodes")) is not int or score["episodes"] < 100):
        raise UserError(f"{final} is not a 100-episode score of {env_name} in the real game")
    episodes = score["episodes"]
    if (type(score.get("first_seed")) is not int or finite_number(score.get("mean")) is None
            or finite_number(score.get("std")) is None
            or not all(isinstance(score.get(key), list) and len(score[key]) == episodes
                       for key in ("scores", "lengths"))
            or not all(finite_number(value) is not None for value in score["scores"])
            or not all(type(value) is int for value in score["lengths"])):
        raise UserError(f"{final} is damaged: its first_seed, mean, std, scores and lengths are not those of "
                        f"{episodes} episodes")
    if not isinstance(score.get("blas_kernel"), (str, type(None))):
        raise UserError(f"{final} is damaged: its blas_kernel is not a name")
    if not _is_count(score.get("max_length"), 1):
        raise UserError(f"{final} does not say how long its episodes could be (an older model.py wrote it, or it is "
                        f"damaged); score the controller again with model.py --final_mode")
    contradiction = score_contradiction(score, score["max_length"])
    if contradiction is not None:
        raise UserError(f"{final} contradicts itself: {contradiction}; score the controller again with model.py "
                        f"--final_mode")
    return score


def walk_files(root: str) -> list[str]:
    """Every file under root, as root-joined paths."""
    return [os.path.join(base, name) for base, _, names in os.walk(root) for name in names]


def shipped(root: str = PRETRAINED_DIR) -> list[str]:
    """The environments with a packed agent (a manifest) in root."""
    return sorted(name for name in os.listdir(root) if os.path.exists(os.path.join(root, name, MANIFEST))) \
        if os.path.isdir(root) else []

