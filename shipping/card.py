"""A shipped agent's model card (pretrained/<env>/README.md), written from its manifest.

Nothing here loads NumPy at import.
"""

from __future__ import annotations

import os

from reading import SMALL_JSON_BYTES, read_json
from shipping.manifest import MANIFEST, PRETRAINED_DIR, shipped_files

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
    in_the_dream = (manifest["trained_in"] == "dream" if "trained_in" in manifest  # an older pack wrote none
                    else any(trains_only_in_the_dream(command) for command in manifest["commands"]))
    where_option, where_argument = _root_words(root)
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
        *_untouched_lines(manifest, where_option),
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
        f'agent = load_agent("{env_name}"{where_argument})',
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
        f"python model.py {env_name} --pretrained{where_option} --final_mode      # the {episodes} episodes above",
        "```",
        "",
        "## Watch it",
        "",
        *_still_lines(env_name, folder, manifest, first),
        "```",
        f"python model.py {env_name} --pretrained{where_option} --record_video --max_length 300     # a short "
        f"replay: ./video/pretrained.{env_name}.seed{first}.mp4",
        f"python model.py {env_name} --pretrained{where_option} --record_video --dream_mode          # the agent in "
        f"its dream",
        "```",
        "",
        "## How it was trained",
        "",
        "```",
        *manifest["commands"],
        "```",
        "",
        *_run_lines(manifest, folder),
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


def trains_only_in_the_dream(command: str) -> bool:
    """True for a command whose controller training is all in M's dream: 05 with --dream_mode 1, or reproduce.py
    with a recipe whose controller phases are all dream phases (Doom's; the env's recipe of today: a manifest packed
    by reproduce.py records its own "trained_in")."""
    import shlex

    from recipe.presets import RECIPES, ControllerPhase

    if "--dream_mode 1" in command:
        return True
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return False
    script = next((index for index, word in enumerate(words) if os.path.basename(word) == "reproduce.py"), None)
    if script is None or script + 1 >= len(words):
        return False
    preset = words[words.index("--preset") + 1] if "--preset" in words[:-1] else "full"
    recipe = RECIPES.get((words[script + 1], preset))
    phases = [step for step in recipe.steps if isinstance(step, ControllerPhase)] if recipe else []
    return bool(phases) and all(phase.dream for phase in phases)


def _root_words(root: str) -> tuple[str, str]:
    """What model.py's command line and load_agent's call add to play the agent of root/<env>/: nothing for the
    repository's pretrained/, else --pretrained_dir and root= naming root (relative to the repository inside it)."""
    if os.path.realpath(root) == os.path.realpath(PRETRAINED_DIR):
        return "", ""
    import json
    import shlex

    from shipping.manifest import repo_relative

    named = repo_relative(root)
    return f" --pretrained_dir {shlex.quote(named)}", f", root={json.dumps(named)}"


def _still_lines(env_name: str, folder: str, manifest: dict, first: int) -> list[str]:
    """The card's picture: the repository's still of the shipped agent (docs/pretrained.<env>.png, drawn by
    pretrained.py play --stills), linked from the card's folder, where this agent's V, M and C are the shipped
    ones; else a line saying that the commands below draw this agent."""
    from cli import UserError
    from files import repo_root

    shipped = os.path.join(PRETRAINED_DIR, env_name, MANIFEST)
    try:
        same = read_json(shipped, SMALL_JSON_BYTES, "a manifest", "")["sha256"] == manifest["sha256"]
    except (UserError, KeyError, TypeError):  # no shipped agent, or one unreadable: no still to show
        same = False
    if not same:
        return ["No still of this agent is in the repository (that of `docs/` is the shipped agent's); these commands "
                "record it:", ""]
    target = os.path.relpath(os.path.join(repo_root(), "docs", f"pretrained.{env_name}.png"), os.path.abspath(folder))
    return [f"![the agent, a frame a third into its episode of seed {first}]({target})", ""]


def _untouched_lines(manifest: dict, where_option: str) -> list[str]:
    """The card's line for the manifest's untouched score (pack --untouched), if it has one; where_option is what
    model.py's command line adds to play this agent (_root_words)."""
    import numpy as np

    other = manifest.get("untouched")
    if other is None:
        return []
    scores = np.array(other["scores"], dtype=np.float64)
    first, episodes = other["first_seed"], other["episodes"]
    return ["", f"On {episodes} episodes that nothing trained or chose on (seeds {first} to {first + episodes - 1}, "
                f"at most {other['max_length']} steps each): **{other['mean']:.2f} ± {other['std']:.2f}** (median "
                f"{np.median(scores):.2f}, lowest {scores.min():.2f}, highest {scores.max():.2f}); "
                f"`python model.py {manifest['env']} --pretrained{where_option} --final_mode --seed {first}` plays "
                f"them again."]


def _run_lines(manifest: dict, folder: str) -> list[str]:
    """The card's line naming the run that made the agent (pack --run), linked from the card's folder."""
    run = manifest.get("run")
    if run is None:
        return []
    from files import repo_root

    target = os.path.relpath(os.path.join(repo_root(), run), os.path.abspath(folder))
    return [f"The run's files (its state, training curves, every candidate and its selection episodes): "
            f"[`{run}`]({target}).", ""]


def write_model_card(env_name: str, root: str = PRETRAINED_DIR) -> str:
    """Write root/<env>/README.md (model_card) whole; returns its path."""
    from files import atomic_path

    path = os.path.join(root, env_name, CARD)
    text = model_card(env_name, root)
    with atomic_path(path, suffix=".md") as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
    return path

