"""The environments: one module each, and one EnvSpec each holding everything the pipeline knows about it.

    car_racing.py        CarRacing (Gymnasium): crop, action mappings, stage 01's random policy, the spec
    fast_car_racing.py   FastCarRacing, CarRacing's renderer made faster (same pixels)
    doom.py              DoomTakeCover (VizDoom): the environment, crop, action mappings, random policy, the spec
    spec.py              EnvSpec, what every environment provides
    registration.py      the Gymnasium ids (WorldModels/CarRacing-v3, ...), registered on import
    dream_env.py         the dreams as registered Gymnasium environments (frames or M's state, the shipped V and M)

`get_spec(config.name)` is the one way the rest of the project reaches an environment: `spec.make()` builds it (every
script does so through it), `spec.process_frame` turns an observation into the 64x64x3 uint8 frame the VAE encodes,
`spec.random_policy(seed)` is stage 01's data policy, `spec.to_env_action` / `spec.model_action` map the controller's
outputs to the environment's actions and those to M's. The numbers (z_size, time_steps, ...) stay in config.py; a
spec's `config` is its EnvConfig there. Importing this package loads neither pygame, Box2D nor VizDoom: `make` does.
"""

from __future__ import annotations

import os

from envs import car_racing, doom, registration
from envs.spec import EnvSpec

registration.register()  # gymnasium.make("WorldModels/CarRacing-v3"), or "envs:WorldModels/..." without an import

SPECS: dict[str, EnvSpec] = {spec.name: spec for spec in (car_racing.SPEC, doom.SPEC)}
REAL_ENVS = tuple(name for name, spec in SPECS.items() if spec.has_simulator)  # 01 --run_all_envs collects each


def get_spec(env_name: str) -> EnvSpec:
    """The spec of `env_name`; a ValueError lists the known names otherwise."""
    try:
        return SPECS[env_name]
    except KeyError:
        raise ValueError(f"unknown environment {env_name!r}; choose one of: {', '.join(SPECS)}") from None


def headless_video_driver() -> None:
    """Let pygame run without a display (CarRacing renders through pygame surfaces even with no window)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


__all__ = ["EnvSpec", "REAL_ENVS", "SPECS", "get_spec", "headless_video_driver"]
