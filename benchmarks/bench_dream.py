"""Benchmark of the dream against the real game: DoomTakeCover steps per second in VizDoom and inside M.

    python -m benchmarks.bench_dream            (part of `make bench`)

One process, one BLAS thread (as a rollout worker runs), random weights of the paper's Doom shapes (V z 64, M LSTM
512, the 1,088-parameter controller; speed does not depend on their values). Measured side by side, round after
round in alternating order, each figure the median over rounds:

    real env      VizDoom alone: env.step with stage 01's random policy (resets untimed)
    real agent    what a real-game worker does per step: env.step + process_frame + V encode + C + M step
    dream x1      one dream episode (dream_rollouts with one controller and one seed)
    dream x64     a population of 64 controllers, one episode each, stepped as one batch
    dream x1024   the paper's Doom setting, 64 controllers x 16 episodes, as one batch

Dream rates are episode-steps per second summed over the batch. M's done bias is set far below zero so that every
dream episode runs its full length and each round does a fixed amount of work.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
from blas import prepare_blas  # noqa: E402

prepare_blas()  # before NumPy loads its BLAS

import numpy as np  # noqa: E402

from benchmarks.weights import random_weights  # noqa: E402

POPULATION = 64  # the paper's Doom population
EPISODES_PER_MEMBER = 16  # the paper's Doom episodes per controller and generation


def models(config):
    """V, M (done bias -100: dream episodes never end early) and first frames, all random, of the right shapes."""
    from rnn.numpy_rnn import NumpyMDNRNN, expected_rnn_shapes
    from vae.numpy_vae import NumpyVAE, expected_vae_shapes

    vae = NumpyVAE(random_weights(expected_vae_shapes(config.z_size), 0), config.z_size)
    rnn_weights = random_weights(expected_rnn_shapes(config), 1)
    rnn_weights["done/bias"][:] = -100.0
    rnn = NumpyMDNRNN(rnn_weights, config)
    rng = np.random.default_rng(2)
    initial = np.stack([rng.standard_normal((100, config.z_size)), np.full((100, config.z_size), -2.0)],
                       axis=1).astype(np.float32)
    return vae, rnn, initial


def real_env_rate(env, steps: int, seed: int) -> float:
    """Steps per second of env.step alone, random-policy actions, resets untimed."""
    from benchmarks.bench_env import random_actions, timed_steps

    count, elapsed = timed_steps(env, seed, random_actions(seed, steps, "doom_take_cover"))
    return count / elapsed


def real_agent_rate(env, agent, steps: int, seed: int) -> float:
    """Steps per second of a real-game rollout: env.step plus the NumPy agent (frame processing, V, C, M)."""
    observation, _ = env.reset(seed=seed)
    agent.reset(seed)
    elapsed = 0.0
    for _ in range(steps):
        started = time.perf_counter()
        action = agent.act(observation)
        observation, _, terminated, truncated, _ = env.step(action)
        agent.advance()
        elapsed += time.perf_counter() - started
        if terminated or truncated:
            observation, _ = env.reset(seed=seed)
            agent.reset(seed)
    return steps / elapsed


def dream_rate(rnn, config, initial, members: int, episodes: int, steps: int, seed: int) -> float:
    """Episode-steps per second of dream_rollouts for `members` controllers x `episodes` seeds, `steps` long."""
    from controller.controller import random_params
    from dream import dream_rollouts

    params = np.stack([random_params(config, seed + member) for member in range(members)])
    seeds = np.arange(members * episodes).reshape(members, episodes) + seed
    started = time.perf_counter()
    _, lengths = dream_rollouts(rnn, config, initial, params, seeds, config.dream_temperature, steps)
    elapsed = time.perf_counter() - started
    assert lengths.min() == steps, "every benchmark episode runs its full length"
    return float(lengths.sum()) / elapsed


def main(quick: bool = False) -> dict:
    from config import DOOM_TAKE_COVER as config
    from controller.agent import Agent
    from controller.controller import Controller, random_params
    from envs import get_spec

    rounds = 2 if quick else 5
    real_steps, agent_steps = (500, 300) if quick else (2000, 1000)
    dream_steps = {"dream x1": 300 if quick else 1000, "dream x64": 100 if quick else 300,
                   "dream x1024": 20 if quick else 60}
    vae, rnn, initial = models(config)
    agent = Agent(config, vae, rnn, Controller(config, random_params(config, 3)))
    env = get_spec(config.name).make()
    measures = {
        "real env": lambda r: real_env_rate(env, real_steps, 100 + r),
        "real agent": lambda r: real_agent_rate(env, agent, agent_steps, 100 + r),
        "dream x1": lambda r: dream_rate(rnn, config, initial, 1, 1, dream_steps["dream x1"], 100 + r),
        "dream x64": lambda r: dream_rate(rnn, config, initial, POPULATION, 1, dream_steps["dream x64"], 100 + r),
        "dream x1024": lambda r: dream_rate(rnn, config, initial, POPULATION, EPISODES_PER_MEMBER,
                                            dream_steps["dream x1024"], 100 + r),
    }
    # warm-up: the first episode, frame-size buffers of V, BLAS buffers
    real_env_rate(env, 50, 0)
    real_agent_rate(env, agent, 20, 0)
    dream_rate(rnn, config, initial, 2, 2, 5, 0)
    rates: dict[str, list[float]] = {name: [] for name in measures}
    for round_index in range(rounds):
        order = list(measures) if round_index % 2 == 0 else list(reversed(measures))
        for name in order:
            rates[name].append(measures[name](round_index))
    env.close()
    rate = {name: statistics.median(values) for name, values in rates.items()}

    print(f"DoomTakeCover steps per second, real VizDoom against the dream (M: LSTM 512, 5 Gaussians x 64 latents, "
          f"tau {config.dream_temperature}), one BLAS thread, median of {rounds} alternating rounds")
    print(f"  {'':<14}{'steps/s':>10}{'ms/step':>10}   rounds (steps/s)")
    for name, value in rate.items():
        per_round = " ".join(f"{r:.0f}" for r in rates[name])
        print(f"  {name:<14}{value:>10.0f}{1e3 / value:>10.3f}   {per_round}")
    ratios = {
        "dream x1 / real agent": rate["dream x1"] / rate["real agent"],
        "dream x64 / real agent": rate["dream x64"] / rate["real agent"],
        "dream x1024 / real agent": rate["dream x1024"] / rate["real agent"],
        "dream x64 / real env": rate["dream x64"] / rate["real env"],
        "dream x64 / dream x1": rate["dream x64"] / rate["dream x1"],
    }
    for name, value in ratios.items():
        print(f"  {name:<30}{value:>8.1f}x")
    print("  (dream rates are episode-steps summed over the batch; 'real agent' includes V, C and M per frame)")
    return {"steps_per_s": rate, "rounds": rates, "ratios": ratios}


if __name__ == "__main__":
    from benchmarks import quick_flag

    main(quick=quick_flag(__doc__.strip().splitlines()[0]))
