"""One episode loop for every player: stage 01's rollouts, 05's workers, model.py's games and dreams.

A policy is an object with three methods, called in this order over an episode:

    policy.reset(seed)            once, after env.reset(seed=seed): the episode's random numbers are seeded here
    action = policy.act(obs)      each step, on the observation of that step
    policy.advance()              after env.step(action) when the episode goes on (the agent's M steps here)

The players: controller.agent.Agent (V + M + C on the real game), RandomPlay (stage 01's data policy of an
environment), DreamPlay (a controller inside dream.DreamEnv, whose observation is z and whose LSTM state the
controller also reads).

The same seed gives the same episode (the environment's reset and the policy's random numbers are both seeded by
it); another seed, another track:

    >>> from envs import get_spec, headless_video_driver
    >>> headless_video_driver()
    >>> spec = get_spec("car_racing")
    >>> env = spec.make()
    >>> first = play_episode(env, RandomPlay(spec), seed=7, max_length=40)
    >>> first == play_episode(env, RandomPlay(spec), seed=7, max_length=40), first.steps
    (True, 40)
    >>> play_episode(env, RandomPlay(spec), seed=8, max_length=40).reward == first.reward
    False
    >>> env.close()
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import numpy as np


class Policy(Protocol):
    def reset(self, seed: int) -> None: ...

    def act(self, observation: np.ndarray) -> np.ndarray: ...

    def advance(self) -> None: ...


class Episode(NamedTuple):
    reward: float  # the sum of the rewards
    steps: int  # steps played
    terminated: bool  # ended by the environment (CarRacing: off the playfield or the lap done; Doom: the player died)


def play_episode(env, policy: Policy, seed: int, max_length: int,
                 on_step: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
                 on_frame: Callable[[], None] | None = None) -> Episode:
    """One episode of at most `max_length` steps from env.reset(seed=seed).

    `on_step(step, observation, action)` sees each step's number (from 0), observation and the action chosen on it,
    before the step is played (stage 01 records them); `on_frame()` is called after the reset and after every step (model.py grabs
    video frames there).
    """
    observation, _ = env.reset(seed=int(seed))
    policy.reset(int(seed))
    if on_frame is not None:
        on_frame()
    total, steps, terminated = 0.0, 0, False
    while steps < max_length:
        action = policy.act(observation)
        if on_step is not None:
            on_step(steps, observation, action)
        observation, reward, terminated, truncated, _ = env.step(action)
        if on_frame is not None:
            on_frame()
        total += float(reward)
        steps += 1
        if terminated or truncated:
            break
        policy.advance()
    return Episode(total, steps, bool(terminated))


class RandomPlay:
    """Stage 01's data-collection policy of an environment (envs spec.random_policy), seeded per episode."""

    def __init__(self, spec):
        self.spec = spec
        self.policy = None  # reset(seed) makes the episode's

    def reset(self, seed: int) -> None:
        self.policy = self.spec.random_policy(seed)

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self.policy()

    def advance(self) -> None:
        pass


class DreamPlay:
    """A controller playing inside a dream.DreamEnv: it acts on z (the dream's observation) and the dream's h and c."""

    def __init__(self, controller, dream):
        self.controller, self.dream = controller, dream

    def reset(self, seed: int) -> None:
        pass

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self.controller.act(observation, self.dream.h, self.dream.c)

    def advance(self) -> None:
        pass
