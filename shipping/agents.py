"""The shipped agents as players: load_agent (a trained agent as a Python object, for a user's own Gymnasium loop;
`from pretrained import load_agent` is its public name) and use_pretrained (model.py --pretrained's settings).

Nothing here loads NumPy at import: call `blas.prepare_blas()` first.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, NamedTuple

from blas import blas_kernel
from cli import UserError
from reading import PARAMS_JSON_BYTES, read_json
from shipping.manifest import PRETRAINED_DIR, shipped, shipped_files, verify

if TYPE_CHECKING:
    from scoring import ModelSettings


class Pretrained(NamedTuple):
    """use_pretrained's answer: model.py's settings pointed at the shipped files, and the lines saying what plays."""

    settings: ModelSettings
    lines: list[str]


def use_pretrained(settings: ModelSettings) -> Pretrained:
    """model.py's settings pointed at the shipped agent in <--pretrained_dir>/<env>/ (after verify()), and the lines
    that say what it is: its score, and a note where this machine's BLAS kernels are not those that played it."""
    if settings.filename:
        raise UserError("--pretrained plays the shipped controller: leave out --filename")
    if settings.random_policy:
        raise UserError("--pretrained plays the shipped controller: leave out --random_policy")
    from config import FOLDERS, get_config

    for name in ("vae", "rnn", "data"):  # they would be ignored, and the shipped files' score printed for them
        if os.path.normpath(getattr(settings, f"{name}_dir")) != os.path.normpath(FOLDERS[name][0]):
            raise UserError(f"--pretrained plays the shipped V, M and first frames: leave out --{name}_dir")
    env_name, root = settings.env_name, settings.pretrained_dir or PRETRAINED_DIR
    manifest = verify(env_name, root)
    folder = os.path.join(root, env_name)
    settings = dataclasses.replace(settings, filename=os.path.join(folder, shipped_files(env_name)["controller"]),
                                   vae_dir=os.path.join(folder, "vae"), rnn_dir=os.path.join(folder, "rnn"),
                                   data_dir=os.path.join(folder, "data"))
    limit = get_config(env_name).max_episode_length
    length = manifest.get("max_length", limit)
    lines = [f"pretrained {env_name} agent from {folder}: {manifest['mean']:.2f} +- {manifest['std']:.2f} over "
             f"{manifest['episodes']} episodes from seed {manifest['first_seed']}"
             + ("" if length == limit else f" of at most {length} steps")]
    shipped, here = manifest.get("blas_kernel"), blas_kernel()
    if shipped and shipped != here:
        lines.append(f"note: those episodes were played with OpenBLAS's {shipped} kernels and this machine runs "
                     f"{here or 'another BLAS'}: the same seeds may score differently here")
    return Pretrained(settings, lines)


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

