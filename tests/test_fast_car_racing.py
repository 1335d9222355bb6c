"""FastCarRacing against Gymnasium's CarRacing: identical observations, rewards, flags and infos, bit for bit.

Both environments run side by side in lockstep on the same seeds and actions; every observation must be equal
(`np.array_equal`), and so must rewards, terminated, truncated and info. The stock environment is slow (~7 ms a step),
so the scenarios are chosen to cover the distinct rendering paths rather than many steps: the zoom-in of the first
second (playfield not covering the window), driving on the road and on grass, skid marks (drawn in rgb_array
frames), leaving the playfield (-100 and termination, playfield edge on screen), a whole 1000-step episode, repeated
resets of one instance, domain randomisation and discrete actions.
"""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.box2d.car_racing import CarRacing

from envs import get_spec
from envs.fast_car_racing import FastCarRacing

SPEC = get_spec("car_racing")


def assert_same_step(stock, fast, where):
    """Compare two (obs, reward, terminated, truncated, info) tuples exactly."""
    assert np.array_equal(stock[0], fast[0]), f"observation differs at {where}"
    assert fast[0].dtype == np.uint8 and fast[0].shape == (96, 96, 3)
    assert stock[1] == fast[1], f"reward differs at {where}: {stock[1]} != {fast[1]}"
    assert stock[2:] == fast[2:], f"terminated/truncated/info differ at {where}: {stock[2:]} != {fast[2:]}"


def lockstep(stock, fast, seed, actions, render=False, options=None):
    """Reset both to `seed`, feed them `actions` until either episode ends; return the steps taken and last step."""
    obs_stock, info_stock = stock.reset(seed=seed, options=options)
    obs_fast, info_fast = fast.reset(seed=seed, options=options)
    assert np.array_equal(obs_stock, obs_fast) and info_stock == info_fast, f"reset differs (seed {seed})"
    result = None
    for step, action in enumerate(actions):
        result = stock.step(action)
        assert_same_step(result, fast.step(action), f"seed {seed} step {step}")
        if render:
            assert np.array_equal(stock.render(), fast.render()), f"render differs at seed {seed} step {step}"
        if result[2] or result[3]:
            return step + 1, result
    return len(actions), result


def uniform_actions(seed, count):
    return np.random.default_rng(seed).uniform([-1, 0, 0], [1, 1, 1], size=(count, 3)).astype(np.float32)


@pytest.mark.slow  # 480 steps of the stock renderer (~7 ms each): left out of make test-fast
def test_random_actions_over_repeated_resets():
    # one instance of each across several seeds: the cached road geometry must follow every new track
    stock, fast = CarRacing(), FastCarRacing()
    for seed in (0, 1, 2, 3):
        lockstep(stock, fast, seed, uniform_actions(seed, 120))


def test_first_50_zoom_in_frames():
    stock, fast = CarRacing(), FastCarRacing()
    for seed in (10, 11, 12):
        gas = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        lockstep(stock, fast, seed, [gas] * 25 + list(uniform_actions(seed, 25)))


@pytest.mark.slow  # 400 steps of the stock renderer (~7 ms each): left out of make test-fast
def test_data_collection_policy():
    stock, fast = CarRacing(), FastCarRacing()
    for seed in (20, 21):
        policy = SPEC.random_policy(seed)
        lockstep(stock, fast, seed, [policy() for _ in range(200)])


def test_hard_braking_and_skid_marks_in_rgb_array_frames():
    # full gas, then locked brakes while steering: skid particles, which only rgb_array frames draw
    stock, fast = CarRacing(render_mode="rgb_array"), FastCarRacing(render_mode="rgb_array")
    actions = [np.array([0.0, 1.0, 0.0], np.float32)] * 50 + [np.array([0.8, 0.0, 1.0], np.float32)] * 25
    actions += [np.array([-1.0, 1.0, 0.0], np.float32)] * 25 + [np.array([0.0, 0.0, 0.95], np.float32)] * 20
    steps, _ = lockstep(stock, fast, 30, actions, render=True)
    assert steps == len(actions)
    assert len(fast.car.particles) > 0, "the scenario should leave skid marks"
    frame = fast.render()
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8


def test_state_pixels_render_mode():
    stock, fast = CarRacing(render_mode="state_pixels"), FastCarRacing(render_mode="state_pixels")
    lockstep(stock, fast, 40, uniform_actions(40, 60), render=True)


def test_leaving_the_track_and_the_playfield():
    # steer off the road onto the grass and drive on until the car leaves the playfield: -100, terminated
    stock, fast = CarRacing(), FastCarRacing()
    actions = [np.array([1.0, 0.4, 0.0], np.float32)] * 15 + [np.array([0.0, 0.4, 0.0], np.float32)] * 400
    steps, (_, reward, terminated, truncated, info) = lockstep(stock, fast, 0, actions)
    assert steps < len(actions) and terminated and not truncated
    assert reward == -100 and info == {"lap_finished": False}


@pytest.mark.slow  # a thousand steps of the stock renderer: left out of make test-fast
def test_long_episode_to_the_1000_step_limit():
    stock = gymnasium.wrappers.TimeLimit(CarRacing(), max_episode_steps=1000)
    fast = SPEC.make()  # FastCarRacing under the same 1000-step TimeLimit
    assert isinstance(fast.unwrapped, FastCarRacing)
    policy = SPEC.random_policy(5)
    steps, (_, _, terminated, truncated, _) = lockstep(stock, fast, 5, [policy() for _ in range(1000)])
    assert steps == 1000 and truncated and not terminated


def test_domain_randomize_and_discrete_actions():
    stock, fast = CarRacing(domain_randomize=True), FastCarRacing(domain_randomize=True)
    lockstep(stock, fast, 50, uniform_actions(50, 60))
    lockstep(stock, fast, 51, uniform_actions(51, 60), options={"randomize": False})
    stock, fast = CarRacing(continuous=False), FastCarRacing(continuous=False)
    actions = np.random.default_rng(52).integers(0, 5, size=100)
    actions[:30] = 3  # gas first, so that the car moves
    lockstep(stock, fast, 52, [int(a) for a in actions])


def test_same_spaces_and_the_fast_switch_of_make():
    stock, fast = CarRacing(), FastCarRacing()
    assert fast.observation_space == stock.observation_space and fast.action_space == stock.action_space
    assert type(SPEC.make(fast=False).unwrapped) is CarRacing
    assert type(SPEC.make().unwrapped) is FastCarRacing


def test_human_mode_still_works():
    # "human" renders through the stock code into a (dummy) window; observations stay identical
    stock, fast = CarRacing(render_mode="human"), FastCarRacing(render_mode="human")
    try:
        lockstep(stock, fast, 60, uniform_actions(60, 3))
        assert fast.render() is None
    finally:
        fast.close()
        stock.close()
