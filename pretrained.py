"""Trained agents that ship with the repository: play them without training, and check what they score.

    python model.py car_racing --pretrained --record_video          (watch the shipped CarRacing agent)
    python model.py car_racing --pretrained --final_mode            (its 100-episode score: the manifest's)
    python pretrained.py play                                       (make play: an MP4 of each shipped agent, in
                                                                     its game and in its dream)
    python pretrained.py card car_racing                            (its model card, pretrained/<env>/README.md,
                                                                     from the manifest; pack writes it too)
    python pretrained.py pack car_racing --filename ./controller/<base>.best.json --final ./log/<base>.best.final.json \
        --command "python 01_generate_data.py ..." --command ...   (how a trained agent is packed for shipping)

One folder per environment, laid out as the scripts' own folders, so that every loader is the usual one:

    pretrained/<env>/vae/<env>.npz                  V as NumPy arrays (what rollout workers read), float32
    pretrained/<env>/rnn/<env>.npz                  M, likewise
    pretrained/<env>/controller/<env>.best.json     C: [params, score, {"env", "exp_mode"}] as 05 writes it
    pretrained/<env>/data/rnn_initial_<env>_0.npy   first-frame mu and logvar of recorded episodes (the dream starts
                                                    from them: model.py --dream_mode)
    pretrained/<env>/README.md                      the model card, written from the manifest (model_card)
    pretrained/<env>/manifest.json                  the 100-episode score (mean, std, first seed, episodes, every
                                                    episode's score), short episodes a test replays ("check"), the
                                                    commands that made the files, the date, each file's sha256

`model.py --pretrained` checks every file against the manifest's sha256 before anything is loaded; a missing or
altered file, or an environment with nothing shipped, is one line and a non-zero exit. The files are data (NumPy
arrays read with allow_pickle=False, JSON): loading them runs no code.
"""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import sys

from blas import blas_kernel, prepare_blas
from cli import ArgumentParser, UserError, run_cli
from files import file_sha256, repo_root, save_json
from processes import python_command, run_child
from reading import PARAMS_JSON_BYTES, SMALL_JSON_BYTES, finite_number, read_json

prepare_blas()  # the check episodes are played here, with the BLAS settings of model.py's workers

PRETRAINED_DIR = os.path.join(repo_root(), "pretrained")
MANIFEST = "manifest.json"
INITIAL_ROWS = 200  # first frames shipped for the dream (of the thousands 03 writes): enough variety, 50 KB
MAX_TOTAL_BYTES = 60 * 1024 * 1024  # everything in pretrained/ together (the budget)
CHECK_EPISODES, CHECK_STEPS = 3, 300  # the manifest's replayable check: the first seeds, short episodes


def shipped_files(env_name: str) -> dict[str, str]:
    """role -> path inside pretrained/<env>/."""
    return {"vae": f"vae/{env_name}.npz", "rnn": f"rnn/{env_name}.npz",
            "controller": f"controller/{env_name}.best.json", "initial": f"data/rnn_initial_{env_name}_0.npy"}


sha256 = file_sha256
ROLES = {"vae": "V", "rnn": "M", "controller": "controller"}  # the files model.py's .final.json records a sha256 of


def _is_count(value: object, least: int) -> bool:
    return type(value) is int and value >= least


def _manifest_problem(manifest: object, env_name: str) -> bool:
    """True unless `manifest` has every field model.py --pretrained and the tests read, of the right types."""
    return (not isinstance(manifest, dict) or manifest.get("env") != env_name
            or not isinstance(manifest.get("sha256"), dict)
            or not all(isinstance(value, str) for value in manifest["sha256"].values())
            or finite_number(manifest.get("mean")) is None or finite_number(manifest.get("std")) is None
            or not _is_count(manifest.get("episodes"), 1) or not _is_count(manifest.get("first_seed"), 0)
            or not _is_count(manifest.get("max_length", 1), 1))


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
        contradiction = score_contradiction(manifest, manifest.get("max_length", limit))
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


def use_pretrained(args, root: str = PRETRAINED_DIR) -> dict:
    """Point model.py's arguments at pretrained/<env>/ (after verify()); returns the manifest."""
    if args.filename:
        raise UserError("--pretrained plays the shipped controller: leave out --filename")
    if args.random_policy:
        raise UserError("--pretrained plays the shipped controller: leave out --random_policy")
    from config import FOLDERS

    for name in ("vae", "rnn", "data"):  # they would be ignored, and the shipped files' score printed for them
        if os.path.normpath(getattr(args, f"{name}_dir")) != os.path.normpath(FOLDERS[name][0]):
            raise UserError(f"--pretrained plays the shipped V, M and first frames: leave out --{name}_dir")
    manifest = verify(args.env_name, root)
    folder = os.path.join(root, args.env_name)
    args.vae_dir, args.rnn_dir = os.path.join(folder, "vae"), os.path.join(folder, "rnn")
    args.data_dir = os.path.join(folder, "data")
    args.filename = os.path.join(folder, shipped_files(args.env_name)["controller"])
    return manifest


def replay_check(env_name: str, root: str = PRETRAINED_DIR) -> str:
    """Play the manifest's check episodes again and compare every score exactly; returns a line saying so, a
    UserError naming the first that differs."""
    manifest = verify(env_name, root)
    check = manifest.get("check")
    if check is None:
        raise UserError(f"{os.path.join(root, env_name, MANIFEST)} records no check episodes to replay")
    played = _play_folder(env_name, os.path.join(root, env_name), check["seeds"], check["max_length"])
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


def play_check(env_name: str, root: str, seeds: list[int]) -> list[tuple[int, float, int]]:
    """(seed, reward, steps) of the shipped agent in root/<env>/ on `seeds`, CHECK_STEPS steps at most, in this
    process (model.py --pretrained --max_length CHECK_STEPS plays the same episodes)."""
    verify(env_name, root)
    return _play_folder(env_name, os.path.join(root, env_name), seeds)


def _play_folder(env_name: str, folder: str, seeds: list[int],
                 max_length: int = CHECK_STEPS) -> list[tuple[int, float, int]]:
    """play_check's episodes from the files in `folder` (laid out as shipped_files), unverified."""
    import model
    from config import get_config
    from controller.controller import load_params

    params, _, exp_mode = load_params(os.path.join(folder, shipped_files(env_name)["controller"]), get_config(env_name))
    play = model.Play.of(env_name, params, exp_mode, max_length=max_length, vae_dir=os.path.join(folder, "vae"),
                         rnn_dir=os.path.join(folder, "rnn"), data_dir=os.path.join(folder, "data"))
    return model.score_episodes(play, seeds, workers=1)


def load_agent(agent: str, vae_dir: str | None = None, rnn_dir: str | None = None, env_name: str | None = None,
               exp_mode: str | None = None, root: str = PRETRAINED_DIR):
    """A trained agent as a Python object (controller.agent.Player): reset(seed) and act(observation) -> action.

        load_agent("car_racing")                                   the shipped agent of root/<env>/, checked first
        load_agent("./controller/<base>.best.json", vae_dir="./vae", rnn_dir="./rnn")    an agent of your own

    A .best.json plays with the V and M of vae_dir and rnn_dir (default ./vae and ./rnn, as model.py) in the mode it
    was trained in; `env_name` and `exp_mode`, when given, are what the file must be (another is refused). Driven
    with the seeds of model.py's episodes, it scores what model.py scores on this machine's BLAS kernels (a warning
    says when they are not those the shipped agent's score was played with).
    """
    import warnings

    from config import CONFIGS, RNN_DIR, VAE_DIR, get_config
    from controller.agent import Agent, Player
    from controller.controller import load_params

    if agent in CONFIGS:
        if env_name not in (None, agent) or vae_dir or rnn_dir:
            raise UserError(f"load_agent({agent!r}) plays the shipped {agent} agent with its own V and M: leave out "
                            f"env_name, vae_dir and rnn_dir, or give the path of a .best.json instead")
        manifest = verify(agent, root)
        folder = os.path.join(root, agent)
        shipped, here = manifest.get("blas_kernel"), blas_kernel()
        if shipped and shipped != here:
            warnings.warn(f"the shipped {agent} agent's episodes were played with OpenBLAS's {shipped} kernels and "
                          f"this process runs {here or 'another BLAS'}: the same seeds may score differently here "
                          f"(set OPENBLAS_CORETYPE={shipped} before NumPy loads)", stacklevel=2)
        path, vae_dir, rnn_dir = (os.path.join(folder, shipped_files(agent)["controller"]),
                                  os.path.join(folder, "vae"), os.path.join(folder, "rnn"))
        env_name = agent
    else:
        path = agent
        env_name = env_name or _controller_env(path)
    config = get_config(env_name)
    params, _, mode = load_params(path, config)  # refuses a file of another environment
    if exp_mode is not None and mode != exp_mode:
        raise UserError(f"{path} is a controller of mode {mode}, not {exp_mode}: leave exp_mode out to play the "
                        f"file's own mode, or give a {exp_mode} controller")
    return Player(Agent.load(config, params, vae_dir=vae_dir or VAE_DIR, rnn_dir=rnn_dir or RNN_DIR, exp_mode=mode))


def _controller_env(path: str) -> str:
    """The environment a .best.json says it is of (05 writes it into the file's third item)."""
    from config import CONFIGS

    if not os.path.lexists(path):
        raise UserError(f"{path} does not exist; give a controller's .best.json (05 writes them) or the name of a "
                        f"shipped agent: {', '.join(shipped()) or 'none'}")
    value = read_json(path, PARAMS_JSON_BYTES, "a JSON parameter file", "give a controller's .best.json (05 writes them)")
    about = value[2] if isinstance(value, list) and len(value) == 3 and isinstance(value[2], dict) else {}
    if about.get("env") not in CONFIGS:
        raise UserError(f"{path} does not say which environment it plays: give env_name= ({', '.join(CONFIGS)})")
    return about["env"]


def pack(env_name: str, filename: str, final: str, commands: list[str], vae_dir: str, rnn_dir: str, data_dir: str,
         root: str = PRETRAINED_DIR) -> str:
    """Copy a trained agent into root/<env>/ and write its manifest; returns the manifest's path.

    `final` is model.py --final_mode's ./log/<name>.final.json of this very controller with these V and M (the
    sha256 it records of each must be theirs); its mean, std, first seed, episode count and episode length go into
    the manifest, and it must be of the real game over at least 100 episodes.
    """
    import numpy as np

    from config import MAKES_RNN_DATA, data_file, get_config, rnn_weights_path, vae_weights_path
    from controller.agent import check_weight_files
    from controller.controller import load_params
    from files import storage_error
    from npyio import load_npy
    from processes import signals_deferred

    config = get_config(env_name)
    score = _read_final(final, env_name)
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
    for role, source in sources.items():
        if played.get(role) != sha256(source):
            raise UserError(f"{final} is the score of another {ROLES[role]}: {source} is not the file it played; "
                            f"score these files with: {again}")
    kernel = blas_kernel()
    if "blas_kernel" not in score:
        raise UserError(f"{final} does not say which BLAS kernels played it (an older model.py wrote it, with "
                        f"OpenBLAS's SkylakeX kernels on the machine of that time); score it again: {again}")
    if score["blas_kernel"] != kernel:  # the manifest's episodes and its check must be played alike
        raise UserError(f"{final} was played with OpenBLAS's {score['blas_kernel'] or 'unknown'} kernels and this "
                        f"process runs {kernel or 'another BLAS'}: score the controller again here, with: {again}")
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
                 "scores": [reward for _, reward, _ in _play_folder(env_name, staging, seeds)]}
        hashes = {relative: sha256(os.path.join(staging, relative)) for relative in files.values()}
        replaced = {os.path.join(folder, relative) for relative in list(files.values()) + [MANIFEST]}
        total = sum(os.path.getsize(path) for path in walk_files(root) if path not in replaced)  # staging counted
        if total > MAX_TOTAL_BYTES:
            raise UserError(f"{root} would hold {total / 2**20:.1f} MB, over the {MAX_TOTAL_BYTES / 2**20:.0f} MB "
                            f"budget; nothing was changed")
        manifest = {"env": env_name, "mean": score["mean"], "std": score["std"], "first_seed": score["first_seed"],
                    "episodes": score["episodes"], "max_length": score["max_length"], "scores": score["scores"],
                    "lengths": score["lengths"], "commands": commands, "date": datetime.date.today().isoformat(),
                    "sha256": hashes, "check": check, "blas_kernel": kernel}
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


CARD = "README.md"  # the model card in pretrained/<env>/


def model_card(env_name: str, root: str = PRETRAINED_DIR) -> str:
    """The model card of the agent in root/<env>/, from its manifest (and the mode its controller file says): YAML
    front matter in the form published RL agents use (library, tags, a model-index whose metric is the 100-episode
    mean_reward "mean +/- std"), then what the agent is, how to use and check it, a still with the command that
    records a replay video, how it was trained (the manifest's commands), its files and its limits."""
    import numpy as np

    from config import controller_shape, get_config
    from controller.controller import load_params
    from envs import get_spec

    config, spec = get_config(env_name), get_spec(env_name)
    folder = os.path.join(root, env_name)
    manifest = read_json(os.path.join(folder, MANIFEST), SMALL_JSON_BYTES, "a manifest",
                         f"pack the agent again (python pretrained.py pack {env_name} ...)")
    files = shipped_files(env_name)
    _, _, mode = load_params(os.path.join(folder, files["controller"]), config)
    shape = controller_shape(config, mode)
    scores = np.array(manifest["scores"], dtype=np.float64)
    mean, std, episodes, first = manifest["mean"], manifest["std"], manifest["episodes"], manifest["first_seed"]
    length = manifest.get("max_length", config.max_episode_length)
    kernel = manifest.get("blas_kernel")
    in_the_dream = any("--dream_mode 1" in command for command in manifest["commands"])
    widths = {"z": config.z_size, "c": config.rnn_size, "h": config.rnn_size}
    inputs = " + ".join(f"{part} ({widths[part]})" for part in shape.parts)
    lines = [
        "---",
        "library_name: keras",
        "tags:",
        "- reinforcement-learning",
        "- world-models",
        f"- {env_name}",
        f"- {spec.gym_id}",
        "model-index:",
        f"- name: world-models-{env_name}",
        "  results:",
        "  - task:",
        "      type: reinforcement-learning",
        "      name: reinforcement-learning",
        "    dataset:",
        f"      name: {spec.gym_id}",
        f"      type: {spec.gym_id}",
        "    metrics:",
        "    - type: mean_reward",
        f'      value: "{mean:.2f} +/- {std:.2f}"',
        "      name: mean_reward",
        "      verified: false",
        "---",
        "",
        f"# World Models agent for {spec.gym_id}",
        "",
        f"<!-- Written by `python pretrained.py card {env_name}` (and by `pack`) from manifest.json: edit those, not "
        f"this file. -->",
        "",
        f"The agent of World Models (Ha & Schmidhuber, 2018) for {env_name}, trained with this repository's scripts: "
        f"V, a VAE, compresses each 64x64 frame into z ({config.z_size} numbers); M, an MDN-RNN (an LSTM of "
        f"{config.rnn_size} units, {config.num_mixtures} Gaussians per dimension of z), predicts the next z; C, "
        f"a controller found by CMA-ES, acts on {inputs} (mode `{mode}`, {shape.param_count:,} parameters). "
        + ("C trained only inside M's dream, never in the game. " if in_the_dream else "")
        + "All three run in NumPy.",
        "",
        f"**{mean:.2f} ± {std:.2f} over {episodes} episodes** (seeds {first} to {first + episodes - 1}, at most "
        f"{length} steps each; median {np.median(scores):.2f}, lowest {scores.min():.2f}, highest "
        f"{scores.max():.2f}), played with OpenBLAS's {kernel or 'unrecorded'} kernels; packed on "
        f"{manifest['date']}.",
        "",
        "## Use it",
        "",
        "```python",
        "from blas import prepare_blas",
        "prepare_blas()  # before NumPy loads: the BLAS kernels the score was played with",
        "",
        "import gymnasium as gym",
        "from pretrained import load_agent",
        "",
        f'env = gym.make("envs:{spec.gym_id}")',
        f'agent = load_agent("{env_name}")',
        f"observation, _ = env.reset(seed={first})",
        f"agent.reset(seed={first})",
        "done = False",
        "while not done:",
        "    observation, reward, terminated, truncated, _ = env.step(agent.act(observation))",
        "    done = terminated or truncated",
        "```",
        "",
        "## Check its score",
        "",
        "```",
        f"python model.py {env_name} --pretrained --final_mode      # the {episodes} episodes above",
        "```",
        "",
        "## Watch it",
        "",
        f"![the agent, a frame a third into its episode of seed {first}](../../docs/pretrained.{env_name}.png)",
        "",
        "```",
        f"python model.py {env_name} --pretrained --record_video --max_length 300     # a short replay: "
        f"./video/pretrained.{env_name}.seed{first}.mp4",
        f"python model.py {env_name} --pretrained --record_video --dream_mode          # the agent in its dream",
        "```",
        "",
        "## How it was trained",
        "",
        "```",
        *manifest["commands"],
        "```",
        "",
        "## Files",
        "",
        "| file | sha256 |",
        "|---|---|",
        *[f"| `{relative}` | `{manifest['sha256'][relative]}` |" for relative in files.values()],
        "",
        "`model.py --pretrained` and `load_agent` check every file against these before loading it; all are data "
        "(NumPy arrays read without pickle, JSON).",
        "",
        "## Limits",
        "",
        f"- {spec.against_the_paper}",
        f"- The same seed plays the same episode bit for bit on x86-64 CPUs with AVX2 and FMA, with OpenBLAS's "
        f"{kernel or 'recorded'} kernels (the scripts pin them); other kernels and CPUs score close, not the same.",
        f"- {episodes} episodes with a spread of {std:.0f} give the mean a standard error of about "
        f"{std / np.sqrt(episodes):.0f}.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(env_name: str, root: str = PRETRAINED_DIR) -> str:
    """Write root/<env>/README.md (model_card) whole; returns its path."""
    from files import atomic_path

    path = os.path.join(root, env_name, CARD)
    text = model_card(env_name, root)
    with atomic_path(path, suffix=".md") as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
    return path


def _read_final(final: str, env_name: str) -> dict:
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


def parse_args(argv=None):
    from config import CONFIGS, add_folder_flags

    root_help = "where shipped agents live (default: pretrained/ of this repository)"
    parser = ArgumentParser(description="Pack a trained agent into pretrained/<env>/, or check one.")
    commands = parser.add_subparsers(dest="action", required=True)
    packing = commands.add_parser("pack", help="copy V, M, C and first frames, write the manifest")
    packing.add_argument("env_name", choices=sorted(CONFIGS), help="the environment")
    packing.add_argument("--filename", required=True, help="the controller's .best.json")
    packing.add_argument("--final", required=True, help="model.py --final_mode's .final.json of that controller")
    packing.add_argument("--command", action="append", default=[], help="a command that made the files (repeat)")
    packing.add_argument("--root", default=PRETRAINED_DIR, help=root_help)
    add_folder_flags(packing, "vae", "rnn", "data")
    checking = commands.add_parser("verify", help="check the manifest against itself and every shipped file's "
                                   "sha256")
    checking.add_argument("env_name", choices=sorted(CONFIGS), help="the environment")
    checking.add_argument("--replay", action="store_true",
                          help="also play the manifest's short check episodes and compare their scores exactly")
    checking.add_argument("--root", default=PRETRAINED_DIR, help=root_help)
    carding = commands.add_parser("card", help="write the model card pretrained/<env>/README.md from the manifest")
    carding.add_argument("env_name", choices=sorted(CONFIGS), help="the environment")
    carding.add_argument("--root", default=PRETRAINED_DIR, help=root_help)
    playing = commands.add_parser("play", help="record every shipped agent in its game and its dream (make play)")
    playing.add_argument("--root", default=PRETRAINED_DIR, help=root_help)
    playing.add_argument("--video_dir", default="./video", help="where the MP4s go (default ./video)")
    playing.add_argument("--stills", default=None, help="also write a PNG frame of each video to this folder")
    playing.add_argument("--max_length", type=int, default=-1, help="steps per episode at most (default: the env's)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.action == "play":
        for video in play(args.root, args.stills, args.video_dir, args.max_length):
            print(f"video {video}")
    elif args.action == "card":
        verify(args.env_name, args.root)
        print(f"model card {write_model_card(args.env_name, args.root)}")
    elif args.action == "pack":
        path = pack(args.env_name, args.filename, args.final, args.command, args.vae_dir, args.rnn_dir,
                    args.data_dir, args.root)
        print(f"packed {args.env_name} into {os.path.dirname(path)}")
    else:
        manifest = verify(args.env_name, args.root)
        print(f"{args.env_name}: every file matches {MANIFEST}, which agrees with itself; score "
              f"{manifest['mean']:.2f} +- {manifest['std']:.2f} over {manifest['episodes']} episodes from seed "
              f"{manifest['first_seed']} (model.py {args.env_name} --pretrained --final_mode plays them again)")
        if args.replay:
            print(f"{args.env_name}: {replay_check(args.env_name, args.root)}")


if __name__ == "__main__":
    run_cli(main)
