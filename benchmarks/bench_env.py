"""Benchmark of the environment: steps per second of FastCarRacing against Gymnasium's CarRacing, and where the
remaining time of a FastCarRacing step goes.

    python -m benchmarks.bench_env            (part of `make bench`)

Both environments run ALTERNATELY in one process (interleaved rounds, the order flipping every round) on the same
seeds and the same actions (stage 01's RandomPolicy), observations rendered as in training (render_mode None, i.e.
96x96 state pixels). Only `step` is timed; resets are not. The reported rate is the median over rounds.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np  # noqa: E402


def random_actions(seed: int, steps: int, env_name: str = "car_racing") -> list[np.ndarray]:
    """`steps` actions of env_name's random policy, seeded."""
    from envs import get_spec

    policy = get_spec(env_name).random_policy(seed)
    return [policy() for _ in range(steps)]


def timed_steps(env, seed: int, actions) -> tuple[int, float]:
    """Run `actions` from reset(seed) (resetting again, untimed, if the episode ends); return (steps, seconds)."""
    env.reset(seed=seed)
    elapsed = 0.0
    for action in actions:
        started = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - started
        if terminated or truncated:
            env.reset(seed=seed)
    return len(actions), elapsed


def compare_rates(steps: int, rounds: int, seeds: tuple[int, ...]) -> dict[str, list[float]]:
    """Steps per second of each environment in each round; the two alternate within every round."""
    from gymnasium.envs.box2d.car_racing import CarRacing

    from envs.fast_car_racing import FastCarRacing

    envs = {"CarRacing": CarRacing(), "FastCarRacing": FastCarRacing()}
    actions = {seed: random_actions(seed, steps) for seed in seeds}
    for env in envs.values():  # warm-up: imports, fonts, first surfaces
        timed_steps(env, seeds[0], actions[seeds[0]][:20])
    rates: dict[str, list[float]] = {name: [] for name in envs}
    for round_index in range(rounds):
        order = list(envs) if round_index % 2 == 0 else list(reversed(envs))
        for name in order:
            total_steps, total_seconds = 0, 0.0
            for seed in seeds:
                count, seconds = timed_steps(envs[name], seed, actions[seed])
                total_steps += count
                total_seconds += seconds
            rates[name].append(total_steps / total_seconds)
    return rates


class _Timer:
    """Accumulates the time spent in wrapped callables, by label."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, label: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        return timed


class _GfxdrawProxy:
    """Stands in for the `gfxdraw` module inside envs/fast_car_racing.py while profiling, timing its polygon calls."""

    def __init__(self, module, timer: _Timer):
        self.aapolygon = timer.wrap("gfxdraw", module.aapolygon)
        self.filled_polygon = timer.wrap("gfxdraw", module.filled_polygon)


def breakdown(steps: int, seed: int) -> tuple[float, list[tuple[str, float]]]:
    """Milliseconds per FastCarRacing step in total and per part, timed with perf_counter around each part."""
    import envs.fast_car_racing as env_module
    from envs.fast_car_racing import FastCarRacing

    env = FastCarRacing()
    actions = random_actions(seed, steps)
    timed_steps(env, seed, actions[:20])  # warm-up
    timer = _Timer()
    for name in ("_render", "_draw_road", "_draw_car", "_flip_window", "_render_indicators", "_draw_score",
                 "_create_image_array"):
        setattr(env, name, timer.wrap(name, getattr(env, name)))
    gfxdraw = env_module.gfxdraw
    env_module.gfxdraw = _GfxdrawProxy(gfxdraw, timer)
    try:
        env.reset(seed=seed)
        car_step, world_step = None, None
        started = time.perf_counter()
        for action in actions:
            if car_step is not env.car:  # a new Car after every reset
                env.car.step = timer.wrap("car", type(env.car).step.__get__(env.car))
                car_step = env.car
            if world_step is None:
                env.world.Step = timer.wrap("box2d", env.world.Step)
                world_step = True
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset(seed=seed)
                car_step = None
        total = time.perf_counter() - started
    finally:
        env_module.gfxdraw = gfxdraw
    ms = {label: seconds / steps * 1e3 for label, seconds in timer.seconds.items()}
    total_ms = total / steps * 1e3
    parts = [
        ("Box2D world.Step", ms["box2d"]),
        ("Car.step (wheel forces, Python)", ms["car"]),
        ("other step bookkeeping (rewards, timing wrappers)", total_ms - ms["_render"] - ms["box2d"] - ms["car"]),
        ("road: gfxdraw polygon calls (pixel filling)", ms["gfxdraw"]),
        ("road: NumPy transform, visibility, background fill", ms["_draw_road"] - ms["gfxdraw"]),
        ("car drawing", ms["_draw_car"]),
        ("vertical flip of the 1000x800 window", ms["_flip_window"]),
        ("indicators and score text", ms["_render_indicators"] + ms["_draw_score"]),
        ("smoothscale to 96x96 and pixel read", ms["_create_image_array"]),
    ]
    return total_ms, parts


def main(steps: int = 300, rounds: int = 5, seeds: tuple[int, ...] = (0, 1)) -> dict:
    rates = compare_rates(steps, rounds, seeds)
    stock, fast = statistics.median(rates["CarRacing"]), statistics.median(rates["FastCarRacing"])
    print(f"CarRacing-v3 step rate, state pixels, RandomPolicy actions, {steps} steps x seeds {list(seeds)}, "
          f"median of {rounds} interleaved rounds")
    print(f"  {'environment':<16}{'steps/s':>10}{'ms/step':>10}   rounds (steps/s)")
    for name, rate in (("CarRacing", stock), ("FastCarRacing", fast)):
        per_round = " ".join(f"{r:.0f}" for r in rates[name])
        print(f"  {name:<16}{rate:>10.1f}{1e3 / rate:>10.2f}   {per_round}")
    print(f"  {'speed-up':<16}{fast / stock:>9.2f}x")

    total_ms, parts = breakdown(steps, seeds[0])
    print(f"\nWhere a FastCarRacing step goes ({total_ms:.2f} ms/step with timing wrappers, seed {seeds[0]}):")
    for label, part_ms in parts:
        print(f"  {label:<52}{part_ms:>7.3f} ms {100 * part_ms / total_ms:>5.1f}%")
    return {"car_racing_steps_per_s": stock, "fast_car_racing_steps_per_s": fast, "speedup": fast / stock,
            "rounds": rates, "breakdown_ms": dict(parts)}


if __name__ == "__main__":
    from benchmarks import quick_flag

    quick_flag(__doc__.strip().splitlines()[0], takes_quick=False)
    main()
