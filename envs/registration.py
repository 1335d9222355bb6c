"""The project's environments as Gymnasium ids, registered when `envs` is imported.

    gymnasium.make("envs:WorldModels/CarRacing-v3")        (the "module:id" form imports envs first)

    WorldModels/CarRacing-v3             FastCarRacing: Gymnasium's CarRacing-v3, same pixels, faster; its kwargs
    WorldModels/DoomTakeCover-v0         DoomTakeCover (ViZDoom's take_cover scenario)
    WorldModels/CarRacingDream-v0        M's dream of CarRacing (dream.DreamEnv), decoded by V: envs.dream_env
    WorldModels/DoomTakeCoverDream-v0    M's dream of DoomTakeCover; it ends when M predicts the player's death

Each is registered with its own episode limit as max_episode_steps (1000 CarRacing, 2100 Doom) and is built by a
function here that checks its keyword arguments first: a misspelt one is a one-line error listing those it takes
(Gymnasium would pass it on to a constructor that reports only the word it did not expect). Registering loads no
simulator: pygame, Box2D, ViZDoom and the dream's weights load when an env is made.
"""

from __future__ import annotations

import gymnasium

from config import CAR_RACING, DOOM_TAKE_COVER
from envs import car_racing, doom

NAMESPACE = "WorldModels"
CAR_RACING_KWARGS = ("render_mode", "verbose", "lap_complete_percent", "domain_randomize", "continuous")  # v3's
DOOM_KWARGS = ("render_mode",)
DREAM_KWARGS = ("render_mode", "obs_type", "temperature", "vae_dir", "rnn_dir", "data_dir")


def check_kwargs(env_id: str, kwargs: dict, known: tuple[str, ...]) -> None:
    """A ValueError naming the unknown keyword arguments of `env_id` and the ones it takes."""
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(f"{env_id} takes no keyword argument {', '.join(map(repr, unknown))}; it takes: "
                        f"{', '.join(known)}")


def make_car_racing(**kwargs) -> gymnasium.Env:
    from envs.fast_car_racing import FastCarRacing

    check_kwargs(car_racing.SPEC.gym_id, kwargs, CAR_RACING_KWARGS)
    return FastCarRacing(**kwargs)


def make_doom_take_cover(**kwargs) -> gymnasium.Env:
    from envs.doom import DoomTakeCover

    check_kwargs(doom.SPEC.gym_id, kwargs, DOOM_KWARGS)
    return DoomTakeCover(**kwargs)


def make_car_racing_dream(**kwargs) -> gymnasium.Env:
    from envs.dream_env import make_dream

    check_kwargs(f"{NAMESPACE}/CarRacingDream-v0", kwargs, DREAM_KWARGS)
    return make_dream(f"{NAMESPACE}/CarRacingDream-v0", "car_racing", **kwargs)


def make_doom_take_cover_dream(**kwargs) -> gymnasium.Env:
    from envs.dream_env import make_dream

    check_kwargs(f"{NAMESPACE}/DoomTakeCoverDream-v0", kwargs, DREAM_KWARGS)
    return make_dream(f"{NAMESPACE}/DoomTakeCoverDream-v0", "doom_take_cover", **kwargs)


# id -> (entry point, max_episode_steps: the env's own limit, reward_threshold: CarRacing-v3's; Doom solved above 750)
IDS = {
    car_racing.SPEC.gym_id: (make_car_racing, CAR_RACING.max_episode_length, 900.0),
    doom.SPEC.gym_id: (make_doom_take_cover, DOOM_TAKE_COVER.max_episode_length, 750.0),
    f"{NAMESPACE}/CarRacingDream-v0": (make_car_racing_dream, CAR_RACING.max_episode_length, None),
    f"{NAMESPACE}/DoomTakeCoverDream-v0": (make_doom_take_cover_dream, DOOM_TAKE_COVER.max_episode_length, None),
}


def register() -> None:
    """Register every id of IDS with Gymnasium (once: importing envs again changes nothing)."""
    for env_id, (make, max_episode_steps, reward_threshold) in IDS.items():
        if env_id not in gymnasium.registry:
            # the entry point as "module:function" text, so that a copy of the spec (async vector envs) imports it
            gymnasium.register(env_id, entry_point=f"{__name__}:{make.__name__}", max_episode_steps=max_episode_steps,
                               reward_threshold=reward_threshold)
