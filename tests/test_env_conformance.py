"""Every environment of the project against Gymnasium's rules: its env checker, seeded determinism, pickling and
deep copies, out-of-range actions, and returned data that is never reused.

The environments, all real: FastCarRacing and the stock CarRacing as their spec builds them (TimeLimit-wrapped),
DoomTakeCover (VizDoom), and the dream (DreamEnv) of each game, with M and V of the paper's shapes holding random
weights; and the same four as Gymnasium ids (envs/registration.py) made by gymnasium.make, the dreams run by the
shipped V and M.
"""

import copy
import functools
import pickle
import re
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from benchmarks.weights import random_weights
from config import CAR_RACING, DOOM_TAKE_COVER
from dream import DreamEnv, clip_actions
from envs import get_spec
from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
from vae.numpy_vae import NumpyVAE, expected_vae_shapes

DREAMS = {"dream_car_racing": CAR_RACING, "dream_doom_take_cover": DOOM_TAKE_COVER}
REGISTERED = ["WorldModels/CarRacing-v3", "WorldModels/DoomTakeCover-v0", "WorldModels/CarRacingDream-v0",
              "WorldModels/DoomTakeCoverDream-v0"]
ENVS = ["fast_car_racing", "car_racing", "doom_take_cover", *DREAMS, *REGISTERED]


def is_dream(name):
    return name in DREAMS or name.endswith("Dream-v0")


def is_doom(name):
    return "doom" in name.lower()


@functools.cache
def dream_models(config):
    """M (and V, for rendering) with random weights. Doom's M is scaled x3 with done bias -3 so that its episodes
    end within some dozens of steps, at steps that depend on the seed."""
    weights = random_weights(expected_rnn_shapes(config), seed=1, scale=3.0)
    if config.use_done:
        weights["done/bias"][:] = -3.0
    rnn = NumpyMDNRNN(weights, config)
    vae = NumpyVAE(random_weights(expected_vae_shapes(config.z_size), seed=2), config.z_size)
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((5, config.z_size))
    initial = np.stack([mu, np.full_like(mu, -2.0)], axis=1).astype(np.float32)  # first frames, as stage 03 writes
    return rnn, vae, initial


def build(name, render_mode=None, max_episode_steps=None):
    """Environment `name` of ENVS, as the project builds it (a registered id: as gymnasium.make does)."""
    if name in REGISTERED:
        return gymnasium.make(name, render_mode=render_mode, max_episode_steps=max_episode_steps)
    if name in ("fast_car_racing", "car_racing"):
        return get_spec("car_racing").make(render_mode, fast=name == "fast_car_racing",
                                           max_episode_steps=max_episode_steps)
    if name == "doom_take_cover":
        return get_spec("doom_take_cover").make(render_mode, max_episode_steps=max_episode_steps)
    config = DREAMS[name]
    rnn, vae, initial = dream_models(config)
    return DreamEnv(rnn, config, initial, max_episode_steps=max_episode_steps, vae=vae if render_mode else None,
                    render_mode=render_mode)


def play(env, seed, actions, render=False):
    """Copies of everything reset(seed) and then step(action) for each action return (until the episode ends):
    [obs, info] from reset, then [obs, reward, terminated, truncated, info] per step (with render() if asked)."""
    observation, info = env.reset(seed=seed)
    returned = [[observation.copy(), copy.deepcopy(info)]]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        returned.append([observation.copy(), reward, terminated, truncated, copy.deepcopy(info)]
                        + ([env.render()] if render else []))
        if terminated or truncated:
            break
    return returned


def assert_same(first, second):
    assert len(first) == len(second)
    for step, (a, b) in enumerate(zip(first, second)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and np.array_equal(x, y), f"step {step}"
            else:
                assert x == y, f"step {step}"


def random_actions(env, count, seed=0):
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(count)]


# --- Gymnasium's env checker ----------------------------------------------------------------------------------------
EXPECTED_WARNINGS = [  # what check_env may say about our environments that is by design
    r"different from the unwrapped version",  # the spec's TimeLimit (the envs are checked as make builds them)
    r"not having a spec",  # not registered with gymnasium.make: the other render modes are not tried
    r"infinity",  # the dream's z is an unbounded Box
]


@pytest.mark.parametrize("name", ENVS)
def test_gymnasiums_env_checker_passes(name, closing):
    """check_env with its render checks (rgb_array frames, headless): spaces, reset and step types, seeded reset and
    step determinism, returned data never shared between calls. Any warning other than the expected ones fails."""
    env = closing(build(name, render_mode="rgb_array"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught
                  if not any(re.search(pattern, str(w.message)) for pattern in EXPECTED_WARNINGS)]
    assert unexpected == []
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


# --- determinism ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENVS)
def test_same_seed_same_episode_in_two_instances(name, closing):
    first, second = closing(build(name)), closing(build(name))
    actions = random_actions(first, 12)
    one = play(first, 3, actions)
    assert len(one) > 5
    assert_same(one, play(second, 3, actions))


@pytest.mark.parametrize("name", ENVS)
def test_reset_after_close_plays_as_a_new_env(name, closing):
    """Gymnasium's env tests reset a closed env: it must work (Doom starts a new engine) and play as a new env."""
    env = closing(build(name))
    actions = random_actions(env, 6)
    env.reset(seed=2)
    env.close()
    assert_same(play(env, 5, actions), play(closing(build(name)), 5, actions))


# --- pickle and deepcopy --------------------------------------------------------------------------------------------
COPIES = {"pickle": lambda env: pickle.loads(pickle.dumps(env)), "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("name", ENVS)
def test_copies_are_working_independent_envs(name, how, closing):
    """A copy made mid-episode is an env of its own: the dream's copy carries on from the same state; a real env's
    copy is rebuilt from its constructor arguments (CarRacing's Box2D world, Doom's engine) and plays the same
    episodes for the same seeds. Closing the original leaves the copy working, and closing a copy the original."""
    env = closing(build(name))
    actions = random_actions(env, 10)
    env.reset(seed=4)
    for action in actions[:3]:
        env.step(action)
    duplicate = closing(COPIES[how](env))
    assert type(duplicate.unwrapped) is type(env.unwrapped) and duplicate.unwrapped is not env.unwrapped
    if is_dream(name):  # the same state: both continue alike
        assert_same([list(duplicate.step(a)) for a in actions[3:]], [list(env.step(a)) for a in actions[3:]])
    elif is_doom(name):
        assert duplicate.unwrapped.game is not env.unwrapped.game
    else:
        assert duplicate.unwrapped.world is not env.unwrapped.world
    assert_same(play(duplicate, 8, actions), play(env, 8, actions))

    COPIES[how](duplicate).close()  # closing a copy of the copy leaves the copy working
    env.close()  # and so does closing the original
    assert_same(play(duplicate, 8, actions), play(closing(build(name)), 8, actions))


# --- actions outside the action space -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENVS)
def test_actions_beyond_a_bound_act_as_the_bound(name, closing):
    """Gymnasium's rule for Box actions (its own test suite's out-of-bound test): every component pushed 100 past its
    bound gives the same episode as the bound itself, held for 4 steps. The dream clips where it receives the action;
    the real games saturate by themselves (Doom: any a > 1/3 is right; CarRacing's car clips or saturates)."""
    env = closing(build(name))
    space = env.action_space
    for index in range(space.shape[0]):
        for bound, push in ((space.high, 100.0), (space.low, -100.0)):
            beyond = bound.copy()
            beyond[index] += np.float32(push)
            assert_same(play(env, 6, [beyond] * 4), play(env, 6, [bound.copy()] * 4))
    if is_dream(name):  # the comparison can tell actions apart: M sees them from the first step
        middle = (space.low + space.high) / 2
        assert not np.array_equal(play(env, 6, [space.high])[1][0], play(env, 6, [middle])[1][0])


def test_dream_action_spaces_are_the_real_games(closing):
    for dream, real in (("dream_car_racing", "fast_car_racing"), ("dream_doom_take_cover", "doom_take_cover")):
        space = closing(build(real)).action_space
        assert get_spec(DREAMS[dream].name).action_space() == space
        assert closing(build(dream)).action_space == space


@pytest.mark.parametrize("config", [CAR_RACING, DOOM_TAKE_COVER], ids=lambda c: c.name)
def test_clipping_keeps_every_controller_action(config):
    """dream_rollouts clips as DreamEnv does; a controller's actions (tanh outputs mapped by the spec's
    to_env_actions) all lie in the box, so clipping passes them bit for bit and the dream's training scores are
    unchanged by it."""
    rng = np.random.default_rng(0)
    outputs = np.tanh(rng.normal(0.0, 3.0, (1000, config.controller_outputs))).astype(np.float32)
    outputs[:4] = np.array([-1.0, 1.0, 0.0, -0.0], dtype=np.float32)[:, None]  # the ends and both zeros, everywhere
    spec = get_spec(config.name)
    actions = spec.to_env_actions(outputs)
    clipped = clip_actions(spec.action_space(), actions)
    assert clipped.dtype == np.float32 and clipped.tobytes() == actions.tobytes()


# --- returned data is never reused ----------------------------------------------------------------------------------
def shares_memory(a, b):
    """Whether two returns share a mutable object (gymnasium.utils.passive_env_checker.data_shares_objects)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.shares_memory(a, b)
    return isinstance(a, dict) and a is b


@pytest.mark.parametrize("name", ENVS)
def test_returned_data_is_never_reused(name, closing):
    """A whole episode to its end (Doom and its dream: death, standing still; CarRacing and its dream: a 6-step limit)
    with a render() after every step: no two arrays or infos returned share memory, and a caller writing into every
    array it was given changes nothing the env returns later (the same episode as a clean one)."""
    limit = None if is_doom(name) else 6  # Doom ends by its own end: the player dies
    env = closing(build(name, render_mode="rgb_array", max_episode_steps=limit))
    standing = np.zeros(env.action_space.shape, dtype=np.float32)
    actions = [standing] * 1000
    clean = play(env, 11, actions, render=True)
    assert clean[-1][2 if is_doom(name) else 3]  # terminated (Doom) or truncated (CarRacing)

    kept, written = [], []  # everything returned, and copies of it taken before it was overwritten
    observation, info = env.reset(seed=11)
    kept += [observation, info]
    written.append([observation.copy(), copy.deepcopy(info)])
    observation.fill(7)
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        frame = env.render()
        kept += [observation, info, frame]
        written.append([observation.copy(), reward, terminated, truncated, copy.deepcopy(info), frame.copy()])
        observation.fill(7)
        frame.fill(7)
        if terminated or truncated:
            break
    assert_same(written, clean)
    assert not [(i, j) for i in range(len(kept)) for j in range(i) if shares_memory(kept[i], kept[j])]
